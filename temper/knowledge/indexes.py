"""Opening a knowledge base's index: the configured backend, with the dimensions kept in the database (so
every process that opens it, a server replica or an ingestion job's worker, opens the same one)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from temper.config import Settings
from temper.knowledge import store
from temper.knowledge.types import KnowledgeIndex

IndexFactory = Callable[[str, Path, int], KnowledgeIndex]  # (kb id, directory, dimensions) → index


def index_factory(backend: str, dsn: Callable[[], str]) -> IndexFactory:
    """Indexes of the configured backend: Qdrant Edge in the knowledge base's directory, or its own tables
    in PostgreSQL (``dsn`` is read only then)."""
    if backend == "pgvector":
        from temper.knowledge.index.pgvector import PgVectorIndex

        url = dsn()
        return lambda kb_id, path, dim: PgVectorIndex(url, kb_id, dim)
    from temper.knowledge.index.qdrant_edge import QdrantEdgeIndex

    return lambda kb_id, path, dim: QdrantEdgeIndex(path, dim)


def settings_factory(settings: Settings) -> IndexFactory:
    return index_factory(settings.kb_index, lambda: settings.kb_index_dsn)


def shared(settings: Settings) -> bool:
    """Whether any process may write the index (pgvector); Qdrant Edge's shard belongs to one process."""
    return settings.kb_index == "pgvector"


def open_index(db: str, root: Path, factory: IndexFactory, kb_id: str, dim: int | None) -> KnowledgeIndex | None:
    """A knowledge base's index, created with ``dim`` dimensions when there is none yet (None without
    ``dim``: nothing was ever indexed)."""
    known = store.get_kb(db, kb_id)["dimensions"]
    if known is None:
        if dim is None:
            return None
        known = store.set_dim(db, kb_id, dim)
    return factory(kb_id, root / kb_id / "index", known)
