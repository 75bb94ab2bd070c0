"""Knowledge bases as a running server holds them: open indexes, stored sources, ingestion jobs, retrieval.

The API and the console call this; the database (``store``) stays the source of truth, each knowledge
base's index lives in ``<home>/knowledge/<kb id>/index`` (or PostgreSQL) and can be rebuilt from it. Ingestion
and syncs run as job kinds (``knowledge/jobs.py``) in other processes; this service owns the embedded indexes
and applies the index changes those jobs record (``index_ops.Applier``).
"""
from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import shutil
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from temper.errors import InvalidRequest, TemperError
from temper.jobs import store as jobs
from temper.knowledge import answer as answers
from temper.knowledge import config as kbconfig
from temper.knowledge import store
from temper.knowledge.background import Background
from temper.knowledge.blobs import BlobStore
from temper.knowledge.index_ops import Applier
from temper.knowledge.indexes import IndexFactory, index_factory, open_index
from temper.knowledge.ingest import ParserRegistry
from temper.knowledge.jobs import INGEST, SYNC
from temper.knowledge.limits import Limits, clip, metadata_size
from temper.knowledge.query_vectors import QueryVectors
from temper.knowledge.retrieval import Retrieved, retrieve
from temper.knowledge.sources.database import source_of
from temper.knowledge.types import Filter, KnowledgeIndex, ParseError
from temper.models.client import Caller, ModelClient
from temper.store.tables import DEFAULT_WORKSPACE

MAX_NAME_CHARS = 1000  # a file's name (its path in a folder upload), as a document's source


@dataclass
class Upload:
    """A file received on disk (under ``BlobStore.staging``), moved into the store when it is queued."""

    filename: str  # the name the document keeps (a relative path for a folder upload)
    path: Path
    size: int
    sha256: str
    media_type: str | None = None


