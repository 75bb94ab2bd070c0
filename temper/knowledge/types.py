"""The shapes that flow through a knowledge base: parsed documents → chunks → indexed chunks → hits.

Parsers (``ingest/``) turn a source into ``ParsedDocument``s made of ``Block``s in reading order; the
chunker (``chunking.py``) turns blocks into ``Chunk``s; the pipeline embeds them and hands
``IndexedChunk``s to a ``KnowledgeIndex`` (``index/``), which answers dense and keyword searches with
``IndexHit``s under a ``Filter``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

BlockKind = Literal["heading", "text", "list", "table", "code", "record"]


@dataclass
class Block:
    """One unit of a parsed document, in reading order.

    ``heading`` blocks carry their ``level`` (1 = top); the chunker derives each chunk's section path from
    them. ``table``, ``code`` and ``record`` (a spreadsheet or database row, rendered as
    ``header: value`` lines) blocks are kept whole by the structure-aware chunker when they fit.
    """

    text: str
    kind: BlockKind = "text"
    level: int = 0
    page: int | None = None  # 1-based, where the format has pages (PDF, slides)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ParsedDocument:
    """What a parser makes of one source (a file may yield several, e.g. one per sheet or per row)."""

    title: str | None
    blocks: list[Block]
    metadata: dict[str, Any] = field(default_factory=dict)  # e.g. url, links, sheet, author, created
    source_suffix: str | None = None  # distinguishes documents from one source ("#sheet=Prices", "#row=42")


class Parser(Protocol):
    """One format. Registered through the ``register_parsers`` hook; names must be unique."""

    name: str
    extensions: tuple[str, ...]  # lower-case, with the dot: (".pdf",)
    media_types: tuple[str, ...]  # ("application/pdf",)

    def parse(self, data: bytes, filename: str, options: dict[str, Any]) -> list[ParsedDocument]:
        """Parse ``data``; raise ``ParseError`` with a message a person can act on when it cannot."""
        ...


class ParseError(Exception):
    """The source cannot be parsed (corrupt, encrypted, empty, unsupported); the message says why."""


@dataclass
class Chunk:
    """A piece of a document that is embedded and searched (a child) or handed to the model (a parent)."""

    text: str
    ordinal: int  # position in the document, over all chunks
    section: list[str] = field(default_factory=list)  # heading path, outermost first
    page: int | None = None
    tokens: int = 0
    parent: int | None = None  # ordinal of the parent chunk (parent–child chunking)
    role: Literal["chunk", "parent"] = "chunk"  # parents are stored, never embedded or searched
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class IndexedChunk:
    """A chunk as the index stores it: the id the SQLite store gave it, its vector and its keyword text."""

    id: int
    kb_id: str
    document_id: str
    vector: list[float] | None
    text: str  # what keyword search matches (the chunk, plus boosted enrichment fields when present)
    fields: dict[str, str] = field(default_factory=dict)  # extra keyword fields: keywords, questions, summary
    payload: dict[str, Any] = field(default_factory=dict)  # filterable metadata (str, int, float, bool, lists)


@dataclass
class IndexHit:
    id: int
    score: float


# The filter language, one per query, compiled by each backend:
#   {"field": value}                  equality ("field" is a payload key: metadata, document_id, ...)
#   {"field": {"in": [v1, v2]}}       any of
#   {"field": {"gte": a, "lt": b}}    ranges (gt, gte, lt, lte; numbers or ISO 8601 strings)
#   {"field": {"ne": v}}              not equal
#   several keys: all must hold
Filter = dict[str, Any]


class KnowledgeIndex(Protocol):
    """Dense and keyword search over one knowledge base's chunks. SQLite holds the truth; an index can
    always be rebuilt from it, so it never stores text it cannot be given again."""

    def upsert(self, chunks: list[IndexedChunk]) -> None: ...

    def delete(self, ids: list[int]) -> None:
        """Delete chunks by id (replaced generations, abandoned attempts); unknown ids are ignored."""
        ...

    def delete_documents(self, document_ids: list[str]) -> None: ...

    def vectors(self, ids: list[int]) -> dict[int, list[float]]:
        """The stored dense vectors of ``ids`` (those that have one): the local reranker scores with them."""
        ...

    def dense(self, vector: list[float], k: int, flt: Filter | None = None) -> list[IndexHit]: ...

    def keyword(self, query: str, k: int, flt: Filter | None = None) -> list[IndexHit]: ...

    def count(self) -> int: ...

    def drop(self) -> None:
        """Delete the whole index (the knowledge base is being deleted)."""
        ...

    def close(self) -> None: ...
