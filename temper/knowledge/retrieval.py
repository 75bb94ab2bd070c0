"""Hybrid retrieval: keyword (BM25) + dense, fused by weighted reciprocal rank fusion, reranked, filtered.

    question ─(condense with history)─(rewrites: multi-query, HyDE)─┬─ keyword ─┐
                                                                    └─ dense ───┴─ fuse ─ visible ─ rerank ─ top k ─ parents

Every stage is a span under one ``retrieval`` span, with the chunk ids it returned; every hit says which
retrievers found it, at what rank and with what score.

The default reranker (``rerank_model="embedding"``) needs no model call, and it calibrates rather than reorders.
It gives each candidate a *relevance*: how far its stored vector's similarity to the query stands above the
query's similarity to unrelated text (``background.py``), in standard deviations — a raw cosine is useless as
a floor (e5 scores unrelated pairs 0.73–0.82), how much a chunk stands out for this very query is not — plus
``KEYWORD_EVIDENCE`` when BM25 also ranked it among its first ``KEYWORD_EVIDENCE_RANKS`` (shared rare terms
are evidence the embedding alone misses). The fused order is kept: on the Debian Reference, ordering by this
relevance lost to the fused order (recall@10 0.92 against 0.98, docs/knowledge.md), since it holds no
information the two retrievers lacked. Thresholds and the answer's refusal floor apply to the relevance.
A plaza rerank model (a cross-encoder) does reorder, by its own score.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from temper.errors import InvalidRequest
from temper.knowledge import store
from temper.knowledge.config import LOCAL_RERANKER, Retrieval
from temper.knowledge.index.filters import parse_filter
from temper.knowledge.lang import language
from temper.knowledge.types import Filter, IndexHit, KnowledgeIndex
from temper.ops import tracing

if TYPE_CHECKING:
    from temper.knowledge.service import KnowledgeService

MIN_BACKGROUND_STD = 0.02
KEYWORD_EVIDENCE = 1.0
KEYWORD_EVIDENCE_RANKS = 5  # a tiny or uniform knowledge base must not turn small differences into big scores


@dataclass
class Hit:
    id: int
    chunk: dict[str, Any]
    retrievers: dict[str, dict[str, float]] = field(default_factory=dict)  # name → {rank, score}
    fused: float = 0.0
    rerank: float | None = None  # the reranker's score: the local reranker's relevance, or a rerank model's
    reordered: bool = False  # ranked by ``rerank`` (a rerank model) rather than by ``fused``
    parent: dict[str, Any] | None = None

    @property
    def score(self) -> float:
        """What the results are ordered by."""
        return self.rerank if self.reordered and self.rerank is not None else self.fused

    @property
    def relevance(self) -> float:
        """What thresholds and refusal floors apply to: the reranker's score, else the fused one."""
        return self.rerank if self.rerank is not None else self.fused

    def as_dict(self) -> dict[str, Any]:
        c = self.chunk
        return {"chunk_id": self.id, "document_id": c["document_id"], "document_title": c["document_title"],
                "source": c["source"], "section": c["section"], "page": c["page"], "text": c["text"],
                "score": round(self.score, 6), "fused_score": round(self.fused, 6),
                "rerank_score": None if self.rerank is None else round(self.rerank, 6),
                "relevance": round(self.relevance, 6),
                "retrievers": self.retrievers, "metadata": c["metadata"],
                "parent": None if self.parent is None else {"ordinal": self.parent["ordinal"],
                                                              "text": self.parent["text"]}}


@dataclass
class Retrieved:
    query: str  # the question searched (after condensation)
    hits: list[Hit]
    rewrites: list[str] = field(default_factory=list)
    reranker: str | None = None
    query_cache_hit: bool = False

    @property
    def ordered_by(self) -> str:
        """What the hits are ordered by, their ``score``: ``fused`` (reciprocal rank fusion; the local reranker
        calibrates ``relevance`` without reordering) or ``rerank`` (a rerank model's score)."""
        return "rerank" if self.reranker not in (None, LOCAL_RERANKER) else "fused"