class KnowledgeService:
    def __init__(self, db: str, home: Path, models: ModelClient, parsers: ParserRegistry, *,
                 index_factory: IndexFactory = index_factory("qdrant_edge", str), url_allow: list[str] | None = None,
                 wake: Callable[[], None] | None = None, owns_indexes: bool = True, limits: Limits = Limits(),
                 max_file_bytes: int = 200 * 1024 * 1024) -> None:
        """``owns_indexes``: this process holds the embedded indexes and applies the changes jobs record
        for them (False with a shared index backend, which jobs write themselves)."""
        self.db = db
        self.root = home / "knowledge"
        self.models = models
        self.queries = QueryVectors(models)
        self.parsers = parsers
        self.index_factory = index_factory
        self.url_allow = url_allow or []
        self.limits = limits
        self.max_file_bytes = max_file_bytes
        self.blobs = BlobStore(self.root)
        self.background = Background()
        self.wake = wake or (lambda: None)
        self._indexes: dict[str, KnowledgeIndex] = {}
        self._lock = threading.Lock()
        self.applier = Applier(db, self.index, self.background.forget) if owns_indexes else None

    def start(self) -> None:
        self.blobs.sweep()
        if self.applier is not None:
            self.applier.start()

    # --- indexes ------------------------------------------------------------------------------------------

    def index(self, kb_id: str, dim: int | None = None) -> KnowledgeIndex | None:
        """The open index of a knowledge base; created with ``dim`` dimensions when there is none yet
        (None without ``dim``: nothing was ever indexed). The dimensions live in the database, so every
        replica opens the same index."""
        with self._lock:
            index = self._indexes.get(kb_id)
            if index is None:
                index = open_index(self.db, self.root, self.index_factory, kb_id, dim)
                if index is not None:
                    self._indexes[kb_id] = index
            return index

    def close(self) -> None:
        if self.applier is not None:
            self.applier.stop()
        with self._lock:
            for index in self._indexes.values():
                index.close()
            self._indexes.clear()

    # --- knowledge bases ----------------------------------------------------------------------------------

    def create(self, name: str, *, description: str = "", embedding_model: str = store.DEFAULT_EMBEDDING_MODEL,
               config: dict[str, Any] | None = None, workspace_id: str = DEFAULT_WORKSPACE) -> dict[str, Any]:
        entry = self.models.model(embedding_model, "embedding")
        cfg = kbconfig.parse(config)
        return store.create_kb(self.db, name, description=description, embedding_model=entry.id,
                               config=cfg.model_dump(), workspace_id=workspace_id)

    def update_config(self, kb_id: str, config: dict[str, Any], workspace_id: str | None = None) -> dict[str, Any]:
        """Change settings field by field (the fields of a section not given are kept); chunking applies to
        documents ingested from now."""
        kb = store.get_kb(self.db, kb_id, workspace_id, counted=False)
        stored = kb["config"]
        merged = kbconfig.parse({**stored, **{section: {**stored.get(section, {}), **fields}
                                              if isinstance(fields, dict) else fields
                                              for section, fields in config.items()}})
        return store.set_config(self.db, kb_id, merged.model_dump())

    def delete(self, kb_id: str, workspace_id: str | None = None) -> None:
        store.delete_kb(self.db, kb_id, workspace_id)
        with self._lock:
            index = self._indexes.pop(kb_id, None)
        if index is not None:
            index.drop()
        shutil.rmtree(self.root / kb_id, ignore_errors=True)
        self.background.forget(kb_id)

    # --- documents ----------------------------------------------------------------------------------------

    def _ingest(self, kb: dict[str, Any], doc_ids: list[str], caller: Caller | None) -> dict[str, Any] | None:
        if not doc_ids:
            return None
        job = jobs.submit(self.db, INGEST, {"kb_id": kb["id"], "document_ids": doc_ids,
                                                       "key_id": caller.key_id if caller else None},
                          workspace_id=kb["workspace_id"], resource_id=kb["id"], unit="chunks")
        self.wake()
        return job

    def add_files(self, kb_id: str, uploads: list[Upload], *, metadata: dict[str, Any] | None = None,
                  workspace_id: str | None = None, caller: Caller | None = None) -> dict[str, Any]:
        """Store the sources (moved from where they were received) and queue the new or changed ones;
        unchanged ones (same checksum) are skipped, and their received files left to the caller to remove."""
        kb = store.get_kb(self.db, kb_id, workspace_id)
        self._check_metadata(metadata)
        for u in uploads:
            if not u.filename.strip():
                raise InvalidRequest("Every file needs a name.", param="files", code="missing_file_name")
            if len(u.filename) > MAX_NAME_CHARS:
                raise InvalidRequest(f"A file name has at most {MAX_NAME_CHARS} characters.", param="files",
                                     code="file_name_too_long", params={"max": MAX_NAME_CHARS})
            if u.size > self.max_file_bytes:
                raise self._too_large(u.filename)
            try:
                self.parsers.for_file(u.filename, u.media_type)  # an unsupported type is refused before anything
            except ParseError as e:
                raise InvalidRequest(str(e), param="files", code="unsupported_file_type",
                                     params={"name": u.filename}) from None
        queued, skipped = [], []
        for u in uploads:
            media_type = u.media_type or mimetypes.guess_type(u.filename)[0]
            doc, needed = store.add_document(
                self.db, kb_id, u.filename, source_type="file", checksum=u.sha256, size_bytes=u.size,
                title=clip(Path(u.filename).stem, self.limits.title_chars), media_type=media_type, metadata=metadata)
            if needed:
                self.blobs.adopt(kb_id, doc["id"], u.path)
                queued.append(doc)
            else:
                skipped.append(doc)
        return self._added(kb, queued, skipped, caller)

    def add_text(self, kb_id: str, title: str, text: str, *, metadata: dict[str, Any] | None = None,
                 workspace_id: str | None = None, caller: Caller | None = None) -> dict[str, Any]:
        """A pasted text (Markdown) as a document named after its title."""
        if not title.strip() or not text.strip():
            raise InvalidRequest("A text document needs a title and some text.", param="text",
                                 code="empty_text_document")
        name = title.strip() if title.strip().lower().endswith((".md", ".txt")) else f"{title.strip()}.md"
        data = text.encode()
        if len(data) > self.max_file_bytes:
            raise self._too_large(name)
        path = self.blobs.stage(data)
        try:
            return self.add_files(kb_id, [Upload(name, path, len(data), hashlib.sha256(data).hexdigest(),
                                                 "text/markdown")], metadata=metadata, workspace_id=workspace_id,
                                  caller=caller)
        finally:
            path.unlink(missing_ok=True)

    def _too_large(self, name: str) -> TemperError:
        return TemperError(f"{name} is larger than {self.max_file_bytes >> 20:,} MiB, the most a file may be "
                           "(TEMPER_MAX_FILE_MB).", param="files", status=413, code="file_too_large",
                           params={"name": name, "max_mb": self.max_file_bytes >> 20})

    def _check_metadata(self, metadata: dict[str, Any] | None) -> None:
        """Metadata given with documents is copied to each of their chunks in the index (for filters): bounded."""
        if metadata and metadata_size(metadata) > self.limits.metadata_bytes:
            raise InvalidRequest(f"'metadata' is larger than {self.limits.metadata_bytes // 1024} KiB, the most a "
                                 "document may carry (TEMPER_KB_MAX_METADATA_KB).", param="metadata",
                                 code="metadata_too_large", params={"max_kib": self.limits.metadata_bytes // 1024})

    def add_urls(self, kb_id: str, urls: list[str], *, metadata: dict[str, Any] | None = None,
                 workspace_id: str | None = None, caller: Caller | None = None) -> dict[str, Any]:
        """Web pages (or files) by URL, fetched by the ingestion job within the allow-list and limits. A URL's
        credentials are kept for fetching but never shown or indexed (``store.shown_source``)."""
        from temper.knowledge.sources import SourceError
        from temper.knowledge.sources.urls import strip_credentials
        from temper.knowledge.sources.web import check_allowed

        kb = store.get_kb(self.db, kb_id, workspace_id)
        self._check_metadata(metadata)
        for url in urls:
            try:
                check_allowed(url, self.url_policy())
            except SourceError as e:
                raise InvalidRequest(str(e), param="urls", code="url_not_allowed", params={"reason": str(e)}) from None
        queued = [store.add_document(self.db, kb_id, url, source_type="url", checksum=None, size_bytes=0,
                                     title=clip(strip_credentials(url), self.limits.title_chars), metadata=metadata)[0]
                  for url in urls]
        return self._added(kb, queued, [], caller)

    def _added(self, kb: dict[str, Any], queued: list[dict[str, Any]], skipped: list[dict[str, Any]],
               caller: Caller | None) -> dict[str, Any]:
        job = self._ingest(kb, [d["id"] for d in queued], caller)
        return {"object": "knowledge_base.ingestion", "job": job, "documents": queued, "skipped": skipped}

    def retry(self, kb_id: str, doc_ids: list[str] | None = None, workspace_id: str | None = None,
              caller: Caller | None = None) -> dict[str, Any]:
        """Queue failed documents (or the given ones) again."""
        kb = store.get_kb(self.db, kb_id, workspace_id)
        ids = store.requeue(self.db, kb_id, doc_ids, workspace_id=workspace_id)
        return {"object": "knowledge_base.ingestion", "job": self._ingest(kb, ids, caller),
                "documents": [store.get_document(self.db, kb_id, i) for i in ids], "skipped": []}

    def delete_document(self, kb_id: str, doc_id: str, workspace_id: str | None = None) -> None:
        """Gone from the database, every index and the stored sources."""
        store.delete_document(self.db, kb_id, doc_id, workspace_id)
        index = self.index(kb_id)
        if index is not None:
            index.delete_documents([doc_id])
        self.blobs.delete(kb_id, doc_id)
        self.background.forget(kb_id)

    def url_policy(self) -> Any:
        from temper.knowledge.sources.web import FetchPolicy

        return FetchPolicy(allow=self.url_allow)

    # --- sources synced from elsewhere --------------------------------------------------------------------

    def add_database(self, kb_id: str, name: str, config: dict[str, Any], *, workspace_id: str | None = None,
                     caller: Caller | None = None) -> dict[str, Any]:
        """A database query as documents (one per row, or per ``group_by`` value), synced now and on request."""
        from temper.knowledge.sources import QueryError
        from temper.knowledge.sources.database import check_not_studio, check_source

        kb = store.get_kb(self.db, kb_id, workspace_id)
        self._check_metadata(config.get("metadata"))
        try:
            check_not_studio(str(config.get("url") or ""), self.db, self.root.parent)
            check_source(source_of(config))
        except QueryError as e:
            raise InvalidRequest(str(e), param="query", code="invalid_source", params={"reason": str(e)}) from None
        src = store.add_source(self.db, kb_id, "database", name, config, workspace_id=workspace_id)
        return {**src, "job": self._sync(kb, src["id"], caller)}

    def sync_source(self, kb_id: str, source_id: str, workspace_id: str | None = None, caller: Caller | None = None
                    ) -> dict[str, Any]:
        kb = store.get_kb(self.db, kb_id, workspace_id)
        return {**store.get_source(self.db, kb_id, source_id), "job": self._sync(kb, source_id, caller)}

    def _sync(self, kb: dict[str, Any], source_id: str, caller: Caller | None) -> dict[str, Any]:
        job = jobs.submit(self.db, SYNC, {"kb_id": kb["id"], "source_id": source_id,
                                                   "key_id": caller.key_id if caller else None},
                          workspace_id=kb["workspace_id"], resource_id=kb["id"], unit="chunks")
        self.wake()
        return job

    # --- retrieval ----------------------------------------------------------------------------------------

    def settings_for(self, kb: dict[str, Any], retrieval: dict[str, Any] | None, answer: dict[str, Any] | None
                     ) -> tuple[kbconfig.Retrieval, kbconfig.Answer]:
        cfg = kbconfig.parse(kb["config"])
        return (kbconfig.merged(cfg.retrieval, retrieval, "retrieval"),
                kbconfig.merged(cfg.answer, answer, "answer"))

    async def _kb(self, kb_id: str, workspace_id: str | None) -> dict[str, Any]:
        return await asyncio.to_thread(store.get_kb, self.db, kb_id, workspace_id, counted=False)

    async def retrieve(self, kb_id: str, query: str, *, retrieval: dict[str, Any] | None = None,
                       flt: Filter | None = None, history: list[dict[str, str]] | None = None,
                       workspace_id: str | None = None, caller: Caller | None = None) -> Retrieved:
        """Hits for ``query``; its model calls are metered for ``caller`` (as are ``answer``'s)."""
        kb = await self._kb(kb_id, workspace_id)
        settings, _ = self.settings_for(kb, retrieval, None)
        self.models.act_for(caller)
        return await retrieve(self, kb, _question(query), settings, flt=flt, history=history)

    async def answer(self, kb_id: str, question: str, *, retrieval: dict[str, Any] | None = None,
                     answer: dict[str, Any] | None = None, flt: Filter | None = None,
                     history: list[dict[str, str]] | None = None, workspace_id: str | None = None,
                     caller: Caller | None = None) -> dict[str, Any]:
        kb = await self._kb(kb_id, workspace_id)
        r, a = self.settings_for(kb, retrieval, answer)
        self.models.act_for(caller)
        return await answers.answer(self, kb, _question(question), r, a, flt=flt, history=history)

    async def answer_stream(self, kb_id: str, question: str, *, retrieval: dict[str, Any] | None = None,
                            answer: dict[str, Any] | None = None, flt: Filter | None = None,
                            history: list[dict[str, str]] | None = None, workspace_id: str | None = None,
                            caller: Caller | None = None) -> AsyncIterator[dict[str, Any]]:
        kb = await self._kb(kb_id, workspace_id)
        r, a = self.settings_for(kb, retrieval, answer)
        self.models.act_for(caller)  # the stream is iterated in this request's context
        async for event in answers.answer_stream(self, kb, _question(question), r, a, flt=flt, history=history):
            yield event


def _question(text: str) -> str:
    text = text.strip()
    if not text:
        raise InvalidRequest("The question is empty.", param="query", code="empty_question")
    if len(text) > 4000:
        raise InvalidRequest("The question is longer than 4000 characters.", param="query",
                             code="question_too_long", params={"max": 4000})
    return text
