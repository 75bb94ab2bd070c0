// Prompts: templates with immutable numbered versions and movable labels. This page lists them and creates
// new ones, from the starter library (customer service, insurance QA, contract review, …) or blank.
import { get, post } from "../api.js";
import { LANGS, fmtTime, getLang, t } from "../i18n.js";
import { segmented } from "../ops.js";
import { badge, emptyState, errorBox, field, formDialog, h, mount, spinner, table, toast } from "../ui.js";

/** Label badges: "production → v2". */
export function labelBadges(labels) {
  return h("div", { class: "tags" }, Object.entries(labels || {}).map(([label, v]) =>
    badge(`${label} → v${v}`, label === "production" ? "ok" : "accent")));
}

/** Inputs for a template: one textarea (text) or role + content per message (chat). `read()` gives the API value. */
export function templateEditor(type, template) {
  const box = h("div", { class: "tmpl-editor", "data-test": "template-editor" });
  if (type === "text") {
    const area = h("textarea", { rows: "8", required: true, class: "mono", "data-test": "template-text", placeholder: t("prompts.template_ph") },
      typeof template === "string" ? template : "");
    box.append(area);
    return { node: box, read: () => area.value };
  }
  const messages = Array.isArray(template) && template.length ? template : [{ role: "system", content: "" }, { role: "user", content: "" }];
  const rows = h("div", {});
  const addRow = (m) => {
    const role = h("select", { "aria-label": t("prompts.role"), "data-role": "role" },
      ["system", "developer", "user", "assistant"].map((r) => h("option", { value: r, selected: r === m.role }, r)));
    const content = h("textarea", { rows: "4", class: "mono", "data-role": "content", "data-test": `message-${m.role}`, placeholder: t("prompts.template_ph") }, m.content);
    const row = h("div", { class: "msg-edit" }, h("div", { class: "row" }, role,
      h("button", { type: "button", class: "small ghost", "aria-label": t("common.delete"), onclick: () => { if (rows.children.length > 1) row.remove(); } }, "×")), content);
    rows.append(row);
  };
  messages.forEach(addRow);
  box.append(rows, h("button", { type: "button", class: "small", onclick: () => addRow({ role: "user", content: "" }) }, "+ " + t("prompts.add_message")));
  return {
    node: box,
    read: () => [...rows.querySelectorAll(".msg-edit")].map((r) => ({
      role: r.querySelector("[data-role=role]").value, content: r.querySelector("[data-role=content]").value })),
  };
}

/** Model config inputs (model, temperature, max tokens); `read(base)` merges them over `base`. */
export function configInputs(models, config = {}) {
  const model = h("select", { "aria-label": t("prompts.model") }, h("option", { value: "" }, t("prompts.no_model")),
    models.map((m) => h("option", { value: m.id, selected: m.id === config.model }, m.id)));
  const temperature = h("input", { type: "number", min: "0", max: "2", step: "0.1", value: config.temperature ?? "", class: "narrow" });
  const maxTokens = h("input", { type: "number", min: "1", step: "1", value: config.max_tokens ?? "", class: "narrow" });
  return {
    node: h("div", { class: "row" }, field(t("prompts.model"), model), field(t("play.temperature"), temperature), field(t("play.max_tokens"), maxTokens)),
    read: (base = {}) => {
      const out = { ...base };
      const set = (k, v) => { if (v === "" || v === null) delete out[k]; else out[k] = v; };
      set("model", model.value);
      set("temperature", temperature.value === "" ? "" : Number(temperature.value));
      set("max_tokens", maxTokens.value === "" ? "" : Number(maxTokens.value));
      return out;
    },
  };
}

