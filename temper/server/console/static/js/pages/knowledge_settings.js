// A knowledge base's settings as a form: the commonly changed fields of its retrieval, answer, chunking and
// enrichment sections (temper/knowledge/config.py). Admins save them with PATCH; members read them. The server
// replaces each section it is given, so a changed section is sent whole: the stored one with the changes over it
// (fields the form does not show keep their values). The API validates: its message, and the field it names,
// show next to the form.
import { get, patch } from "../api.js";
import { fmtNum, t } from "../i18n.js";
import { badge, busy, errorBox, field, h, mount, toast } from "../ui.js";
import { STRATEGIES } from "./knowledge.js";

const MODES = ["hybrid", "dense", "keyword"];
const LOCAL_RERANKER = "embedding";

/** The form's fields. kind: choice | int | float | optfloat | bool | text | opttext. `list`: a model datalist. */
function fieldSpecs() {
  return {
    retrieval: [
      { key: "retrieval.mode", kind: "choice", label: t("kb.mode"), test: "set-mode",
        choices: MODES.map((m) => [m, t(`kb.mode_${m}`)]) },
      { key: "retrieval.top_k", kind: "int", label: t("kb.top_k"), hint: t("kb.top_k_hint"), min: 1, max: 100, test: "set-top-k" },
      { key: "retrieval.candidates", kind: "int", label: t("kb.candidates"), hint: t("kb.candidates_hint"), min: 1, max: 500,
        test: "set-candidates" },
      { key: "retrieval.weights.dense", kind: "float", label: t("kb.weight_dense"), hint: t("kb.weights_hint"), min: 0, step: "0.1",
        test: "set-weight-dense" },
      { key: "retrieval.weights.keyword", kind: "float", label: t("kb.weight_keyword"), hint: t("kb.weights_hint"), min: 0, step: "0.1",
        test: "set-weight-keyword" },
      { key: "retrieval.rerank", kind: "bool", label: t("kb.rerank_on"), test: "set-rerank" },
      { key: "retrieval.rerank_model", kind: "text", label: t("kb.rerank_model"), hint: t("kb.rerank_model_hint"), list: "rerank",
        test: "set-rerank-model" },
      { key: "retrieval.threshold", kind: "optfloat", label: t("kb.threshold"), hint: t("kb.threshold_hint"), step: "any",
        test: "set-threshold" },
      { key: "retrieval.multi_query", kind: "int", label: t("kb.multi_query"), hint: t("kb.multi_query_hint"), min: 0, max: 5,
        test: "set-multi-query" },
    ],
    answer: [
      { key: "answer.model", kind: "text", label: t("kb.answer_model"), hint: t("kb.answer_model_hint"), list: "chat",
        test: "set-answer-model" },
      { key: "answer.min_relevance", kind: "optfloat", label: t("kb.min_relevance"), hint: t("kb.min_relevance_hint"), step: "any",
        test: "set-min-relevance" },
    ],
    chunking: [
      { key: "chunking.strategy", kind: "choice", label: t("kb.strategy"), test: "set-strategy",
        choices: STRATEGIES.map((s) => [s, t(`kb.strategy_${s}`)]) },
      { key: "chunking.chunk_tokens", kind: "int", label: t("kb.chunk_tokens"), hint: t("kb.chunk_tokens_hint"), min: 16, max: 480,
        test: "set-chunk-tokens" },
      { key: "chunking.overlap_tokens", kind: "int", label: t("kb.overlap_tokens"), hint: t("kb.overlap_tokens_hint"), min: 0,
        test: "set-overlap-tokens" },
      { key: "chunking.parent_tokens", kind: "int", label: t("kb.parent_tokens"), hint: t("kb.parent_tokens_hint"), min: 16,
        test: "set-parent-tokens" },
    ],
    enrichment: [
      { key: "enrichment.model", kind: "opttext", label: t("kb.enrichment_model"), hint: t("kb.enrichment_model_hint"), list: "chat",
        test: "set-enrichment-model" },
    ],
  };
}

function valueAt(obj, key) {
  return key.split(".").reduce((o, k) => (o && typeof o === "object" ? o[k] : undefined), obj);
}

function setAt(obj, path, value) {
  const last = path[path.length - 1];
  const parent = path.slice(0, -1).reduce((o, k) => {
    if (!o[k] || typeof o[k] !== "object") o[k] = {};
    return o[k];
  }, obj);
  parent[last] = value;
}

