// Usage: totals, charts over time and a table per key, model, day or source; filter by key, model and range.
// A request is a metered model call, counted as the Analytics page counts it. Members see only their own key
// (the API enforces it).
import { get } from "../api.js";
import { groupLabel } from "../calls.js";
import { timeChart } from "../charts.js";
import { fmtMoney, fmtMs, fmtNum, t } from "../i18n.js";
import { emptyState, errorBox, h, mount, pagedList, spinner, table } from "../ui.js";

const RANGES = { "24h": { hours: 24, bucket: "hour" }, "7d": { hours: 168, bucket: "hour" }, "30d": { hours: 720, bucket: "day" } };

function stat(value, label, test) {
  return h("div", { class: "stat", "data-test": test }, h("div", { class: "v" }, value), h("div", { class: "k" }, label));
}

export async function render(root, { me, query, navigate }) {
  const f = { range: query.get("range") || "24h", key_id: query.get("key_id") || "", model: query.get("model") || "",
    group_by: query.get("group_by") || (me.role === "admin" && !query.get("key_id") ? "key" : "model") };
  if (!(f.range in RANGES)) f.range = "24h";
  const update = (changes) => {
    const next = new URLSearchParams(Object.entries({ ...f, ...changes }).filter(([, v]) => v));
    navigate(`/usage?${next}`, { replace: true });
  };
  let keys = [];
  let models = [];
  try {
    [keys, models] = await Promise.all([
      me.role === "admin" ? get("/api/v1/keys", { limit: 1000 }).then((p) => p.data) : Promise.resolve([]),
      get("/api/v1/models", { limit: 1000 }).then((p) => p.data),
    ]);
  } catch (e) {
    mount(root, errorBox(e));
    return;
  }
  const select = (label, name, options) => h("select", { "aria-label": label, "data-test": `filter-${name}`, onchange: (e) => update({ [name]: e.target.value }) },
    options.map(([v, text]) => h("option", { value: v, selected: v === f[name] }, text)));
  const filters = h("div", { class: "row", style: { marginBottom: "14px" } },
    select(t("usage.range"), "range", Object.keys(RANGES).map((r) => [r, t(`range.${r}`)])),
    me.role === "admin" && select(t("usage.key"), "key_id", [["", t("usage.all_keys")], ["key_admin", t("app.admin_key")],
      ...keys.map((k) => [k.id, `${k.name || k.prefix}${k.revoked_at ? ` (${t("keys.revoked")})` : ""}`])]),
    select(t("usage.model"), "model", [["", t("usage.all_models")], ...models.map((m) => [m.id, m.id])]),
    select(t("usage.group_by"), "group_by", [...(me.role === "admin" ? [["key", t("usage.by_key")]] : []), ["model", t("usage.by_model")], ["day", t("usage.by_day")],
      ["source", t("usage.by_source")]]));
  const summary = h("div", {}, spinner());
  const charts = h("div", {});
  const list = h("div", {});
  mount(root,
    h("div", { class: "page-head" }, h("h1", {}, t("nav.usage")),
      h("span", { class: "sub" }, me.role === "admin" ? t("usage.subtitle_admin") : t("usage.subtitle_member", { name: me.key_name || me.key_prefix })),
      h("span", { class: "muted small", "data-test": "definition" }, t("calls.definition"))),
    filters, summary, charts, list);

  const { hours, bucket } = RANGES[f.range];
  const scope = { key_id: f.key_id, model: f.model };
  try {
    const series = await get("/api/v1/usage/series", { hours, bucket, ...scope });
    // the period's totals: one row grouped by source would split them, so sum the buckets (latency: the mean
    // of the successful requests, weighted by their number)
    const sum = series.data.reduce((a, p) => {
      const ok = p.requests - p.errors;
      return { requests: a.requests + p.requests, errors: a.errors + p.errors, prompt: a.prompt + p.prompt_tokens,
        completion: a.completion + p.completion_tokens, cost: a.cost + p.cost,
        lat: a.lat + (p.avg_latency_ms || 0) * ok, ok: a.ok + (p.avg_latency_ms === null ? 0 : ok) };
    }, { requests: 0, errors: 0, prompt: 0, completion: 0, cost: 0, lat: 0, ok: 0 });
    mount(summary, h("div", { class: "stats" },
      stat(fmtNum(sum.requests), t("usage.requests"), "stat-requests"),
      stat(fmtNum(sum.errors), t("usage.errors"), "stat-errors"),
      stat(fmtNum(sum.prompt + sum.completion), t("usage.tokens_detail", { prompt: fmtNum(sum.prompt), completion: fmtNum(sum.completion) }), "stat-tokens"),
      stat(fmtMoney(sum.cost), t("usage.cost"), "stat-cost"),
      stat(fmtMs(sum.ok ? sum.lat / sum.ok : null), t("usage.avg_latency"), "stat-latency")));
    if (!sum.requests) {
      mount(charts, emptyState({ title: t("usage.empty"), hint: t("usage.empty_hint"), action: { label: t("nav.playground"), onClick: () => navigate("/playground") } }));
      return;
    }
    mount(charts, h("div", { class: "grid", style: { gridTemplateColumns: "repeat(auto-fit, minmax(420px, 1fr))", marginBottom: "16px" } },
      h("div", { class: "panel" }, h("h3", {}, t("usage.chart_requests")), timeChart(series.data, [
        { label: t("usage.requests"), value: (p) => p.requests, type: "bar" },
        { label: t("usage.errors"), value: (p) => p.errors, type: "bar" },
        { label: t("usage.avg_latency_ms"), value: (p) => p.avg_latency_ms, axis: "y2" },
      ], { bucket })),
      h("div", { class: "panel" }, h("h3", {}, t("usage.chart_tokens")), timeChart(series.data, [
        { label: t("usage.prompt_tokens"), value: (p) => p.prompt_tokens, type: "bar" },
        { label: t("usage.completion_tokens"), value: (p) => p.completion_tokens, type: "bar" },
        { label: t("usage.cost"), value: (p) => p.cost, axis: "y2" },
      ], { bucket }))));
  } catch (e) {
    mount(summary, errorBox(e));
    return;
  }
  const column = { key: t("usage.key"), model: t("usage.model"), day: t("usage.day"), source: t("usage.source") }[f.group_by];
  pagedList(list, {
    load: (p) => get("/api/v1/usage", { ...p, hours, group_by: f.group_by, ...scope }),
    render: (rows) => table([
      { label: column, render: (r) => groupLabel(f.group_by, r) },
      { label: t("usage.requests"), num: true, render: (r) => fmtNum(r.requests) },
      { label: t("usage.errors"), num: true, render: (r) => fmtNum(r.errors) },
      { label: t("usage.prompt_tokens"), num: true, render: (r) => fmtNum(r.prompt_tokens) },
      { label: t("usage.completion_tokens"), num: true, render: (r) => fmtNum(r.completion_tokens) },
      { label: t("usage.cost"), num: true, render: (r) => fmtMoney(r.cost) },
      { label: t("usage.avg_latency"), num: true, render: (r) => fmtMs(r.avg_latency_ms) },
    ], rows, f.group_by === "key" ? (r) => r.group && update({ key_id: r.group, group_by: "model" })
      : f.group_by === "model" ? (r) => update({ model: r.group, group_by: me.role === "admin" ? "key" : "day" }) : undefined),
    empty: () => emptyState({ title: t("usage.empty"), hint: t("usage.empty_hint") }),
  });
}
