// The documents of a knowledge base: adding them (files by picker or drag and drop, pasted text, URLs, a database
// query), the database sources with "Sync now", the list with statuses, errors, retry and delete, and the chunk
// viewer. Used by knowledge_detail.js.
import { del, get, post, postForm } from "../api.js";
import { fmtNum, fmtTime, t } from "../i18n.js";
import { badge, busy, confirmDialog, errorBox, field, formDialog, h, modal, mount, spinner, toast } from "../ui.js";
import { DOC_STATUSES, docStatusBadge } from "./knowledge.js";

const PAGE = 20;
const ACCEPT = ".md,.markdown,.txt,.html,.htm,.pdf,.docx,.pptx,.xlsx,.xlsm,.csv,.tsv,.png,.jpg,.jpeg,.tif,.tiff,.bmp,.webp,.gif";
const kbPath = (kb) => `/api/v1/knowledge-bases/${encodeURIComponent(kb.id)}`;

export function fmtBytes(n) {
  if (n === null || n === undefined) return "—";
  if (n < 1024) return `${fmtNum(n)} B`;
  if (n < 1024 * 1024) return `${fmtNum(n / 1024, 1)} KB`;
  return `${fmtNum(n / 1024 / 1024, 1)} MB`;
}

/** "guide.md › Install › Linux › p. 3": where a chunk or hit comes from. */
export function sectionPath(section, page) {
  const parts = [...(Array.isArray(section) ? section : section ? [section] : [])];
  if (page !== null && page !== undefined) parts.push(t("kb.page_n", { page }));
  return parts;
}

function crumbs(parts, test) {
  return h("span", { class: "crumbs", "data-test": test }, parts.map((p, i) => [i ? h("span", { class: "sep" }, " › ") : null, h("span", {}, p)]));
}

/** Add documents (admins): files picked or dropped, then uploaded together with optional metadata; text; URLs;
 * a database query (`onSource` gets the new source with its sync job). */
export function addPanel(kb, { onAdded, onSource }) {
  let pending = [];
  const msg = h("div", {});
  const list = h("div", { class: "pending-files", "data-test": "pending-files" });
  const input = h("input", { type: "file", multiple: true, accept: ACCEPT, class: "file-input", "data-test": "kb-files",
    "aria-label": t("kb.choose_files"), onchange: (e) => { addFiles(e.target.files); e.target.value = ""; } });
  const zone = h("label", { class: "dropzone", "data-test": "dropzone",
    ondragover: (e) => { e.preventDefault(); zone.classList.add("over"); },
    ondragleave: () => zone.classList.remove("over"),
    ondrop: (e) => { e.preventDefault(); zone.classList.remove("over"); addFiles(e.dataTransfer && e.dataTransfer.files); },
  }, input, h("strong", {}, t("kb.drop_hint")), h("span", { class: "muted small" }, t("kb.types_hint")));
  const meta = h("input", { class: "mono", placeholder: '{"dept": "support"}', "data-test": "kb-metadata", "aria-label": t("kb.metadata") });
  const uploadBtn = h("button", { class: "primary", "data-test": "upload-files", onclick: (e) => upload(e.currentTarget) });
  function addFiles(files) {
    const known = new Set(pending.map((f) => `${f.name}/${f.size}`));
    for (const f of files || []) if (!known.has(`${f.name}/${f.size}`)) pending.push(f);
    drawPending();
  }
  function drawPending() {
    mount(list, pending.map((f, i) => h("span", { class: "file-chip", "data-file": f.name }, f.name, h("span", { class: "muted small" }, fmtBytes(f.size)),
      h("button", { type: "button", class: "small ghost", "aria-label": t("common.delete"), onclick: () => { pending.splice(i, 1); drawPending(); } }, "×"))));
    mount(uploadBtn, pending.length ? t("kb.upload_n", { n: fmtNum(pending.length) }) : t("kb.upload"));
    uploadBtn.disabled = !pending.length;
  }
  async function upload(btn) {
    mount(msg);
    let metadata = "{}";
    if (meta.value.trim()) {
      try {
        const parsed = JSON.parse(meta.value);
        if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error();
        metadata = JSON.stringify(parsed);
      } catch {
        mount(msg, errorBox(t("kb.metadata_invalid")));
        return;
      }
    }
    await busy(btn, async () => {
      const res = await postForm(`${kbPath(kb)}/documents`, { files: pending, metadata });
      pending = [];
      onAdded(res);
    }, (err) => mount(msg, errorBox(err)));
    drawPending();
  }
  drawPending();
  return h("div", { class: "panel", "data-test": "kb-add" },
    h("div", { class: "row panel-head" }, h("h2", { class: "grow-h" }, t("kb.add_documents")),
      h("button", { class: "small", "data-test": "add-text", onclick: () => textDialog(kb, onAdded) }, "+ " + t("kb.add_text")),
      h("button", { class: "small", "data-test": "add-urls", onclick: () => urlsDialog(kb, onAdded) }, "+ " + t("kb.add_urls")),
      h("button", { class: "small", "data-test": "add-database", onclick: () => databaseDialog(kb, onSource) }, "+ " + t("kb.add_database"))),
    zone, list,
    h("div", { class: "row upload-row" }, field(t("kb.metadata"), meta, t("kb.metadata_hint")), uploadBtn),
    msg);
}

