// Knowledge bases: documents chunked, embedded and indexed for hybrid retrieval and grounded answers. This page
// lists them with their document and chunk counts and creates new ones (admins).
import { get, post } from "../api.js";
import { fmtNum, fmtTime, t } from "../i18n.js";
import { badge, emptyState, field, formDialog, h, pagedList, toast } from "../ui.js";

export const STRATEGIES = ["structure", "fixed", "parent_child"];
export const DOC_STATUSES = ["queued", "processing", "indexed", "failed"];
const STATUS_KIND = { queued: "", processing: "warn", indexed: "ok", failed: "err" };

/** A document status as a coloured, translated badge. */
export function docStatusBadge(status) {
  const el = badge(DOC_STATUSES.includes(status) ? t(`kb.status_${status}`) : status, STATUS_KIND[status] || "");
  el.dataset.status = status;
  return el;
}

/** "3 / 4 indexed" with badges for failed and pending documents. */
export function docCounts(docs = {}) {
  const pending = (docs.queued || 0) + (docs.processing || 0);
  return h("div", { class: "tags", "data-test": "kb-doc-counts" },
    h("span", { class: "nowrap" }, t("kb.indexed_of", { indexed: fmtNum(docs.indexed || 0), total: fmtNum(docs.total || 0) })),
    docs.failed ? badge(t("kb.n_failed", { n: fmtNum(docs.failed) }), "err") : null,
    pending ? badge(t("kb.n_pending", { n: fmtNum(pending) }), "warn") : null);
}

function createDialog(onCreated) {
  const form = h("form", { onsubmit: (e) => e.preventDefault() },
    field(t("kb.name"), h("input", { name: "name", required: true, maxlength: "100", placeholder: t("kb.name_ph"), "data-test": "kb-name" }),
      t("kb.name_hint")),
    field(t("kb.description"), h("textarea", { name: "description", rows: "2", maxlength: "2000", "data-test": "kb-description" })),
    h("div", { class: "row" },
      field(t("kb.strategy"), h("select", { name: "strategy", "data-test": "kb-strategy" },
        STRATEGIES.map((s) => h("option", { value: s }, t(`kb.strategy_${s}`))))),
      field(t("kb.chunk_tokens"), h("input", { name: "chunk_tokens", type: "number", min: "16", max: "480", step: "1", value: "350",
        required: true, "data-test": "kb-chunk-tokens" }), t("kb.chunk_tokens_hint"))),
    h("div", { class: "muted small" }, t("kb.strategy_hint")));
  formDialog({
    title: t("kb.create_title"), form, submitLabel: t("kb.create"), test: "create-kb-submit",
    submit: async (v) => {
      const kb = await post("/api/v1/knowledge-bases", { name: v.name, description: v.description || "",
        config: { chunking: { strategy: v.strategy, chunk_tokens: v.chunk_tokens } } });
      toast(t("kb.created", { name: kb.name }));
      onCreated(kb);
    },
  });
}

export async function render(root, { me, navigate }) {
  const admin = me.role === "admin";
  const open = (kb) => navigate(`/knowledge/${encodeURIComponent(kb.id)}`);
  const create = () => createDialog(open);
  const list = h("div", {});
  root.replaceChildren(
    h("div", { class: "page-head" }, h("h1", {}, t("nav.knowledge")), h("span", { class: "sub" }, t("kb.subtitle")),
      h("div", { class: "actions" }, admin && h("button", { class: "primary", onclick: create, "data-test": "create-kb" }, "+ " + t("kb.create")))),
    list);
  pagedList(list, {
    load: ({ limit, offset }) => get("/api/v1/knowledge-bases", { limit, offset }),
    render: (rows) => h("div", { class: "table-wrap" }, h("table", { class: "tbl" },
      h("thead", {}, h("tr", {},
        h("th", {}, t("kb.name")), h("th", {}, t("kb.documents")), h("th", { class: "num" }, t("kb.chunks")),
        h("th", {}, t("kb.embedding_model")), h("th", {}, t("kb.chunking")), h("th", {}, t("kb.updated")))),
      h("tbody", {}, rows.map((kb) => h("tr", { class: "click", "data-kb": kb.id, onclick: () => open(kb) },
        h("td", {}, h("strong", {}, kb.name),
          kb.description && h("div", { class: "muted small clip", title: kb.description }, kb.description)),
        h("td", {}, docCounts(kb.documents)),
        h("td", { class: "num" }, fmtNum(kb.chunks)),
        h("td", { class: "mono small" }, kb.embedding_model),
        h("td", {}, badge(t(`kb.strategy_${((kb.config || {}).chunking || {}).strategy || "structure"}`))),
        h("td", { class: "small nowrap" }, fmtTime(kb.updated_at || kb.created_at))))))),
    empty: () => emptyState({ title: t("kb.empty"), hint: admin ? t("kb.empty_hint") : t("kb.empty_hint_member"),
      action: admin && { label: t("kb.create"), onClick: create } }),
  });
}
