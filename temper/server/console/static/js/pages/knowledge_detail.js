// One knowledge base: its counts, its settings (admins change them, members read them), adding documents and
// database sources (admins), ingestion and sync progress (the latest jobs polled every second while they run), the
// database sources with "Sync now", the documents with their chunks, a retrieval test and Ask. Returns a cleanup
// that stops polling and any answer still streaming.
import { del, get, post } from "../api.js";
import { fmtNum, t } from "../i18n.js";
import { badge, busy, confirmDialog, emptyState, errorBox, h, mount, progress, spinner, toast } from "../ui.js";
import { STRATEGIES } from "./knowledge.js";
import { addPanel, documentsPanel, sourcesPanel } from "./knowledge_docs.js";
import { askPanel, retrievalPanel } from "./knowledge_search.js";
import { settingsPanel } from "./knowledge_settings.js";

const FINISHED = ["succeeded", "failed", "cancelled"];
const JOB_STATUSES = ["queued", "running", ...FINISHED];
const JOB_KIND = { "kb.ingest": "kb.job_ingest", "kb.sync": "kb.job_sync" };
const JOB_BADGE = { queued: "", running: "accent", succeeded: "ok", failed: "err", cancelled: "warn" };
const POLL_MS = 1000;

function stat(label, value, test, kind = "") {
  return h("div", { class: `stat ${kind}`, "data-test": test }, h("div", { class: "v" }, value), h("div", { class: "k" }, label));
}

function header(kb, admin, onDelete) {
  const docs = kb.documents || {};
  const strategy = ((kb.config || {}).chunking || {}).strategy;
  return [
    h("div", { class: "page-head" }, h("h1", { "data-test": "kb-title" }, kb.name),
      badge(kb.embedding_model, "accent"),
      STRATEGIES.includes(strategy) && badge(t(`kb.strategy_${strategy}`)),
      h("span", { class: "mono muted small" }, kb.id),
      h("div", { class: "actions" }, admin && h("button", { class: "danger", "data-test": "delete-kb", onclick: (e) => onDelete(e.currentTarget) },
        t("kb.delete")))),
    kb.description && h("p", { class: "muted" }, kb.description),
    h("div", { class: "stats compact", "data-test": "kb-stats" },
      stat(t("kb.documents"), fmtNum(docs.total || 0), "stat-documents"),
      stat(t("kb.status_indexed"), fmtNum(docs.indexed || 0), "stat-indexed"),
      stat(t("kb.pending"), fmtNum((docs.queued || 0) + (docs.processing || 0)), "stat-pending"),
      stat(t("kb.status_failed"), fmtNum(docs.failed || 0), "stat-failed", docs.failed ? "bad" : ""),
      stat(t("kb.searchable_chunks"), fmtNum(kb.chunks || 0), "stat-chunks"),
      indexStat(kb)),
  ];
}

/** The index's entries beside the searchable chunks: they differ while documents are being ingested (a new version's
 * chunks are indexed before it is published) or while the index catches up, and the card says which. */
function indexStat(kb) {
  const diff = (kb.indexed_chunks || 0) - (kb.chunks || 0);
  const el = stat(t("kb.index_entries"), fmtNum(kb.indexed_chunks || 0), "stat-indexed-chunks");
  if (diff) {
    el.append(h("div", { class: "muted small", "data-test": "index-diff" },
      diff > 0 ? t("kb.index_ahead", { n: fmtNum(diff) }) : t("kb.index_behind", { n: fmtNum(-diff) })));
  }
  return el;
}

const PHASES = ["parsing", "embedding", "publishing", "done"];

/** What a job is doing, worded here from its structured `progress` (the server's `message` is English). */
function jobProgressText(job) {
  const p = job.progress;
  if (!p) return job.status === "running" ? t("kb.progress_starting") : "";
  if (p.phase === "reading") {
    return t("kb.progress_reading", { read: fmtNum(p.documents_read), changed: fmtNum(p.documents_changed), source: p.source });
  }
  const counts = t("kb.progress_counts", { docs_done: fmtNum(p.documents_done), docs_total: fmtNum(p.documents_total),
    chunks_done: fmtNum(p.chunks_done), chunks_total: fmtNum(p.chunks_total) });
  return [PHASES.includes(p.phase) ? t(`kb.phase_${p.phase}`) : null, counts,
    p.documents_failed ? t("kb.progress_failed", { n: fmtNum(p.documents_failed) }) : null].filter(Boolean).join(" · ");
}

function jobView(job, admin, onCancel) {
  const pct = Number(job.percent || 0);
  const said = jobProgressText(job);
  const active = !FINISHED.includes(job.status);
  return h("div", { class: `job ${job.status}`, "data-test": "kb-job", "data-job": job.id, "data-status": job.status },
    h("div", { class: "row" },
      h("strong", {}, JOB_KIND[job.kind] ? t(JOB_KIND[job.kind]) : job.kind),
      badge(JOB_STATUSES.includes(job.status) ? t(`kb.job_${job.status}`) : job.status, JOB_BADGE[job.status] || ""),
      active && job.status === "running" ? spinner() : null,
      h("span", { class: "grow" }),
      h("span", { class: "mono small", "data-test": "job-percent" }, `${fmtNum(pct, 1)}%`),
      admin && active ? h("button", { class: "small ghost", "data-test": "cancel-job", onclick: (e) => onCancel(job, e.currentTarget) }, t("kb.cancel_job")) : null),
    progress(pct / 100, said),
    h("div", { class: "muted small mono job-message", "data-test": "job-message" }, said),
    job.error && h("div", { class: "alert", "data-test": "job-error" }, job.error));
}

