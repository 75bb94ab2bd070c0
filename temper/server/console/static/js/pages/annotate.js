// Annotate a queue: the next trace's input and output, one input per score config, Submit or Skip, progress,
// and the export of what is done so far as JSONL.
import { get, post } from "../api.js";
import { fmtMs, fmtNum, t } from "../i18n.js";
import { keyLabel, payload, statusBadge } from "../ops.js";
import { badge, busy, emptyState, errorBox, field, h, mount, spinner } from "../ui.js";
import { exportLink, queueProgress } from "./annotations.js";

/** One input per score config; `read()` returns {name: value} for the filled ones. */
function scoreInputs(configs) {
  const readers = [];
  const nodes = configs.map((c) => {
    const hint = c.data_type === "numeric" && (c.min != null || c.max != null)
      ? t("ann.range_hint", { min: c.min ?? "−∞", max: c.max ?? "∞" }) : t(`ann.type_${c.data_type}`);
    if (c.data_type === "numeric") {
      const input = h("input", { type: "number", step: "any", min: c.min ?? undefined, max: c.max ?? undefined, "data-score": c.name, class: "narrow" });
      readers.push(() => (input.value.trim() === "" ? undefined : Number(input.value)));
      return field(c.name, input, hint);
    }
    const choices = c.data_type === "boolean" ? [[true, t("ann.yes")], [false, t("ann.no")]] : (c.categories || []).map((x) => [x, x]);
    const group = `score-${c.name}`;
    const radios = choices.map(([v, label], i) => h("label", { class: "check choice" },
      h("input", { type: "radio", name: group, value: String(i), "data-score": c.name, "data-choice": String(v) }), label));
    readers.push(() => {
      const on = radios.map((r) => r.querySelector("input")).find((r) => r.checked);
      return on ? choices[Number(on.value)][0] : undefined;
    });
    return h("div", { class: "field" }, h("span", {}, c.name, h("small", {}, " · ", hint)), h("div", { class: "row choices" }, radios));
  });
  const read = () => Object.fromEntries(configs.map((c, i) => [c.name, readers[i]()]).filter(([, v]) => v !== undefined));
  return { nodes, read };
}

export async function render(root, { params, navigate }) {
  const id = decodeURIComponent(params.id);
  const back = h("div", { class: "page-head" }, h("a", { href: "/annotations" }, "‹ " + t("nav.annotations")));
  mount(root, back, spinner());
  let queue;
  try {
    queue = await get(`/api/v1/annotation-queues/${encodeURIComponent(id)}`);
  } catch (e) {
    mount(root, back, errorBox(e));
    return;
  }
  const prog = h("div", { class: "grow-h" });
  const work = h("div", {});
  const setCounts = (counts) => { queue.counts = counts || queue.counts; mount(prog, queueProgress(queue)); };
  async function next() {
    mount(work, spinner());
    let n;
    try {
      n = await get(`/api/v1/annotation-queues/${encodeURIComponent(id)}/next`);
    } catch (e) {
      mount(work, errorBox(e));
      return;
    }
    setCounts(n.counts);
    if (!n.item) {
      mount(work, h("div", { "data-test": "queue-done" }, emptyState({ title: t("ann.all_done"), hint: t("ann.all_done_hint") }),
        h("div", { class: "row center" }, exportLink(queue), h("button", { onclick: () => navigate("/annotations") }, t("ann.back_to_queues")))));
      return;
    }
    const tr = n.trace || {};
    const inputs = scoreInputs(queue.score_configs || []);
    const comment = h("textarea", { rows: "2", "data-test": "annotate-comment", placeholder: t("ann.comment_ph") });
    const msg = h("div", {});
    const send = (status) => (e) => busy(e.currentTarget, async () => {
      mount(msg);
      const scores = status === "done" ? inputs.read() : {};
      const r = await post(`/api/v1/annotation-queues/${encodeURIComponent(id)}/items/${encodeURIComponent(n.item.id)}`,
        { status, scores, comment: comment.value.trim() || undefined });
      setCounts(r.counts);
      await next();
    }, (err) => mount(msg, errorBox(err)));
    mount(work, h("div", { class: "annotate-grid", "data-test": "annotate-item", "data-trace": n.item.trace_id },
      h("div", { class: "panel" },
        h("div", { class: "row" }, h("h2", { class: "grow-h" }, t("ann.item_n", { n: fmtNum((n.item.position ?? 0) + 1) })),
          statusBadge(tr.status), h("a", { href: `/traces/${n.item.trace_id}`, target: "_blank", rel: "noopener", class: "small" }, t("ann.open_trace"))),
        h("div", { class: "muted small" }, [tr.name, tr.model, keyLabel(tr), fmtMs(tr.duration_ms)].filter((x) => x && x !== "—").join(" · ")),
        h("h3", {}, t("trace.input")), payload(tr.input, "annotate-input"),
        h("h3", {}, t("trace.output")), payload(tr.output, "annotate-output")),
      h("div", { class: "panel" },
        h("h2", {}, t("ann.your_scores")),
        inputs.nodes.length ? inputs.nodes : h("div", { class: "muted small" }, t("ann.no_configs")),
        field(t("trace.comment"), comment),
        msg,
        h("div", { class: "row" },
          h("button", { class: "primary", "data-test": "annotate-submit", onclick: send("done") }, t("ann.submit")),
          h("button", { "data-test": "annotate-skip", onclick: send("skipped") }, t("ann.skip"))))));
  }
  mount(root, back,
    h("div", { class: "page-head" }, h("h1", {}, queue.name),
      (queue.score_configs || []).map((c) => badge(c.name, "accent")),
      h("div", { class: "actions" }, exportLink(queue))),
    queue.description && h("p", { class: "muted" }, queue.description),
    h("div", { class: "panel row queue-bar" }, prog),
    work);
  next();
}
