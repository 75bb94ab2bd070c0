"""Retrieval metrics against hand-computed values, edge cases included, and the relevance rule."""
from __future__ import annotations

import math

import pytest

from temper.knowledge.evaluation import Judged, aggregate, is_relevant, mrr, ndcg_at_k, recall_at_k

T, F = True, False
LOG3 = math.log2(3)  # the discount at rank 2


def test_recall_is_a_hit_rate() -> None:
    assert recall_at_k([T, F, F], 1, 1) == 1.0  # relevant at rank 1
    assert recall_at_k([F, T, F], 1, 1) == 0.0
    assert recall_at_k([F, T, F], 1, 2) == 1.0
    assert recall_at_k([F, T, T], 3, 3) == 1.0  # two of three relevant retrieved is still a hit
    assert recall_at_k([F, F, F], 2, 3) == 0.0  # no relevant retrieved
    assert recall_at_k([F, T], 1, 10) == 1.0  # k larger than the list
    assert recall_at_k([], 1, 5) == 0.0
    assert recall_at_k([F, F], 0, 5) == 0.0  # the evidence is in no chunk of the index


def test_mrr() -> None:
    assert mrr([T, F, T]) == 1.0
    assert mrr([F, F, T]) == pytest.approx(1 / 3)
    assert mrr([F, F, T], k=2) == 0.0
    assert mrr([F, T], k=10) == 0.5
    assert mrr([F, F]) == 0.0
    assert mrr([]) == 0.0


def test_ndcg() -> None:
    assert ndcg_at_k([T, F], 1, 10) == 1.0  # relevant at rank 1
    assert ndcg_at_k([F, T], 1, 2) == pytest.approx(1 / LOG3)  # 0.6309
    assert ndcg_at_k([F, T], 1, 1) == 0.0
    # DCG 1 + 1/log2(4) = 1.5 over the ideal 1 + 1/log2(3) = 1.6309
    assert ndcg_at_k([T, F, T], 2, 3) == pytest.approx(1.5 / (1 + 1 / LOG3))  # 0.9197
    # k larger than the list: the ideal ranking still has all 3 relevant chunks first
    assert ndcg_at_k([F, T], 3, 10) == pytest.approx((1 / LOG3) / (1 + 1 / LOG3 + 0.5))  # 0.2961
    # more relevant chunks than k: the ideal is capped at k
    assert ndcg_at_k([T, T], 5, 2) == pytest.approx(1.0)
    assert ndcg_at_k([F, F, F], 2, 3) == 0.0  # no relevant retrieved
    assert ndcg_at_k([F], 0, 10) == 0.0  # nothing relevant in the index


@pytest.mark.parametrize("call", [
    lambda: recall_at_k([T], 1, 0),
    lambda: ndcg_at_k([T], 1, 0),
    lambda: mrr([T], k=0),
    lambda: recall_at_k([T, T], 1, 5),  # more relevant retrieved than exist
    lambda: ndcg_at_k([T], 0, 5),
])
def test_invalid_arguments_are_refused(call) -> None:
    with pytest.raises(ValueError):
        call()


def test_aggregate_means_each_metric() -> None:
    judged = [Judged([T, F, F], 1), Judged([F, F, T, F], 2), Judged([F] * 10, 1)]
    result = aggregate(judged, ks=(1, 5), k=10)
    assert set(result) == {"recall@1", "recall@5", "mrr@10", "ndcg@10"}
    assert result["recall@1"] == pytest.approx(1 / 3)
    assert result["recall@5"] == pytest.approx(2 / 3)
    assert result["mrr@10"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    # the second question: DCG 1/log2(4) = 0.5 over the ideal 1 + 1/log2(3)
    assert result["ndcg@10"] == pytest.approx((1 + 0.5 / (1 + 1 / LOG3) + 0) / 3)


def test_aggregate_needs_questions() -> None:
    with pytest.raises(ValueError):
        aggregate([])


def test_relevance_needs_the_gold_file_and_the_evidence_modulo_whitespace() -> None:
    gold = [{"file": "ch03.en.html", "evidence": 'sets the system hostname at  boot time\nto the name'}]
    chunk = 'The system unit started by systemd-hostnamed.service sets the system\nhostname at boot time to the name'
    assert is_relevant("ch03.en.html", chunk, gold)
    assert not is_relevant("ch05.en.html", chunk, gold)  # the right text in another file
    assert not is_relevant("ch03.en.html", "The kernel maintains the system hostname.", gold)
    assert not is_relevant("ch03.en.html", chunk, [])  # an unanswerable question
    two = [{"file": "a.html", "evidence": "第一条证据"}, {"file": "b.html", "evidence": "第二条 证据"}]
    assert is_relevant("b.html", "前文。第二条 证据。后文", two)
    assert not is_relevant("b.html", "第二条证据", two)  # collapsing keeps one space; it does not remove it


def test_refusal_table_counts_each_side_of_each_floor() -> None:
    from temper.knowledge.evaluation import refusal_table

    rows = refusal_table([5.0, 3.0, 1.0, 4.0], [0.5, 2.2], floors=(2.0, 3.5))
    assert rows == [{"floor": 2.0, "refused_unanswerable": 0.5, "refused_answerable": 0.25},
                    {"floor": 3.5, "refused_unanswerable": 1.0, "refused_answerable": 0.5}]
    with pytest.raises(ValueError):
        refusal_table([], [1.0])
