"""Grounded answers: retrieve → numbered sources → generate with citations ``[1]`` → map citations back.

Sources are one per section (the chunks of one section among the hits are given together, in reading order;
children of one parent share it; a text met twice is given once), numbered by relevance.

The answer is refused, in the question's language, instead of guessed, and says why (``refusal_reason``):
- ``no_candidates``: the search found nothing;
- ``below_relevance_floor``: before generation, no candidate clears the reranker's relevance floor
  (``Answer.min_relevance``; for the local reranker a number of standard deviations above the knowledge base's
  background, never a raw cosine: see retrieval.py);
- ``model_declined``: after generation, the model itself says the sources do not contain the answer (it is
  told to reply with the refusal sentence then).
A refusal carries the candidates considered, with their scores, the floor and the best relevance.
"""
from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from temper.knowledge.config import LOCAL_RERANKER, Answer, Retrieval
from temper.knowledge.lang import language
from temper.knowledge.retrieval import Hit, Retrieved, retrieve
from temper.knowledge.types import Filter
from temper.ops import tracing

if TYPE_CHECKING:
    from temper.knowledge.service import KnowledgeService

LOCAL_FLOOR = 2.75  # the local reranker's relevance (see retrieval.py), calibrated in docs/knowledge.md
REFUSALS = {"en": "I cannot answer this from the documents in this knowledge base.",
            "zh": "根据知识库中的文档，我无法回答这个问题。"}
SYSTEM = {
    "en": ("Answer the question using only the numbered sources below. After each statement, cite the sources "
           "that support it like [1] or [2][3]. If the sources do not contain the answer, reply exactly: {refusal}"),
    "zh": ("只根据下面编号的资料回答问题。每句话后面用 [1] 或 [2][3] 这样的格式标注依据的资料。"
           "如果资料中没有答案，请只回复：{refusal}"),
}
_CITATION = re.compile(r"\[(\d{1,3})\]")
_PUNCTUATION = re.compile(r"[\s。.!！,，:：]")


@dataclass
class Source:
    n: int
    hit: Hit  # the best-ranked hit of the source
    parts: list[Hit] = field(default_factory=list)  # its hits (chunks of one section); the parent's children

    @property
    def text(self) -> str:
        """What the model is given: the parent when there is one, else the section's chunks in reading order."""
        if self.hit.parent is not None:
            return str(self.hit.parent["text"])
        return "\n\n".join(h.chunk["text"] for h in sorted(self.parts, key=lambda h: h.chunk["ordinal"]))

    @property
    def relevance(self) -> float:
        return max(h.relevance for h in self.parts)

    def as_dict(self) -> dict[str, Any]:
        c = self.hit.chunk
        return {"n": self.n, "chunk_id": self.hit.id, "chunk_ids": [h.id for h in self.parts],
                "document_id": c["document_id"], "document_title": c["document_title"], "source": c["source"],
                "section": c["section"], "page": c["page"], "score": _rounded(self.hit.score),
                "relevance": _rounded(self.relevance), "text": self.text}


def _rounded(x: float) -> float | None:
    """JSON has no infinity: a hit without a stored vector has relevance -inf, shown as null."""
    return round(x, 6) if math.isfinite(x) else None


@dataclass
class Prepared:
    question: str
    lang: str
    retrieved: Retrieved
    sources: list[Source] = field(default_factory=list)
    refusal: str | None = None  # why it is refused before generation
    floor: float | None = None  # the relevance floor applied
    messages: list[dict[str, str]] = field(default_factory=list)


def floor(retrieval: Retrieval, settings: Answer) -> float | None:
    if settings.min_relevance is not None:
        return settings.min_relevance
    return LOCAL_FLOOR if retrieval.rerank and retrieval.rerank_model == LOCAL_RERANKER else None


def _group(h: Hit) -> tuple[Any, ...]:
    """Hits given to the model as one source: a parent's children; the chunks of one section of a document."""
    c = h.chunk
    if h.parent is not None:
        return c["document_id"], "parent", h.parent["ordinal"]
    if c["section"]:
        return c["document_id"], "section", tuple(c["section"]), c["page"]
    return c["document_id"], "chunk", h.id


def _sources(hits: list[Hit], budget: int) -> list[Source]:
    """Sources within the token budget, taken in rank order, one per section (or parent), a text met before
    (the same passage in two documents) left out; numbered by relevance, the most relevant first."""
    out: list[Source] = []
    by_group: dict[tuple[Any, ...], Source] = {}
    texts: set[str] = set()
    used = 0
    for h in hits:
        group = by_group.get(_group(h))
        if group is not None and h.parent is not None:
            group.parts.append(h)  # its parent is given already
            continue
        text, tokens = (h.parent["text"], h.parent["tokens"]) if h.parent is not None else (h.chunk["text"],
                                                                                            h.chunk["tokens"])
        key = " ".join(text.split())
        if key in texts:
            continue
        if out and used + tokens > budget:
            break
        used += tokens
        texts.add(key)
        if group is not None:
            group.parts.append(h)
        else:
            by_group[_group(h)] = source = Source(0, h, [h])
            out.append(source)
    out.sort(key=lambda s: -s.relevance)  # stable: equal relevance keeps the rank order
    for n, source in enumerate(out, 1):
        source.n = n
    return out


def _context(sources: list[Source]) -> str:
    blocks = []
    for s in sources:
        c = s.hit.chunk
        where = " › ".join([c["document_title"] or c["source"], *c["section"]])
        if c["page"] is not None:
            where += f" (p. {c['page']})"
        blocks.append(f"[{s.n}] {where}\n{s.text}")
    return "\n\n".join(blocks)


