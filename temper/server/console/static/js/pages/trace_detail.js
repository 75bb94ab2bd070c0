// One trace: its numbers, a waterfall of its spans (one row per span, indented by depth, a bar at the span's
// offset as wide as its duration), the selected span's attributes, input and output, and the trace's scores.
import { del, get, post } from "../api.js";
import { fmtDateTimeSec, fmtMoney, fmtMs, fmtNum, t } from "../i18n.js";
import { keyLabel, payload, statusBadge, tokens } from "../ops.js";
import { badge, busy, confirmDialog, emptyState, errorBox, field, h, mount, spinner, table, toast } from "../ui.js";

const SOURCES = ["human", "judge", "code"];
const pct = (x) => `${Math.max(0, Math.min(100, x)).toFixed(3)}%`;

function fact(label, value, test) {
  return h("div", { class: "stat", "data-test": test }, h("div", { class: "v small-v" }, value), h("div", { class: "k" }, label));
}

/** The waterfall: a time axis, then one row per span; `onPick(span)` when a row is clicked; `stop()` ends the
 * resize watch. In a narrow box the rows stack (name and duration, then the bar across the whole width; see
 * console.css), and the axis shows only the tick labels that fit side by side (`thinAxis`, on every resize). */
function waterfall(trace, onPick) {
  const spans = trace.spans || [];
  const total = Math.max(trace.duration_ms || 0, ...spans.map((s) => (s.offset_ms || 0) + (s.duration_ms || 0)), 1);
  const axis = h("div", { class: "wf-track wf-axis" }, [0, 0.25, 0.5, 0.75, 1].map((x) => {
    const tick = h("span", { class: x === 1 ? "end" : "" }, fmtMs(total * x));
    tick.style.left = pct(x * 100);
    return tick;
  }));
  const rows = spans.map((s) => {
    const name = h("div", { class: "wf-name", title: s.name },
      h("span", { class: "wf-label" }, s.name), s.kind && h("span", { class: "muted small" }, ` ${s.kind}`));
    name.style.paddingLeft = `${8 + (s.depth || 0) * 16}px`;
    const bar = h("div", { class: "wf-bar", "data-test": "span-bar", title: `${s.name} · ${fmtMs(s.duration_ms)}` });
    const width = pct(Math.max(((s.duration_ms || 0) / total) * 100, 0.4));
    bar.style.width = width;  // and at least 2 px (min-width), kept inside the track by the left edge below
    bar.style.left = `min(${pct(((s.offset_ms || 0) / total) * 100)}, 100% - max(${width}, 2px))`;
    const row = h("div", {
      class: `wf-row ${s.status === "error" ? "err" : ""}`, role: "button", tabindex: "0", "data-test": "span-row", "data-span": s.id,
      onclick: () => pick(s, row), onkeydown: (e) => { if (e.key === "Enter") pick(s, row); },
    }, name, h("div", { class: "wf-track" }, bar), h("div", { class: "wf-dur" }, fmtMs(s.duration_ms)));
    return row;
  });
  const box = h("div", { class: "waterfall", "data-test": "waterfall" },
    h("div", { class: "wf-row wf-head" }, h("div", { class: "wf-name muted small" }, t("trace.span")), axis, h("div", { class: "wf-dur muted small" }, t("traces.duration"))),
    rows.length ? rows : h("div", { class: "muted small wf-empty" }, t("trace.no_spans")));
  function pick(s, row) {
    box.querySelectorAll(".wf-row.sel").forEach((r) => r.classList.remove("sel"));
    if (row) row.classList.add("sel");
    onPick(s);
  }
  const observer = new ResizeObserver(() => thinAxis(axis));
  observer.observe(axis);
  return { box, stop: () => observer.disconnect() };
}

/** Hide the axis labels that would touch one already shown: the start and the end first, then the middle, then
 * the quarters. Labels are positioned absolutely, so hiding one never changes the axis's size. */
function thinAxis(axis) {
  const ticks = [...axis.children];
  ticks.forEach((el) => { el.style.visibility = ""; });
  const shown = [];
  for (const i of [0, 4, 2, 1, 3]) {
    const r = ticks[i].getBoundingClientRect();
    if (shown.some((o) => r.left < o.right + 6 && o.left < r.right + 6)) ticks[i].style.visibility = "hidden";
    else shown.push(r);
  }
}

