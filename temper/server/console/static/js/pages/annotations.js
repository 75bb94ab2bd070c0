// Annotation queues: traces picked by a filter, annotated one after the other with the queue's score configs,
// exported as a JSONL dataset. This page lists the queues with their progress and creates new ones.
import { del, get, post } from "../api.js";
import { fmtNum, fmtTime, t } from "../i18n.js";
import { PERIODS } from "../ops.js";
import { badge, busy, confirmDialog, emptyState, errorBox, field, formDialog, h, mount, progress, spinner, table, toast } from "../ui.js";

export const TYPES = ["numeric", "categorical", "boolean"];

export function queueProgress(q) {
  const c = q.counts || {};
  const finished = (c.done || 0) + (c.skipped || 0);
  return h("div", { class: "queue-progress", "data-test": "queue-progress" },
    h("div", { class: "small" }, t("ann.progress", { done: fmtNum(finished), total: fmtNum(c.total || 0) }),
      c.skipped ? h("span", { class: "muted" }, " · ", t("ann.skipped_n", { n: fmtNum(c.skipped) })) : null),
    progress(c.total ? finished / c.total : 0, `${finished} / ${c.total || 0}`));
}

export const exportHref = (q) => `/api/v1/annotation-queues/${encodeURIComponent(q.id)}/export`;

export function exportLink(q, small = false) {
  return h("a", { class: small ? "btn small" : "btn", href: exportHref(q), download: `${q.name || q.id}.jsonl`, "data-test": "export" }, t("ann.export"));
}

function configRow(onRemove) {
  const type = h("select", { "aria-label": t("ann.config_type"), "data-role": "type" }, TYPES.map((v) => h("option", { value: v }, t(`ann.type_${v}`))));
  const categories = h("input", { "data-role": "categories", placeholder: t("ann.categories_ph"), "aria-label": t("ann.categories") });
  const min = h("input", { "data-role": "min", type: "number", step: "any", placeholder: t("ann.min"), "aria-label": t("ann.min"), class: "narrow" });
  const max = h("input", { "data-role": "max", type: "number", step: "any", placeholder: t("ann.max"), "aria-label": t("ann.max"), class: "narrow" });
  const row = h("div", { class: "row config-row", "data-test": "config-row" },
    h("input", { "data-role": "name", required: true, maxlength: "100", placeholder: t("ann.config_name_ph"), "aria-label": t("ann.config_name") }),
    type, categories, min, max,
    h("button", { type: "button", class: "small ghost", "aria-label": t("common.delete"), onclick: () => onRemove(row) }, "×"));
  const sync = () => {
    categories.hidden = type.value !== "categorical";
    categories.required = type.value === "categorical";
    min.hidden = max.hidden = type.value !== "numeric";
  };
  type.addEventListener("change", sync);
  sync();
  return row;
}

function readConfigs(box) {
  return [...box.querySelectorAll(".config-row")].map((row) => {
    const get = (r) => row.querySelector(`[data-role=${r}]`).value.trim();
    const c = { name: get("name"), data_type: get("type") };
    if (c.data_type === "categorical") c.categories = get("categories").split(/[,，]/).map((x) => x.trim()).filter(Boolean);
    if (c.data_type === "numeric") {
      if (get("min") !== "") c.min = Number(get("min"));
      if (get("max") !== "") c.max = Number(get("max"));
    }
    return c;
  });
}

