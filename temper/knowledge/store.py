"""Knowledge bases, documents and chunks in the database: the source of truth every index is rebuilt from.

A document's chunks are built under a new generation and published in one transaction (``publish``),
so readers (``visible_chunks``) see either the previous complete set or the new one, never a mix, and a
crash mid-ingestion leaves only invisible rows that the next attempt (``begin``) clears.
"""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from temper.errors import InvalidRequest, NotFound
from temper.ids import new_id
from temper.knowledge.limits import WARNINGS
from temper.knowledge.sources.urls import redact_url
from temper.knowledge.types import Chunk
from temper.store.db import session
from temper.store.tables import DEFAULT_WORKSPACE, KbChunk, KbDocument, KbSource, KnowledgeBase, iso_utc, utcnow

DEFAULT_EMBEDDING_MODEL = "multilingual-e5-small"
_NAME_RE = re.compile(r"\w[\w .-]{0,99}")  # \w is Unicode: Chinese names are fine
DOC_STATUSES = ("queued", "processing", "indexed", "failed")


def kb_dict(kb: KnowledgeBase, counts: dict[str, int] | None, chunks: int = 0) -> dict[str, Any]:
    """A knowledge base, with its documents per status and its chunks unless ``counts`` is None."""
    out = {"id": kb.id, "object": "knowledge_base", "name": kb.name, "description": kb.description,
           "workspace_id": kb.workspace_id, "embedding_model": kb.embedding_model, "dimensions": kb.dim,
           "config": kb.config, "created_at": iso_utc(kb.created_at), "updated_at": iso_utc(kb.updated_at)}
    if counts is not None:
        out["documents"] = {status: counts.get(status, 0) for status in DOC_STATUSES} | {"total": sum(counts.values())}
        out["chunks"] = chunks
    return out


def shown_source(source: str, source_type: str) -> str:
    """A document's source as it may be shown: a URL's password is masked (the stored one keeps it for
    fetching, ``document_url``)."""
    return redact_url(source) if source_type == "url" else source


def document_dict(d: KbDocument) -> dict[str, Any]:
    return {"id": d.id, "object": "knowledge_base.document", "kb_id": d.kb_id,
            "source": shown_source(d.source, d.source_type),
            "source_type": d.source_type, "title": d.title, "media_type": d.media_type, "checksum": d.checksum,
            "size_bytes": d.size_bytes, "status": d.status, "error": d.error, "metadata": d.doc_metadata,
            "chunks": d.chunk_count, "tokens": d.tokens, "created_at": iso_utc(d.created_at),
            "updated_at": iso_utc(d.updated_at), "indexed_at": iso_utc(d.indexed_at) if d.indexed_at else None}


def chunk_dict(c: KbChunk) -> dict[str, Any]:
    return {"id": c.id, "document_id": c.document_id, "ordinal": c.ordinal, "role": c.role,
            "parent_ordinal": c.parent_ordinal, "text": c.text, "section": c.section, "page": c.page,
            "tokens": c.tokens, "metadata": c.chunk_metadata, "enrichment": c.enrichment}


_CHUNK_COLUMNS = (KbChunk.id, KbChunk.document_id, KbChunk.ordinal, KbChunk.role, KbChunk.parent_ordinal, KbChunk.text,
                  KbChunk.section, KbChunk.page, KbChunk.tokens, KbChunk.chunk_metadata, KbChunk.enrichment)
_VISIBLE_KEYS = ("id", "document_id", "ordinal", "role", "parent_ordinal", "text", "section", "page", "tokens",
                 "metadata", "enrichment", "document_title", "source", "document_metadata")


def _kb(s: Any, kb_id: str, workspace_id: str | None) -> KnowledgeBase:
    kb = s.get(KnowledgeBase, kb_id)
    if kb is None or (workspace_id is not None and kb.workspace_id != workspace_id):
        raise NotFound(f"No knowledge base with id {kb_id!r}.", param="kb_id", code="knowledge_base_not_found",
                       params={"kb_id": kb_id})
    return kb


