// The playground: chat with any chat or completion model through /v1 (streamed, metered to the signed-in
// key), with a system prompt and parameters, and side by side with up to three models on the same prompt.
import { get, stream } from "../api.js";
import { fmtMs, fmtNum, t } from "../i18n.js";
import { emptyState, errorBox, field, h, mount, spinner } from "../ui.js";

const PRESETS = { precise: 0.2, balanced: 0.7, creative: 1.0 };

function transcript(system, history) {
  const lines = system ? [system, ""] : [];
  for (const m of history) lines.push(`${m.role === "user" ? "User" : "Assistant"}: ${m.content}`);
  lines.push("Assistant:");
  return lines.join("\n");
}

/** The /v1 request for one column: chat models get messages, completion models a plain transcript. */
function request(model, settings, history) {
  const common = { model: model.id, stream: true, stream_options: { include_usage: true },
    temperature: settings.temperature, max_tokens: settings.max_tokens };
  if (model.modality === "completion") {
    return ["/v1/completions", { ...common, prompt: transcript(settings.system, history), stop: ["\nUser:"] }];
  }
  const messages = settings.system ? [{ role: "system", content: settings.system }, ...history] : [...history];
  return ["/v1/chat/completions", { ...common, messages, ...(settings.json ? { response_format: { type: "json_object" } } : {}) }];
}

const startHint = () => h("div", { class: "muted small hint" }, t("play.start_hint"));

function metrics({ ttft, total, usage }) {
  const parts = [`${t("play.ttft")} ${fmtMs(ttft)}`, `${t("play.total")} ${fmtMs(total)}`];
  if (usage) {
    parts.push(t("play.tokens_value", { prompt: fmtNum(usage.prompt_tokens), completion: fmtNum(usage.completion_tokens) }));
    const gen = (total - (ttft ?? 0)) / 1000;
    if (usage.completion_tokens > 1 && gen > 0) parts.push(t("play.rate", { rate: fmtNum(usage.completion_tokens / gen, 1) }));
  }
  return parts.join(" · ");
}