export async function render(root, { me, params, navigate }) {
  const id = decodeURIComponent(params.id);
  const admin = me.role === "admin";
  const path = `/api/v1/knowledge-bases/${encodeURIComponent(id)}`;
  const back = h("div", { class: "page-head" }, h("a", { href: "/knowledge" }, "‹ " + t("nav.knowledge")));
  mount(root, back, spinner());
  let kb;
  try {
    kb = await get(path);
  } catch (e) {
    mount(root, back, e.status === 404 ? emptyState({ title: t("kb.not_found"), hint: t("kb.not_found_hint") }) : errorBox(e));
    return undefined;
  }

  let stopped = false;
  let timer = null;
  let lastRefresh = 0;
  const jobs = new Map();  // id → job: the ones running, and the ones this page saw finish
  const head = h("div", {});
  const jobsBox = h("div", { class: "panel jobs", "data-test": "kb-jobs" });
  const alive = () => !stopped && root.isConnected;

  async function deleteKb(btn) {
    if (!(await confirmDialog(t("kb.delete_confirm", { name: kb.name }), { ok: t("common.delete"), danger: true }))) return;
    await busy(btn, async () => {
      await del(path);
      toast(t("kb.deleted", { name: kb.name }));
      navigate("/knowledge");
    });
  }
  const drawHead = () => mount(head, header(kb, admin, deleteKb));

  async function cancelJob(job, btn) {
    await busy(btn, async () => {
      jobs.set(job.id, await post(`/api/v1/jobs/${encodeURIComponent(job.id)}/cancel`, {}));
      drawJobs();
    });
  }
  function drawJobs() {
    const shown = [...jobs.values()].sort((a, b) => String(b.created_at).localeCompare(String(a.created_at))).slice(0, 3);
    jobsBox.hidden = !shown.length;
    mount(jobsBox, h("h2", {}, t("kb.ingestion")), shown.map((j) => jobView(j, admin, cancelJob)));
  }
  const anyActive = () => [...jobs.values()].some((j) => !FINISHED.includes(j.status));
  function schedule() {
    if (!timer && alive() && anyActive()) timer = setTimeout(tick, POLL_MS);
  }
  /** The KB's counts and latest jobs (a job started elsewhere, e.g. by the CLI, is picked up), then the documents. */
  async function refresh() {
    lastRefresh = Date.now();
    try {
      const fresh = await get(path);
      if (!alive()) return;
      kb = fresh;
      for (const j of kb.jobs || []) {
        if (!FINISHED.includes(j.status) || jobs.has(j.id)) jobs.set(j.id, j);
      }
      drawHead();
      docs.setKb(kb);
      drawJobs();
      schedule();
    } catch { /* the next refresh tries again */ }
    docs.reload();
    sources.reload();
  }
  async function tick() {
    timer = null;
    if (!alive()) return;
    const finished = [];
    let moved = false;
    await Promise.all([...jobs.values()].filter((j) => !FINISHED.includes(j.status)).map(async (j) => {
      try {
        const now = await get(`/api/v1/jobs/${encodeURIComponent(j.id)}`);
        if (now.done !== j.done || now.status !== j.status || JSON.stringify(now.progress) !== JSON.stringify(j.progress)) moved = true;
        if (FINISHED.includes(now.status)) finished.push(now);
        jobs.set(j.id, now);
      } catch (e) {
        if (e.status === 404) jobs.delete(j.id);
      }
    }));
    if (!alive()) return;
    drawJobs();
    if (finished.length) {
      if (finished.some((j) => j.status === "failed")) toast(t("kb.job_failed_toast"), "err");
      else if (finished.some((j) => j.status === "succeeded")) toast(t("kb.ingestion_done"));
      await refresh();
    } else if (moved && Date.now() - lastRefresh > 2000) {
      refresh();  // documents turn processing → indexed while the job runs
    }
    schedule();
  }
  /** Show (and poll) the job an add, retry or sync started. */
  function follow(res, message) {
    toast(message);
    if (res.job) jobs.set(res.job.id, res.job);
    drawJobs();
    refresh();
  }
  function track(res) {
    const n = (res.documents || []).length;
    const skipped = (res.skipped || []).length;
    follow(res, skipped ? t("kb.added_skipped", { n: fmtNum(n), skipped: fmtNum(skipped) }) : t("kb.added", { n: fmtNum(n) }));
  }
  const syncing = (res) => follow(res, t("kb.db_syncing", { name: res.name }));

  for (const j of kb.jobs || []) if (!FINISHED.includes(j.status)) jobs.set(j.id, j);
  const docs = documentsPanel(kb, { admin, onAdded: track, onChanged: refresh });
  const sources = sourcesPanel(kb, { admin, onSynced: syncing });
  let settings = settingsPanel(kb, { admin, onSaved: () => refresh() });
  /** A setting saved elsewhere (the relevance floor, from a refusal): the settings form is drawn again from it. */
  function settingsSaved(saved) {
    kb = { ...kb, config: saved.config || kb.config };
    const fresh = settingsPanel(kb, { admin, onSaved: () => refresh() });
    settings.replaceWith(fresh);
    settings = fresh;
    refresh();
  }
  const ask = askPanel(kb, { admin, onSettingsSaved: settingsSaved });
  drawHead();
  drawJobs();
  mount(root, back, head, settings,
    h("div", { class: "kb-grid" }, admin ? addPanel(kb, { onAdded: track, onSource: syncing }) : null, jobsBox),
    sources.node,
    docs.node,
    h("div", { class: "kb-grid" }, retrievalPanel(kb), ask.node));
  schedule();
  return () => {
    stopped = true;
    clearTimeout(timer);
    ask.stop();
  };
}