def _document(s: Any, doc_id: str, kb_id: str | None = None) -> KbDocument:
    doc = s.get(KbDocument, doc_id)
    if doc is None or (kb_id is not None and doc.kb_id != kb_id):
        raise NotFound(f"No document with id {doc_id!r} in this knowledge base.", param="document_id",
                       code="document_not_found", params={"document_id": doc_id})
    return doc


def create_kb(db: str, name: str, *, description: str = "", embedding_model: str = DEFAULT_EMBEDDING_MODEL,
              config: dict[str, Any] | None = None, workspace_id: str = DEFAULT_WORKSPACE) -> dict[str, Any]:
    name = name.strip()
    if not _NAME_RE.fullmatch(name):
        raise InvalidRequest("A knowledge base name has 1 to 100 letters (any script), digits, spaces, '_', '.' "
                             "or '-', and starts with a letter or digit.", param="name", code="invalid_kb_name")
    try:
        with session(db) as s:
            kb = KnowledgeBase(id=new_id("kb"), workspace_id=workspace_id, name=name, description=description,
                               embedding_model=embedding_model, config=config or {})
            s.add(kb)
            s.flush()
            return kb_dict(kb, {})
    except IntegrityError:
        raise InvalidRequest(f"A knowledge base named {name!r} already exists.", param="name",
                             code="knowledge_base_exists", params={"name": name}) from None


def _counts(s: Any, kb_ids: list[str]) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Documents per status, and chunks, of each knowledge base."""
    by_status: dict[str, dict[str, int]] = {}
    chunks: dict[str, int] = {}
    for kb_id, status, n, c in s.execute(select(KbDocument.kb_id, KbDocument.status, func.count(),
                                                func.sum(KbDocument.chunk_count))
                                         .where(KbDocument.kb_id.in_(kb_ids))
                                         .group_by(KbDocument.kb_id, KbDocument.status)):
        by_status.setdefault(kb_id, {})[status] = n
        chunks[kb_id] = chunks.get(kb_id, 0) + int(c or 0)
    return by_status, chunks


def list_kbs(db: str, workspace_id: str = DEFAULT_WORKSPACE, *, name: str | None = None, limit: int = 100,
             offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """One page of a workspace's knowledge bases, newest first, with counts; and how many there are."""
    where = [KnowledgeBase.workspace_id == workspace_id] + ([KnowledgeBase.name == name] if name else [])
    with session(db) as s:
        total = s.scalar(select(func.count()).select_from(KnowledgeBase).where(*where)) or 0
        kbs = list(s.scalars(select(KnowledgeBase).where(*where).order_by(KnowledgeBase.created_at.desc(),
                                                                          KnowledgeBase.id.desc())
                             .limit(limit).offset(offset)))
        by_status, chunks = _counts(s, [kb.id for kb in kbs])
        return [kb_dict(kb, by_status.get(kb.id, {}), chunks.get(kb.id, 0)) for kb in kbs], total


def get_kb(db: str, kb_id: str, workspace_id: str | None = None, *, counted: bool = True) -> dict[str, Any]:
    """A knowledge base with its document and chunk counts; ``counted`` False leaves the counts out (a
    search needs only the settings, and counting is a grouped scan of its documents)."""
    with session(db) as s:
        kb = _kb(s, kb_id, workspace_id)
        if not counted:
            return kb_dict(kb, None)
        by_status, chunks = _counts(s, [kb.id])
        return kb_dict(kb, by_status.get(kb.id, {}), chunks.get(kb.id, 0))


def delete_kb(db: str, kb_id: str, workspace_id: str | None = None) -> None:
    """Delete a knowledge base with its documents and chunks (the caller drops its indexes)."""
    with session(db) as s:
        kb = _kb(s, kb_id, workspace_id)
        doc_ids = select(KbDocument.id).where(KbDocument.kb_id == kb.id).scalar_subquery()
        s.execute(delete(KbChunk).where(KbChunk.document_id.in_(doc_ids)))
        s.execute(delete(KbDocument).where(KbDocument.kb_id == kb.id))
        s.execute(delete(KbSource).where(KbSource.kb_id == kb.id))
        s.delete(kb)