async def prepare(service: KnowledgeService, kb: dict[str, Any], question: str, retrieval: Retrieval,
                  settings: Answer, *, flt: Filter | None = None, history: list[dict[str, str]] | None = None
                  ) -> Prepared:
    service.models.model(settings.model, "chat")  # an unknown answer model fails before any work
    retrieved = await retrieve(service, kb, question, retrieval, flt=flt, history=history)
    minimum = floor(retrieval, settings)
    p = Prepared(question, language(question), retrieved, floor=minimum)
    if not retrieved.hits:
        p.refusal = "no_candidates"
    elif minimum is not None and max(h.relevance for h in retrieved.hits) < minimum:
        p.refusal = "below_relevance_floor"
    else:  # sources below the floor would only distract the model
        relevant = [h for h in retrieved.hits if minimum is None or h.relevance >= minimum]
        p.sources = _sources(relevant, settings.max_context_tokens)
        refusal = REFUSALS[p.lang]
        p.messages = [{"role": "system", "content": SYSTEM[p.lang].format(refusal=refusal)},
                      {"role": "user", "content": f"{_context(p.sources)}\n\n"
                       + ("问题：" if p.lang == "zh" else "Question: ") + retrieved.query}]
    return p


def finish(p: Prepared, text: str) -> dict[str, Any]:
    """The answer object: text, the sources it cites, whether (and why) it was refused. A refusal lists the
    candidates considered (the hits retrieved, most relevant first, each with ``above_floor``); ``uncited``
    marks an answer that cites none of its sources."""
    refusal = REFUSALS[p.lang]
    if p.refusal is not None:
        text = refusal
    elif _refuses(text, refusal):
        p.refusal = "model_declined"
        text = refusal
    cited = sorted({int(n) for n in _CITATION.findall(text)} & {s.n for s in p.sources})
    by_n = {s.n: s for s in p.sources}
    hits = p.retrieved.hits
    best = max((h.relevance for h in hits), default=None)
    return {"object": "knowledge_base.answer", "question": p.question, "query": p.retrieved.query,
            "answer": text.strip(), "refused": p.refusal is not None, "refusal_reason": p.refusal,
            "citations": [by_n[n].as_dict() for n in cited] if p.refusal is None else [],
            "uncited": p.refusal is None and not cited,
            "sources": [s.as_dict() for s in p.sources], "language": p.lang,
            "relevance_floor": p.floor, "best_relevance": None if best is None else _rounded(best),
            "candidates": [{**h.as_dict(), "relevance": _rounded(h.relevance),
                            "above_floor": p.floor is None or h.relevance >= p.floor}
                           for h in sorted(hits, key=lambda h: -h.relevance)] if p.refusal is not None else []}


def _squeezed(text: str) -> str:
    return _PUNCTUATION.sub("", text).lower()


def _refuses(text: str, refusal: str) -> bool:
    """The model gave the refusal sentence (or began with it) rather than an answer."""
    t, r = _squeezed(text), _squeezed(refusal)
    return bool(t) and (t.startswith(r[: max(8, len(r) // 2)]) or r in t and len(t) < 2 * len(r))


def _attributes(out: dict[str, Any]) -> dict[str, Any]:
    return {"temper.answer.refused": out["refused"], "temper.answer.citations": len(out["citations"]),
            **({"temper.answer.refusal_reason": out["refusal_reason"]} if out["refused"] else {})}


async def answer(service: KnowledgeService, kb: dict[str, Any], question: str, retrieval: Retrieval,
                 settings: Answer, *, flt: Filter | None = None, history: list[dict[str, str]] | None = None
                 ) -> dict[str, Any]:
    attrs = {"temper.kb.id": kb["id"], **service.models.caller_attributes()}
    with tracing.span(f"answer {kb['name']}", "chain", attrs, workspace_id=kb["workspace_id"], input=question) as s:
        p = await prepare(service, kb, question, retrieval, settings, flt=flt, history=history)
        text = "" if p.refusal else (await service.models.chat(
            settings.model, p.messages, max_tokens=settings.max_tokens, temperature=settings.temperature)).content
        out = finish(p, text)
        s.set(_attributes(out), output=out["answer"])
        out["trace_id"] = s.trace_hex if s is not tracing.NO_SPAN else None
    return out


async def answer_stream(service: KnowledgeService, kb: dict[str, Any], question: str, retrieval: Retrieval,
                        settings: Answer, *, flt: Filter | None = None, history: list[dict[str, str]] | None = None
                        ) -> AsyncIterator[dict[str, Any]]:
    """Events: ``sources`` (before generation), ``delta`` (text as generated), ``answer`` (the final
    object, with citations mapped and a refusal applied)."""
    s = tracing.start(f"answer {kb['name']}", "chain", {"temper.kb.id": kb["id"], "temper.stream": True,
                                                        **service.models.caller_attributes()},
                      workspace_id=kb["workspace_id"], input=question)
    try:
        p = await prepare(service, kb, question, retrieval, settings, flt=flt, history=history)
        yield {"type": "sources", "sources": [x.as_dict() for x in p.sources], "query": p.retrieved.query,
               "trace_id": s.trace_hex if s is not tracing.NO_SPAN else None}
        parts: list[str] = []
        if p.refusal is None:
            async for delta in service.models.chat_stream(settings.model, p.messages, max_tokens=settings.max_tokens,
                                                          temperature=settings.temperature):
                if delta.content:
                    parts.append(delta.content)
                    yield {"type": "delta", "text": delta.content}
        out = finish(p, "".join(parts))
        s.set(_attributes(out), output=out["answer"])
        yield {"type": "answer", **out}
    except BaseException as e:
        tracing.finish(s, e)
        raise
    tracing.finish(s)