/** An input for one setting, showing `value`; `read()` gives what the server should get (empty → null). */
function control(spec, value, listIds) {
  const attrs = { "data-test": spec.test, "data-key": spec.key, "aria-label": spec.label };
  let el;
  if (spec.kind === "choice") {
    el = h("select", attrs, spec.choices.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
  } else if (spec.kind === "bool") {
    el = h("input", { ...attrs, type: "checkbox", checked: !!value });
  } else if (spec.kind === "text" || spec.kind === "opttext") {
    el = h("input", { ...attrs, class: "mono", value: value ?? "", list: spec.list && listIds[spec.list], autocomplete: "off",
      placeholder: spec.kind === "opttext" ? t("kb.optional") : "" });
  } else {
    el = h("input", { ...attrs, type: "number", class: "narrow", value: value === null || value === undefined ? "" : String(value),
      min: spec.min !== undefined ? String(spec.min) : null, max: spec.max !== undefined ? String(spec.max) : null,
      step: spec.step || (spec.kind === "int" ? "1" : "any"), placeholder: spec.kind === "optfloat" ? t("kb.optional") : "" });
  }
  const read = () => {
    if (spec.kind === "bool") return el.checked;
    if (spec.kind === "choice") return el.value;
    const raw = el.value.trim();
    if (raw === "") return null;
    return spec.kind === "text" || spec.kind === "opttext" ? raw : Number(raw);
  };
  const node = spec.kind === "bool"
    ? h("label", { class: "check setting-check" }, el, spec.label)
    : field(spec.label, el, spec.hint);
  return { spec, el, node, read };
}

function summary(config) {
  const r = config.retrieval || {};
  const a = config.answer || {};
  const c = config.chunking || {};
  return [
    MODES.includes(r.mode) && badge(t(`kb.mode_${r.mode}`)),
    r.top_k !== undefined && badge(t("kb.settings_top_k", { n: fmtNum(r.top_k) })),
    badge(r.rerank ? t("kb.reranked_with", { model: r.rerank_model || LOCAL_RERANKER }) : t("kb.no_rerank")),
    a.model && badge(t("kb.answer_with", { model: a.model })),
    STRATEGIES.includes(c.strategy) && badge(t(`kb.strategy_${c.strategy}`)),
  ];
}

/** The settings panel: collapsed until opened; `onSaved(kb)` after a save. Returns the panel's node. */
export function settingsPanel(kb, { admin, onSaved }) {
  let config = kb.config || {};
  let controls = [];
  let modelsLoaded = false;
  const path = `/api/v1/knowledge-bases/${encodeURIComponent(kb.id)}`;
  const listIds = { chat: `kb-chat-models-${kb.id}`, rerank: `kb-rerank-models-${kb.id}` };
  const lists = h("div", {}, h("datalist", { id: listIds.chat }), h("datalist", { id: listIds.rerank }));
  const summaryBox = h("span", { class: "tags", "data-test": "settings-summary" });
  const msg = h("div", { "data-test": "settings-error" });
  const body = h("div", {});
  const saveBtn = admin ? h("button", { class: "primary", type: "submit", "data-test": "settings-save" }, t("kb.save_settings")) : null;
  const resetBtn = admin ? h("button", { type: "button", "data-test": "settings-reset", onclick: () => { mount(msg); draw(); } },
    t("kb.reset_settings")) : null;

  function group(title, specs, note) {
    const made = specs.map((s) => control(s, valueAt(config, s.key), listIds));
    controls = controls.concat(made);
    return h("div", { class: "settings-group", "data-test": `settings-${specs[0].key.split(".")[0]}` },
      h("h3", {}, title),
      note && h("div", { class: "muted small panel-hint-note" }, note),
      made.map((c) => c.node));
  }
  function draw() {
    controls = [];
    const specs = fieldSpecs();
    mount(summaryBox, summary(config));
    mount(body,
      h("div", { class: "settings-grid" },
        group(t("kb.settings_retrieval"), specs.retrieval),
        h("div", {},
          group(t("kb.settings_answer"), specs.answer),
          group(t("kb.settings_enrichment"), specs.enrichment, t("kb.enrichment_note"))),
        group(t("kb.chunking"), specs.chunking, t("kb.chunking_note"))));
  }
  /** The sections that changed, each whole: stored values with the form's changes over them. */
  function changes() {
    const out = {};
    for (const c of controls) {
      const now = c.read();
      const was = valueAt(config, c.spec.key);
      if (now === was || (now === null && (was === null || was === undefined))) continue;
      const [section, ...rest] = c.spec.key.split(".");
      if (!out[section]) out[section] = JSON.parse(JSON.stringify(config[section] || {}));
      setAt(out[section], rest, now);
    }
    return out;
  }
  function showError(err) {
    mount(msg, errorBox(err));
    const key = err && err.param ? String(err.param).replace(/^config\./, "") : "";
    const bad = controls.find((c) => c.spec.key === key);
    if (bad) {
      bad.el.classList.add("invalid");
      bad.el.setAttribute("aria-invalid", "true");
      bad.el.focus();
    }
  }
  async function save() {
    mount(msg);
    for (const c of controls) { c.el.classList.remove("invalid"); c.el.removeAttribute("aria-invalid"); }
    const changed = changes();
    if (!Object.keys(changed).length) {
      toast(t("kb.settings_unchanged"));
      return;
    }
    await busy(saveBtn, async () => {
      const saved = await patch(path, { config: changed });
      config = saved.config || config;
      draw();
      toast(t("kb.settings_saved"));
      onSaved(saved);
    }, showError);
  }
  async function loadModels() {
    if (modelsLoaded) return;
    modelsLoaded = true;
    try {
      const models = (await get("/api/v1/models", { limit: 1000 })).data || [];
      const ids = (modality) => models.filter((m) => m.modality === modality).map((m) => h("option", { value: m.id }));
      mount(lists.children[0], ids("chat"));
      mount(lists.children[1], h("option", { value: LOCAL_RERANKER }), ids("rerank"));
    } catch { /* the lists only help typing; any model id can be entered */ }
  }

  draw();
  const form = h("form", { novalidate: true, onsubmit: (e) => { e.preventDefault(); if (admin) save(); } },
    h("fieldset", { class: "settings-fields", disabled: !admin }, body),
    admin ? h("div", { class: "row settings-actions" }, saveBtn, resetBtn) : h("div", { class: "muted small" }, t("kb.settings_readonly")),
    msg, lists);
  const details = h("details", { class: "panel kb-settings", "data-test": "kb-settings",
    ontoggle: () => { if (details.open && admin) loadModels(); } },
  h("summary", { "data-test": "settings-toggle" }, h("h2", {}, t("kb.settings")), summaryBox),
  h("div", { class: "muted small panel-hint-note" }, t("kb.settings_hint")),
  form);
  return details;
}