function textDialog(kb, onAdded) {
  const form = h("form", { onsubmit: (e) => e.preventDefault() },
    field(t("kb.text_title"), h("input", { name: "title", required: true, maxlength: "200", "data-test": "text-title" })),
    field(t("kb.text_body"), h("textarea", { name: "text", required: true, rows: "10", "data-test": "text-body", placeholder: t("kb.text_ph") })));
  formDialog({
    title: t("kb.add_text_title"), form, submitLabel: t("kb.add"), test: "add-text-submit",
    submit: async (v) => onAdded(await post(`${kbPath(kb)}/documents/text`, { title: v.title, text: v.text })),
  });
}

function urlsDialog(kb, onAdded) {
  const form = h("form", { onsubmit: (e) => e.preventDefault() },
    field(t("kb.urls"), h("textarea", { name: "urls", required: true, rows: "5", class: "mono", "data-test": "urls-input",
      placeholder: "https://example.com/handbook.html" }), t("kb.urls_hint")));
  formDialog({
    title: t("kb.add_urls_title"), form, submitLabel: t("kb.add"), test: "add-urls-submit",
    submit: async (v) => {
      const urls = v.urls.split(/\s+/).map((u) => u.trim()).filter(Boolean);
      onAdded(await post(`${kbPath(kb)}/documents/urls`, { urls }));
    },
  });
}

/** A database query as documents: one per row (or per value of "group by"), synced now and on "Sync now". The server
 * checks the URL, the query (one SELECT) and the columns before saving: a bad one is a 400 shown in the dialog. */
function databaseDialog(kb, onSource) {
  const optional = (label, name, test) => field(label, h("input", { name, class: "mono", maxlength: "200", "data-test": test,
    placeholder: t("kb.optional") }));
  const form = h("form", { onsubmit: (e) => e.preventDefault() },
    h("div", { class: "muted small panel-hint-note" }, t("kb.db_intro")),
    field(t("kb.name"), h("input", { name: "name", required: true, maxlength: "100", placeholder: "faq", "data-test": "db-name" }), t("kb.db_name_hint")),
    field(t("kb.db_url"), h("input", { name: "url", required: true, class: "mono", placeholder: "sqlite:///data/crm.db", autocomplete: "off",
      "data-test": "db-url" }), t("kb.db_url_hint")),
    field(t("kb.db_query"), h("textarea", { name: "query", required: true, rows: "4", class: "mono", "data-test": "db-query",
      placeholder: "SELECT id, question, answer FROM faq" }), t("kb.db_query_hint")),
    h("div", { class: "row" },
      field(t("kb.db_key_column"), h("input", { name: "key_column", required: true, class: "mono", maxlength: "200", placeholder: "id",
        "data-test": "db-key-column" })),
      optional(t("kb.db_title_column"), "title_column", "db-title-column"),
      optional(t("kb.db_group_by"), "group_by", "db-group-by")),
    h("div", { class: "muted small" }, t("kb.db_columns_hint")));
  formDialog({
    title: t("kb.add_database_title"), form, submitLabel: t("kb.add"), test: "add-database-submit",
    submit: async (v) => {
      // a refused source reads errors.invalid_source: "This database source cannot be used: <the server's reason>"
      const res = await post(`${kbPath(kb)}/sources`, { name: v.name, url: v.url, query: v.query,
        key_column: v.key_column, title_column: v.title_column ?? null, group_by: v.group_by ?? null });
      onSource(res);
    },
  });
}

