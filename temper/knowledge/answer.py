"""Grounded answers: retrieve → numbered sources → generate with citations ``[1]`` → map citations back.

The answer is refused, in the question's language, instead of guessed:
- before generation, when no source clears the reranker's relevance floor (``Answer.min_relevance``; for
  the local reranker a number of standard deviations above the knowledge base's background, never a raw
  cosine: see retrieval.py);
- after generation, when the model itself says the sources do not contain the answer (it is told to reply
  with the refusal sentence then).
"""
from __future__ import annotations

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
    hit: Hit
    text: str  # what the model was given: the parent when there is one, else the chunk

    def as_dict(self) -> dict[str, Any]:
        c = self.hit.chunk
        return {"n": self.n, "chunk_id": self.hit.id, "document_id": c["document_id"],
                "document_title": c["document_title"], "source": c["source"], "section": c["section"],
                "page": c["page"], "score": round(self.hit.score, 6), "relevance": round(self.hit.relevance, 6),
                "text": self.text}


@dataclass
class Prepared:
    question: str
    lang: str
    retrieved: Retrieved
    sources: list[Source] = field(default_factory=list)
    refusal: str | None = None  # why it is refused before generation
    messages: list[dict[str, str]] = field(default_factory=list)


def floor(retrieval: Retrieval, settings: Answer) -> float | None:
    if settings.min_relevance is not None:
        return settings.min_relevance
    return LOCAL_FLOOR if retrieval.rerank and retrieval.rerank_model == LOCAL_RERANKER else None


def _sources(hits: list[Hit], budget: int) -> list[Source]:
    """Numbered sources within the token budget; children of one parent share it (given once)."""
    out: list[Source] = []
    seen: set[tuple[str, int]] = set()
    used = 0
    for h in hits:
        if h.parent is not None:
            key = (h.chunk["document_id"], h.parent["ordinal"])
            if key in seen:
                continue
            seen.add(key)
            text, tokens = h.parent["text"], h.parent["tokens"]
        else:
            text, tokens = h.chunk["text"], h.chunk["tokens"]
        if out and used + tokens > budget:
            break
        used += tokens
        out.append(Source(len(out) + 1, h, text))
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
    p = Prepared(question, language(question), retrieved)
    minimum = floor(retrieval, settings)
    if not retrieved.hits:
        p.refusal = "no_sources"
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
    """The answer object: text, the sources it cites, whether (and why) it was refused."""
    refusal = REFUSALS[p.lang]
    if p.refusal is not None:
        text = refusal
    elif _refuses(text, refusal):
        p.refusal = "model_judged_insufficient"
        text = refusal
    cited = sorted({int(n) for n in _CITATION.findall(text)} & {s.n for s in p.sources})
    by_n = {s.n: s for s in p.sources}
    return {"object": "knowledge_base.answer", "question": p.question, "query": p.retrieved.query,
            "answer": text.strip(), "refused": p.refusal is not None, "refusal_reason": p.refusal,
            "citations": [by_n[n].as_dict() for n in cited] if p.refusal is None else [],
            "sources": [s.as_dict() for s in p.sources], "language": p.lang}


def _squeezed(text: str) -> str:
    return _PUNCTUATION.sub("", text).lower()


def _refuses(text: str, refusal: str) -> bool:
    """The model gave the refusal sentence (or began with it) rather than an answer."""
    t, r = _squeezed(text), _squeezed(refusal)
    return bool(t) and (t.startswith(r[: max(8, len(r) // 2)]) or r in t and len(t) < 2 * len(r))


async def answer(service: KnowledgeService, kb: dict[str, Any], question: str, retrieval: Retrieval,
                 settings: Answer, *, flt: Filter | None = None, history: list[dict[str, str]] | None = None
                 ) -> dict[str, Any]:
    attrs = {"temper.kb.id": kb["id"], **service.models.caller_attributes()}
    with tracing.span(f"answer {kb['name']}", "chain", attrs, workspace_id=kb["workspace_id"], input=question) as s:
        p = await prepare(service, kb, question, retrieval, settings, flt=flt, history=history)
        text = "" if p.refusal else (await service.models.chat(
            settings.model, p.messages, max_tokens=settings.max_tokens, temperature=settings.temperature)).content
        out = finish(p, text)
        s.set({"temper.answer.refused": out["refused"], "temper.answer.citations": len(out["citations"])},
              output=out["answer"])
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
        s.set({"temper.answer.refused": out["refused"], "temper.answer.citations": len(out["citations"])},
              output=out["answer"])
        yield {"type": "answer", **out}
    except BaseException as e:
        tracing.finish(s, e)
        raise
    tracing.finish(s)
