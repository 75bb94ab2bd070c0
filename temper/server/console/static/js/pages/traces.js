// Traces: every request the studio served, newest first, with filters (text, model, key, status, latency,
// period) and "load more" paging. A row opens the trace as a waterfall. Members see their own key's traces.
import { get } from "../api.js";
import { fmtDateTimeSec, fmtMoney, fmtMs, t } from "../i18n.js";
import { PERIODS, keepQuery, keyLabel, preview, select, statusBadge, tokens } from "../ops.js";
import { cursorList, emptyState, errorBox, h, mount, spinner, table } from "../ui.js";

const FILTERS = ["q", "model", "key_id", "status", "min_ms", "max_ms", "period"];

export async function render(root, { me, query, navigate }) {
  const admin = me.role === "admin";
  const f = Object.fromEntries(FILTERS.map((k) => [k, query.get(k) || ""]));
  if (!(f.period in PERIODS)) f.period = "24h";
  mount(root, spinner());
  let models = [];
  let keys = [];
  try {
    [models, keys] = await Promise.all([
      get("/api/v1/models", { limit: 1000 }).then((p) => p.data),
      admin ? get("/api/v1/keys", { limit: 1000, include_revoked: true }).then((p) => p.data) : Promise.resolve([]),
    ]);
  } catch (e) {
    mount(root, errorBox(e));
    return undefined;
  }
  const list = h("div", {});
  const open = (tr) => navigate(`/traces/${tr.id}`);
  const filtered = () => FILTERS.some((k) => k !== "period" && f[k]);
  const exportLink = h("a", { class: "btn", download: "traces.jsonl", "data-test": "export-traces", title: t("traces.export_hint") }, t("traces.export"));
  const apiFilters = () => ({ q: f.q, model: f.model, key_id: f.key_id, status: f.status, min_ms: f.min_ms, max_ms: f.max_ms,
    hours: PERIODS[f.period].hours });
  const reload = () => {
    keepQuery("/traces", { ...f, period: f.period === "24h" ? "" : f.period });
    const q = new URLSearchParams(Object.entries(apiFilters()).filter(([, v]) => v !== "" && v !== undefined));
    exportLink.href = `/api/v1/traces/export?${q}`;
    return cursorList(list, {
      load: (cursor) => get("/api/v1/traces", { ...apiFilters(), limit: 50, cursor }),
      render: (rows) => h("div", { class: "ops-table" }, table([
        { label: t("traces.time"), render: (tr) => h("span", { class: "nowrap" }, fmtDateTimeSec(tr.start)) },
        { label: t("traces.name"), render: (tr) => h("div", { "data-trace": tr.id },
          h("strong", {}, tr.name || "—"), h("div", { class: "muted small clip" }, preview(tr.input))) },
        { label: t("traces.model"), render: (tr) => tr.model || "—" },
        { label: t("traces.key"), render: keyLabel },
        { label: t("traces.status"), render: (tr) => statusBadge(tr.status) },
        { label: t("traces.duration"), num: true, render: (tr) => fmtMs(tr.duration_ms) },
        { label: t("traces.tokens"), num: true, render: tokens },
        { label: t("traces.cost"), num: true, render: (tr) => fmtMoney(tr.cost) },
        { label: t("traces.ttft"), num: true, render: (tr) => fmtMs(tr.ttft_ms) },
      ], rows, open)),
      empty: () => emptyState(filtered()
        ? { title: t("traces.none_match"), hint: t("traces.none_match_hint"), action: { label: t("common.clear_filters"), onClick: clear } }
        : { title: t("traces.empty"), hint: t("traces.empty_hint"), action: { label: t("nav.playground"), onClick: () => navigate("/playground") } }),
    });
  };
  const set = (k, v) => { f[k] = v; reload(); };
  let timer;
  const search = h("input", { type: "search", value: f.q, placeholder: t("traces.search"), "aria-label": t("traces.search"),
    "data-test": "trace-search",
    oninput: (e) => { clearTimeout(timer); timer = setTimeout(() => set("q", e.target.value.trim()), 250); } });
  const ms = (name, label) => h("input", { type: "number", min: "0", step: "1", name, value: f[name], placeholder: label,
    "aria-label": label, title: label, class: "narrow", "data-test": `filter-${name}`,
    onchange: (e) => set(name, e.target.value.trim()) });
  const controls = h("div", { class: "row filters" },
    search,
    select(t("usage.range"), "filter-period", Object.keys(PERIODS).map((p) => [p, t(`range.${p}`)]), f.period, (v) => set("period", v)),
    select(t("traces.model"), "filter-model", [["", t("usage.all_models")], ...models.map((m) => [m.id, m.id])], f.model, (v) => set("model", v)),
    admin && select(t("traces.key"), "filter-key", [["", t("usage.all_keys")], ["key_admin", t("app.admin_key")],
      ...keys.map((k) => [k.id, k.name || k.prefix])], f.key_id, (v) => set("key_id", v)),
    select(t("traces.status"), "filter-status", [["", t("traces.any_status")], ["ok", t("traces.status_ok")], ["error", t("traces.status_error")]],
      f.status, (v) => set("status", v)),
    h("span", { class: "muted small" }, t("traces.latency")), ms("min_ms", t("traces.min_ms")), "–", ms("max_ms", t("traces.max_ms")));
  function clear() {
    for (const k of FILTERS) if (k !== "period") f[k] = "";
    render(root, { me, query: new URLSearchParams({ period: f.period }), navigate });
  }
  mount(root,
    h("div", { class: "page-head" }, h("h1", {}, t("nav.traces")),
      h("span", { class: "sub" }, admin ? t("traces.subtitle_admin") : t("traces.subtitle_member")),
      h("div", { class: "actions" }, exportLink, h("a", { class: "btn", href: "/analytics" }, t("nav.analytics")))),
    controls, list);
  reload();
  return () => clearTimeout(timer);
}
