// The playground: chat with any chat or completion model through /v1 (streamed, metered to the signed-in
// key), with a system prompt and parameters, and side by side with up to three models on the same prompt.
// Answers render as Markdown (markdown.js), link to their trace, can be copied and regenerated; "View code"
// shows the current request as curl / Python / JavaScript; conversations can be saved in this browser.
import { get, stream } from "../api.js";
import { codeSamples } from "../code_samples.js";
import { fmtMs, fmtNum, fmtTime, t } from "../i18n.js";
import { copyText, renderMarkdown } from "../markdown.js";
import { confirmDialog, emptyState, errorBox, field, formDialog, h, modal, mount, spinner } from "../ui.js";

const PRESETS = { precise: 0.2, balanced: 0.7, creative: 1.0 };
const SAVED = "temper.play.conversations";  // saved conversations: in this browser's localStorage only

function transcript(system, history) {
  const lines = system ? [system, ""] : [];
  for (const m of history) lines.push(`${m.role === "user" ? "User" : "Assistant"}: ${m.content}`);
  lines.push("Assistant:");
  return lines.join("\n");
}

/** The /v1 request for one column: chat models get messages, completion models a plain transcript. */
function request(model, settings, history, streamed = true) {
  const common = { model: model.id, ...(streamed ? { stream: true, stream_options: { include_usage: true } } : {}),
    temperature: settings.temperature, max_tokens: settings.max_tokens };
  if (model.modality === "completion") {
    return ["/v1/completions", { ...common, prompt: transcript(settings.system, history), stop: ["\nUser:"] }];
  }
  const messages = settings.system ? [{ role: "system", content: settings.system }, ...history] : [...history];
  return ["/v1/chat/completions", { ...common, messages, ...(settings.json ? { response_format: { type: "json_object" } } : {}) }];
}

/** A rough token count for the context warning, before anything is sent: one token per non-ASCII character
 * (CJK text is about that) and one per three ASCII characters. Real tokenizers differ; the server checks exactly. */
export function estimateTokens(text) {
  let ascii = 0;
  let wide = 0;
  for (const ch of text) { if (ch.codePointAt(0) < 0x80) ascii += 1; else wide += 1; }
  return wide + Math.ceil(ascii / 3);
}

function loadSaved() {
  try { return JSON.parse(localStorage.getItem(SAVED)) || []; } catch { return []; }
}
const storeSaved = (list) => localStorage.setItem(SAVED, JSON.stringify(list));

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