def add_document(db: str, kb_id: str, source: str, *, source_type: str, checksum: str | None, size_bytes: int,
                 title: str = "", media_type: str | None = None, metadata: dict[str, Any] | None = None,
                 workspace_id: str | None = None) -> tuple[dict[str, Any], bool]:
    """Register a source; returns (document, whether it needs ingesting). An indexed source whose checksum
    is unchanged is left alone; a changed or failed one is queued again and keeps answering meanwhile.
    ``checksum`` None: not known until the source is fetched (a URL), so it is always queued and the
    ingestion compares what it fetches (``fetched``)."""
    with session(db) as s:
        kb = _kb(s, kb_id, workspace_id)
        doc = s.scalar(select(KbDocument).where(KbDocument.kb_id == kb.id, KbDocument.source == source))
        if doc is None:
            doc = KbDocument(id=new_id("doc"), kb_id=kb.id, workspace_id=kb.workspace_id, source=source,
                             source_type=source_type, title=title, media_type=media_type, checksum=checksum or "",
                             size_bytes=size_bytes, status="queued", doc_metadata=metadata or {}, chunk_count=0,
                             tokens=0, generation=0, live_generation=0)
            s.add(doc)
            s.flush()
            return document_dict(doc), True
        if doc.checksum == checksum and doc.status in ("indexed", "queued", "processing"):
            return document_dict(doc), False
        if checksum is not None:
            doc.checksum, doc.size_bytes = checksum, size_bytes
        doc.status, doc.error = "queued", None
        doc.title, doc.media_type, doc.doc_metadata = title or doc.title, media_type, metadata or doc.doc_metadata
        s.flush()
        return document_dict(doc), True


def list_documents(db: str, kb_id: str, *, workspace_id: str | None = None, status: str | None = None,
                   limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    if status is not None and status not in DOC_STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(DOC_STATUSES)}.", param="status",
                             code="not_one_of", params={"allowed": ", ".join(DOC_STATUSES)})
    with session(db) as s:
        _kb(s, kb_id, workspace_id)
        stmt = select(KbDocument).where(KbDocument.kb_id == kb_id)
        if status is not None:
            stmt = stmt.where(KbDocument.status == status)
        stmt = stmt.order_by(KbDocument.created_at, KbDocument.id).limit(limit).offset(offset)
        return [document_dict(d) for d in s.scalars(stmt)]


def get_document(db: str, kb_id: str, doc_id: str, workspace_id: str | None = None) -> dict[str, Any]:
    with session(db) as s:
        _kb(s, kb_id, workspace_id)
        return document_dict(_document(s, doc_id, kb_id))


def document_url(db: str, doc_id: str) -> str:
    """A URL document's URL as stored, credentials included: for the job that fetches it only."""
    with session(db) as s:
        return _document(s, doc_id).source


def delete_document(db: str, kb_id: str, doc_id: str, workspace_id: str | None = None) -> None:
    """Delete a document and its chunks (the caller deletes it from the indexes)."""
    with session(db) as s:
        _kb(s, kb_id, workspace_id)
        doc = _document(s, doc_id, kb_id)
        s.execute(delete(KbChunk).where(KbChunk.document_id == doc.id))
        s.delete(doc)


def begin(db: str, doc_id: str) -> tuple[int, list[int]]:
    """Start building a new generation of a document's chunks. Returns it, and the ids of chunks left by
    abandoned attempts (deleted here; the caller deletes them from the indexes too)."""
    with session(db) as s:
        doc = _document(s, doc_id)
        stale = list(s.scalars(select(KbChunk.id).where(KbChunk.document_id == doc.id,
                                                        KbChunk.generation != doc.live_generation)))
        if stale:
            s.execute(delete(KbChunk).where(KbChunk.id.in_(stale)))
        doc.generation = max(doc.generation, doc.live_generation) + 1
        doc.status, doc.error = "processing", None
        return doc.generation, stale


