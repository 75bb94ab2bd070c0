// One prompt: its versions (newest first) with their labels, the selected version's template, variables and
// model config, a new version, moving a label, and a diff between any two versions.
import { get, post, put } from "../api.js";
import { fmtTime, t } from "../i18n.js";
import { keepQuery, select } from "../ops.js";
import { badge, busy, emptyState, errorBox, field, formDialog, h, mount, spinner, table, toast } from "../ui.js";
import { configInputs, templateEditor } from "./prompts.js";

const COMMON_LABELS = ["production", "staging"];

/** A unified diff with added, removed, hunk and file lines coloured. */
export function diffView(text) {
  if (!text) return h("div", { class: "muted small", "data-test": "diff" }, t("prompt.no_diff"));
  return h("pre", { class: "diff", "data-test": "diff" }, text.split("\n").map((line) => {
    const kind = line.startsWith("+++") || line.startsWith("---") ? "meta" : line.startsWith("@@") ? "hunk"
      : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : "ctx";
    return h("span", { class: `dl ${kind}` }, line || " ");
  }));
}

function templateView(v) {
  if (typeof v.template === "string") return h("pre", { class: "payload", "data-test": "version-template" }, v.template);
  return h("div", { class: "messages-view", "data-test": "version-template" }, v.template.map((m) =>
    h("div", { class: "msg-view" }, h("div", { class: "who" }, m.role), h("pre", { class: "payload" }, m.content))));
}

function versionView(p, v) {
  const cfg = Object.entries(v.model_config || {});
  return h("div", { "data-test": "version-view", "data-version": String(v.version) },
    h("div", { class: "row" }, h("h2", { class: "grow-h" }, t("prompt.version_n", { n: v.version })),
      (v.labels || []).map((l) => badge(l, l === "production" ? "ok" : "accent")), badge(t(`prompts.type_${v.type}`))),
    v.message && h("p", { class: "muted" }, v.message),
    h("dl", { class: "facts" }, h("dt", {}, t("prompt.created_by")), h("dd", {}, v.created_by || "—"),
      h("dt", {}, t("trace.created")), h("dd", {}, fmtTime(v.created_at))),
    h("h3", {}, t("prompts.template")), templateView(v),
    h("h3", {}, t("prompt.variables")),
    v.variables && v.variables.length
      ? h("div", { class: "tags", "data-test": "version-variables" }, v.variables.map((x) => badge(`{{${x}}}`, "accent")))
      : h("div", { class: "muted small" }, t("prompt.no_variables")),
    h("h3", {}, t("prompt.model_config")),
    cfg.length ? h("dl", { class: "facts" }, cfg.map(([k, val]) => [h("dt", { class: "mono" }, k), h("dd", { class: "mono" }, JSON.stringify(val))]))
      : h("div", { class: "muted small" }, t("prompt.no_config")));
}

async function newVersionDialog(p, base, onDone) {
  let models = [];
  try { models = (await get("/api/v1/models", { limit: 1000 })).data; } catch { /* the model config is optional */ }
  const editor = templateEditor(base.type, base.template);
  const config = configInputs(models, base.model_config || {});
  const labels = COMMON_LABELS.map((l) => h("label", { class: "check badge" }, h("input", { type: "checkbox", value: l, "data-label": l }), l));
  const form = h("form", { onsubmit: (e) => e.preventDefault() },
    h("div", { class: "muted small" }, t("prompt.new_version_from", { n: base.version })),
    field(t("prompts.template"), editor.node, t("prompts.variables_hint")),
    config.node,
    field(t("prompt.message"), h("input", { name: "message", maxlength: "2000", placeholder: t("prompt.message_ph"), "data-test": "version-message" })),
    field(t("prompt.move_labels"), h("div", { class: "tags" }, labels)));
  formDialog({
    title: t("prompt.new_version_title", { name: p.name }), form, submitLabel: t("prompt.save_version"), test: "new-version-submit",
    submit: async (v) => {
      const moving = labels.map((l) => l.querySelector("input")).filter((x) => x.checked).map((x) => x.value);
      const created = await post(`/api/v1/prompts/${encodeURIComponent(p.name)}/versions`, {
        type: base.type, template: editor.read(), model_config: config.read(base.model_config || {}), message: v.message, labels: moving });
      toast(t("prompt.version_saved", { n: created.version }));
      onDone(created.version);
    },
  });
}

function moveLabelDialog(p, label, version, onDone) {
  const known = [...new Set([...COMMON_LABELS, ...Object.keys(p.labels || {})])];
  const form = h("form", { onsubmit: (e) => e.preventDefault() },
    field(t("prompt.label"), h("input", { name: "label", required: true, value: label || "", list: "label-choices", pattern: "[a-z0-9_\\-]{1,50}",
      "data-test": "label-name" }), t("prompt.label_hint")),
    h("datalist", { id: "label-choices" }, known.map((l) => h("option", { value: l }))),
    field(t("prompt.to_version"), h("select", { name: "version", "data-test": "label-version" },
      p.versions.map((v) => h("option", { value: String(v.version), selected: v.version === version },
        `v${v.version}${v.message ? ` · ${v.message}` : ""}`)))));
  formDialog({
    title: t("prompt.move_label_title"), form, submitLabel: t("prompt.move_label"), test: "move-label-submit",
    submit: async (v) => {
      await put(`/api/v1/prompts/${encodeURIComponent(p.name)}/labels/${encodeURIComponent(v.label)}`, { version: Number(v.version) });
      toast(t("prompt.label_moved", { label: v.label, n: v.version }));
      onDone();
    },
  });
}