/** The database sources: name, database, query, documents, last key, last sync; "Sync now" (admins) starts a job.
 * Hidden while there are none. `reload()` refreshes it in place. */
export function sourcesPanel(kb, { admin, onSynced }) {
  let generation = 0;
  const box = h("div", { "data-test": "db-sources" });
  const node = h("div", { class: "panel kb-sources", "data-test": "kb-sources", hidden: true },
    h("div", { class: "row panel-head" }, h("h2", { class: "grow-h" }, t("kb.db_sources"))),
    h("div", { class: "muted small panel-hint" }, t("kb.db_sources_hint")), box);
  async function sync(src, btn) {
    await busy(btn, async () => {
      const res = await post(`${kbPath(kb)}/sources/${encodeURIComponent(src.id)}/sync`, {});
      onSynced(res);
    });
  }
  function draw(rows) {
    node.hidden = !rows.length;
    mount(box, h("div", { class: "table-wrap" }, h("table", { class: "tbl" },
      h("thead", {}, h("tr", {}, h("th", {}, t("kb.name")), h("th", {}, t("kb.db_url")), h("th", {}, t("kb.db_query")),
        h("th", { class: "num nowrap" }, t("kb.documents")), h("th", { class: "nowrap" }, t("kb.db_cursor")), h("th", { class: "nowrap" }, t("kb.db_synced_at")),
        admin ? h("th", {}) : null)),
      h("tbody", {}, rows.map((s) => {
        const cfg = s.config || {};
        return h("tr", { "data-test": "db-source-row", "data-source": s.name, "data-id": s.id },
          h("td", {}, h("strong", {}, s.name), " ", badge(s.kind === "database" ? t("kb.db_kind_database") : s.kind)),
          h("td", { class: "mono small clip", title: cfg.url || "" }, cfg.url || "—"),
          h("td", { class: "mono small clip", title: cfg.query || "" }, cfg.query || "—"),
          h("td", { class: "num", "data-test": "db-source-documents" }, fmtNum(s.documents || 0)),
          h("td", { class: "mono small", "data-test": "db-source-cursor" }, s.cursor === null || s.cursor === undefined ? "—" : String(s.cursor)),
          h("td", { class: "small nowrap", "data-test": "db-source-synced" }, s.synced_at ? fmtTime(s.synced_at) : t("kb.db_never")),
          admin ? h("td", {}, h("button", { class: "small", "data-test": "sync-source", onclick: (e) => sync(s, e.currentTarget) }, t("kb.db_sync"))) : null);
      })))));
  }
  async function load() {
    const mine = ++generation;
    try {
      const page = await get(`${kbPath(kb)}/sources`);
      if (mine === generation) draw(page.data || []);
    } catch (e) {
      if (mine !== generation) return;
      node.hidden = false;
      mount(box, errorBox(e));
    }
  }
  load();
  return { node, reload: load };
}

/** Browser Back closes a dialog and stays on the page: opening it pushes a history entry (the same URL), whose
 * popstate is taken here before the router sees it; closing the dialog otherwise goes back over that entry.
 * Returns what the dialog's onClose calls. */
function closeOnBack(close) {
  let open = true;
  const onPop = (e) => {
    e.stopImmediatePropagation();
    window.removeEventListener("popstate", onPop, true);
    if (open) { open = false; close(); }
  };
  history.pushState({ dialog: true }, "", location.href);
  window.addEventListener("popstate", onPop, true);
  return () => { if (open) { open = false; history.back(); } };
}