/** A link to the trace of one answer (a new tab, so that the conversation stays). */
const traceLink = (id) => h("a", { href: `/traces/${encodeURIComponent(id)}`, target: "_blank", rel: "noopener", "data-test": "trace-link" },
  t("play.view_trace"));

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
  let savedId = null;  // the saved conversation on screen, updated after each answer

  // Settings panel
  const system = h("textarea", { rows: 4, placeholder: t("play.system_placeholder"), "data-test": "system-prompt",
    oninput: (e) => { settings.system = e.target.value; checkContext(); } });
  const temp = h("input", { type: "number", min: "0", max: "2", step: "0.1", value: settings.temperature, "data-test": "temperature",
    oninput: (e) => { settings.temperature = Number(e.target.value); presets.querySelectorAll("button").forEach((b) => b.classList.remove("on")); } });
  const presets = h("div", { class: "seg" }, Object.entries(PRESETS).map(([k, v]) => h("button", {
    class: v === settings.temperature ? "on" : "", title: `temperature ${v}`, onclick: (e) => {
      settings.temperature = v; temp.value = v;
      presets.querySelectorAll("button").forEach((b) => b.classList.toggle("on", b === e.currentTarget));
    },
  }, t(`play.preset_${k}`))));
  const maxTokens = h("input", { type: "number", min: "1", max: "32768", value: settings.max_tokens, "data-test": "max-tokens",
    oninput: (e) => { settings.max_tokens = Number(e.target.value) || undefined; checkContext(); } });
  const json = h("input", { type: "checkbox", onchange: (e) => { settings.json = e.target.checked; } });
  const compare = h("div", { class: "seg", role: "group", "aria-label": t("play.compare") }, [1, 2, 3].map((n) => h("button", {
    class: n === 1 ? "on" : "", "data-test": `compare-${n}`, onclick: () => setColumns(n),
  }, n === 1 ? t("play.single") : t("play.compare_n", { n }))));

  // Conversation columns
  const grid = h("div", { class: "columns" });
  function addColumn(modelId) {
    const col = { model: modelId, history: [], ctrl: null };
    col.messages = h("div", { class: "messages", "data-test": "messages" }, startHint());
    col.select = h("select", { "aria-label": t("play.model"), "data-test": "model-select",
      onchange: (e) => {
        col.model = e.target.value;
        if (columns[0] === col) localStorage.setItem("temper.play.model", col.model);
        checkContext();
      } },
    models.map((m) => h("option", { value: m.id, selected: m.id === modelId }, `${m.id} · ${t(`modality.${m.modality}`)}`)));
    col.el = h("section", { class: "column", "data-test": "column" }, h("div", { class: "head" }, col.select), col.messages);
    columns.push(col);
    grid.append(col.el);
  }
  function setColumns(n) {
    compare.querySelectorAll("button").forEach((b, i) => b.classList.toggle("on", i === n - 1));
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
    const body = role === "user" ? h("div", { class: "body", "data-test": "question" }, text)
      : h("div", { class: "body md-body", "data-test": "answer" }, text && renderMarkdown(text));
    const meta = h("div", { class: "meta", "data-test": "answer-meta" });
    const el = h("div", { class: `msg ${role}` }, h("div", { class: "who" }, role === "user" ? t("play.you") : col.model), body, role === "assistant" && meta);
    col.messages.append(el);
    col.messages.scrollTop = col.messages.scrollHeight;
    return { el, body, meta };
  }

  /** Copy, and Regenerate on the column's latest answer only (an older answer has later turns built on it). */
  function answerActions(col, out, answer) {
    col.messages.querySelectorAll("[data-test=regenerate]").forEach((b) => b.remove());
    out.meta.append(h("span", { class: "msg-actions" },
      h("button", { class: "small ghost", "data-test": "copy-answer", onclick: (e) => copyText(answer, e.currentTarget) }, t("md.copy")),
      h("button", { class: "small ghost", "data-test": "regenerate", disabled: running, onclick: () => guarded(() => regenerate(col, out)) },
        t("play.regenerate"))));
  }

  async function regenerate(col, out) {
    if (col.history.at(-1)?.role === "assistant") col.history.pop();
    out.el.remove();
    await ask(col);
  }

  /** Stream the answer to the column's history (which ends with the user's turn). */
  async function ask(col) {
    const model = byId.get(col.model);
    const out = bubble(col, "assistant", "");
    out.body.append(spinner());
    const ctrl = new AbortController();
    col.ctrl = ctrl;
    const t0 = performance.now();
    let ttft = null;
    let answer = "";
    let usage = null;
    let traceId = null;
    let painting = false;
    const paint = () => {  // at most one Markdown render per frame while tokens stream in
      if (painting) return;
      painting = true;
      requestAnimationFrame(() => {
        painting = false;
        if (col.ctrl !== ctrl) return;  // finished (or failed) since: the final render stands
        out.body.replaceChildren(renderMarkdown(answer));
        col.messages.scrollTop = col.messages.scrollHeight;
      });
    };
    try {
      const [path, body] = request(model, settings, col.history);
      for await (const ev of stream(path, body, ctrl.signal, (res) => { traceId = res.headers.get("x-trace-id"); })) {
        const choice = ev.choices && ev.choices[0];
        const delta = choice && (model.modality === "completion" ? choice.text : choice.delta && choice.delta.content);
        if (delta) {
          if (ttft === null) ttft = performance.now() - t0;
          answer += delta;
          paint();
        }
        if (ev.usage) usage = ev.usage;
      }
      out.body.replaceChildren(answer ? renderMarkdown(answer) : h("span", { class: "muted" }, t("play.empty_answer")));
      col.history.push({ role: "assistant", content: answer });
      out.meta.append(metrics({ ttft, total: performance.now() - t0, usage }), traceId ? " · " : "", traceId && traceLink(traceId));
      answerActions(col, out, answer);
    } catch (e) {
      col.history.pop();
      if (e.name === "AbortError") {
        out.meta.textContent = t("play.stopped");
        out.body.replaceChildren(answer ? renderMarkdown(answer) : h("span", { class: "muted" }, "—"));
      } else {
        const box = errorBox(e);
        box.setAttribute("data-test", "answer-error");
        out.body.replaceChildren(box);
        if (traceId) out.meta.append(traceLink(traceId));
        // After a long prompt the error must be seen whole, not as a sliver at the bottom of the transcript.
        out.el.scrollIntoView({ block: "end" });
      }
    } finally {
      col.ctrl = null;
    }
  }

  const input = h("textarea", { rows: 2, placeholder: t("play.input_placeholder"), "data-test": "prompt",
    oninput: () => checkContext(),
    onkeydown: (e) => { if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); } } });
  const sendBtn = h("button", { class: "primary", onclick: () => send(), "data-test": "send" }, t("play.send"));
  const stopBtn = h("button", { disabled: true, onclick: () => columns.forEach((c) => c.ctrl && c.ctrl.abort()), "data-test": "stop" }, t("play.stop"));
  const clearBtn = h("button", { class: "ghost", onclick: () => {
    for (const c of columns) { c.history = []; c.messages.replaceChildren(startHint()); }
    savedId = null;
    drawSaved();
    checkContext();
  } }, t("play.clear"));
  const warning = h("div", { class: "alert warn small", role: "status", "data-test": "context-warning", hidden: true });

  /** Warn before sending when the estimated prompt plus max tokens exceeds a column model's context length. */
  function checkContext() {
    const over = columns.map((col) => {
      const m = byId.get(col.model);
      const prompt = estimateTokens([settings.system, ...col.history.map((x) => x.content), input.value].join("\n"));
      return { m, prompt, total: prompt + (settings.max_tokens || 0) };
    }).find((x) => x.m.context_length && x.total > x.m.context_length);
    warning.hidden = !over;
    if (over) {
      warning.textContent = t("play.context_warning", { model: over.m.id, prompt: fmtNum(over.prompt),
        max: fmtNum(settings.max_tokens || 0), context: fmtNum(over.m.context_length) });
    }
  }

  /** Run `fn` with the composer locked (one exchange at a time). */
  async function guarded(fn) {
    if (running) return;
    running = true;
    sendBtn.disabled = true; stopBtn.disabled = false; clearBtn.disabled = true;
    grid.querySelectorAll("[data-test=regenerate]").forEach((b) => { b.disabled = true; });
    try {
      await fn();
    } finally {
      running = false;
      sendBtn.disabled = false; stopBtn.disabled = true; clearBtn.disabled = false;
      grid.querySelectorAll("[data-test=regenerate]").forEach((b) => { b.disabled = false; });
      if (savedId) save(false);
      checkContext();
    }
  }

  async function send() {
    const text = input.value.trim();
    if (!text || running) return;
    input.value = "";
    await guarded(() => Promise.allSettled(columns.map((c) => {
      c.history.push({ role: "user", content: text });
      bubble(c, "user", text);
      return ask(c);
    })));
    input.focus();
  }

  // View code: the first column's request as it stands, with the composer's text as the next user turn.
  function viewCode() {
    const col = columns[0];
    const text = input.value.trim();
    const history = [...col.history, ...(text ? [{ role: "user", content: text }] : [])];
    const [path, body] = request(byId.get(col.model), settings,
      history.length ? history : [{ role: "user", content: t("samples.hello") }], false);
    modal({
      title: t("play.code_title", { model: col.model }),
      body: h("div", { "data-test": "view-code-dialog" }, codeSamples(path, body)),
      actions: [{ label: t("common.close"), kind: "primary", onClick: (_, close) => close() }],
    });
  }

  // Saved conversations (this browser only)
  const savedList = h("div", { class: "saved-list", "data-test": "saved-list" });
  function snapshot() {
    return { settings: { ...settings }, columns: columns.map((c) => ({ model: c.model, history: c.history })) };
  }
  function save(announce = true) {
    const list = loadSaved();
    const old = list.find((c) => c.id === savedId);
    const firstQuestion = (columns[0].history.find((m) => m.role === "user") || {}).content || t("play.untitled");
    const entry = { id: savedId || `conv_${Date.now().toString(36)}`, title: old ? old.title : firstQuestion.slice(0, 60),
      saved_at: new Date().toISOString(), ...snapshot() };
    savedId = entry.id;
    storeSaved([entry, ...list.filter((c) => c.id !== entry.id)]);
    if (announce) drawSaved();
  }
  function open(conv) {
    if (running) return;
    Object.assign(settings, conv.settings);
    system.value = settings.system || "";
    temp.value = settings.temperature;
    maxTokens.value = settings.max_tokens ?? "";
    json.checked = !!settings.json;
    setColumns(Math.max(1, Math.min(3, conv.columns.length)));
    conv.columns.forEach((saved, i) => {
      const col = columns[i];
      if (!col) return;
      if (byId.has(saved.model)) { col.model = saved.model; col.select.value = saved.model; }
      col.history = saved.history.map((m) => ({ role: m.role, content: m.content }));
      col.messages.replaceChildren(...(col.history.length ? [] : [startHint()]));
      let out = null;
      for (const m of col.history) out = bubble(col, m.role, m.content);
      if (out && col.history.at(-1).role === "assistant") answerActions(col, out, col.history.at(-1).content);
    });
    savedId = conv.id;
    drawSaved();
    checkContext();
  }
  function rename(conv) {
    const name = h("input", { name: "title", required: true, maxlength: "200", value: conv.title, "data-test": "conversation-title" });
    formDialog({
      title: t("play.rename_title"), form: h("form", { onsubmit: (e) => e.preventDefault() }, field(t("play.conversation_name"), name)),
      submitLabel: t("common.save"), test: "rename-submit",
      submit: async (v) => {
        storeSaved(loadSaved().map((c) => (c.id === conv.id ? { ...c, title: v.title } : c)));
        drawSaved();
      },
    });
  }
  async function remove(conv) {
    if (!(await confirmDialog(t("play.delete_confirm", { name: conv.title }), { ok: t("common.delete"), danger: true }))) return;
    storeSaved(loadSaved().filter((c) => c.id !== conv.id));
    if (savedId === conv.id) savedId = null;
    drawSaved();
  }
  function drawSaved() {
    const list = loadSaved();
    savedList.replaceChildren(...(list.length ? list.map((c) => h("div", { class: `saved-item ${c.id === savedId ? "on" : ""}`, "data-test": "saved-item" },
      h("button", { class: "ghost saved-open", title: fmtTime(c.saved_at), "data-test": "open-conversation", onclick: () => open(c) }, c.title),
      h("button", { class: "small ghost", title: t("play.rename"), "aria-label": t("play.rename"), "data-test": "rename-conversation", onclick: () => rename(c) }, "✎"),
      h("button", { class: "small ghost", title: t("common.delete"), "aria-label": t("common.delete"), "data-test": "delete-conversation", onclick: () => remove(c) }, "×")))
      : [h("div", { class: "muted small" }, t("play.no_saved"))]));
  }

  addColumn(first);
  setColumns(1);
  drawSaved();
  mount(root,
    h("div", { class: "page-head" }, h("h1", {}, t("nav.playground")), h("span", { class: "sub" }, t("play.subtitle")),
      h("div", { class: "actions" }, h("button", { "data-test": "view-code", onclick: viewCode }, t("play.view_code")))),
    h("div", { class: "play" },
      h("div", { class: "panel settings" },
        field(t("play.system"), system),
        h("label", { class: "field" }, h("span", {}, t("play.temperature")), presets, temp),
        field(t("play.max_tokens"), maxTokens),
        h("label", { class: "check", title: t("play.json_hint") }, json, t("play.json")),
        h("p", { class: "muted small" }, t("play.json_hint")),
        h("label", { class: "field" }, h("span", {}, t("play.compare")), compare),
        h("p", { class: "muted small" }, t("play.metering_note")),
        h("div", { class: "saved" },
          h("div", { class: "row" }, h("strong", { class: "grow" }, t("play.saved")),
            h("button", { class: "small", "data-test": "save-conversation", onclick: () => {
              if (columns.some((c) => c.history.length)) save(); } }, t("common.save"))),
          savedList,
          h("p", { class: "muted small" }, t("play.saved_note")))),
      h("div", { class: "chat" }, grid, warning,
        h("div", { class: "composer" }, input, h("div", { class: "row" }, clearBtn, stopBtn, sendBtn)))));
  input.focus();
  return () => columns.forEach((c) => c.ctrl && c.ctrl.abort());
}