/** The side panel: the trace itself, or the span picked in the waterfall. */
function detail(trace, span) {
  const it = span || trace;
  const attrs = Object.entries((span && span.attributes) || {});
  return h("div", { "data-test": "span-detail" },
    h("div", { class: "row" }, h("h2", { class: "grow-h" }, span ? span.name : t("trace.whole_trace")), statusBadge(it.status)),
    h("dl", { class: "facts" },
      span && [h("dt", {}, t("trace.kind")), h("dd", {}, span.kind || "—")],
      h("dt", {}, t("trace.start")), h("dd", {}, fmtDateTimeSec(it.start)),
      span && [h("dt", {}, t("trace.offset")), h("dd", {}, fmtMs(span.offset_ms))],
      h("dt", {}, t("traces.duration")), h("dd", {}, fmtMs(it.duration_ms)),
      span && [h("dt", {}, t("trace.span_id")), h("dd", { class: "mono" }, span.id)]),
    it.error && h("div", { class: "alert" }, it.error),
    span && h("div", {}, h("h3", {}, t("trace.attributes")), attrs.length
      ? h("table", { class: "attrs", "data-test": "span-attributes" }, h("tbody", {}, attrs.map(([k, v]) =>
        h("tr", {}, h("th", { class: "mono" }, k), h("td", { class: "mono" }, typeof v === "string" ? v : JSON.stringify(v))))))
      : h("div", { class: "muted small" }, t("traces.none"))),
    h("h3", {}, t("trace.input")), payload(it.input, "span-input"),
    h("h3", {}, t("trace.output")), payload(it.output, "span-output"));
}

/** A score value typed in a text box, as the API wants it for the chosen type. */
export function parseScore(raw, type) {
  const v = String(raw).trim();
  const lower = v.toLowerCase();
  const truthy = ["true", "yes", "1", "是", "对"];
  const falsy = ["false", "no", "0", "否", "错"];
  if (type === "boolean") {
    if (truthy.includes(lower)) return true;
    if (falsy.includes(lower)) return false;
    throw new Error(t("trace.score_bad_boolean"));
  }
  if (type === "numeric") {
    if (v === "" || Number.isNaN(Number(v))) throw new Error(t("trace.score_bad_number"));
    return Number(v);
  }
  if (type === "categorical") return v;
  if (v !== "" && !Number.isNaN(Number(v))) return Number(v);
  if (lower === "true" || lower === "false") return lower === "true";
  return v;
}

export function scoreValue(s) {
  if (s.data_type === "boolean" || typeof s.value === "boolean") {
    return s.value ? badge(t("ann.yes"), "ok") : badge(t("ann.no"), "err");
  }
  return typeof s.value === "number" ? fmtNum(s.value, 4) : String(s.value);
}