async function createDialog(onCreated) {
  let models = [];
  try { models = (await get("/api/v1/models", { limit: 1000 })).data; } catch { /* the model filter is optional */ }
  const configs = h("div", { class: "configs" });
  const addConfig = () => configs.append(configRow((row) => { if (configs.children.length > 1) row.remove(); }));
  addConfig();
  const form = h("form", { onsubmit: (e) => e.preventDefault() },
    field(t("ann.name"), h("input", { name: "name", required: true, maxlength: "200", placeholder: t("ann.name_ph"), "data-test": "queue-name" })),
    field(t("ann.description"), h("input", { name: "description", maxlength: "2000" })),
    h("h3", {}, t("ann.filters")),
    h("div", { class: "row" },
      field(t("traces.search"), h("input", { name: "q", "data-test": "queue-q" })),
      field(t("usage.range"), h("select", { name: "period" }, Object.keys(PERIODS).map((p) => h("option", { value: p, selected: p === "7d" }, t(`range.${p}`)))))),
    h("div", { class: "row" },
      field(t("traces.model"), h("select", { name: "model", "data-test": "queue-model" }, h("option", { value: "" }, t("usage.all_models")),
        models.map((m) => h("option", { value: m.id }, m.id)))),
      field(t("traces.status"), h("select", { name: "status" }, h("option", { value: "" }, t("traces.any_status")),
        h("option", { value: "ok" }, t("traces.status_ok")), h("option", { value: "error" }, t("traces.status_error")))),
      field(t("ann.limit"), h("input", { name: "limit", type: "number", min: "1", max: "10000", value: "100", class: "narrow" }))),
    h("h3", {}, t("ann.score_configs")),
    h("div", { class: "muted small" }, t("ann.score_configs_hint")),
    configs,
    h("button", { type: "button", class: "small", "data-test": "add-config", onclick: addConfig }, "+ " + t("ann.add_config")));
  formDialog({
    title: t("ann.create_title"), form, submitLabel: t("ann.create"), test: "create-queue-submit",
    submit: async (v) => {
      const filters = Object.fromEntries(Object.entries({ q: v.q, model: v.model, status: v.status, hours: PERIODS[v.period || "7d"].hours })
        .filter(([, x]) => x !== undefined && x !== ""));
      const q = await post("/api/v1/annotation-queues", { name: v.name, description: v.description, filters, limit: v.limit,
        score_configs: readConfigs(configs) });
      toast(t("ann.created", { name: q.name, n: fmtNum((q.counts || {}).total || 0) }));
      onCreated(q);
    },
  });
}

function filtersText(f) {
  const parts = [];
  if (!f) return "";
  if (f.q) parts.push(`“${f.q}”`);
  if (f.model) parts.push(f.model);
  if (f.status) parts.push(t(`traces.status_${f.status}`));
  const period = Object.keys(PERIODS).find((p) => PERIODS[p].hours === f.hours);
  if (f.hours) parts.push(period ? t(`range.${period}`) : t("ann.last_hours", { n: fmtNum(f.hours) }));
  if (f.since) parts.push(t("ann.since", { time: fmtTime(f.since) }));  // the API stores the window's start
  return parts.join(" · ");
}

export async function render(root, { me, navigate }) {
  const admin = me.role === "admin";
  const list = h("div", {});
  const open = (q) => navigate(`/annotations/${encodeURIComponent(q.id)}`);
  const create = () => createDialog((q) => open(q));
  const reload = async () => {
    mount(list, spinner());
    try {
      const page = await get("/api/v1/annotation-queues");
      mount(list, page.data.length ? table([
        { label: t("ann.name"), render: (q) => h("div", { "data-queue": q.id }, h("strong", {}, q.name), q.description && h("div", { class: "muted small" }, q.description)) },
        { label: t("ann.filters"), render: (q) => h("span", { class: "small" }, filtersText(q.filters) || t("ann.all_traces")) },
        { label: t("ann.score_configs"), render: (q) => h("div", { class: "tags" }, (q.score_configs || []).map((c) => badge(`${c.name} · ${t(`ann.type_${c.data_type}`)}`))) },
        { label: t("ann.progress_label"), render: queueProgress },
        { label: t("trace.created"), render: (q) => fmtTime(q.created_at) },
        { label: "", render: (q) => h("div", { class: "row nowrap", onclick: (e) => e.stopPropagation() },
          h("button", { class: "small primary", "data-test": "annotate", onclick: () => open(q) }, t("ann.annotate")),
          exportLink(q, true),
          admin && h("button", { class: "small danger", "data-test": "delete-queue", onclick: async (e) => {
            const btn = e.currentTarget;
            if (!(await confirmDialog(t("ann.delete_confirm", { name: q.name }), { ok: t("common.delete"), danger: true }))) return;
            busy(btn, async () => { await del(`/api/v1/annotation-queues/${encodeURIComponent(q.id)}`); toast(t("ann.deleted")); reload(); });
          } }, t("common.delete"))) },
      ], page.data, open) : emptyState({ title: t("ann.empty"), hint: t("ann.empty_hint"), action: admin && { label: t("ann.create"), onClick: create } }));
    } catch (e) {
      mount(list, errorBox(e));
    }
  };
  mount(root,
    h("div", { class: "page-head" }, h("h1", {}, t("nav.annotations")), h("span", { class: "sub" }, t("ann.subtitle")),
      h("div", { class: "actions" }, admin && h("button", { class: "primary", onclick: create, "data-test": "create-queue" }, "+ " + t("ann.create")))),
    list);
  reload();
}
