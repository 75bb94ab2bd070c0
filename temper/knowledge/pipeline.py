"""The ingestion job: parse → chunk → embed in batches → index → publish, one knowledge base per job.

Two stages overlap: a preparing thread loads, parses and chunks documents (and stores their chunks under
a new, invisible generation) while the job's own thread embeds chunks in batches that may span documents
and hands them to the index sink (``index_ops``: the index itself, or the server that owns it). A document is
published (made visible, atomically) once its last chunk is indexed, and the chunks it replaced leave the
index then. A failure fails that document only, with its message; chunks of a generation that never went
live are removed from the database and the index, as are those of every unpublished document when the job
is cancelled (checked inside parsing and chunking too, ``limits.checkpoint``). Each document is bounded
(``limits``): its text, title and metadata are cut, with warnings on it. The job ends when the sink has
applied everything.

Restarts are safe: a job run again (after ``kill -9``, or a retry) skips the documents it already
published and rebuilds the others from scratch (``store.begin`` hands back the leftovers to delete).
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from temper.jobs.context import Cancelled
from temper.knowledge import config as kbconfig
from temper.knowledge import enrich, store
from temper.knowledge.chunking import chunk_document, embed_text
from temper.knowledge.index_ops import failure_message
from temper.knowledge.limits import WARNINGS, Limits, Stopped, bounded_metadata, cap_text, clip, guarded
from temper.knowledge.types import Chunk, IndexedChunk, ParseError
from temper.models.client import ModelClient
from temper.ops import tracing

if TYPE_CHECKING:
    from temper.jobs.context import JobContext
    from temper.knowledge.job_env import JobEnv

log = logging.getLogger("temper.knowledge")
EMBED_BATCH = 16  # chunks per embedding call: big enough to amortise the call, small enough for progress
PREPARED_AHEAD = 8  # documents parsed ahead of embedding
CANCEL_POLL_S = 0.25  # how often the job looks for a cancel while a document is being prepared
CHUNK_VALUE_CHARS = 200  # a string in a chunk's own metadata (a row key, a code language) is cut to this


@dataclass
class Prepared:
    """A parsed, chunked document whose chunks are stored (invisible) and wait to be embedded."""

    doc: dict[str, Any]
    generation: int = 0
    title: str = ""
    searchable: list[tuple[int, Chunk, str]] = field(default_factory=list)  # (chunk id, chunk, embed text)
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    unchanged: bool = False  # a fetched source whose content is what is already indexed


class IngestJob:
    def __init__(self, env: JobEnv, ctx: JobContext, kb_id: str, document_ids: list[str]) -> None:
        self.env = env
        self.ctx = ctx
        self.db = env.db
        self.kb = store.get_kb(self.db, kb_id)
        self.config = kbconfig.parse(self.kb["config"])
        self.sink = env.sink(kb_id)
        self.docs = store.pending(self.db, document_ids)
        self.limits = Limits.of(env.settings)
        self.stop = threading.Event()
        self.preparing: threading.Thread | None = None
        self.prepared: queue.Queue[Prepared | BaseException | None] = queue.Queue(PREPARED_AHEAD)
        # progress
        self.docs_done = self.docs_failed = self.docs_prepared = 0
        self.chunks_known = self.chunks_done = 0
        self.phase: str | None = None  # set for the last steps (publishing, done); else derived from the counts
        # chunks written to the index for generations not yet live: removed if their document fails
        self.unpublished: dict[str, list[int]] = {}
        self.handed: set[str] = set()  # documents handed to the sink to publish
        self.begun: dict[str, int] = {}  # document id → the generation this job began building

    def run(self) -> str:
        total = len(self.docs)
        with tracing.span(f"ingest {self.kb['name']}", "ingest", {
                "temper.kb.id": self.kb["id"], "temper.ingest.documents": total,
                "temper.job.id": self.ctx.job_id, "temper.job.attempt": self.ctx.attempt, "process.pid": os.getpid(),
                **ModelClient.caller_attributes()},
                workspace_id=self.kb["workspace_id"]) as root:
            self._report(force=True)
            try:
                self._embed_and_index(self._prepared())
                self.phase = "publishing"
                self._report(force=True)
                self.sink.settle(self.ctx)
            except Cancelled:
                self._stop_preparing()  # nothing is being built while what was built is removed
                self._abandon("ingestion cancelled")
                raise
            finally:
                self._stop_preparing()
            self._recount()
            self.phase = "done"
            with contextlib.suppress(Cancelled):  # all is published: a cancel asked now changes nothing
                self._report(force=True)
            root.set({"temper.ingest.indexed": self.docs_done, "temper.ingest.failed": self.docs_failed,
                      "temper.ingest.chunks": self.chunks_done})
        if total and self.docs_failed == total:
            raise RuntimeError(f"all {total} documents failed; see each document's error")
        return (f"{self.docs_done} of {total} documents indexed ({self.chunks_done} chunks)"
                + (f", {self.docs_failed} failed" if self.docs_failed else ""))

    # --- stage 1: load, parse, chunk, store (a thread of its own) -------------------------------------------

    def _prepared(self) -> Iterator[Prepared]:
        out = self.prepared
        ctx = contextvars.copy_context()  # the preparing thread's spans go under the job's trace

        def work() -> None:
            try:
                for doc in self.docs:
                    if self.stop.is_set():
                        break
                    out.put(self._prepare(doc))
                out.put(None)
            except BaseException as e:  # noqa: BLE001 - handed to the job thread, which raises it
                out.put(e)

        self.preparing = threading.Thread(target=ctx.run, args=(work,), name="temper-ingest-prepare", daemon=True)
        self.preparing.start()
        try:
            while (item := self._next()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._stop_preparing()

    def _next(self) -> Prepared | BaseException | None:
        """The next prepared document; a cancel is noticed while one is still being parsed or chunked."""
        while True:
            try:
                return self.prepared.get(timeout=CANCEL_POLL_S)
            except queue.Empty:
                if self.ctx.cancelled():
                    raise Cancelled() from None

    def _stop_preparing(self) -> None:
        """Stop the preparing thread (at its next checkpoint) and wait for it."""
        self.stop.set()
        while self.preparing is not None and self.preparing.is_alive():  # unblock a producer on a full queue
            try:
                self.prepared.get_nowait()
            except queue.Empty:
                self.preparing.join(0.05)

    def _prepare(self, doc: dict[str, Any]) -> Prepared:
        p = Prepared(doc)
        try:
            p.generation, stale = store.begin(self.db, doc["id"])
            self.begun[doc["id"]] = p.generation
            self._delete(stale)
            with guarded(self.limits, self.stop.is_set) as guard:
                with tracing.span("parse", "ingest", {"temper.document.id": doc["id"],
                                                      "temper.document.source": doc["source"]}) as s:
                    loaded = self.env.load(doc)
                    if loaded is None:
                        p.unchanged = True
                        return p
                    if loaded.parsed is not None:
                        parser_name, parts = "records", loaded.parsed
                    else:
                        parser = self.env.parsers.for_file(loaded.filename, loaded.media_type)
                        parser_name, parts = parser.name, parser.parse(loaded.data, loaded.filename, {})
                    text_cut = cap_text(parts, self.limits.text_chars) or guard.cut
                    title = parts[0].title or doc["title"] or doc["source"].rsplit("/", 1)[-1]
                    s.set({"temper.parser": parser_name, "temper.ingest.parts": len(parts),
                           "temper.ingest.blocks": sum(len(d.blocks) for d in parts),
                           "temper.ingest.bytes": len(loaded.data), "temper.ingest.text_cut": text_cut})
                with tracing.span("chunk", "ingest", {"temper.document.id": doc["id"],
                                                      "temper.chunking.strategy": self.config.chunking.strategy}
                                  ) as s:
                    chunks, texts = self._chunk(doc, parts)
                    s.set({"temper.ingest.chunks": len(texts),
                           "temper.ingest.tokens": sum(c.tokens for c in chunks)})
            if not texts:
                raise ParseError("no text found in this source"
                                 + (" (scanned pages need OCR)" if any(d.metadata.get("pages_without_text")
                                                                      for d in parts) else ""))
            ids = store.write_chunks(self.db, doc["id"], p.generation, chunks)
            p.searchable = [(i, c, texts[c.ordinal]) for i, c in zip(ids, chunks) if c.role == "chunk"]
            p.title = clip(title, self.limits.title_chars)
            p.metadata, warnings = bounded_metadata({**loaded.metadata, **{
                k: v for k, v in parts[0].metadata.items() if isinstance(v, (str, int, float, bool))}}, self.limits)
            warnings = ([f"text cut to its first {self.limits.text_chars:,} characters"] if text_cut else []) \
                + ([f"title cut to {self.limits.title_chars} characters"] if p.title != title else []) + warnings
            if warnings:
                p.metadata[WARNINGS] = warnings
                self.ctx.event(f"{doc['source']}: " + "; ".join(warnings), level="warning", document_id=doc["id"])
        except (Cancelled, Stopped):
            raise
        except Exception as e:  # noqa: BLE001 - this document fails; the others go on
            p.error = failure_message(e)
        return p

    def _chunk(self, doc: dict[str, Any], parts: list) -> tuple[list[Chunk], dict[int, str]]:
        """Chunks of every part of a source, numbered through; and the text to embed for each searchable one
        (by ordinal). A part (a sheet, a row) keeps its own title in the contextual header."""
        config = self.config.chunking.config()
        chunks: list[Chunk] = []
        texts: dict[int, str] = {}
        for part in parts:
            offset = len(chunks)
            part.title = clip(part.title, self.limits.title_chars) if part.title else None  # the chunker's headers
            title = clip(part.title or doc["title"] or doc["source"].rsplit("/", 1)[-1], self.limits.title_chars)
            # which part a chunk is from, where a source has several (sheets); a single part's suffix and title
            # are the document's own, stored once on it
            where = {"part": part.source_suffix, "part_title": title} if len(parts) > 1 and part.source_suffix else {}
            for c in chunk_document(part, config):
                c.ordinal += offset
                if c.parent is not None:
                    c.parent += offset
                c.metadata = {**{k: clip(v, CHUNK_VALUE_CHARS) if isinstance(v, str) else v
                                 for k, v in c.metadata.items()}, **where}
                chunks.append(c)
                if c.role == "chunk":
                    texts[c.ordinal] = embed_text(c, title)
        return chunks, texts

    # --- stage 2: embed in batches, index, publish ----------------------------------------------------------

    def _embed_and_index(self, prepared: Iterator[Prepared]) -> None:
        waiting: dict[str, tuple[Prepared, int]] = {}  # document id → (prepared, chunks not yet indexed)
        batch: list[tuple[Prepared, int, Chunk, str]] = []
        for p in prepared:
            self.docs_prepared += 1
            if p.error is not None:
                self._fail(p, p.error)
                continue
            if p.unchanged:
                self.docs_done += 1
                self._report()
                continue
            self.chunks_known += len(p.searchable)
            waiting[p.doc["id"]] = (p, len(p.searchable))
            for chunk_id, chunk, text in p.searchable:
                batch.append((p, chunk_id, chunk, text))
                if len(batch) >= EMBED_BATCH:
                    self._flush(batch, waiting)
                    batch = []
            self._report()
        if batch:
            self._flush(batch, waiting)

    def _flush(self, batch: list[tuple[Prepared, int, Chunk, str]], waiting: dict[str, tuple[Prepared, int]]) -> None:
        docs = {p.doc["id"]: p for p, *_ in batch if p.doc["id"] in waiting}
        batch = [b for b in batch if b[0].doc["id"] in docs]  # drop chunks of documents that failed meanwhile
        if not batch:
            return
        model = self.kb["embedding_model"]
        try:
            fields = self._enrich(batch)
            with tracing.span("embed", "ingest", {"temper.ingest.chunks": len(batch), tracing.REQUEST_MODEL: model}):
                vectors = self.env.models.embed(model, [text for *_, text in batch], "passage").vectors
            with tracing.span("index", "ingest", {"temper.ingest.chunks": len(batch)}):
                self.sink.upsert([IndexedChunk(id=chunk_id, kb_id=self.kb["id"], document_id=p.doc["id"],
                                                vector=vectors[i].tolist(), text=text, fields=fields.get(chunk_id, {}),
                                                payload=_payload(p, chunk))
                                   for i, (p, chunk_id, chunk, text) in enumerate(batch)])
        except Exception as e:  # noqa: BLE001 - the documents of this batch fail; the job goes on
            for p in docs.values():
                waiting.pop(p.doc["id"], None)
                self._fail(p, failure_message(e))
            return
        for p, chunk_id, _, _ in batch:
            self.unpublished.setdefault(p.doc["id"], []).append(chunk_id)
            prepared, left = waiting[p.doc["id"]]
            waiting[p.doc["id"]] = (prepared, left - 1)
        self.chunks_done += len(batch)
        for doc_id in list(docs):
            prepared, left = waiting[doc_id]
            if left == 0:
                del waiting[doc_id]
                self._publish(prepared)
        self._report()

    def _enrich(self, batch: list[tuple[Prepared, int, Chunk, str]]) -> dict[int, dict[str, str]]:
        """Summary, keywords and questions per chunk from the enrichment model, stored with the chunks."""
        model = self.config.enrichment.model
        if not model:
            return {}
        models = self.env.models
        out: dict[int, dict[str, str]] = {}
        with tracing.span("enrich", "ingest", {"temper.ingest.chunks": len(batch), tracing.REQUEST_MODEL: model}) as s:
            for _, chunk_id, chunk, _ in batch:
                reply = models.chat(model, enrich.messages(chunk.text), max_tokens=200, temperature=0).content
                out[chunk_id] = enrich.parse(reply)
            store.set_enrichment(self.db, out)
            s.set({"temper.enriched": sum(1 for f in out.values() if f)})
        return out

    def _publish(self, p: Prepared) -> None:
        self.sink.publish(p.doc["id"], p.generation, self.unpublished.pop(p.doc["id"], []), title=p.title,
                          metadata=p.metadata)
        self.handed.add(p.doc["id"])
        self.docs_done += 1

    def _recount(self) -> None:
        """The outcome as the database has it: a publish may still fail where the sink applies it."""
        found = store.statuses(self.db, [d["id"] for d in self.docs])
        self.docs_done = sum(1 for s in found.values() if s == "indexed")
        self.docs_failed = sum(1 for s in found.values() if s == "failed")

    def _fail(self, p: Prepared, error: str) -> None:
        log.warning("ingesting %s (%s) failed: %s", p.doc["source"], p.doc["id"], error)
        self._discard(p.doc["id"], error)
        self.docs_failed += 1

    def _abandon(self, error: str) -> None:
        """Cancelled: every document not yet published fails with ``error``, and the chunks built for it are
        removed from the database and the index (its live chunks stay)."""
        for doc in self.docs:
            if doc["id"] in self.handed:
                continue
            if doc["id"] in self.unpublished or store.pending(self.db, [doc["id"]]):
                self._discard(doc["id"], error)

    def _discard(self, doc_id: str, error: str) -> None:
        built = store.discard(self.db, doc_id, self.begun.get(doc_id), error)
        self._delete(sorted({*built, *self.unpublished.pop(doc_id, [])}))

    def _delete(self, ids: list[int]) -> None:
        self.sink.delete(ids)

    def _report(self, force: bool = False) -> None:
        total_docs = len(self.docs)
        finished = self.docs_done + self.docs_failed
        # chunks of documents not yet parsed are estimated from those parsed so far
        per_doc = self.chunks_known / self.docs_prepared if self.docs_prepared else 1
        estimate = self.chunks_known + round(per_doc * (total_docs - self.docs_prepared))
        phase = self.phase or ("parsing" if not self.chunks_done and self.docs_prepared < total_docs else "embedding")
        self.ctx.progress(self.chunks_done, max(estimate, self.chunks_done, 1 if total_docs else 0),
                          f"{finished}/{total_docs} documents · {self.chunks_done}/{estimate} chunks"
                          + (f" · {self.docs_failed} failed" if self.docs_failed else ""), force=force,
                          detail={"phase": phase, "documents_done": self.docs_done,
                                  "documents_failed": self.docs_failed, "documents_total": total_docs,
                                  "chunks_done": self.chunks_done, "chunks_total": max(estimate, self.chunks_done)})


def _payload(p: Prepared, chunk: Chunk) -> dict[str, Any]:
    """What filters can use: the document's user metadata, where it came from, and the chunk's page."""
    payload: dict[str, Any] = {k: v for k, v in (p.doc["metadata"] or {}).items() if k != WARNINGS and (
        isinstance(v, (str, int, float, bool))
        or (isinstance(v, list) and all(isinstance(x, (str, int, float)) for x in v)))}
    payload.update(source=p.doc["source"], source_type=p.doc["source_type"])
    if chunk.page is not None:
        payload["page"] = chunk.page
    return payload