export async function render(root, { me, params, query }) {
  const name = decodeURIComponent(params.name);
  const admin = me.role === "admin";
  const back = h("div", { class: "page-head" }, h("a", { href: "/prompts" }, "‹ " + t("nav.prompts")));
  mount(root, back, spinner());
  let p;
  try {
    p = await get(`/api/v1/prompts/${encodeURIComponent(name)}`);
  } catch (e) {
    mount(root, back, e.status === 404 ? emptyState({ title: t("prompt.not_found"), hint: t("prompt.not_found_hint") }) : errorBox(e));
    return;
  }
  const versions = p.versions || [];
  const reload = (selected) => render(root, { me, params, query: new URLSearchParams(selected ? { version: String(selected) } : {}) });
  const wanted = Number(query.get("version"));
  let current = versions.find((v) => v.version === wanted) || versions[0];
  const view = h("div", { class: "panel" });
  const list = h("div", {});
  const drawList = () => mount(list, table([
    { label: t("prompt.version"), render: (v) => h("strong", { "data-version": String(v.version) }, `v${v.version}`) },
    { label: t("prompts.labels"), render: (v) => h("div", { class: "tags" }, (v.labels || []).map((l) => badge(l, l === "production" ? "ok" : "accent"))) },
    { label: t("prompt.message"), render: (v) => h("span", { class: "small" }, v.message || "") },
    { label: t("trace.created"), render: (v) => h("span", { class: "small nowrap" }, fmtTime(v.created_at)) },
  ], versions, (v) => { current = v; keepQuery(`/prompts/${encodeURIComponent(p.name)}`, { version: v.version }); drawView(); drawList(); }));
  const drawView = () => mount(view, current ? versionView(p, current) : emptyState({ title: t("prompt.no_versions") }));
  // Diff between two versions: the newest against the one before it, to start with.
  const opts = versions.map((v) => [String(v.version), `v${v.version}${v.labels && v.labels.length ? ` (${v.labels.join(", ")})` : ""}`]);
  const pair = { from: String((versions[1] || versions[0] || {}).version || ""), to: String((versions[0] || {}).version || "") };
  const diffOut = h("div", {});
  const showDiff = async (btn) => {
    const run = async () => {
      const d = await get(`/api/v1/prompts/${encodeURIComponent(p.name)}/diff`, { from: pair.from, to: pair.to });
      mount(diffOut, diffView(d.diff));
    };
    if (btn) await busy(btn, run, (e) => mount(diffOut, errorBox(e)));
    else { mount(diffOut, spinner()); try { await run(); } catch (e) { mount(diffOut, errorBox(e)); } }
  };
  const diffPanel = h("div", { class: "panel", "data-test": "diff-panel" },
    h("h2", {}, t("prompt.diff")),
    h("div", { class: "row filters" },
      t("prompt.diff_from"), select(t("prompt.diff_from"), "diff-from", opts, pair.from, (v) => { pair.from = v; }),
      t("prompt.diff_to"), select(t("prompt.diff_to"), "diff-to", opts, pair.to, (v) => { pair.to = v; }),
      h("button", { class: "primary", "data-test": "show-diff", onclick: (e) => showDiff(e.currentTarget) }, t("prompt.show_diff"))),
    diffOut);
  const labelRow = h("div", { class: "row", "data-test": "labels" },
    h("span", { class: "muted small" }, t("prompts.labels")),
    Object.keys(p.labels || {}).length ? Object.entries(p.labels).map(([label, v]) => h("span", { class: "label-chip", "data-label": label },
      badge(`${label} → v${v}`, label === "production" ? "ok" : "accent"),
      admin && h("button", { class: "small ghost", "data-test": `move-${label}`, title: t("prompt.move_label"),
        onclick: () => moveLabelDialog(p, label, current ? current.version : v, () => reload(current && current.version)) }, t("prompt.move"))))
      : h("span", { class: "muted small" }, t("prompt.no_labels")),
    admin && h("button", { class: "small", "data-test": "move-label", onclick: () => moveLabelDialog(p, "", current && current.version, () => reload(current && current.version)) },
      "+ " + t("prompt.set_label")));
  mount(root, back,
    h("div", { class: "page-head" }, h("h1", {}, p.name), badge(`v${p.latest_version}`),
      (p.tags || []).map((x) => badge(x)),
      h("div", { class: "actions" }, admin && h("button", { class: "primary", "data-test": "new-version",
        onclick: () => newVersionDialog(p, current, (n) => reload(n)) }, "+ " + t("prompt.new_version")))),
    p.description && h("p", { class: "muted" }, p.description),
    labelRow,
    h("div", { class: "prompt-grid" }, h("div", { class: "panel" }, h("h2", {}, t("prompt.versions")), list), view),
    versions.length > 1 ? diffPanel : null);
  drawList();
  drawView();
  if (versions.length > 1) showDiff();
}
