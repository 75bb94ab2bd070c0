// The model plaza: every model in the catalogue as cards or a table, with search, filters and an
// "add a remote model" form (any OpenAI-compatible endpoint).
import { get, post } from "../api.js";
import { fmtNum, t } from "../i18n.js";
import { badge, emptyState, field, formDialog, h, mount, pagedList, table, toast } from "../ui.js";

const MODALITIES = ["chat", "completion", "embedding", "rerank"];

export function price(m) {
  if (!m.input_price && !m.output_price) return t("models.free");
  return t("models.price_value", { input: fmtNum(m.input_price, 4), output: fmtNum(m.output_price, 4) });
}

export function statusBadge(m) {
  return m.status === "active" ? badge(t("models.status_active"), "ok") : badge(t("models.status_disabled"), "warn");
}

function card(m, open) {
  return h("div", { class: "card", onclick: () => open(m), "data-model": m.id, tabindex: "0",
    onkeydown: (e) => { if (e.key === "Enter") open(m); } },
  h("div", { class: "row" }, h("span", { class: "title" }, m.id), h("span", { style: { flex: "1" } }), statusBadge(m)),
  h("div", { class: "tags" }, badge(t(`modality.${m.modality}`), "accent"), badge(m.builtin ? t("models.local") : m.provider),
    m.tags.map((tag) => badge(tag))),
  h("div", { class: "desc" }, m.description || t("models.no_description")),
  h("dl", { class: "facts" },
    h("dt", {}, t("models.size")), h("dd", {}, m.parameters || "—"),
    h("dt", {}, t("models.context")), h("dd", {}, m.context_length ? fmtNum(m.context_length) : "—"),
    h("dt", {}, t("models.price")), h("dd", {}, price(m))));
}

function rowsTable(models, open) {
  return table([
    { label: t("models.id"), render: (m) => h("strong", {}, m.id) },
    { label: t("models.modality"), render: (m) => t(`modality.${m.modality}`) },
    { label: t("models.provider"), render: (m) => (m.builtin ? t("models.local") : m.provider) },
    { label: t("models.size"), render: (m) => m.parameters || "—" },
    { label: t("models.context"), num: true, render: (m) => (m.context_length ? fmtNum(m.context_length) : "—") },
    { label: t("models.price"), render: price },
    { label: t("models.status"), render: statusBadge },
    { label: t("models.tags"), render: (m) => h("div", { class: "tags" }, m.tags.map((x) => badge(x))) },
  ], models, open);
}

export function addModelDialog(onAdded) {
  const form = h("form", {},
    field(t("models.id"), h("input", { name: "id", required: true, placeholder: "deepseek-chat" }), t("models.id_hint")),
    h("div", { class: "row" },
      field(t("models.modality"), h("select", { name: "modality" }, MODALITIES.map((m) => h("option", { value: m }, t(`modality.${m}`))))),
      field(t("models.upstream_model"), h("input", { name: "upstream_model", placeholder: t("models.same_as_id") }))),
    field(t("models.base_url"), h("input", { name: "base_url", required: true, type: "url", placeholder: "https://api.example.com/v1" })),
    field(t("models.api_key_env"), h("input", { name: "api_key_env", placeholder: "DEEPSEEK_API_KEY" }), t("models.api_key_env_hint")),
    h("div", { class: "row" },
      field(t("models.context"), h("input", { name: "context_length", type: "number", min: "1" })),
      field(t("models.size"), h("input", { name: "parameters", placeholder: "7B" }))),
    h("div", { class: "row" },
      field(t("models.input_price"), h("input", { name: "input_price", type: "number", min: "0", step: "any" })),
      field(t("models.output_price"), h("input", { name: "output_price", type: "number", min: "0", step: "any" }))),
    field(t("models.tags"), h("input", { name: "tags", placeholder: t("models.tags_hint") })),
    field(t("models.description"), h("input", { name: "description" })));
  return formDialog({
    title: t("models.add_title"), form, submitLabel: t("models.add"), test: "add-model-submit",
    submit: async (v) => {
      const tags = v.tags ? v.tags.split(/[,，]/).map((x) => x.trim()).filter(Boolean) : undefined;
      const m = await post("/api/v1/models", { ...v, tags, provider: "openai_compat" });
      toast(t("models.added", { id: m.id }));
      onAdded(m);
    },
  });
}

export function render(root, { me, query, navigate }) {
  const filters = { q: query.get("q") || "", modality: query.get("modality") || "", view: query.get("view") || "cards" };
  const list = h("div", {});
  const open = (m) => navigate(`/models/${encodeURIComponent(m.id)}`);
  const reload = () => pagedList(list, {
    limit: 24,
    load: (p) => get("/api/v1/models", { ...p, q: filters.q, modality: filters.modality }),
    render: (models) => (filters.view === "table" ? rowsTable(models, open) : h("div", { class: "grid" }, models.map((m) => card(m, open)))),
    empty: () => emptyState(filters.q || filters.modality
      ? { title: t("models.none_match"), hint: t("models.none_match_hint"), action: { label: t("common.clear_filters"), onClick: clearFilters } }
      : { title: t("models.empty"), hint: t("models.empty_hint"), action: me.role === "admin" && { label: t("models.add"), onClick: add } }),
  });
  const add = () => addModelDialog((m) => open(m));
  let timer;
  const search = h("input", { type: "search", value: filters.q, placeholder: t("models.search"), "aria-label": t("models.search"),
    "data-test": "model-search",
    oninput: (e) => { clearTimeout(timer); timer = setTimeout(() => { filters.q = e.target.value.trim(); reload(); }, 200); } });
  const modality = h("select", { "aria-label": t("models.modality"), onchange: (e) => { filters.modality = e.target.value; reload(); } },
    h("option", { value: "" }, t("models.all_modalities")),
    MODALITIES.map((m) => h("option", { value: m, selected: m === filters.modality }, t(`modality.${m}`))));
  const view = h("div", { class: "seg", role: "group" }, ["cards", "table"].map((v) => h("button", {
    class: v === filters.view ? "on" : "", onclick: (e) => {
      filters.view = v;
      view.querySelectorAll("button").forEach((b) => b.classList.toggle("on", b === e.currentTarget));
      reload();
    },
  }, t(`models.view_${v}`))));
  function clearFilters() {
    filters.q = ""; filters.modality = ""; search.value = ""; modality.value = ""; reload();
  }
  mount(root,
    h("div", { class: "page-head" }, h("h1", {}, t("nav.models")), h("span", { class: "sub" }, t("models.subtitle")),
      h("div", { class: "actions" }, me.role === "admin" && h("button", { class: "primary", onclick: add, "data-test": "add-model" }, "+ " + t("models.add")))),
    h("div", { class: "row", style: { marginBottom: "14px" } }, search, modality, view),
    list);
  reload();
  return () => clearTimeout(timer);
}
