// Trying a knowledge base: a retrieval test (mode, rerank, top-k; each hit shows the score the list is ordered by,
// its relevance, and which retrievers found it at what rank) and Ask (a grounded answer streamed over SSE, with
// numbered sources, citations and refusals; a refusal shows why, the candidates considered and the relevance
// floor, which an admin can change there).
import { patch, post, stream } from "../api.js";
import { fmtNum, t } from "../i18n.js";
import { badge, busy, errorBox, field, h, mount, spinner, toast } from "../ui.js";
import { sectionPath } from "./knowledge_docs.js";

const MODES = ["hybrid", "dense", "keyword"];
const RETRIEVERS = ["keyword", "dense"];
const REFUSALS = ["no_candidates", "below_relevance_floor", "model_declined"];
const ORDERS = ["fused", "rerank"];  // what a retrieval's hits are ordered by (their `score`)
const kbPath = (kb) => `/api/v1/knowledge-bases/${encodeURIComponent(kb.id)}`;

/** "BM25 #1", "Dense #3", "BM25 (rewrite 1) #2": a retriever that found a hit and its rank there. */
export function retrieverLabel(name, rank) {
  const [base, n] = String(name).split(":");
  const label = RETRIEVERS.includes(base) ? t(`kb.retriever_${base}`) : base;
  return t("kb.retriever_rank", { name: n ? t("kb.retriever_rewrite", { name: label, n }) : label, rank });
}

function retrieverBadges(retrievers) {
  const found = Object.entries(retrievers || {}).sort((a, b) => a[1].rank - b[1].rank);
  return h("div", { class: "tags", "data-test": "hit-retrievers" }, found.map(([name, r]) => {
    const el = badge(retrieverLabel(name, r.rank), `retr retr-${name.split(":")[0]}`);
    el.dataset.retriever = name;
    el.dataset.rank = String(r.rank);
    el.title = t("kb.retriever_score", { score: fmtNum(r.score, 4) });
    return el;
  }));
}

/** Where a hit or source comes from: file › section › page. */
function where(x, test) {
  const parts = [x.source || x.document_title, ...sectionPath(x.section, x.page)];
  return h("div", { class: "crumbs small", "data-test": test, title: x.document_title || "" },
    parts.map((p, i) => [i ? h("span", { class: "sep" }, " › ") : null, h("span", { class: i ? "" : "mono" }, p)]));
}

/** A hit: first the score the list is ordered by, then the other one (the local reranker's relevance, which the
 * threshold and the answer's floor apply to, or the fused score under a rerank model's order). */
function hitView(hit, i, orderedBy) {
  const reranked = hit.rerank_score !== null && hit.rerank_score !== undefined;
  const secondary = orderedBy === "rerank" ? t("kb.fused_score", { score: fmtNum(hit.fused_score, 4) })
    : reranked ? t("kb.score", { score: fmtNum(hit.relevance, 2) }) : null;
  return h("div", { class: "hit", "data-test": "hit", "data-source": hit.source },
    h("div", { class: "row hit-head" },
      h("strong", { class: "mono" }, `#${i + 1}`),
      h("span", { class: "hit-score", "data-test": "hit-score", "data-score": String(hit.score), title: t(`kb.ordered_by_${orderedBy}`) },
        t(`kb.order_score_${orderedBy}`, { score: fmtNum(hit.score, 4) })),
      secondary && h("span", { class: "muted small", "data-test": "hit-secondary", title: orderedBy === "rerank" ? "" : t("kb.relevance_hint") }, secondary),
      h("span", { class: "grow" }),
      retrieverBadges(hit.retrievers)),
    where(hit, "hit-where"),
    h("div", { class: "chunk-text" }, hit.text),
    hit.parent && h("details", { class: "small" }, h("summary", {}, t("kb.parent_text")), h("div", { class: "chunk-text" }, hit.parent.text)));
}