export async function render(root, { query }) {
  mount(root, spinner());
  let models;
  try {
    const page = await get("/api/v1/models", { limit: 1000, status: "active" });
    models = page.data.filter((m) => m.modality === "chat" || m.modality === "completion");
  } catch (e) {
    mount(root, errorBox(e));
    return undefined;
  }
  if (!models.length) {
    mount(root, h("div", { class: "page-head" }, h("h1", {}, t("nav.playground"))),
      emptyState({ title: t("play.no_models"), hint: t("play.no_models_hint") }));
    return undefined;
  }
  const byId = new Map(models.map((m) => [m.id, m]));
  const chatModels = models.filter((m) => m.modality === "chat");
  const first = [query.get("model"), localStorage.getItem("temper.play.model")].find((id) => byId.has(id))
    || (chatModels.find((m) => m.builtin) || chatModels[0] || models[0]).id;
  const settings = { system: "", temperature: PRESETS.balanced, max_tokens: 256, json: false };
  const columns = [];
  let running = false;

  // Settings panel
  const system = h("textarea", { rows: 4, placeholder: t("play.system_placeholder"), "data-test": "system-prompt",
    oninput: (e) => { settings.system = e.target.value; } });
  const temp = h("input", { type: "number", min: "0", max: "2", step: "0.1", value: settings.temperature, "data-test": "temperature",
    oninput: (e) => { settings.temperature = Number(e.target.value); presets.querySelectorAll("button").forEach((b) => b.classList.remove("on")); } });
  const presets = h("div", { class: "seg" }, Object.entries(PRESETS).map(([k, v]) => h("button", {
    class: v === settings.temperature ? "on" : "", title: `temperature ${v}`, onclick: (e) => {
      settings.temperature = v; temp.value = v;
      presets.querySelectorAll("button").forEach((b) => b.classList.toggle("on", b === e.currentTarget));
    },
  }, t(`play.preset_${k}`))));
  const maxTokens = h("input", { type: "number", min: "1", max: "32768", value: settings.max_tokens, "data-test": "max-tokens",
    oninput: (e) => { settings.max_tokens = Number(e.target.value) || undefined; } });
  const json = h("input", { type: "checkbox", onchange: (e) => { settings.json = e.target.checked; } });
  const compare = h("div", { class: "seg", role: "group", "aria-label": t("play.compare") }, [1, 2, 3].map((n) => h("button", {
    class: n === 1 ? "on" : "", "data-test": `compare-${n}`, onclick: (e) => {
      compare.querySelectorAll("button").forEach((b) => b.classList.toggle("on", b === e.currentTarget));
      setColumns(n);
    },
  }, n === 1 ? t("play.single") : t("play.compare_n", { n }))));

  // Conversation columns
  const grid = h("div", { class: "columns" });
  function addColumn(modelId) {
    const col = { model: modelId, history: [], ctrl: null };
    col.messages = h("div", { class: "messages", "data-test": "messages" }, startHint());
    col.select = h("select", { "aria-label": t("play.model"), "data-test": "model-select",
      onchange: (e) => { col.model = e.target.value; if (columns[0] === col) localStorage.setItem("temper.play.model", col.model); } },
    models.map((m) => h("option", { value: m.id, selected: m.id === modelId }, `${m.id} · ${t(`modality.${m.modality}`)}`)));
    col.el = h("section", { class: "column", "data-test": "column" }, h("div", { class: "head" }, col.select), col.messages);
    columns.push(col);
    grid.append(col.el);
  }
  function setColumns(n) {
    while (columns.length > n) { const c = columns.pop(); if (c.ctrl) c.ctrl.abort(); c.el.remove(); }
    while (columns.length < n) {
      const used = new Set(columns.map((c) => c.model));
      addColumn((models.find((m) => !used.has(m.id)) || models[0]).id);
    }
    grid.style.gridTemplateColumns = `repeat(${n}, minmax(0, 1fr))`;
  }

  function bubble(col, role, text) {
    const hint = col.messages.querySelector(".hint");
    if (hint) hint.remove();
    const body = h("div", { class: "body", "data-test": role === "user" ? "question" : "answer" }, text);
    const meta = h("div", { class: "meta", "data-test": "answer-meta" });
    const el = h("div", { class: `msg ${role}` }, h("div", { class: "who" }, role === "user" ? t("play.you") : col.model), body, role === "assistant" && meta);
    col.messages.append(el);
    col.messages.scrollTop = col.messages.scrollHeight;
    return { body, meta };
  }

  async function run(col, text) {
    const model = byId.get(col.model);
    col.history.push({ role: "user", content: text });
    bubble(col, "user", text);
    const out = bubble(col, "assistant", "");
    out.body.append(spinner());
    col.ctrl = new AbortController();
    const t0 = performance.now();
    let ttft = null;
    let answer = "";
    let usage = null;
    try {
      const [path, body] = request(model, settings, col.history);
      for await (const ev of stream(path, body, col.ctrl.signal)) {
        const choice = ev.choices && ev.choices[0];
        const delta = choice && (model.modality === "completion" ? choice.text : choice.delta && choice.delta.content);
        if (delta) {
          if (ttft === null) ttft = performance.now() - t0;
          answer += delta;
          out.body.textContent = answer;
          col.messages.scrollTop = col.messages.scrollHeight;
        }
        if (ev.usage) usage = ev.usage;
      }
      if (!answer) out.body.replaceChildren(h("span", { class: "muted" }, t("play.empty_answer")));
      col.history.push({ role: "assistant", content: answer });
      out.meta.textContent = metrics({ ttft, total: performance.now() - t0, usage });
    } catch (e) {
      col.history.pop();
      if (e.name === "AbortError") {
        out.meta.textContent = t("play.stopped");
        if (!answer) out.body.replaceChildren(h("span", { class: "muted" }, "—"));
      } else {
        out.body.replaceChildren(errorBox(e));
      }
    } finally {
      col.ctrl = null;
    }
  }

  const input = h("textarea", { rows: 2, placeholder: t("play.input_placeholder"), "data-test": "prompt",
    onkeydown: (e) => { if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); } } });
  const sendBtn = h("button", { class: "primary", onclick: () => send(), "data-test": "send" }, t("play.send"));
  const stopBtn = h("button", { disabled: true, onclick: () => columns.forEach((c) => c.ctrl && c.ctrl.abort()), "data-test": "stop" }, t("play.stop"));
  const clearBtn = h("button", { class: "ghost", onclick: () => {
    for (const c of columns) { c.history = []; c.messages.replaceChildren(startHint()); }
  } }, t("play.clear"));

  async function send() {
    const text = input.value.trim();
    if (!text || running) return;
    input.value = "";
    running = true;
    sendBtn.disabled = true; stopBtn.disabled = false; clearBtn.disabled = true;
    await Promise.allSettled(columns.map((c) => run(c, text)));
    running = false;
    sendBtn.disabled = false; stopBtn.disabled = true; clearBtn.disabled = false;
    input.focus();
  }

  addColumn(first);
  setColumns(1);
  mount(root,
    h("div", { class: "page-head" }, h("h1", {}, t("nav.playground")), h("span", { class: "sub" }, t("play.subtitle"))),
    h("div", { class: "play" },
      h("div", { class: "panel settings" },
        field(t("play.system"), system),
        h("label", { class: "field" }, h("span", {}, t("play.temperature")), presets, temp),
        field(t("play.max_tokens"), maxTokens),
        h("label", { class: "check", title: t("play.json_hint") }, json, t("play.json")),
        h("p", { class: "muted small" }, t("play.json_hint")),
        h("label", { class: "field" }, h("span", {}, t("play.compare")), compare),
        h("p", { class: "muted small" }, t("play.metering_note"))),
      h("div", { class: "chat" }, grid,
        h("div", { class: "composer" }, input, h("div", { class: "row" }, clearBtn, stopBtn, sendBtn)))));
  input.focus();
  return () => columns.forEach((c) => c.ctrl && c.ctrl.abort());
}
