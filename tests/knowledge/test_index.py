"""Conformance suite for ``KnowledgeIndex`` backends (every backend in ``BACKENDS`` must pass all of it),
plus unit tests of the keyword analyzer and the filter language."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from temper.knowledge.index.analyzer import terms
from temper.knowledge.index.filters import parse_filter
from temper.knowledge.index.pgvector import PgVectorIndex
from temper.knowledge.index.qdrant_edge import QdrantEdgeIndex
from temper.knowledge.types import IndexedChunk, KnowledgeIndex

# name → factory(directory, dim, request): a fresh index, or the one persisted there. A backend on a server takes
# the server from a session fixture through ``request`` (PostgreSQL: conftest.py) and derives the knowledge base's
# name from the directory, which is unique per test. Add a backend here.
BACKENDS: dict[str, Callable[[Path, int, pytest.FixtureRequest], KnowledgeIndex]] = {
    "qdrant_edge": lambda path, dim, request: QdrantEdgeIndex(path, dim),
    "pgvector": lambda path, dim, request: PgVectorIndex(request.getfixturevalue("postgres_dsn"), str(path), dim),
}
DIM = 32
OpenIndex = Callable[..., KnowledgeIndex]


@pytest.fixture(params=list(BACKENDS))
def open_index(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """``open_index(name="kb", dim=DIM)``: the index for knowledge base ``name``; calling it again after
    ``close()`` reopens the same one."""
    factory = BACKENDS[request.param]
    opened: list[KnowledgeIndex] = []

    def open_(name: str = "kb", dim: int = DIM) -> KnowledgeIndex:
        index = factory(tmp_path / name, dim, request)
        opened.append(index)
        return index

    yield open_
    for index in opened:
        index.close()


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def chunk(id: int, text: str = "", vector: Any = None, doc: str = "d1", fields: dict[str, str] | None = None,
          **payload: Any) -> IndexedChunk:
    return IndexedChunk(id=id, kb_id="kb_1", document_id=doc, vector=None if vector is None else list(vector),
                        text=text, fields=fields or {}, payload=payload)


def ids(hits: list[Any]) -> list[int]:
    return [h.id for h in hits]


# --- analyzer ---------------------------------------------------------------------------------------------

def test_terms_english_normalisation() -> None:
    assert terms("The user's Refunds, policies & BOXES; the classes!") == [
        "user", "refund", "policy", "box", "class"]


def test_terms_chinese_and_mixed() -> None:
    assert terms("退货政策是什么？") == ["退货", "政策"]
    t = terms("北京大学的ＧＰＴ４模型")
    assert {"北京", "大学", "北京大学", "gpt4", "模型"} <= set(t) and "的" not in t


# --- dense ------------------------------------------------------------------------------------------------

def test_dense_matches_brute_force(open_index: OpenIndex) -> None:
    rng = np.random.default_rng(7)
    vecs = unit(rng, 3000)
    index = open_index()
    for start in range(0, len(vecs), 1000):
        index.upsert([chunk(i, vector=vecs[i], doc=f"d{i % 50}", shard=i % 10)
                      for i in range(start, start + 1000)])
    assert index.count() == 3000
    queries = unit(rng, 20)
    recall, filtered_recall = [], []
    shard = np.arange(len(vecs)) % 10
    for q in queries:
        sims = vecs @ q
        truth = set(np.argsort(-sims)[:10].tolist())
        hits = index.dense(q.tolist(), 10)
        assert len(hits) == 10 and [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        recall.append(len(truth & set(ids(hits))) / 10)
        masked = np.where(shard == 3, sims, -np.inf)
        ftruth = set(np.argsort(-masked)[:10].tolist())
        fhits = index.dense(q.tolist(), 10, {"shard": 3})
        assert all(h % 10 == 3 for h in ids(fhits))
        filtered_recall.append(len(ftruth & set(ids(fhits))) / 10)
    assert np.mean(recall) >= 0.95 and np.mean(filtered_recall) >= 0.95
    best = index.dense(queries[0].tolist(), 1)[0]
    assert best.score == pytest.approx(float(np.max(vecs @ queries[0])), abs=1e-4)


def test_dense_rejects_wrong_dimension(open_index: OpenIndex) -> None:
    index = open_index()
    with pytest.raises(ValueError):
        index.upsert([chunk(1, vector=[1.0] * (DIM + 1))])
    with pytest.raises(ValueError):
        index.dense([1.0] * (DIM - 1), 3)


# --- keyword ----------------------------------------------------------------------------------------------

CORPUS = [
    (1, "本店支持七天无理由退货，退货时请保持商品完好，运费由买家承担。"),
    (2, "会员积分可以在结账时抵扣现金，积分有效期为一年。"),
    (3, "快递一般在三到五个工作日内送达，偏远地区可能延迟。"),
    (4, "发票可以在订单详情页申请开具电子发票。"),
    (5, "Our refund window is thirty days from delivery; refunds go back to the original card."),
    (6, "Shipping usually takes three to five business days, and tracking numbers are emailed."),
    (7, "Windows laptops and Mac computers are both supported by the desktop app."),
    (8, "Members earn points on every purchase and can redeem them at checkout."),
]


def keyword_index(open_index: OpenIndex) -> KnowledgeIndex:
    index = open_index()
    index.upsert([chunk(i, text) for i, text in CORPUS])
    return index


@pytest.mark.parametrize("query,expected", [
    ("退货政策是什么", 1), ("积分怎么抵扣", 2), ("快递几天送达", 3), ("怎么开电子发票", 4),
    ("refund window", 5), ("How long does shipping take?", 6), ("redeem points", 8), ("Refunds", 5),
])
def test_keyword_ranks_the_right_chunk_first(open_index: OpenIndex, query: str, expected: int) -> None:
    hits = keyword_index(open_index).keyword(query, 3)
    assert hits and hits[0].id == expected
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_keyword_without_terms_or_matches_is_empty(open_index: OpenIndex) -> None:
    index = keyword_index(open_index)
    assert index.keyword("的 了 the of", 5) == []
    assert index.keyword("zebra 长颈鹿", 5) == []


def test_keyword_field_boost_outranks_body(open_index: OpenIndex) -> None:
    index = open_index()
    index.upsert([
        chunk(1, "Warranty claims are handled by the store. Keep the receipt for warranty claims."),
        chunk(2, "Opening hours are nine to six on weekdays and ten to four on weekends.",
              fields={"questions": "When is the store open? What are the opening hours?"}),
        chunk(3, "Parcels are shipped from the central warehouse every afternoon."),
        chunk(4, "The store may change its opening policy in holidays."),
        chunk(5, "Receipts are printed at the till and e-mailed on request.",
              fields={"keywords": "receipt, invoice"}),
    ])
    assert ids(index.keyword("store open", 5))[0] == 2
    assert ids(index.keyword("invoice", 5)) == [5]


def test_keyword_filtered(open_index: OpenIndex) -> None:
    index = open_index()
    index.upsert([chunk(i, text, lang="zh" if i <= 4 else "en") for i, text in CORPUS])
    assert ids(index.keyword("退货 refund", 5, {"lang": "en"})) == [5]
    assert ids(index.keyword("退货 refund", 5, {"lang": "zh"})) == [1]


# --- filters ----------------------------------------------------------------------------------------------

def seeded(i: int) -> dict[str, Any]:
    return {"n": i, "score": i / 4, "lang": ["zh", "en", "fr"][i % 3], "tags": ["even" if i % 2 == 0 else "odd",
            "small" if i < 6 else "big"], "created": f"2024-0{1 + i % 9}-15T12:00:00Z", "day": f"2024-03-{10 + i}",
            "public": i % 4 != 0}


FILTER_CASES: list[tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]] = [
    ({"lang": "zh"}, lambda p: p["lang"] == "zh"),
    ({"n": 3}, lambda p: p["n"] == 3),
    ({"n": 3.0}, lambda p: p["n"] == 3),
    ({"score": 0.75}, lambda p: p["score"] == 0.75),
    ({"public": False}, lambda p: not p["public"]),
    ({"tags": "even"}, lambda p: "even" in p["tags"]),
    ({"document_id": "doc1"}, lambda p: p["document_id"] == "doc1"),
    ({"lang": {"in": ["zh", "fr"]}}, lambda p: p["lang"] in ("zh", "fr")),
    ({"n": {"in": [1, 4, 100]}}, lambda p: p["n"] in (1, 4)),
    ({"n": {"in": []}}, lambda p: False),
    ({"tags": {"in": ["big"]}}, lambda p: "big" in p["tags"]),
    ({"lang": {"ne": "en"}}, lambda p: p["lang"] != "en"),
    ({"n": {"ne": 0}}, lambda p: p["n"] != 0),
    ({"tags": {"ne": "odd"}}, lambda p: "odd" not in p["tags"]),
    ({"missing": {"ne": "x"}}, lambda p: True),
    ({"n": {"gte": 3, "lt": 7}}, lambda p: 3 <= p["n"] < 7),
    ({"n": {"gt": 3, "lte": 7}}, lambda p: 3 < p["n"] <= 7),
    ({"score": {"gt": 1.1}}, lambda p: p["score"] > 1.1),
    ({"score": {"lte": 0.5}}, lambda p: p["score"] <= 0.5),
    ({"created": {"gte": "2024-03-15T12:00:00Z"}}, lambda p: p["created"] >= "2024-03-15T12:00:00Z"),
    ({"created": {"gt": "2024-03-15T12:00:00+00:00", "lt": "2024-06-01"}},
     lambda p: "2024-03-15T12:00:00Z" < p["created"] < "2024-06-01"),
    ({"created": {"lt": "2024-02-15T20:00:00+08:00"}}, lambda p: p["created"] < "2024-02-15T12:00:00Z"),
    ({"day": {"gte": "2024-03-13", "lte": "2024-03-15"}}, lambda p: "2024-03-13" <= p["day"] <= "2024-03-15"),
    ({"day": "2024-03-12"}, lambda p: p["day"] == "2024-03-12"),
    ({"lang": "zh", "n": {"gt": 2}}, lambda p: p["lang"] == "zh" and p["n"] > 2),
    ({"tags": "odd", "public": True, "score": {"lt": 2}}, lambda p: "odd" in p["tags"] and p["public"]
     and p["score"] < 2),
    ({"n": {"gte": 2, "ne": 4}, "lang": {"in": ["en", "fr"]}}, lambda p: p["n"] >= 2 and p["n"] != 4
     and p["lang"] in ("en", "fr")),
    ({"lang": "de"}, lambda p: False),
]


def test_every_filter_operator_gives_the_exact_id_set(open_index: OpenIndex) -> None:
    rng = np.random.default_rng(3)
    vecs = unit(rng, 12)
    payloads = {i: seeded(i) for i in range(12)}
    index = open_index()
    index.upsert([chunk(i, "same words here", vecs[i], doc=f"doc{i % 3}", **payloads[i]) for i in range(12)])
    for i, p in payloads.items():
        p["document_id"] = f"doc{i % 3}"
    q = unit(rng, 1)[0].tolist()
    for flt, predicate in FILTER_CASES:
        expected = {i for i, p in payloads.items() if predicate(p)}
        assert set(ids(index.dense(q, 50, flt))) == expected, flt
        assert set(ids(index.keyword("words", 50, flt))) == expected, flt


@pytest.mark.parametrize("flt,message", [
    ({"n": {"between": [1, 2]}}, "'n'"),
    ({"n": {"gte": "yesterday"}}, "'n'"),
    ({"n": {"gte": 1, "lt": "2024-01-01"}}, "'n'"),
    ({"lang": ["zh", "en"]}, "'lang'"),
    ({"lang": {"in": "zh"}}, "'lang'"),
    ({"lang": None}, "'lang'"),
    ({"meta": {"a": 1}}, "'meta'"),
    ({"lang": {}}, "'lang'"),
    ({"n": {"in": [{"x": 1}]}}, "'n'"),
    ({"n": float("nan")}, "'n'"),
])
def test_invalid_filters_raise_value_error_naming_the_key(open_index: OpenIndex, flt: dict[str, Any],
                                                          message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_filter(flt)
    index = open_index()
    with pytest.raises(ValueError, match=message):
        index.dense([1.0] * DIM, 3, flt)
    with pytest.raises(ValueError, match=message):
        index.keyword("words", 3, flt)


# --- lifecycle --------------------------------------------------------------------------------------------

def test_delete_documents_removes_from_dense_keyword_and_count(open_index: OpenIndex) -> None:
    rng = np.random.default_rng(5)
    vecs = unit(rng, 9)
    index = open_index()
    index.upsert([chunk(i, f"refund policy part {i}", vecs[i], doc=f"doc{i % 3}") for i in range(9)])
    index.delete_documents(["doc1", "doc2", "never-indexed"])
    left = {0, 3, 6}
    assert index.count() == 3
    assert set(ids(index.dense(vecs[1].tolist(), 9))) == left
    assert set(ids(index.keyword("refund", 9))) == left
    index.delete_documents([])
    assert index.count() == 3


def test_delete_by_id_and_stored_vectors(open_index: OpenIndex) -> None:
    rng = np.random.default_rng(6)
    vecs = unit(rng, 6)
    index = open_index()
    index.upsert([chunk(i, f"warranty clause {i}", vecs[i]) for i in range(5)] + [chunk(5, "warranty only")])
    index.delete([1, 4, 99])
    assert index.count() == 4
    assert set(ids(index.keyword("warranty", 10))) == {0, 2, 3, 5}
    assert set(ids(index.dense(vecs[1].tolist(), 10))) == {0, 2, 3}
    got = index.vectors([0, 1, 3, 5, 77])
    assert set(got) == {0, 3}  # deleted, keyword-only and unknown ids have none
    np.testing.assert_allclose(got[3], vecs[3], atol=1e-5)
    index.delete([])
    assert index.vectors([]) == {} and index.count() == 4


def test_upsert_replaces_an_existing_id(open_index: OpenIndex) -> None:
    rng = np.random.default_rng(9)
    a, b, c = unit(rng, 3)
    index = open_index()
    index.upsert([chunk(1, "apples and pears", a, lang="en"), chunk(2, "bananas", c)])
    index.upsert([chunk(1, "oranges only", b, lang="fr")])
    index.upsert([chunk(1, "oranges only", b, lang="fr")])
    assert index.count() == 2
    assert index.keyword("apples", 5) == []
    assert ids(index.keyword("oranges", 5)) == [1]
    assert ids(index.dense(b.tolist(), 1)) == [1]
    assert ids(index.dense(a.tolist(), 5, {"lang": "en"})) == []
    assert ids(index.dense(a.tolist(), 5, {"lang": "fr"})) == [1]


def test_chunks_without_vectors_are_keyword_only(open_index: OpenIndex) -> None:
    rng = np.random.default_rng(2)
    index = open_index()
    index.upsert([chunk(1, "table of prices"), chunk(2, "prices of tables", unit(rng, 1)[0])])
    assert index.count() == 2
    assert ids(index.dense([1.0] * DIM, 5)) == [2]
    assert set(ids(index.keyword("prices", 5))) == {1, 2}


def test_results_survive_close_and_reopen(open_index: OpenIndex) -> None:
    rng = np.random.default_rng(11)
    vecs = unit(rng, 200)
    index = open_index()
    index.upsert([chunk(i, CORPUS[i % len(CORPUS)][1] + f" item{i}", vecs[i], doc=f"d{i % 7}", n=i)
                  for i in range(200)])
    q = vecs[17].tolist()
    before = (index.count(), index.dense(q, 10), index.keyword("退货 refund", 10),
              index.dense(q, 10, {"n": {"lt": 50}}))
    index.close()
    reopened = open_index()
    after = (reopened.count(), reopened.dense(q, 10), reopened.keyword("退货 refund", 10),
             reopened.dense(q, 10, {"n": {"lt": 50}}))
    assert after[0] == before[0] and [ids(x) for x in after[1:]] == [ids(x) for x in before[1:]]
    for x, y in zip(before[1:], after[1:]):
        assert [h.score for h in x] == pytest.approx([h.score for h in y])
    # the BM25 length statistics persisted too: a new chunk is weighted exactly as before the reopen
    reopened.upsert([chunk(999, "退货 refund", vecs[0], doc="d0")])
    assert ids(reopened.keyword("退货 refund", 1)) == [999]


def test_drop_removes_everything(open_index: OpenIndex) -> None:
    index = open_index("doomed")
    index.upsert([chunk(1, "bye")])
    index.drop()
    assert open_index("doomed").count() == 0


def test_indexes_used_from_threads(open_index: OpenIndex) -> None:
    rng = np.random.default_rng(13)
    kbs = [open_index(f"kb{n}") for n in range(2)]
    vecs = unit(rng, 1200)
    errors: list[BaseException] = []

    def guard(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - reported by the main thread
                errors.append(e)
        return run

    def write(kb: int) -> None:
        index = kbs[kb]
        for start in range(0, 600, 50):
            index.upsert([chunk(kb * 600 + i, f"topic{i % 5} text", vecs[kb * 600 + i], doc=f"d{i % 4}")
                          for i in range(start, start + 50)])
        index.delete_documents(["d3"])

    done = threading.Event()

    def read(kb: int) -> None:
        index = kbs[kb]
        while not done.is_set():
            for hit in index.dense(vecs[0].tolist(), 5) + index.keyword("topic1", 5):
                assert kb * 600 <= hit.id < (kb + 1) * 600
            index.count()

    writers = [threading.Thread(target=guard(lambda kb=kb: write(kb))) for kb in range(2)]
    readers = [threading.Thread(target=guard(lambda kb=kb: read(kb))) for kb in range(2)]
    for t in writers + readers:
        t.start()
    for t in writers:
        t.join()
    done.set()
    for t in readers:
        t.join()
    assert not errors, errors
    assert [index.count() for index in kbs] == [450, 450]