/** The retrieval test panel. */
export function retrievalPanel(kb) {
  const cfg = (kb.config && kb.config.retrieval) || {};
  const query = h("input", { type: "search", required: true, placeholder: t("kb.query_ph"), "data-test": "retrieve-query", "aria-label": t("kb.query"), class: "wide" });
  const mode = h("select", { "data-test": "retrieve-mode", "aria-label": t("kb.mode") },
    MODES.map((m) => h("option", { value: m, selected: m === (cfg.mode || "hybrid") }, t(`kb.mode_${m}`))));
  const rerank = h("input", { type: "checkbox", checked: cfg.rerank !== false, "data-test": "retrieve-rerank" });
  const topK = h("input", { type: "number", min: "1", max: "100", step: "1", value: String(cfg.top_k || 5), class: "narrow", "data-test": "retrieve-topk", "aria-label": t("kb.top_k") });
  const out = h("div", { "data-test": "retrieve-results" });
  const submit = h("button", { class: "primary", type: "submit", "data-test": "retrieve-submit" }, t("kb.search"));
  const form = h("form", { onsubmit: (e) => {
    e.preventDefault();
    if (!form.reportValidity()) return;
    busy(submit, async () => {
      const res = await post(`${kbPath(kb)}/retrieve`, { query: query.value.trim(), top_k: Number(topK.value) || undefined,
        retrieval: { mode: mode.value, rerank: rerank.checked } });
      const hits = res.data || [];
      const orderedBy = ORDERS.includes(res.ordered_by) ? res.ordered_by : "fused";
      mount(out,
        h("div", { class: "muted small retrieve-meta", "data-test": "retrieve-meta" }, t("kb.n_hits", { n: fmtNum(hits.length) }),
          hits.length ? h("span", { "data-test": "ordered-by", "data-order": orderedBy }, ` · ${t(`kb.ordered_by_${orderedBy}`)}`) : "",
          res.reranker ? ` · ${t("kb.reranked_by", { model: res.reranker })}` : "",
          res.query && res.query !== query.value.trim() ? ` · ${t("kb.searched_as", { query: res.query })}` : ""),
        hits.length ? hits.map((hit, i) => hitView(hit, i, orderedBy)) : h("div", { class: "empty" }, h("div", { class: "big" }, t("kb.no_hits")), h("div", {}, t("kb.no_hits_hint"))));
    }, (err) => mount(out, errorBox(err)));
  } },
  h("div", { class: "row" }, query, submit),
  h("div", { class: "row search-options" },
    field(t("kb.mode"), mode),
    field(t("kb.top_k"), topK),
    h("label", { class: "check" }, rerank, t("kb.rerank"))));
  return h("div", { class: "panel", "data-test": "kb-retrieve" }, h("h2", {}, t("kb.retrieval_test")),
    h("div", { class: "muted small panel-hint" }, t("kb.retrieval_hint")), form, out);
}

/** Answer text with its [n] markers as clickable citations that point at the numbered sources. */
function answerText(text, sources, sourcesBox) {
  const known = new Set((sources || []).map((s) => s.n));
  return String(text).split(/(\[\d+\])/).map((part) => {
    const m = part.match(/^\[(\d+)\]$/);
    if (!m || !known.has(Number(m[1]))) return part;
    const n = Number(m[1]);
    return h("button", { type: "button", class: "cite", "data-test": "cite", "data-n": String(n), title: t("kb.show_source", { n }), onclick: () => {
      const el = sourcesBox.querySelector(`[data-n="${n}"]`);
      if (!el) return;
      el.scrollIntoView({ block: "nearest" });
      el.classList.remove("flash");
      void el.offsetWidth;  // restart the highlight
      el.classList.add("flash");
    } }, `[${n}]`);
  });
}

/** The sources given to the model: one per section, numbered by relevance (shown on each). */
function sourcesView(sources, cited) {
  const citedSet = new Set((cited || []).map((c) => c.n));
  if (!sources.length) return h("div", { class: "muted small" }, t("kb.no_sources"));
  return [h("h3", {}, t("kb.sources"), " ", badge(fmtNum(sources.length)), " ", h("span", { class: "muted small" }, t("kb.sources_order"))),
    h("ol", { class: "sources" }, sources.map((s) => h("li", { class: `source ${citedSet.has(s.n) ? "cited" : ""}`, "data-test": "source", "data-n": String(s.n) },
      h("div", { class: "row" }, h("strong", { class: "mono" }, `[${s.n}]`), where(s, "source-where"), h("span", { class: "grow" }),
        citedSet.has(s.n) ? badge(t("kb.cited"), "ok") : null,
        h("span", { class: "muted small", "data-test": "source-relevance", "data-relevance": String(s.relevance) }, t("kb.score", { score: fmtNum(s.relevance, 2) }))),
      h("details", {}, h("summary", { class: "small muted" }, t("kb.source_text")), h("div", { class: "chunk-text" }, s.text)))))];
}