async function createDialog(onCreated) {
  let models = [];
  try { models = (await get("/api/v1/models", { limit: 1000 })).data; } catch { /* the model config is optional */ }
  let mode = "template";
  const body = h("div", {});
  const form = h("form", { onsubmit: (e) => e.preventDefault() }, h("div", { class: "row" }, segmented(["template", "blank"], mode, (m) => t(`prompts.mode_${m}`), (m) => { mode = m; draw(); }, "create-mode")), body);
  let blank = null;
  const templatesBox = h("div", { "data-test": "starter-templates" });
  const langSel = h("select", { name: "lang", "data-test": "template-lang", "aria-label": t("common.language"), onchange: () => loadTemplates() },
    Object.entries(LANGS).map(([k, v]) => h("option", { value: k, selected: k === getLang() }, v)));
  async function loadTemplates() {
    mount(templatesBox, spinner());
    try {
      const page = await get("/api/v1/prompts/templates", { lang: langSel.value });
      const list = page.data || page;
      mount(templatesBox, h("div", { class: "choices-list" }, list.map((tp, i) => h("label", { class: "choice-card", "data-template": tp.id },
        h("input", { type: "radio", name: "template_id", value: tp.id, required: true, checked: i === 0 }),
        h("div", {}, h("strong", {}, tp.title || tp.name || tp.id), " ", h("span", { class: "mono muted small" }, tp.name),
          h("div", { class: "muted small" }, tp.description || ""),
          h("div", { class: "tags" }, badge(t(`prompts.type_${tp.type}`), "accent"), (tp.variables || []).map((x) => badge(`{{${x}}}`))))))));
    } catch (e) {
      mount(templatesBox, errorBox(e));
    }
  }
  function draw() {
    if (mode === "template") {
      mount(body,
        field(t("common.language"), langSel),
        field(t("prompts.starter"), templatesBox),
        field(t("prompts.name"), h("input", { name: "name", maxlength: "100", placeholder: t("prompts.name_from_template"), "data-test": "prompt-name" }), t("prompts.name_hint")));
      loadTemplates();
      return;
    }
    let type = "text";
    const editorBox = h("div", {});
    const setType = (v) => { type = v; blank.editor = templateEditor(type, ""); mount(editorBox, blank.editor.node); };
    blank = { config: configInputs(models) };
    mount(body,
      field(t("prompts.name"), h("input", { name: "name", required: true, maxlength: "100", placeholder: "support-reply", "data-test": "prompt-name" }), t("prompts.name_hint")),
      field(t("prompts.description"), h("input", { name: "description", maxlength: "2000" })),
      field(t("prompts.type"), segmented(["text", "chat"], type, (v) => t(`prompts.type_${v}`), setType, "prompt-type")),
      field(t("prompts.template"), editorBox, t("prompts.variables_hint")),
      blank.config.node);
    blank.type = () => type;
    setType(type);
  }
  draw();
  formDialog({
    title: t("prompts.create_title"), form, submitLabel: t("prompts.create"), test: "create-prompt-submit",
    submit: async (v) => {
      const p = mode === "template"
        ? await post("/api/v1/prompts/from-template", { template_id: form.querySelector("input[name=template_id]:checked")?.value, lang: langSel.value, name: v.name })
        : await post("/api/v1/prompts", { name: v.name, description: v.description, type: blank.type(), template: blank.editor.read(),
          model_config: blank.config.read() });
      toast(t("prompts.created", { name: p.name }));
      onCreated(p);
    },
  });
}

export async function render(root, { me, query, navigate }) {
  const admin = me.role === "admin";
  const list = h("div", {});
  const open = (p) => navigate(`/prompts/${encodeURIComponent(p.name)}`);
  const create = () => createDialog(open);
  let q = query.get("q") || "";
  let timer;
  let generation = 0;
  const reload = async () => {
    const mine = ++generation;
    mount(list, spinner());
    try {
      const page = await get("/api/v1/prompts", { q });
      if (mine !== generation) return;
      const rows = page.data || [];
      mount(list, rows.length ? table([
        { label: t("prompts.name"), render: (p) => h("div", { "data-prompt": p.name }, h("strong", {}, p.name),
          p.description && h("div", { class: "muted small" }, p.description)) },
        { label: t("prompts.latest"), render: (p) => badge(`v${p.latest_version}`) },
        { label: t("prompts.labels"), render: (p) => labelBadges(p.labels) },
        { label: t("prompts.tags"), render: (p) => h("div", { class: "tags" }, (p.tags || []).map((x) => badge(x))) },
        { label: t("prompts.updated"), render: (p) => fmtTime(p.updated_at || p.created_at) },
      ], rows, open) : emptyState(q ? { title: t("prompts.none_match"), hint: t("models.none_match_hint") }
        : { title: t("prompts.empty"), hint: t("prompts.empty_hint"), action: admin && { label: t("prompts.create"), onClick: create } }));
    } catch (e) {
      mount(list, errorBox(e));
    }
  };
  const search = h("input", { type: "search", value: q, placeholder: t("prompts.search"), "aria-label": t("prompts.search"), "data-test": "prompt-search",
    oninput: (e) => { clearTimeout(timer); timer = setTimeout(() => { q = e.target.value.trim(); reload(); }, 200); } });
  mount(root,
    h("div", { class: "page-head" }, h("h1", {}, t("nav.prompts")), h("span", { class: "sub" }, t("prompts.subtitle")),
      h("div", { class: "actions" }, admin && h("button", { class: "primary", onclick: create, "data-test": "create-prompt" }, "+ " + t("prompts.create")))),
    h("div", { class: "row filters" }, search),
    list);
  reload();
  return () => clearTimeout(timer);
}