def write_chunks(db: str, doc_id: str, generation: int, chunks: list[Chunk]) -> list[int]:
    """Store one batch of a generation's chunks (invisible until ``publish``); returns their ids in order."""
    with session(db) as s:
        doc = _document(s, doc_id)
        rows = [KbChunk(kb_id=doc.kb_id, document_id=doc.id, generation=generation, ordinal=c.ordinal, role=c.role,
                        parent_ordinal=c.parent, text=c.text, section=c.section, page=c.page, tokens=c.tokens,
                        chunk_metadata=c.metadata) for c in chunks]
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def publish(db: str, doc_id: str, generation: int, *, title: str | None = None,
            metadata: dict[str, Any] | None = None) -> list[int] | None:
    """Make a generation the visible one, in one transaction; returns the ids of the chunks it replaced
    (deleted here; the caller deletes them from the indexes). None: a later attempt has begun a newer
    generation meanwhile (an earlier attempt's late publish must not delete the chunks being built)."""
    with session(db) as s:
        doc = _document(s, doc_id)
        if doc.generation != generation:
            return None
        old = list(s.scalars(select(KbChunk.id).where(KbChunk.document_id == doc.id,
                                                      KbChunk.generation != generation)))
        if old:
            s.execute(delete(KbChunk).where(KbChunk.id.in_(old)))
        count, tokens = s.execute(select(func.count(), func.coalesce(func.sum(KbChunk.tokens), 0))
                                  .where(KbChunk.document_id == doc.id, KbChunk.role == "chunk")).one()
        doc.live_generation, doc.status, doc.error, doc.indexed_at = generation, "indexed", None, utcnow()
        doc.chunk_count, doc.tokens = count, tokens
        if title:
            doc.title = title
        kept = {k: v for k, v in doc.doc_metadata.items() if k != WARNINGS}  # an earlier attempt's warnings go
        doc.doc_metadata = {**kept, **(metadata or {})}
        return old


def fail(db: str, doc_id: str, error: str) -> None:
    """The document could not be ingested; whatever generation was live stays visible."""
    with session(db) as s:
        s.execute(update(KbDocument).where(KbDocument.id == doc_id).values(status="failed", error=error,
                                                                            updated_at=utcnow()))


def discard(db: str, doc_id: str, generation: int | None, error: str) -> list[int]:
    """An attempt that will not go live (it failed, or its job was cancelled): the document is marked failed
    with ``error`` and the chunks of ``generation`` are deleted; returns their ids (the caller deletes them from
    the indexes). The live generation, if any, stays visible."""
    with session(db) as s:
        doc = s.get(KbDocument, doc_id)
        if doc is None:
            return []
        ids: list[int] = []
        if generation and generation != doc.live_generation:
            attempt = (KbChunk.document_id == doc.id, KbChunk.generation == generation)
            ids = list(s.scalars(select(KbChunk.id).where(*attempt)))
            s.execute(delete(KbChunk).where(*attempt))
        doc.status, doc.error = "failed", error
        return ids


def statuses(db: str, doc_ids: list[str]) -> dict[str, str]:
    """Each document's status (documents deleted meanwhile are left out)."""
    with session(db) as s:
        rows = s.execute(select(KbDocument.id, KbDocument.status).where(KbDocument.id.in_(doc_ids)))
        return {doc_id: status for doc_id, status in rows}


def visible_chunks(db: str, ids: list[int]) -> dict[int, dict[str, Any]]:
    """The chunks among ``ids`` that belong to their document's live generation, with document fields
    for citations (index hits of half-built or deleted documents are dropped here)."""
    if not ids:
        return {}
    with session(db) as s:  # plain columns, not ORM objects: this runs on every search
        rows = s.execute(select(*_CHUNK_COLUMNS, KbDocument.title, KbDocument.source, KbDocument.doc_metadata,
                                KbDocument.source_type)
                         .join(KbDocument, KbDocument.id == KbChunk.document_id)
                         .where(KbChunk.id.in_(ids), KbChunk.generation == KbDocument.live_generation))
        visible = {}
        for *columns, source_type in rows:
            chunk = dict(zip(_VISIBLE_KEYS, columns))
            chunk["source"] = shown_source(chunk["source"], source_type)
            visible[chunk["id"]] = chunk
        return visible