def fuse(lists: dict[str, list[IndexHit]], weights: dict[str, float], k: int) -> list[Hit]:
    """Weighted reciprocal rank fusion: Σ weight / (k + rank) over the retrievers that found a chunk."""
    hits: dict[int, Hit] = {}
    for name, found in lists.items():
        w = weights.get(name.split(":")[0], 1.0)
        for rank, h in enumerate(found, 1):
            hit = hits.get(h.id)
            if hit is None:
                hit = hits[h.id] = Hit(h.id, {})
            hit.retrievers[name] = {"rank": rank, "score": round(h.score, 6)}
            hit.fused += w / (k + rank)
    return sorted(hits.values(), key=lambda h: -h.fused)


async def retrieve(service: KnowledgeService, kb: dict[str, Any], question: str, settings: Retrieval, *,
                   flt: Filter | None = None, history: list[dict[str, str]] | None = None) -> Retrieved:
    if flt:
        try:
            parse_filter(flt)  # a bad filter is the caller's error, reported before any work
        except ValueError as e:
            raise InvalidRequest(f"Invalid filter: {e}", param="filter", code="invalid_filter") from None
    index = await asyncio.to_thread(service.index, kb["id"])  # database and index work stays off the loop
    model = kb["embedding_model"]
    with tracing.span(f"retrieve {kb['name']}", "retrieval", {
            "temper.kb.id": kb["id"], "temper.retrieval.mode": settings.mode, "temper.retrieval.top_k": settings.top_k,
            **service.models.caller_attributes()},
            workspace_id=kb["workspace_id"], input=question) as root:
        query = await _condense(service, question, history, settings) if history else question
        rewrites = await _rewrites(service, query, settings)
        lists: dict[str, list[IndexHit]] = {}
        vector: np.ndarray | None = None
        cache_hit = False
        for n, text in enumerate([query, *rewrites] if index is not None else []):  # None: nothing indexed yet
            suffix = f":{n}" if n else ""
            if settings.mode in ("hybrid", "keyword") and not text.startswith(_HYDE):
                with tracing.span("keyword", "retrieval", {"temper.retriever": "bm25"}, input=text) as s:
                    lists["keyword" + suffix] = found = await asyncio.to_thread(index.keyword, text, settings.candidates,
                                                                                   flt)
                    s.set({"temper.retrieval.hits": len(found)}, output=[h.id for h in found])
            if settings.mode in ("hybrid", "dense"):
                with tracing.span("dense", "retrieval", {"temper.retriever": "dense", tracing.REQUEST_MODEL: model},
                                  input=text) as s:
                    v, hit = await service.queries.vector(model, text.removeprefix(_HYDE))
                    if n == 0:
                        vector, cache_hit = v, hit
                    lists["dense" + suffix] = found = await asyncio.to_thread(index.dense, v.tolist(), settings.candidates,
                                                                                 flt)
                    s.set({"temper.retrieval.hits": len(found), "temper.query_cache_hit": hit},
                          output=[h.id for h in found])
        with tracing.span("fuse", "retrieval", {"temper.fusion": "rrf", "temper.rrf_k": settings.rrf_k}) as s:
            fused = fuse(lists, settings.weights, settings.rrf_k)
            visible = await asyncio.to_thread(store.visible_chunks, service.db,
                                              [h.id for h in fused[:max(settings.rerank_candidates, settings.top_k) * 2]])
            hits = [h for h in fused if h.id in visible]
            for h in hits:
                h.chunk = visible[h.id]
            s.set({"temper.retrieval.hits": len(hits)}, output=[h.id for h in hits])
        reranker = None
        if settings.rerank and hits and index is not None:
            reranker = settings.rerank_model
            hits = await _rerank(service, kb, index, query, vector, hits[:settings.rerank_candidates], settings)
        if settings.threshold is not None:
            hits = [h for h in hits if h.relevance >= settings.threshold]
        hits = hits[:settings.top_k]
        if settings.parents:
            await asyncio.to_thread(_attach_parents, service.db, hits)
        root.set({"temper.retrieval.hits": len(hits), "temper.reranker": reranker or "none"},
                 output=[h.id for h in hits])
    return Retrieved(query, hits, [r.removeprefix(_HYDE) for r in rewrites], reranker, cache_hit)


_HYDE = "\x00hyde:"  # marks the hypothetical answer among the rewrites: searched densely only