/** The chunk viewer: a document's facts, then its chunks in reading order (section path, page, tokens, text). */
export function chunkViewer(kb, doc) {
  const list = h("div", { class: "chunk-list", "data-test": "chunk-list" }, spinner());
  const facts = h("dl", { class: "facts" },
    h("dt", {}, t("kb.source")), h("dd", { class: "mono" }, doc.source),
    h("dt", {}, t("kb.status")), h("dd", {}, docStatusBadge(doc.status)),
    h("dt", {}, t("kb.chunks")), h("dd", {}, fmtNum(doc.chunks)),
    h("dt", {}, t("kb.tokens")), h("dd", {}, fmtNum(doc.tokens)),
    h("dt", {}, t("kb.size")), h("dd", {}, fmtBytes(doc.size_bytes)),
    doc.media_type && [h("dt", {}, t("kb.media_type")), h("dd", { class: "mono" }, doc.media_type)],
    doc.indexed_at && [h("dt", {}, t("kb.indexed_at")), h("dd", {}, fmtTime(doc.indexed_at))],
    doc.metadata && Object.keys(doc.metadata).length ? [h("dt", {}, t("kb.metadata")), h("dd", { class: "mono" }, JSON.stringify(doc.metadata))] : null);
  let closed = () => {};
  const dialog = modal({
    title: doc.title || doc.source,
    body: h("div", { class: "chunk-viewer", "data-test": "chunk-viewer" }, facts,
      doc.error && h("div", { class: "alert", "data-test": "doc-error" }, doc.error), list),
    actions: [{ label: t("kb.close"), test: "close-chunks", onClick: (_, close) => close() }],
    onClose: () => closed(),
  });
  closed = closeOnBack(dialog.close);
  let rows = [];
  const limit = 200;
  async function load(btn) {
    const page = await get(`${kbPath(kb)}/documents/${encodeURIComponent(doc.id)}/chunks`, { limit, offset: rows.length });
    rows = rows.concat(page.data);
    const more = page.data.length === limit && h("button", { class: "small", "data-test": "more-chunks",
      onclick: (e) => busy(e.currentTarget, () => load(e.currentTarget)) }, t("common.load_more"));
    mount(list, rows.length ? rows.map(chunkView) : h("div", { class: "muted small empty-line" },
      doc.status === "indexed" ? t("kb.no_chunks") : t("kb.no_chunks_yet")), more || null);
    if (btn) btn.remove();
  }
  load().catch((e) => mount(list, errorBox(e)));
}

function chunkView(c) {
  const where = sectionPath(c.section, c.page);
  return h("div", { class: `chunk ${c.role === "parent" ? "parent" : ""}`, "data-test": "chunk", "data-ordinal": String(c.ordinal) },
    h("div", { class: "row chunk-head" },
      h("strong", { class: "mono" }, `#${c.ordinal}`),
      c.role === "parent" ? badge(t("kb.role_parent"), "accent")
        : c.parent_ordinal !== null && c.parent_ordinal !== undefined ? badge(t("kb.child_of", { n: c.parent_ordinal })) : null,
      where.length ? crumbs(where, "chunk-section") : h("span", { class: "muted small" }, t("kb.no_section")),
      h("span", { class: "grow" }),
      h("span", { class: "muted small nowrap", "data-test": "chunk-tokens" }, t("kb.n_tokens", { n: fmtNum(c.tokens) }))),
    h("div", { class: "chunk-text", "data-test": "chunk-text" }, c.text));
}

/** The document list: a status filter, rows with status, chunks, tokens and errors; retry failed; delete; a click
 * opens the chunk viewer. `reload()` refreshes in place (no spinner) keeping as many rows as are shown. */