function scoresPanel(trace, selected, admin) {
  const box = h("div", { class: "panel", "data-test": "scores" });
  const draw = () => {
    const list = trace.scores.length ? h("div", { class: "ops-table" }, table([
      { label: t("trace.score_name"), render: (s) => h("strong", {}, s.name) },
      { label: t("trace.score_value"), render: scoreValue },
      { label: t("trace.score_type"), render: (s) => t(`ann.type_${s.data_type}`) },
      { label: t("trace.score_target"), render: (s) => h("div", { class: "clip narrow-clip" }, s.span_id ? spanName(s.span_id) : t("trace.whole_trace")) },
      { label: t("trace.score_source"), render: (s) => h("span", {}, SOURCES.includes(s.source) ? t(`trace.source_${s.source}`) : s.source, s.author && h("div", { class: "muted small" }, s.author)) },
      { label: t("trace.comment"), render: (s) => h("div", { class: "clip narrow-clip", title: s.comment || "" }, s.comment || "") },
      { label: t("trace.created"), render: (s) => fmtDateTimeSec(s.created_at) },
      { label: "", render: (s) => admin && h("button", { class: "small danger", "data-test": "delete-score", onclick: async (e) => {
        const btn = e.currentTarget;
        if (!(await confirmDialog(t("trace.score_delete_confirm", { name: s.name }), { ok: t("common.delete"), danger: true }))) return;
        busy(btn, async () => {
          await del(`/api/v1/scores/${encodeURIComponent(s.id)}`);
          trace.scores = trace.scores.filter((x) => x.id !== s.id);
          draw();
        });
      } }, t("common.delete")) },
    ], trace.scores)) : h("div", { class: "muted small empty-line" }, t("trace.no_scores"));
    mount(box, h("h2", {}, t("trace.scores"), " ", badge(fmtNum(trace.scores.length))), list, form());
  };
  const spanName = (id) => ((trace.spans || []).find((s) => s.id === id) || { name: id }).name;
  function form() {
    const msg = h("div", {});
    const target = h("select", { name: "target", "data-test": "score-target", "aria-label": t("trace.score_target") },
      h("option", { value: "" }, t("trace.whole_trace")),
      selected.span && h("option", { value: selected.span.id }, t("trace.this_span", { name: selected.span.name })));
    const type = h("select", { name: "data_type", "data-test": "score-type", "aria-label": t("trace.score_type") },
      ["", "numeric", "categorical", "boolean"].map((v) => h("option", { value: v }, v ? t(`ann.type_${v}`) : t("trace.type_auto"))));
    const el = h("form", { class: "score-form", "data-test": "score-form", onsubmit: (e) => {
      e.preventDefault();
      mount(msg);
      const values = Object.fromEntries(new FormData(el));
      busy(el.querySelector("button[type=submit]"), async () => {
        const body = { name: values.name.trim(), value: parseScore(values.value, values.data_type), comment: values.comment.trim() || undefined,
          data_type: values.data_type || undefined, span_id: values.target || undefined };
        const s = await post(`/api/v1/traces/${trace.id}/scores`, body);
        trace.scores = [...trace.scores, s];
        toast(t("trace.score_added", { name: s.name }));
        draw();
      }, (err) => mount(msg, errorBox(err)));
    } },
    h("h3", {}, t("trace.add_score")),
    h("div", { class: "row" },
      field(t("trace.score_name"), h("input", { name: "name", required: true, maxlength: "100", placeholder: t("trace.score_name_ph"), "data-test": "score-name" })),
      field(t("trace.score_value"), h("input", { name: "value", required: true, placeholder: t("trace.score_value_ph"), "data-test": "score-value" })),
      field(t("trace.score_type"), type),
      field(t("trace.score_target"), target)),
    field(t("trace.comment"), h("input", { name: "comment", maxlength: "2000", "data-test": "score-comment" })),
    msg,
    h("div", { class: "row" }, h("button", { class: "primary", type: "submit", "data-test": "score-submit" }, t("trace.add_score"))));
    return el;
  }
  box.redraw = draw;
  draw();
  return box;
}

export async function render(root, { me, params }) {
  const id = decodeURIComponent(params.id);
  const back = h("div", { class: "page-head" }, h("a", { href: "/traces" }, "‹ " + t("nav.traces")));
  mount(root, back, spinner());
  let trace;
  try {
    trace = await get(`/api/v1/traces/${encodeURIComponent(id)}`);
  } catch (e) {
    mount(root, back, e.status === 404 ? emptyState({ title: t("trace.not_found"), hint: t("trace.not_found_hint") }) : errorBox(e));
    return undefined;
  }
  trace.scores = trace.scores || [];
  const selected = { span: null };
  const side = h("div", { class: "panel side-panel" });
  const scores = scoresPanel(trace, selected, me.role === "admin");
  const pick = (span) => {
    selected.span = span;
    mount(side, detail(trace, span));
    scores.redraw();
  };
  const { box: wf, stop } = waterfall(trace, pick);
  mount(side, detail(trace, null));
  mount(root, back,
    h("div", { class: "page-head" }, h("h1", {}, trace.name || t("trace.untitled")), statusBadge(trace.status),
      trace.kind && badge(trace.kind, "accent"), h("span", { class: "mono muted small", "data-test": "trace-id" }, trace.id)),
    h("div", { class: "stats compact" },
      fact(t("trace.start"), fmtDateTimeSec(trace.start)),
      fact(t("traces.duration"), fmtMs(trace.duration_ms), "trace-duration"),
      fact(t("traces.ttft"), fmtMs(trace.ttft_ms)),
      fact(t("traces.model"), trace.model || "—", "trace-model"),
      fact(t("traces.key"), keyLabel(trace)),
      fact(t("trace.tokens_in_out"), tokens(trace), "trace-tokens"),
      fact(t("traces.cost"), fmtMoney(trace.cost)),
      fact(t("trace.spans"), fmtNum((trace.spans || []).length), "trace-spans")),
    trace.error && h("div", { class: "alert", "data-test": "trace-error" }, trace.error),
    h("div", { class: "trace-grid" },
      h("div", { class: "stack" },
        h("div", { class: "panel" }, h("div", { class: "row" }, h("h2", { class: "grow-h" }, t("trace.timeline")),
          h("button", { class: "small", onclick: () => { wf.querySelectorAll(".wf-row.sel").forEach((r) => r.classList.remove("sel")); pick(null); } },
            t("trace.show_trace"))), wf),
        scores),
      side));
  return stop;
}
