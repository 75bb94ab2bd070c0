"""Where an ingestion job's index changes go: straight into the index when its process may write it
(``DirectSink``), or into the ``kb_index_ops`` table for the process that owns the index (``OutboxSink``), whose
``Applier`` applies them in order.

Qdrant Edge keeps a knowledge base's index in a shard one process holds open; a second process writing the
same shard loses the first one's writes (measured, docs/performance.md). So a job running in a worker process
or on Ray parses, chunks and embeds (the heavy part) and records its changes; the server that serves queries
from the shard applies them. Publishing a document is one of those changes, so a document becomes visible only
after its chunks are in the index. With pgvector every process may write, and a job writes directly.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from sqlalchemy import delete, func, select

from temper.errors import NotFound, TemperError
from temper.knowledge import store
from temper.knowledge.types import IndexedChunk, KnowledgeIndex, ParseError
from temper.store.db import session
from temper.store.tables import KbIndexOp

if TYPE_CHECKING:
    from temper.jobs.context import JobContext

log = logging.getLogger("temper.knowledge")
APPLY_BATCH = 32  # changes applied per database round trip
SETTLE_POLL_S = 0.1
SETTLE_NOTICE_S = 30.0  # a job still waiting this long says so in its events


def failure_message(e: BaseException) -> str:
    """A document's error as a person reads it: our errors as they are, anything else with its type."""
    if isinstance(e, TemperError):
        return e.message
    if isinstance(e, ParseError):
        return str(e)
    return f"{e.__class__.__name__}: {e}"


class IndexSink(Protocol):
    def upsert(self, chunks: list[IndexedChunk]) -> None: ...

    def delete(self, ids: list[int]) -> None: ...

    def publish(self, doc_id: str, generation: int, chunk_ids: list[int], *, title: str | None,
                metadata: dict[str, Any]) -> None:
        """Make the generation visible once its chunks are indexed (or fail the document if it cannot be)."""

    def settle(self, ctx: JobContext) -> None:
        """Return once every change made through this sink has been applied."""


class DirectSink:
    """Changes applied at once to an index this process may write."""

    def __init__(self, db: str, index: Callable[[int | None], KnowledgeIndex | None],
                 published: Callable[[], None] = lambda: None) -> None:
        self.db = db
        self.index = index  # (dimensions, to create it) → the index; None: nothing was ever indexed
        self.published = published

    def upsert(self, chunks: list[IndexedChunk]) -> None:
        if chunks:
            index = self.index(len(chunks[0].vector or []))
            assert index is not None
            index.upsert(chunks)

    def delete(self, ids: list[int]) -> None:
        if ids and (index := self.index(None)) is not None:
            index.delete(ids)

    def publish(self, doc_id: str, generation: int, chunk_ids: list[int], *, title: str | None,
                metadata: dict[str, Any]) -> None:
        try:
            replaced = store.publish(self.db, doc_id, generation, title=title, metadata=metadata)
        except Exception as e:  # noqa: BLE001 - e.g. the document was deleted meanwhile
            store.fail(self.db, doc_id, failure_message(e))
            self.delete(chunk_ids)
            return
        self.delete(chunk_ids if replaced is None else replaced)  # superseded: this generation is dead
        self.published()

    def settle(self, ctx: JobContext) -> None:
        pass