def parents(db: str, document_id: str, ordinals: list[int]) -> dict[int, dict[str, Any]]:
    """Parent chunks (parent–child chunking) of a document's live generation, by ordinal."""
    with session(db) as s:
        doc = _document(s, document_id)
        rows = s.scalars(select(KbChunk).where(KbChunk.document_id == doc.id, KbChunk.role == "parent",
                                               KbChunk.generation == doc.live_generation,
                                               KbChunk.ordinal.in_(ordinals)))
        return {c.ordinal: chunk_dict(c) for c in rows}


def pending(db: str, doc_ids: list[str]) -> list[dict[str, Any]]:
    """The documents among ``doc_ids`` still to ingest (a retried job skips those an earlier attempt
    finished, and those deleted since), in the given order."""
    with session(db) as s:
        rows = {d.id: d for d in s.scalars(select(KbDocument).where(KbDocument.id.in_(doc_ids)))}
    return [document_dict(rows[i]) for i in doc_ids if i in rows and rows[i].status in ("queued", "processing")]


def requeue(db: str, kb_id: str, doc_ids: list[str] | None = None, *, workspace_id: str | None = None,
            statuses: tuple[str, ...] = ("failed",)) -> list[str]:
    """Queue documents again (``doc_ids``, or every document in ``statuses``); returns the ids queued."""
    with session(db) as s:
        _kb(s, kb_id, workspace_id)
        stmt = select(KbDocument).where(KbDocument.kb_id == kb_id)
        stmt = stmt.where(KbDocument.id.in_(doc_ids)) if doc_ids is not None else stmt.where(
            KbDocument.status.in_(statuses))
        docs = list(s.scalars(stmt))
        if doc_ids is not None and len(docs) != len(set(doc_ids)):
            missing = sorted(set(doc_ids) - {d.id for d in docs})
            raise NotFound(f"No document with id {missing[0]!r} in this knowledge base.", param="document_ids",
                           code="document_not_found", params={"document_id": missing[0]})
        for d in docs:
            d.status, d.error = "queued", None
        return [d.id for d in docs]


def fetched(db: str, doc_id: str, checksum: str, size_bytes: int) -> bool:
    """Record what a fetch (URL) returned; True when it differs from what is indexed (False: the live
    generation is current, and the document is marked indexed again)."""
    with session(db) as s:
        doc = _document(s, doc_id)
        if doc.checksum == checksum and doc.live_generation:
            doc.status, doc.error = "indexed", None
            return False
        doc.checksum, doc.size_bytes = checksum, size_bytes
        return True


def live_chunks(db: str, kb_id: str, doc_id: str, *, workspace_id: str | None = None, limit: int = 500,
                offset: int = 0) -> list[dict[str, Any]]:
    """A document's visible chunks (parents included) in reading order: the chunk viewer."""
    with session(db) as s:
        _kb(s, kb_id, workspace_id)
        doc = _document(s, doc_id, kb_id)
        rows = s.scalars(select(KbChunk).where(KbChunk.document_id == doc.id,
                                               KbChunk.generation == doc.live_generation)
                         .order_by(KbChunk.ordinal).limit(limit).offset(offset))
        return [chunk_dict(c) for c in rows]