export function documentsPanel(kb, { admin, onAdded, onChanged }) {
  let status = "";
  let rows = [];
  let hasMore = false;
  let generation = 0;
  let current = kb;
  const box = h("div", { "data-test": "kb-documents" }, spinner());
  const filter = h("select", { "data-test": "doc-status", "aria-label": t("kb.status"), onchange: (e) => { status = e.target.value; rows = []; load(true); } },
    h("option", { value: "" }, t("kb.all_statuses")), DOC_STATUSES.map((s) => h("option", { value: s }, t(`kb.status_${s}`))));
  const retryBtn = admin ? h("button", { class: "small", "data-test": "retry-failed", onclick: (e) => busy(e.currentTarget, async () => {
    const res = await post(`${kbPath(current)}/documents/retry`, {});
    onAdded(res);
  }) }, t("kb.retry_failed")) : null;
  const count = h("span", { class: "badge", "data-test": "doc-total" });

  async function load(loud = false) {
    const mine = ++generation;
    if (loud) mount(box, h("div", { class: "muted" }, spinner(), " ", t("common.loading")));
    try {
      const page = await get(`${kbPath(current)}/documents`, { status, limit: Math.min(1000, Math.max(rows.length, PAGE)), offset: 0 });
      if (mine !== generation) return;
      rows = page.data;
      hasMore = page.has_more;
      draw();
    } catch (e) {
      if (mine === generation) mount(box, errorBox(e));
    }
  }
  async function more() {
    const mine = ++generation;
    const page = await get(`${kbPath(current)}/documents`, { status, limit: PAGE, offset: rows.length });
    if (mine !== generation) return;
    rows = rows.concat(page.data);
    hasMore = page.has_more;
    draw();
  }
  async function remove(doc, btn) {
    if (!(await confirmDialog(t("kb.delete_doc_confirm", { name: doc.source }), { ok: t("common.delete"), danger: true }))) return;
    await busy(btn, async () => {
      await del(`${kbPath(current)}/documents/${encodeURIComponent(doc.id)}`);
      toast(t("kb.doc_deleted", { name: doc.source }));
      rows = rows.filter((r) => r.id !== doc.id);
      draw();
      onChanged();
    });
  }
  function draw() {
    if (!rows.length) {
      mount(box, h("div", { class: "empty" }, h("div", { class: "big" }, status ? t("kb.no_docs_status") : t("kb.no_docs")),
        h("div", {}, status ? "" : admin ? t("kb.no_docs_hint") : t("kb.no_docs_hint_member"))));
      return;
    }
    mount(box, h("div", { class: "table-wrap" }, h("table", { class: "tbl" },
      h("thead", {}, h("tr", {}, h("th", {}, t("kb.document")), h("th", {}, t("kb.status")), h("th", { class: "num" }, t("kb.chunks")),
        h("th", { class: "num" }, t("kb.tokens")), h("th", { class: "num" }, t("kb.size")), h("th", {}, t("kb.updated")), admin ? h("th", {}) : null)),
      h("tbody", {}, rows.map((d) => h("tr", { class: "click", "data-test": "doc-row", "data-doc": d.source, "data-status": d.status,
        onclick: () => chunkViewer(current, d) },
      h("td", {}, h("strong", { class: "doc-name" }, d.source), d.title && d.title !== d.source && h("div", { class: "muted small" }, d.title)),
      h("td", {}, docStatusBadge(d.status), d.error && h("div", { class: "doc-error small", "data-test": "doc-error", title: d.error }, d.error)),
      h("td", { class: "num" }, fmtNum(d.chunks)),
      h("td", { class: "num" }, fmtNum(d.tokens)),
      h("td", { class: "num nowrap" }, fmtBytes(d.size_bytes)),
      h("td", { class: "small nowrap" }, fmtTime(d.indexed_at || d.updated_at)),
      admin ? h("td", {}, h("button", { class: "small danger", "data-test": "delete-doc", onclick: (e) => { e.stopPropagation(); remove(d, e.currentTarget); } },
        t("common.delete"))) : null))))),
    h("div", { class: "pager" }, t("common.shown_n", { n: fmtNum(rows.length) }),
      hasMore ? h("button", { class: "small", "data-test": "load-more", onclick: (e) => busy(e.currentTarget, more) }, t("common.load_more")) : null));
  }
  function setKb(kb2) {
    current = kb2;
    const docs = kb2.documents || {};
    mount(count, fmtNum(docs.total || 0));
    if (retryBtn) retryBtn.hidden = !docs.failed;
  }
  setKb(kb);
  load(true);
  return {
    node: h("div", { class: "panel kb-docs", "data-test": "kb-documents-panel" },
      h("div", { class: "row panel-head" }, h("h2", { class: "grow-h" }, t("kb.documents"), " ", count), filter, retryBtn), box),
    reload: () => load(false),
    setKb,
  };
}
