"""What an ingestion or sync job works with, built from the settings in whatever process runs it (a worker
process of the server, a Ray worker): the database, stored sources, parsers, the job's model client and where
its index changes go (``index_ops``). Nothing here belongs to the server."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from temper.knowledge import store
from temper.knowledge.blobs import BlobStore
from temper.knowledge.index_ops import DirectSink, IndexSink, OutboxSink
from temper.knowledge.indexes import open_index, settings_factory, shared
from temper.knowledge.sources import database
from temper.knowledge.types import KnowledgeIndex, ParsedDocument

if TYPE_CHECKING:
    from temper.jobs.context import JobContext
    from temper.knowledge.ingest import ParserRegistry
    from temper.knowledge.sources.web import FetchPolicy
    from temper.models.client import BlockingModelClient


@dataclass
class Loaded:
    data: bytes
    filename: str
    media_type: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    parsed: list[ParsedDocument] | None = None  # already in blocks (database rows): no parser needed


class JobEnv:
    def __init__(self, ctx: JobContext) -> None:
        from temper.knowledge.sources.web import FetchPolicy
        from temper.plugins import parser_registry, plugin_manager

        self.ctx = ctx
        self.db = ctx.db
        self.settings = ctx.settings
        self.root = ctx.settings.home_dir / "knowledge"
        self.blobs = BlobStore(self.root)
        self.parsers: ParserRegistry = parser_registry(plugin_manager(), ctx.settings)
        self.url_policy: FetchPolicy = FetchPolicy(allow=ctx.settings.kb_url_allow_list)
        self.models: BlockingModelClient = ctx.models  # made now: spans carry whom the job acts for
        self._indexes: dict[str, KnowledgeIndex] = {}

    def sink(self, kb_id: str) -> IndexSink:
        """Straight into a shared index (pgvector); otherwise recorded for the server that owns it."""
        if shared(self.settings):
            return DirectSink(self.db, lambda dim: self._index(kb_id, dim))
        return OutboxSink(self.db, kb_id, self.ctx.job_id)

    def _index(self, kb_id: str, dim: int | None) -> KnowledgeIndex | None:
        if kb_id not in self._indexes:
            index = open_index(self.db, self.root, settings_factory(self.settings), kb_id, dim)
            if index is None:
                return None
            self._indexes[kb_id] = index
        return self._indexes[kb_id]

    def load(self, doc: dict[str, Any]) -> Loaded | None:
        """A document's bytes: stored, or fetched (None: a fetched source that has not changed)."""
        if doc["source_type"] == "url":
            from temper.knowledge.sources.web import fetch_url

            got = fetch_url(store.document_url(self.db, doc["id"]), self.url_policy)  # with its credentials
            if not store.fetched(self.db, doc["id"], hashlib.sha256(got.data).hexdigest(), len(got.data)):
                return None
            return Loaded(got.data, got.filename, got.media_type, {"url": got.url, **got.metadata})
        data = self.blobs.get(doc["kb_id"], doc["id"])
        if doc["source_type"] == "database":
            return Loaded(data, doc["source"], database.MEDIA_TYPE, parsed=[database.decode(data)])
        return Loaded(data, doc["source"], doc["media_type"])

    def close(self) -> None:
        for index in self._indexes.values():
            index.close()
        self._indexes.clear()
