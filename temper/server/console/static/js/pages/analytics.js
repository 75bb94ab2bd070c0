// Analytics of requests (metered model calls, as the Usage page counts them): error rate, latency percentiles
// and first-token time of the successful ones, tokens and cost for a period, charted per time bucket and tabled
// per model, key, app or source; background jobs on their own. Members see their own key.
import { get } from "../api.js";
import { SOURCES, groupLabel } from "../calls.js";
import { timeChart } from "../charts.js";
import { fmtMoney, fmtMs, fmtNum, fmtPct, t } from "../i18n.js";
import { PERIODS, keepQuery, segmented, select } from "../ops.js";
import { emptyState, errorBox, h, mount, spinner, table } from "../ui.js";

const GROUPS = ["model", "key", "app", "source"];

function stat(value, label, test) {
  return h("div", { class: "stat", "data-test": test }, h("div", { class: "v" }, value), h("div", { class: "k" }, label));
}

function jobsPanel(jobs) {
  if (!jobs.length) return null;
  const kind = (k) => ({ "kb.ingest": t("kb.job_ingest"), "kb.sync": t("kb.job_sync") })[k] || k;
  const secs = (s) => (s === null || s === undefined ? "—" : fmtMs(s * 1000));
  return h("div", { "data-test": "jobs" }, h("h2", {}, t("analytics.jobs")), h("p", { class: "muted small" }, t("analytics.jobs_hint")),
    table([
      { label: t("analytics.job_kind"), render: (j) => kind(j.kind) },
      { label: t("analytics.jobs_count"), num: true, render: (j) => fmtNum(j.jobs) },
      { label: t("analytics.jobs_running"), num: true, render: (j) => fmtNum(j.running) },
      { label: t("analytics.jobs_failed"), num: true, render: (j) => fmtNum(j.failed) },
      { label: t("analytics.job_p50"), num: true, render: (j) => secs(j.p50_s) },
      { label: t("analytics.job_max"), num: true, render: (j) => secs(j.max_s) },
    ], jobs));
}