def sample_chunk_ids(db: str, kb_id: str, n: int) -> list[int]:
    """Up to ``n`` visible searchable chunk ids spread evenly over the knowledge base."""
    with session(db) as s:
        ids = list(s.scalars(select(KbChunk.id).join(KbDocument, KbDocument.id == KbChunk.document_id)
                             .where(KbChunk.kb_id == kb_id, KbChunk.role == "chunk",
                                    KbChunk.generation == KbDocument.live_generation).order_by(KbChunk.id)))
    step = max(1, len(ids) // n)
    return ids[::step][:n]


def set_config(db: str, kb_id: str, config: dict[str, Any]) -> dict[str, Any]:
    with session(db) as s:
        kb = _kb(s, kb_id, None)
        kb.config = config
    return get_kb(db, kb_id)


def set_description(db: str, kb_id: str, description: str, workspace_id: str | None = None) -> None:
    with session(db) as s:
        _kb(s, kb_id, workspace_id).description = description


# --- sources synced from elsewhere ------------------------------------------------------------------------

def source_dict(src: KbSource, documents: int = 0) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    config = dict(src.config)
    if config.get("url"):
        config["url"] = make_url(config["url"]).render_as_string(hide_password=True)
    return {"id": src.id, "object": "knowledge_base.source", "kb_id": src.kb_id, "kind": src.kind, "name": src.name,
            "config": config, "cursor": src.cursor, "documents": documents,
            "synced_at": iso_utc(src.synced_at) if src.synced_at else None, "created_at": iso_utc(src.created_at)}


def add_source(db: str, kb_id: str, kind: str, name: str, config: dict[str, Any], *,
               workspace_id: str | None = None) -> dict[str, Any]:
    name = name.strip()
    if not _NAME_RE.fullmatch(name) or "#" in name:
        raise InvalidRequest("A source name has 1 to 100 letters, digits, spaces, '_', '.' or '-'.", param="name",
                             code="invalid_source_name")
    try:
        with session(db) as s:
            kb = _kb(s, kb_id, workspace_id)
            src = KbSource(id=new_id("src"), kb_id=kb.id, workspace_id=kb.workspace_id, kind=kind, name=name,
                           config=config)
            s.add(src)
            s.flush()
            return source_dict(src)
    except IntegrityError:
        raise InvalidRequest(f"This knowledge base already has a source named {name!r}.", param="name",
                             code="source_exists", params={"name": name}) from None


def _source(s: Any, source_id: str, kb_id: str | None = None) -> KbSource:
    src = s.get(KbSource, source_id)
    if src is None or (kb_id is not None and src.kb_id != kb_id):
        raise NotFound(f"No source with id {source_id!r} in this knowledge base.", param="source_id",
                       code="source_not_found", params={"source_id": source_id})
    return src


def source_config(db: str, source_id: str) -> tuple[dict[str, Any], Any]:
    """A source's full configuration (with its password) and cursor: for the sync job only."""
    with session(db) as s:
        src = _source(s, source_id)
        return {**src.config, "name": src.name, "kb_id": src.kb_id}, src.cursor


def _source_documents(source_name: str) -> Any:
    return KbDocument.source.startswith(source_name + "#", autoescape=True)


def list_sources(db: str, kb_id: str, workspace_id: str | None = None) -> list[dict[str, Any]]:
    with session(db) as s:
        _kb(s, kb_id, workspace_id)
        out = []
        for src in s.scalars(select(KbSource).where(KbSource.kb_id == kb_id).order_by(KbSource.created_at)):
            n = s.scalar(select(func.count()).where(KbDocument.kb_id == kb_id, _source_documents(src.name)))
            out.append(source_dict(src, n or 0))
        return out


def get_source(db: str, kb_id: str, source_id: str, workspace_id: str | None = None) -> dict[str, Any]:
    with session(db) as s:
        _kb(s, kb_id, workspace_id)
        return source_dict(_source(s, source_id, kb_id))


def synced(db: str, source_id: str, cursor: Any) -> None:
    with session(db) as s:
        src = _source(s, source_id)
        src.cursor, src.synced_at = cursor, utcnow()


def pending_of_source(db: str, kb_id: str, source_name: str) -> list[str]:
    """Documents of a source still waiting for ingestion (left by an interrupted sync)."""
    with session(db) as s:
        return list(s.scalars(select(KbDocument.id).where(KbDocument.kb_id == kb_id, _source_documents(source_name),
                                                          KbDocument.status.in_(("queued", "processing")))
                              .order_by(KbDocument.created_at)))


def set_enrichment(db: str, fields: dict[int, dict[str, str]]) -> None:
    """Store each chunk's enrichment (summary, keywords, questions)."""
    with session(db) as s:
        for chunk_id, value in fields.items():
            s.execute(update(KbChunk).where(KbChunk.id == chunk_id).values(enrichment=value))


def set_dim(db: str, kb_id: str, dim: int) -> int:
    """Record the index's dimensions when the first vectors arrive; returns the recorded value (another
    writer's, if it was first)."""
    with session(db) as s:
        s.execute(update(KnowledgeBase).where(KnowledgeBase.id == kb_id, KnowledgeBase.dim.is_(None)).values(dim=dim))
        return int(s.scalar(select(KnowledgeBase.dim).where(KnowledgeBase.id == kb_id)))