class OutboxSink:
    """Changes recorded for the index's owner. A new attempt of a job first drops what an earlier attempt
    recorded and was not yet applied: that attempt's documents are still pending and are rebuilt."""

    def __init__(self, db: str, kb_id: str, job_id: str) -> None:
        self.db = db
        self.kb_id = kb_id
        self.job_id = job_id
        with session(db) as s:
            s.execute(delete(KbIndexOp).where(KbIndexOp.job_id == job_id))

    def _add(self, op: str, body: dict[str, Any], vectors: bytes | None = None) -> None:
        with session(self.db) as s:
            s.add(KbIndexOp(kb_id=self.kb_id, job_id=self.job_id, op=op, body=body, vectors=vectors))

    def upsert(self, chunks: list[IndexedChunk]) -> None:
        if chunks:
            vectors = np.asarray([c.vector for c in chunks], dtype=np.float32)
            self._add("upsert", {"dim": vectors.shape[1], "chunks": [
                {"id": c.id, "document_id": c.document_id, "text": c.text, "fields": c.fields, "payload": c.payload}
                for c in chunks]}, vectors.tobytes())

    def delete(self, ids: list[int]) -> None:
        if ids:
            self._add("delete", {"ids": ids})

    def publish(self, doc_id: str, generation: int, chunk_ids: list[int], *, title: str | None,
                metadata: dict[str, Any]) -> None:
        self._add("publish", {"document_id": doc_id, "generation": generation, "chunk_ids": chunk_ids,
                              "title": title, "metadata": metadata})

    def pending(self) -> int:
        with session(self.db) as s:
            return s.scalar(select(func.count()).select_from(KbIndexOp).where(KbIndexOp.job_id == self.job_id)) or 0

    def settle(self, ctx: JobContext) -> None:
        """Wait for the owner to apply this job's changes; a cancel stops the waiting, not the applying."""
        started, noticed = time.monotonic(), False
        while (left := self.pending()) and not ctx.cancelled():
            if not noticed and time.monotonic() - started > SETTLE_NOTICE_S:
                ctx.event(f"waiting for the server that owns the index to apply {left} changes", level="warning")
                noticed = True
            time.sleep(SETTLE_POLL_S)


class Applier:
    """Applies recorded changes in the process that owns the indexes (the server), oldest first, in a thread
    of its own. A change applied twice (a crash between applying and deleting it) does no harm: upserts and
    deletes are idempotent, and a generation published twice is the same generation."""

    def __init__(self, db: str, index: Callable[[str, int | None], KnowledgeIndex | None],
                 published: Callable[[str], None], *, poll_s: float = 0.1) -> None:
        self.db = db
        self.index = index
        self.published = published
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="temper-kb-index-ops", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                applied = self.apply()
            except Exception:  # noqa: BLE001 - e.g. the database is briefly unavailable: try again
                log.exception("applying index changes failed")
                applied = 0
            if not applied:
                self._stop.wait(self.poll_s)

    def apply(self, limit: int = APPLY_BATCH) -> int:
        """Apply up to ``limit`` recorded changes; how many there were."""
        with session(self.db) as s:
            ops = [(o.id, o.kb_id, o.op, o.body, o.vectors) for o in
                   s.scalars(select(KbIndexOp).order_by(KbIndexOp.id).limit(limit))]
        for _, kb_id, op, body, vectors in ops:
            try:
                self._apply(kb_id, op, body, vectors)
            except NotFound:
                pass  # the knowledge base was deleted meanwhile
            except Exception as e:  # noqa: BLE001 - its documents fail with the reason; later changes go on
                log.exception("applying a %s to the index of %s failed", op, kb_id)
                for doc_id in _documents(op, body):
                    store.fail(self.db, doc_id, failure_message(e))
        if ops:
            with session(self.db) as s:
                s.execute(delete(KbIndexOp).where(KbIndexOp.id.in_([o[0] for o in ops])))
        return len(ops)

    def _apply(self, kb_id: str, op: str, body: dict[str, Any], vectors: bytes | None) -> None:
        sink = DirectSink(self.db, lambda dim: self.index(kb_id, dim), lambda: self.published(kb_id))
        if op == "upsert":
            matrix = np.frombuffer(vectors or b"", dtype=np.float32).reshape(-1, body["dim"])
            sink.upsert([IndexedChunk(id=c["id"], kb_id=kb_id, document_id=c["document_id"], vector=matrix[i].tolist(),
                                      text=c["text"], fields=c["fields"], payload=c["payload"])
                         for i, c in enumerate(body["chunks"])])
        elif op == "delete":
            sink.delete(body["ids"])
        elif op == "publish":
            sink.publish(body["document_id"], body["generation"], body["chunk_ids"], title=body["title"],
                         metadata=body["metadata"])
        else:
            raise ValueError(f"unknown index change {op!r}")


def _documents(op: str, body: dict[str, Any]) -> set[str]:
    if op == "upsert":
        return {c["document_id"] for c in body["chunks"]}
    return {body["document_id"]} if op == "publish" else set()
