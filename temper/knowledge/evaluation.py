"""Retrieval-quality metrics over labelled questions: recall@k (as hit rate), MRR and nDCG, binary relevance.

A question's retrieval is judged as the relevance of each retrieved chunk, best first, plus the number of
chunks in the whole index that are relevant (``n_relevant``). ``is_relevant`` is the rule: a chunk is
relevant when it comes from one of the question's gold files and contains that gold's evidence string,
compared after collapsing whitespace (chunkers re-flow text).

Definitions, with ranks counted from 1:

* **recall@k** is the hit rate: 1 when at least one relevant chunk is in the top k, else 0. The textbook
  |relevant ∩ top k| / |relevant| is not used because overlapping chunks repeat the same evidence, and
  retrieving the same passage twice would then count as better recall.
* **MRR@k**: 1 / the rank of the first relevant chunk in the top k; 0 when there is none.
* **nDCG@k**: DCG = Σ rel(r) / log2(r + 1) over the top k, divided by the DCG of the ideal ranking, which
  puts min(n_relevant, k) relevant chunks first.

A question whose evidence lies in no chunk of the index (``n_relevant == 0``, e.g. cut by a chunk
boundary) scores 0 on every metric: the configuration cannot show it to a reader. Questions without an
answer in the corpus belong to refusal evaluation and are left out by the caller.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import TypedDict


class Gold(TypedDict):
    file: str  # the corpus file's base name
    evidence: str  # an exact substring of the file's extracted text that answers the question


@dataclass(frozen=True)
class Judged:
    """One question's retrieval: each retrieved chunk's relevance, best first, and the index's relevant count."""

    relevance: Sequence[bool]
    n_relevant: int


def collapse_whitespace(text: str) -> str:
    return " ".join(text.split())


def is_relevant(file: str, text: str, gold: Iterable[Gold]) -> bool:
    """Whether a chunk of ``file`` (base name) with ``text`` holds the evidence of one of the gold entries."""
    flat = collapse_whitespace(text)
    return any(g["file"] == file and collapse_whitespace(g["evidence"]) in flat for g in gold)


def recall_at_k(ranked_relevance: Sequence[bool], n_relevant: int, k: int) -> float:
    """Hit rate: 1.0 when a relevant chunk is among the first ``k``, else 0.0."""
    _check(ranked_relevance, n_relevant, k)
    return 1.0 if any(ranked_relevance[:k]) else 0.0


def mrr(ranked_relevance: Sequence[bool], k: int | None = None) -> float:
    """Reciprocal rank of the first relevant chunk among the first ``k`` (all when ``k`` is None)."""
    if k is not None and k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    return next((1.0 / rank for rank, rel in enumerate(ranked_relevance[:k], 1) if rel), 0.0)


def ndcg_at_k(ranked_relevance: Sequence[bool], n_relevant: int, k: int) -> float:
    _check(ranked_relevance, n_relevant, k)
    if n_relevant == 0:
        return 0.0
    dcg = sum(_gain(rank) for rank, rel in enumerate(ranked_relevance[:k], 1) if rel)
    ideal = sum(_gain(rank) for rank in range(1, min(n_relevant, k) + 1))
    return dcg / ideal


def aggregate(judged: Sequence[Judged], ks: Sequence[int] = (1, 5, 10), k: int = 10) -> dict[str, float]:
    """The mean over the questions of recall@each of ``ks``, MRR@``k`` and nDCG@``k``, keyed by metric name."""
    if not judged:
        raise ValueError("no questions to aggregate")
    metrics = {f"recall@{cut}": fmean(recall_at_k(j.relevance, j.n_relevant, cut) for j in judged) for cut in ks}
    metrics[f"mrr@{k}"] = fmean(mrr(j.relevance, k) for j in judged)
    metrics[f"ndcg@{k}"] = fmean(ndcg_at_k(j.relevance, j.n_relevant, k) for j in judged)
    return metrics


def _gain(rank: int) -> float:
    return 1.0 / math.log2(rank + 1)


def _check(ranked_relevance: Sequence[bool], n_relevant: int, k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    if sum(ranked_relevance) > n_relevant:
        raise ValueError(f"{sum(ranked_relevance)} relevant chunks retrieved but only {n_relevant} exist")


# Retrieval configurations compared by ``temper kb eval``: overrides of a knowledge base's retrieval settings.
CONFIGS: dict[str, dict[str, object]] = {
    "keyword (BM25)": {"mode": "keyword", "rerank": False},
    "dense": {"mode": "dense", "rerank": False},
    "hybrid (RRF)": {"mode": "hybrid", "rerank": False},
    "hybrid + rerank": {"mode": "hybrid", "rerank": True},
}
FLOORS = (1.5, 2.0, 2.5, 2.75, 3.0, 3.5, 4.0)


def refusal_table(answerable: Sequence[float], unanswerable: Sequence[float],
                  floors: Sequence[float] = FLOORS) -> list[dict[str, float]]:
    """For each floor on the top result's score: the share of unanswerable questions refused (good) and of
    answerable ones refused (bad)."""
    if not answerable or not unanswerable:
        raise ValueError("need answerable and unanswerable questions")
    return [{"floor": f, "refused_unanswerable": fmean(s < f for s in unanswerable),
             "refused_answerable": fmean(s < f for s in answerable)} for f in floors]