/** Why an answer was refused, in words: the floor and the best relevance when none cleared it. */
function refusalReason(ev) {
  if (!REFUSALS.includes(ev.refusal_reason)) return ev.refusal_reason || "";
  return t(`kb.refusal_${ev.refusal_reason}`, { floor: fmtNum(ev.relevance_floor, 2), best: fmtNum(ev.best_relevance, 2) });
}

/** The candidates a refused question was checked against: where each is from, its relevance against the floor. */
function candidatesView(candidates) {
  if (!candidates.length) return null;
  return h("div", { class: "candidates", "data-test": "candidates" },
    h("h3", {}, t("kb.candidates_considered"), " ", badge(fmtNum(candidates.length))),
    h("ol", { class: "sources" }, candidates.map((c) => h("li", { class: "source", "data-test": "candidate", "data-above": String(!!c.above_floor) },
      h("div", { class: "row" }, where(c, "candidate-where"), h("span", { class: "grow" }),
        badge(c.above_floor ? t("kb.above_floor") : t("kb.below_floor"), c.above_floor ? "ok" : "warn"),
        h("span", { class: "muted small", "data-test": "candidate-relevance" }, t("kb.score", { score: fmtNum(c.relevance, 2) }))),
      h("details", {}, h("summary", { class: "small muted" }, t("kb.candidate_text")), h("div", { class: "chunk-text" }, c.text))))));
}

/** The relevance floor a refusal was judged against: admins change it here (saved as the knowledge base's
 * `answer.min_relevance`; empty: the reranker's default) and ask again; members read it. */
function floorControl(kb, ev, { admin, onSaved }) {
  const stored = ((kb.config || {}).answer || {}).min_relevance;
  const shown = ev.relevance_floor === null || ev.relevance_floor === undefined ? t("kb.floor_none") : fmtNum(ev.relevance_floor, 2);
  if (!admin) return h("div", { class: "muted small", "data-test": "floor" }, t("kb.floor_readonly", { floor: shown }));
  const input = h("input", { type: "number", step: "any", class: "narrow", "data-test": "floor-input", "aria-label": t("kb.min_relevance"),
    value: stored === null || stored === undefined ? "" : String(stored), placeholder: t("kb.floor_default") });
  const msg = h("div", {});
  const save = h("button", { class: "small", "data-test": "floor-save", onclick: (e) => {
    mount(msg);
    const raw = input.value.trim();
    const value = raw === "" ? null : Number(raw);
    if (value !== null && !Number.isFinite(value)) { input.reportValidity(); return; }
    busy(e.currentTarget, async () => {
      const saved = await patch(`${kbPath(kb)}`, { config: { answer: { min_relevance: value } } });
      toast(t("kb.floor_saved"));
      onSaved(saved);
    }, (err) => mount(msg, errorBox(err)));
  } }, t("kb.floor_save"));
  return h("div", { class: "floor-control", "data-test": "floor" },
    h("div", { class: "row" }, field(t("kb.floor_label", { floor: shown }), input, t("kb.floor_hint")), save), msg);
}

/** The Ask panel: the answer streams in; sources arrive first; a refusal is shown as such, with why, the candidates
 * considered and the floor (`admin`: editable; `onSettingsSaved(kb)` after a change, then the question is asked
 * again). Returns {node, stop}. */
