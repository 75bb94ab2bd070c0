"""The knowledge store: generations make a document's chunks visible all at once, never half."""
from __future__ import annotations

from pathlib import Path

import pytest

from temper.errors import InvalidRequest, NotFound
from temper.knowledge import store
from temper.knowledge.types import Chunk
from temper.store.db import migrate


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'kb.db'}"
    migrate(url)
    return url


def chunks(*texts: str) -> list[Chunk]:
    return [Chunk(text=t, ordinal=i, tokens=len(t)) for i, t in enumerate(texts)]


def test_a_document_is_visible_only_once_published_and_reingestion_swaps_atomically(db: str) -> None:
    kb = store.create_kb(db, "客服知识库", description="退货与保修")
    doc, needed = store.add_document(db, kb["id"], "policy.md", source_type="file", checksum="a" * 64,
                                     size_bytes=10)
    assert needed and doc["status"] == "queued"
    gen, stale = store.begin(db, doc["id"])
    first = store.write_chunks(db, doc["id"], gen, chunks("退货期限为三十天。", "保修一年。"))
    assert (gen, stale) == (1, []) and store.visible_chunks(db, first) == {}  # built, not yet published
    assert store.publish(db, doc["id"], gen, title="Policy") == []
    visible = store.visible_chunks(db, first)
    assert [c["text"] for c in visible.values()] == ["退货期限为三十天。", "保修一年。"]
    for chunk in store.live_chunks(db, kb["id"], doc["id"]):  # every chunk field, plus its document's
        assert visible[chunk["id"]] == chunk | {"document_title": "Policy", "source": "policy.md",
                                                "document_metadata": {}}

    # unchanged content: nothing to do; changed content: the old chunks answer until the new ones are live
    assert store.add_document(db, kb["id"], "policy.md", source_type="file", checksum="a" * 64,
                              size_bytes=10)[1] is False
    assert store.add_document(db, kb["id"], "policy.md", source_type="file", checksum="b" * 64,
                              size_bytes=12)[1] is True
    gen2, _ = store.begin(db, doc["id"])
    second = store.write_chunks(db, doc["id"], gen2, chunks("退货期限为七天。"))
    assert set(store.visible_chunks(db, first + second)) == set(first)
    assert sorted(store.publish(db, doc["id"], gen2)) == sorted(first)  # replaced: for the indexes to drop
    assert set(store.visible_chunks(db, first + second)) == set(second)
    got = store.get_document(db, kb["id"], doc["id"])
    assert (got["status"], got["chunks"], got["title"]) == ("indexed", 1, "Policy")


def test_an_abandoned_attempt_is_cleared_by_the_next(db: str) -> None:
    kb = store.create_kb(db, "docs")
    doc, _ = store.add_document(db, kb["id"], "a.txt", source_type="file", checksum="c" * 64, size_bytes=1)
    gen, _ = store.begin(db, doc["id"])
    half = store.write_chunks(db, doc["id"], gen, chunks("half", "built"))  # then the process dies
    gen2, stale = store.begin(db, doc["id"])
    assert gen2 == gen + 1 and sorted(stale) == sorted(half)
    assert store.visible_chunks(db, half) == {}


def test_names_counts_isolation_and_deletion(db: str) -> None:
    kb = store.create_kb(db, "Handbook")
    with pytest.raises(InvalidRequest) as e:
        store.create_kb(db, "Handbook")
    assert e.value.code == "knowledge_base_exists"
    with pytest.raises(InvalidRequest):
        store.create_kb(db, "../etc")
    other = store.create_kb(db, "Handbook", workspace_id="ws_other")  # names are per workspace
    with pytest.raises(NotFound):
        store.get_kb(db, other["id"], workspace_id="ws_default")
    ok, _ = store.add_document(db, kb["id"], "ok.txt", source_type="file", checksum="d" * 64, size_bytes=1)
    bad, _ = store.add_document(db, kb["id"], "bad.pdf", source_type="file", checksum="e" * 64, size_bytes=1)
    gen, _ = store.begin(db, ok["id"])
    ids = store.write_chunks(db, ok["id"], gen, chunks("one", "two", "three"))
    store.publish(db, ok["id"], gen)
    store.fail(db, bad["id"], "The PDF is encrypted.")
    got = store.get_kb(db, kb["id"])
    assert got["name"] == "Handbook" and got["chunks"] == 3
    assert got["documents"] == {"queued": 0, "processing": 0, "indexed": 1, "failed": 1, "total": 2}
    assert [d["error"] for d in store.list_documents(db, kb["id"], status="failed")] == ["The PDF is encrypted."]
    store.delete_document(db, kb["id"], ok["id"])
    assert store.get_kb(db, kb["id"], counted=False).keys() == got.keys() - {"documents", "chunks"}
    assert store.visible_chunks(db, ids) == {}
    store.delete_kb(db, kb["id"])
    with pytest.raises(NotFound):
        store.get_kb(db, kb["id"])
    assert store.list_kbs(db, "ws_other") == ([store.get_kb(db, other["id"])], 1)
    newer = [store.create_kb(db, f"Page {i}", workspace_id="ws_other")["id"] for i in range(3)]
    first, total = store.list_kbs(db, "ws_other", limit=2)
    rest, _ = store.list_kbs(db, "ws_other", limit=2, offset=2)
    assert total == 4 and [k["id"] for k in first + rest] == [*reversed(newer), other["id"]]  # newest first
    assert [k["id"] for k in store.list_kbs(db, "ws_other", name="Page 1")[0]] == [newer[1]]