async def _rerank(service: KnowledgeService, kb: dict[str, Any], index: KnowledgeIndex, query: str,
                  vector: np.ndarray | None, hits: list[Hit], settings: Retrieval) -> list[Hit]:
    with tracing.span("rerank", "rerank", {"temper.reranker": settings.rerank_model,
                                           "temper.retrieval.candidates": len(hits)}) as s:
        if settings.rerank_model == LOCAL_RERANKER:
            if vector is None:
                vector, _ = await service.queries.vector(kb["embedding_model"], query)
            stored = await asyncio.to_thread(index.vectors, [h.id for h in hits])
            similarity = dict(zip(stored, np.asarray(list(stored.values()), dtype=np.float32) @ vector)) if stored else {}
            bg = (await service.background.vectors(service.models, service.db, kb, index, language(query))) @ vector
            mean, std = float(bg.mean()), max(float(bg.std()), MIN_BACKGROUND_STD)
            for h in hits:
                keyword = h.retrievers.get("keyword")
                evidence = KEYWORD_EVIDENCE if keyword and keyword["rank"] <= KEYWORD_EVIDENCE_RANKS else 0.0
                h.rerank = ((float(similarity[h.id]) - mean) / std + evidence if h.id in similarity
                            else float("-inf"))
        else:
            scores = await service.models.rerank(settings.rerank_model, query, [h.chunk["text"] for h in hits])
            for h, score in zip(hits, scores):
                h.rerank, h.reordered = score, True
            hits.sort(key=lambda h: -h.score)
        s.set({"temper.rerank.top": round(max(h.relevance for h in hits), 4) if hits else 0.0},
              output=[h.id for h in hits])
    return hits


def _attach_parents(db: str, hits: list[Hit]) -> None:
    by_doc: dict[str, list[Hit]] = {}
    for h in hits:
        if h.chunk.get("parent_ordinal") is not None:
            by_doc.setdefault(h.chunk["document_id"], []).append(h)
    for doc_id, doc_hits in by_doc.items():
        parents = store.parents(db, doc_id, [h.chunk["parent_ordinal"] for h in doc_hits])
        for h in doc_hits:
            h.parent = parents.get(h.chunk["parent_ordinal"])


CONDENSE_PROMPT = ("Rewrite the last question so that it can be understood without the conversation. Keep its "
                   "language. Reply with the question only.")
REWRITE_PROMPT = ("Write {n} different search queries for the question, one per line, in the question's "
                  "language. Reply with the queries only.")
HYDE_PROMPT = "Write a short passage that answers the question, in the question's language."


async def _condense(service: KnowledgeService, question: str, history: list[dict[str, str]],
                    settings: Retrieval) -> str:
    with tracing.span("condense", "chain", input=question) as s:
        turns = "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in history[-6:])
        text = (await service.models.chat(settings.rewrite_model, [
            {"role": "system", "content": CONDENSE_PROMPT},
            {"role": "user", "content": f"Conversation:\n{turns}\n\nLast question: {question}"}],
            max_tokens=96, temperature=0)).content
        condensed = text.strip().splitlines()[0].strip() if text.strip() else ""
        s.set(output=condensed or question)
    return condensed or question


async def _rewrites(service: KnowledgeService, query: str, settings: Retrieval) -> list[str]:
    out: list[str] = []
    if settings.multi_query:
        with tracing.span("rewrite", "chain", {"temper.rewrites": settings.multi_query}, input=query) as s:
            text = (await service.models.chat(settings.rewrite_model, [
                {"role": "system", "content": REWRITE_PROMPT.format(n=settings.multi_query)},
                {"role": "user", "content": query}], max_tokens=160, temperature=0)).content
            lines = [ln.strip(" -*0123456789.)、\t") for ln in text.splitlines()]
            out = [ln for ln in lines if ln and ln != query][:settings.multi_query]
            s.set(output=out)
    if settings.hyde:
        with tracing.span("hyde", "chain", input=query) as s:
            passage = (await service.models.chat(settings.rewrite_model, [
                {"role": "system", "content": HYDE_PROMPT}, {"role": "user", "content": query}],
                max_tokens=200, temperature=0)).content.strip()
            if passage:
                out.append(_HYDE + passage)
            s.set(output=passage)
    return out