export function askPanel(kb, { admin = false, onSettingsSaved = () => {} } = {}) {
  let ctrl = null;
  const question = h("textarea", { rows: "2", placeholder: t("kb.ask_ph"), "data-test": "ask-question", "aria-label": t("kb.ask"),
    onkeydown: (e) => { if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); ask(); } } });
  const askBtn = h("button", { class: "primary", "data-test": "ask-submit", onclick: () => ask() }, t("kb.ask"));
  const stopBtn = h("button", { "data-test": "ask-stop", hidden: true, onclick: () => ctrl && ctrl.abort() }, t("kb.stop"));
  const out = h("div", { class: "ask-out", "data-test": "ask-output" });
  const defaults = (kb.config && kb.config.answer) || {};
  const maxTokens = h("input", { type: "number", min: "1", max: "8192", step: "1", class: "narrow", "data-test": "ask-max-tokens",
    placeholder: String(defaults.max_tokens || 300), "aria-label": t("kb.max_tokens") });

  async function ask() {
    const q = question.value.trim();
    if (!q || ctrl) return;
    ctrl = new AbortController();
    askBtn.disabled = true;
    stopBtn.hidden = false;
    const status = h("div", { class: "muted small", "data-test": "answer-status" }, spinner(), " ", t("kb.searching"));
    const notice = h("div", {});
    const answer = h("div", { class: "answer-text", "data-test": "answer" });
    const sourcesBox = h("div", { "data-test": "sources" });
    const trace = h("span", {});
    mount(out, h("div", { class: "ask-q" }, q), status, notice, answer, sourcesBox, trace);
    let text = "";
    let sources = [];
    let finished = false;
    try {
      const limit = Number(maxTokens.value);
      const body = { question: q, stream: true, ...(limit > 0 ? { answer: { max_tokens: limit } } : {}) };
      for await (const ev of stream(`${kbPath(kb)}/answer`, body, ctrl.signal)) {
        if (ev.type === "sources") {
          sources = ev.sources || [];
          mount(sourcesBox, sourcesView(sources, []));
          mount(status, spinner(), " ", t("kb.writing"));
          if (ev.trace_id) mount(trace, h("a", { href: `/traces/${ev.trace_id}`, class: "small", "data-test": "answer-trace" }, t("kb.view_trace")));
        } else if (ev.type === "delta") {
          text += ev.text;
          answer.textContent = text;
        } else if (ev.type === "answer") {
          finished = true;
          sources = ev.sources || sources;
          mount(answer, answerText(ev.answer, ev.refused ? [] : sources, sourcesBox));
          answer.classList.toggle("refused", !!ev.refused);
          mount(sourcesBox, sourcesView(sources, ev.citations));
          if (ev.refused) {
            mount(notice, h("div", { class: "alert warn", role: "status", "data-test": "refusal", "data-reason": ev.refusal_reason || "" },
              h("strong", {}, t("kb.refused")), " ", h("span", { "data-test": "refusal-reason" }, refusalReason(ev))),
            candidatesView(ev.candidates || []),
            floorControl(kb, ev, { admin, onSaved: (saved) => {
              kb = { ...kb, config: saved.config || kb.config };
              onSettingsSaved(saved);
              question.value = q;
              ask();
            } }));
            mount(status, badge(t("kb.refused_badge"), "warn"));
          } else {
            mount(status, badge(t("kb.answered"), "ok"), " ", h("span", { class: "muted small" }, t("kb.n_citations", { n: fmtNum((ev.citations || []).length) })));
            if (ev.uncited) mount(notice, h("div", { class: "alert warn", role: "status", "data-test": "uncited" }, t("kb.uncited")));
          }
        }
      }
      if (!finished) mount(status, t("kb.incomplete"));
    } catch (e) {
      if (e.name === "AbortError") mount(status, badge(t("kb.stopped"), "warn"));
      else { mount(status); mount(notice, errorBox(e)); }
    } finally {
      ctrl = null;
      askBtn.disabled = false;
      stopBtn.hidden = true;
    }
  }
  return {
    node: h("div", { class: "panel", "data-test": "kb-ask" }, h("h2", {}, t("kb.ask_title")),
      h("div", { class: "muted small panel-hint" }, t("kb.ask_hint")),
      h("div", { class: "composer" }, question, askBtn, stopBtn),
      h("div", { class: "row search-options" }, field(t("kb.max_tokens"), maxTokens, t("kb.max_tokens_hint"))), out),
    stop: () => { if (ctrl) ctrl.abort(); },
  };
}