export async function render(root, { me, query, navigate }) {
  const f = { period: query.get("period") || "24h", group_by: query.get("group_by") || "model", model: query.get("model") || "",
    key_id: query.get("key_id") || "", app_id: query.get("app_id") || "", source: query.get("source") || "" };
  if (!SOURCES.includes(f.source)) f.source = "";
  if (!(f.period in PERIODS)) f.period = "24h";
  if (!GROUPS.includes(f.group_by)) f.group_by = "model";
  const body = h("div", {});
  let generation = 0;  // a slow answer for an earlier choice must not replace a newer one
  const draw = async () => {
    const mine = ++generation;
    keepQuery("/analytics", { ...f, period: f.period === "24h" ? "" : f.period, group_by: f.group_by === "model" ? "" : f.group_by });
    mount(body, spinner());
    const { hours, bucket } = PERIODS[f.period];
    let s;
    try {
      s = await get("/api/v1/analytics", { hours, bucket, group_by: f.group_by, model: f.model, key_id: f.key_id, app_id: f.app_id, source: f.source });
    } catch (e) {
      if (mine === generation) mount(body, errorBox(e));
      return;
    }
    if (mine !== generation) return;
    const m = s.totals || {};
    const cards = h("div", { class: "stats four" },
      stat(fmtNum(m.requests), t("analytics.requests"), "stat-requests"),
      stat(fmtPct(m.error_rate), t("analytics.error_rate_n", { n: fmtNum(m.errors) }), "stat-error-rate"),
      stat(fmtMs(m.p50_ms), t("analytics.p50"), "stat-p50"),
      stat(fmtMs(m.p95_ms), t("analytics.p95"), "stat-p95"),
      stat(fmtMs(m.p99_ms), t("analytics.p99"), "stat-p99"),
      stat(fmtMs(m.ttft_p50_ms), t("analytics.ttft_p50"), "stat-ttft"),
      stat(fmtNum((m.input_tokens || 0) + (m.output_tokens || 0)),
        t("analytics.tokens_detail", { input: fmtNum(m.input_tokens), output: fmtNum(m.output_tokens) }), "stat-tokens"),
      stat(fmtMoney(m.cost), t("analytics.cost"), "stat-cost"));
    if (!m.requests) {
      mount(body, cards, emptyState({ title: t("analytics.empty"), hint: t("analytics.empty_hint"),
        action: { label: t("nav.playground"), onClick: () => navigate("/playground") } }), jobsPanel(s.jobs || []));
      return;
    }
    const series = s.series || [];
    const charts = h("div", { class: "grid charts" },
      h("div", { class: "panel" }, h("h3", {}, t("analytics.chart_requests")), timeChart(series, [
        { label: t("analytics.requests"), value: (p) => p.requests, type: "bar" },
        { label: t("analytics.errors"), value: (p) => p.errors, type: "bar" },
      ], { bucket })),
      h("div", { class: "panel" }, h("h3", {}, t("analytics.chart_latency")), timeChart(series, [
        { label: t("analytics.p50"), value: (p) => p.p50_ms, fill: false },
        { label: t("analytics.p95"), value: (p) => p.p95_ms, fill: false },
        { label: t("analytics.p99"), value: (p) => p.p99_ms, fill: false },
        { label: t("analytics.ttft_p50"), value: (p) => p.ttft_p50_ms, fill: false },
      ], { bucket })),
      h("div", { class: "panel" }, h("h3", {}, t("analytics.chart_tokens")), timeChart(series, [
        { label: t("analytics.input_tokens"), value: (p) => p.input_tokens, type: "bar" },
        { label: t("analytics.output_tokens"), value: (p) => p.output_tokens, type: "bar" },
        { label: t("analytics.cost"), value: (p) => p.cost, axis: "y2" },
      ], { bucket })));
    const drill = (g) => {
      if (g.group === null || g.group === undefined || g.group === "") return;
      if (f.group_by === "source") {  // a source's requests, per model
        navigate(`/analytics?${new URLSearchParams({ period: f.period, source: g.group })}`);
        return;
      }
      const param = { model: "model", key: "key_id" }[f.group_by];
      if (param) navigate(`/traces?${new URLSearchParams({ [param]: g.group, period: f.period })}`);
    };
    const groups = s.groups || [];
    const tbl = groups.length ? table([
      { label: t(`analytics.by_${f.group_by}`), render: (g) => groupLabel(f.group_by, g) },
      { label: t("analytics.requests"), num: true, render: (g) => fmtNum(g.requests) },
      { label: t("analytics.errors"), num: true, render: (g) => fmtNum(g.errors) },
      { label: t("analytics.error_rate"), num: true, render: (g) => fmtPct(g.error_rate) },
      { label: t("analytics.p50"), num: true, render: (g) => fmtMs(g.p50_ms) },
      { label: t("analytics.p95"), num: true, render: (g) => fmtMs(g.p95_ms) },
      { label: t("analytics.p99"), num: true, render: (g) => fmtMs(g.p99_ms) },
      { label: t("analytics.ttft_p50"), num: true, render: (g) => fmtMs(g.ttft_p50_ms) },
      { label: t("analytics.tokens"), num: true, render: (g) => fmtNum((g.input_tokens || 0) + (g.output_tokens || 0)) },
      { label: t("analytics.cost"), num: true, render: (g) => fmtMoney(g.cost) },
    ], groups, f.group_by === "app" ? undefined : drill) : emptyState({ title: t("analytics.empty"), hint: t("analytics.empty_hint") });
    mount(body, cards, charts, h("div", { "data-test": "groups" }, h("h2", {}, t("analytics.groups")), tbl), jobsPanel(s.jobs || []));
  };
  const scope = [f.model && [t("traces.model"), f.model, "model"], f.key_id && [t("traces.key"), f.key_id, "key_id"],
    f.app_id && [t("analytics.app"), f.app_id, "app_id"],
    f.source && [t("analytics.by_source"), t(`calls.source_${f.source}`), "source"]].filter(Boolean);
  mount(root,
    h("div", { class: "page-head" }, h("h1", {}, t("nav.analytics")),
      h("span", { class: "sub" }, me.role === "admin" ? t("analytics.subtitle_admin") : t("analytics.subtitle_member")),
      h("span", { class: "muted small", "data-test": "definition" }, t("calls.definition")),
      h("div", { class: "actions" }, h("a", { class: "btn", href: "/traces" }, t("nav.traces")))),
    h("div", { class: "row filters" },
      segmented(Object.keys(PERIODS), f.period, (p) => t(`range.${p}`), (v) => { f.period = v; draw(); }, "period"),
      h("span", { class: "muted small" }, t("analytics.group_by")),
      select(t("analytics.group_by"), "group-by", GROUPS.map((g) => [g, t(`analytics.by_${g}`)]), f.group_by, (v) => { f.group_by = v; draw(); }),
      scope.map(([label, value, k]) => h("span", { class: "badge accent" }, `${label}: ${value} `,
        h("button", { class: "ghost small", "aria-label": t("common.clear_filters"), onclick: (e) => { f[k] = ""; e.currentTarget.parentElement.remove(); draw(); } }, "×")))),
    body);
  draw();
}
