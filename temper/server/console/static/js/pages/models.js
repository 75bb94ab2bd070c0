// The model plaza: every model in the catalogue as cards or a table, with search, filters, each remote model's
// reachability, and an "add a remote model" form (any OpenAI-compatible endpoint) with a connection test.
import { get, patch, post } from "../api.js";
import { fmtMs, fmtNum, fmtTime, t } from "../i18n.js";
import { badge, busy, emptyState, errorBox, field, formDialog, formValues, h, mount, pagedList, table, toast } from "../ui.js";

const MODALITIES = ["chat", "completion", "embedding", "rerank"];
const HEALTH_KIND = { healthy: "ok", unhealthy: "warn", unreachable: "err", unknown: "" };

/** "No price set" when neither price is known; "Free" only when both are explicitly 0. */
export function price(m) {
  if (m.input_price == null && m.output_price == null) return t("models.no_price");
  if (m.input_price === 0 && m.output_price === 0) return t("models.free");
  const num = (x) => (x == null ? "—" : fmtNum(x, 4));
  return t("models.price_value", { input: num(m.input_price), output: num(m.output_price) });
}

export function statusBadge(m) {
  return m.status === "active" ? badge(t("models.status_active"), "ok") : badge(t("models.status_disabled"), "warn");
}

/** Whether a remote model answered its last check (null for a local model, which always answers). */
export function healthBadge(m) {
  if (!m.health) return null;
  const { state, checked_at: at } = m.health;
  return h("span", { class: `badge ${HEALTH_KIND[state] || ""}`, "data-health": state,
    title: at ? t("models.checked_at", { time: fmtTime(at) }) : null }, t(`models.health_${state}`));
}

/** A connection check's outcome in the console's language (the server's own words stay in the tooltip). */
export function checkText(c, { env, model }) {
  if (c.ok) return t("models.check.ok", { ms: fmtMs(c.latency_ms || 0), status: c.status ?? "—" });
  return t(`models.check.${c.code}`, { env: env || "", model, status: c.status ?? "—" });
}

export function checkResult(c, names) {
  return h("div", { class: `alert ${c.ok ? "ok" : ""}`, role: "status", "data-test": "test-result", "data-ok": String(c.ok),
    title: c.message || null }, checkText(c, names));
}

function card(m, open) {
  return h("div", { class: "card", onclick: () => open(m), "data-model": m.id, tabindex: "0",
    onkeydown: (e) => { if (e.key === "Enter") open(m); } },
  h("div", { class: "row" }, h("span", { class: "title" }, m.id), h("span", { style: { flex: "1" } }), healthBadge(m), statusBadge(m)),
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
    { label: t("models.health"), render: (m) => healthBadge(m) || "—" },
    { label: t("models.tags"), render: (m) => h("div", { class: "tags" }, m.tags.map((x) => badge(x))) },
  ], models, open);
}

const list = (s) => (s ? s.split(/[,，]/).map((x) => x.trim()).filter(Boolean) : []);
const val = (x) => (x == null ? "" : String(x));

/** The add form (no `m`) or the edit form of remote model `m`, with a "Test connection" button. */
function modelForm(m) {
  const d = (m && m.deployments[0]) || {};
  const result = h("div", {});
  const form = h("form", {},
    !m && field(t("models.id"), h("input", { name: "id", required: true, placeholder: "deepseek-chat" }), t("models.id_hint")),
    h("div", { class: "row" },
      !m && field(t("models.modality"), h("select", { name: "modality" }, MODALITIES.map((x) => h("option", { value: x }, t(`modality.${x}`))))),
      field(t("models.upstream_model"), h("input", { name: "upstream_model", value: val(d.upstream_model), placeholder: m ? m.id : t("models.same_as_id") }))),
    field(t("models.base_url"), h("input", { name: "base_url", required: true, type: "url", value: val(d.base_url), placeholder: "https://api.example.com/v1" })),
    field(t("models.api_key_env"), h("input", { name: "api_key_env", value: val(d.api_key_env), placeholder: "DEEPSEEK_API_KEY" }), t("models.api_key_env_hint")),
    h("div", { class: "row" }, h("button", { type: "button", "data-test": "test-connection", onclick: (e) => busy(e.currentTarget, async () => {
      const v = formValues(form);
      if (!v.base_url) { mount(result, errorBox(t("models.test_needs_url"))); return; }
      const model = v.upstream_model || v.id || (m && m.id) || "";
      try {
        const c = await post("/api/v1/models/test-connection", { base_url: v.base_url, upstream_model: model,
          api_key_env: v.api_key_env || null, modality: v.modality || (m && m.modality) || "chat" });
        mount(result, checkResult(c, { env: v.api_key_env, model }));
      } catch (err) {
        mount(result, errorBox(err));
      }
    }) }, t("models.test_connection"))),
    result,
    h("div", { class: "row" },
      field(t("models.context"), h("input", { name: "context_length", type: "number", min: "1", value: val(m && m.context_length) })),
      field(t("models.size"), h("input", { name: "parameters", placeholder: "7B", value: val(m && m.parameters) }))),
    h("div", { class: "row" },
      field(t("models.input_price"), h("input", { name: "input_price", type: "number", min: "0", step: "any", value: val(m && m.input_price) }), t("models.price_hint")),
      field(t("models.output_price"), h("input", { name: "output_price", type: "number", min: "0", step: "any", value: val(m && m.output_price) }))),
    m && h("div", { class: "row" },
      field(t("model.aliases"), h("input", { name: "aliases", value: m.aliases.join(", ") }), t("models.list_hint")),
      field(t("model.fallbacks"), h("input", { name: "fallbacks", value: m.fallbacks.join(", ") }), t("models.list_hint"))),
    field(t("models.tags"), h("input", { name: "tags", placeholder: t("models.tags_hint"), value: m ? m.tags.join(", ") : "" })),
    field(t("models.description"), h("input", { name: "description", value: val(m && m.description) })));
  return form;
}

export function addModelDialog(onAdded) {
  return formDialog({
    title: t("models.add_title"), form: modelForm(null), submitLabel: t("models.add"), test: "add-model-submit",
    submit: async (v) => {
      const m = await post("/api/v1/models", { ...v, tags: v.tags ? list(v.tags) : undefined, provider: "openai_compat" });
      toast(t("models.added", { id: m.id }));
      onAdded(m);
    },
  });
}

/** Edit a remote model; an emptied field is cleared (an emptied price means "no price set"). */
export function editModelDialog(m, onSaved) {
  return formDialog({
    title: t("model.edit_title", { id: m.id }), form: modelForm(m), submitLabel: t("common.save"), test: "edit-model-submit",
    submit: async (v) => {
      const saved = await patch(`/api/v1/models/${encodeURIComponent(m.id)}`, {
        base_url: v.base_url, upstream_model: v.upstream_model ?? null, api_key_env: v.api_key_env ?? null,
        context_length: v.context_length ?? null, parameters: v.parameters ?? null,
        input_price: v.input_price ?? null, output_price: v.output_price ?? null,
        aliases: list(v.aliases), fallbacks: list(v.fallbacks), tags: list(v.tags), description: v.description ?? "",
      });
      toast(t("model.saved", { id: m.id }));
      onSaved(saved);
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
