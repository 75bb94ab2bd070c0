"""Tables. Every table that holds a user resource carries ``workspace_id``."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, overload

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text,
                        text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

DEFAULT_WORKSPACE = "ws_default"
ID = BigInteger().with_variant(Integer, "sqlite")  # a 64-bit row id: SQLite's INTEGER PRIMARY KEY already is


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@overload
def as_utc(t: datetime) -> datetime: ...


@overload
def as_utc(t: None) -> None: ...


def as_utc(t: datetime | None) -> datetime | None:
    """SQLite hands stored times back without a zone; they were written in UTC."""
    return t.replace(tzinfo=timezone.utc) if t is not None and t.tzinfo is None else t


def iso_utc(t: datetime) -> str:
    """ISO 8601 with a ``Z``."""
    return as_utc(t).isoformat().replace("+00:00", "Z")


class Base(DeclarativeBase):
    pass


class Workspace(Base):
    """``trace_mask_pii``: whether traces are stored with personal data masked; None follows the server's
    TEMPER_TRACE_MASK_PII."""

    __tablename__ = "workspaces"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    trace_mask_pii: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


class ModelRow(Base):
    """A catalogue entry added by a user (built-ins come from plugins)."""

    __tablename__ = "models"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), default=DEFAULT_WORKSPACE)
    modality: Mapped[str] = mapped_column(String(20))
    aliases: Mapped[list] = mapped_column(JSON, default=list)
    deployments: Mapped[list] = mapped_column(JSON, default=list)
    fallbacks: Mapped[list] = mapped_column(JSON, default=list)
    context_length: Mapped[int | None] = mapped_column(Integer, nullable=True)
    parameters: Mapped[str | None] = mapped_column(String(40), nullable=True)
    input_price: Mapped[float | None] = mapped_column(Float, nullable=True)  # None: no price set
    output_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(20), default="active")
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class ModelHealth(Base):
    """The last reachability check of a remote model (``state``: healthy, unhealthy or unreachable)."""

    __tablename__ = "model_health"
    model_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[str] = mapped_column(String(20))
    code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), default=DEFAULT_WORKSPACE)
    name: Mapped[str] = mapped_column(String(200), default="")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(20))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    allowed_models: Mapped[list | None] = mapped_column(JSON, nullable=True)
    rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    token_budget: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tokens_used: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UsageRecord(Base):
    __tablename__ = "usage"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(40))
    workspace_id: Mapped[str] = mapped_column(String(40), default=DEFAULT_WORKSPACE)
    key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    app_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    model: Mapped[str] = mapped_column(String(200))
    operation: Mapped[str] = mapped_column(String(20))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[int] = mapped_column(Integer, default=200)
    error_code: Mapped[str | None] = mapped_column(String(60), nullable=True)
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_usage_key_time", "key_id", "created_at"),
                      Index("ix_usage_model_time", "model", "created_at"),
                      Index("ix_usage_ws_time", "workspace_id", "created_at"))


class Revision(Base):
    """Monotonic counters a running server polls to pick up changes made elsewhere (CLI, other replicas)."""

    __tablename__ = "revisions"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class ConsoleSession(Base):
    """A signed-in console browser: the cookie holds a token whose hash is stored here."""

    __tablename__ = "console_sessions"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(40), default=DEFAULT_WORKSPACE)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[str] = mapped_column(String(40), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class User(Base):
    """A person who signs in to the console with a password. Their requests run as their personal key
    (``key_id``, whose secret is never shown), which carries the rights, limits and metering."""

    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), default=DEFAULT_WORKSPACE)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(20), default="member")
    key_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SpanRow(Base):
    """A finished span below a trace's root that did not reach the store together with its root (those are
    stored inline, in ``traces.spans``). Times are integer microseconds since the epoch. Only ``trace_id`` is
    indexed: every index costs CPU on each gateway call."""

    __tablename__ = "spans"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    span_id: Mapped[str] = mapped_column(String(16))
    trace_id: Mapped[str] = mapped_column(String(32), index=True)
    parent_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    workspace_id: Mapped[str] = mapped_column(String(40), default=DEFAULT_WORKSPACE)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    start_us: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(10))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)
    input: Mapped[str | None] = mapped_column(Text, nullable=True)
    output: Mapped[str | None] = mapped_column(Text, nullable=True)



class TraceRow(Base):
    """A trace: its local root span, written when that ends, plus the trace's totals (tokens, cost, span
    count). What lists, filters and analytics read.

    ``raw_input``/``raw_output`` are the bodies as sent and answered (capped). ``input``/``output`` hold the
    readable text (the last user message, the answer) only when it cannot be derived from those at read time
    (the body was capped); ``spans`` holds the child spans that arrived in the same export batch as the root,
    so that a gateway call is one row.
    """

    __tablename__ = "traces"
    trace_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    span_id: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[str | None] = mapped_column(String(16), nullable=True)  # the caller's, via traceparent
    workspace_id: Mapped[str] = mapped_column(String(40), default=DEFAULT_WORKSPACE)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    start_us: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(10))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    app_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    span_count: Mapped[int] = mapped_column(Integer, default=1)
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)
    input: Mapped[str | None] = mapped_column(Text, nullable=True)
    output: Mapped[str | None] = mapped_column(Text, nullable=True)
    raw_input: Mapped[str | None] = mapped_column(Text, nullable=True)
    raw_output: Mapped[str | None] = mapped_column(Text, nullable=True)
    spans: Mapped[list | None] = mapped_column(JSON, nullable=True, deferred=True)

    __table_args__ = (Index("ix_traces_ws_start", "workspace_id", "start_us"),
                      Index("ix_traces_model_start", "model", "start_us"),
                      Index("ix_traces_key_start", "key_id", "start_us"),
                      Index("ix_traces_app_start", "app_id", "start_us", sqlite_where=text("app_id IS NOT NULL"),
                            postgresql_where=text("app_id IS NOT NULL")),
                      *(Index(f"ix_traces_errors_{name}", column, "start_us", sqlite_where=text("status = 'error'"),
                              postgresql_where=text("status = 'error'"))
                        for name, column in (("ws", "workspace_id"), ("key", "key_id"), ("model", "model"))))


class ScoreRow(Base):
    """A score on a trace or one of its spans, from a human, a judge model or code."""

    __tablename__ = "scores"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(40), default=DEFAULT_WORKSPACE)
    trace_id: Mapped[str] = mapped_column(String(32), index=True)
    span_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    name: Mapped[str] = mapped_column(String(100))
    data_type: Mapped[str] = mapped_column(String(20))  # numeric | categorical | boolean
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    string_value: Mapped[str | None] = mapped_column(String(200), nullable=True)
    source: Mapped[str] = mapped_column(String(20))  # human | judge | code
    author: Mapped[str | None] = mapped_column(String(200), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    queue_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_scores_name", "workspace_id", "name"),)


class AnnotationQueue(Base):
    """Traces picked by a filter, to be annotated in order with the queue's score configs."""

    __tablename__ = "annotation_queues"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(40), default=DEFAULT_WORKSPACE)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    filters: Mapped[dict] = mapped_column(JSON, default=dict)
    score_configs: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AnnotationItem(Base):
    __tablename__ = "annotation_items"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    queue_id: Mapped[str] = mapped_column(ForeignKey("annotation_queues.id", ondelete="CASCADE"), index=True)
    trace_id: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | done | skipped
    annotated_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Prompt(Base):
    __tablename__ = "prompts"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(40), default=DEFAULT_WORKSPACE)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ux_prompts_ws_name", "workspace_id", "name", unique=True),)


class PromptVersion(Base):
    """An immutable version: never updated after insert."""

    __tablename__ = "prompt_versions"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    prompt_id: Mapped[str] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(10))  # text | chat
    template: Mapped[dict | list | str] = mapped_column(JSON)
    variables: Mapped[list] = mapped_column(JSON, default=list)
    model_config_: Mapped[dict] = mapped_column("model_config", JSON, default=dict)
    message: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ux_prompt_versions", "prompt_id", "version", unique=True),)


class PromptLabel(Base):
    """A movable pointer (``production``, ``staging``, ...) to one version of a prompt."""

    __tablename__ = "prompt_labels"
    prompt_id: Mapped[str] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), primary_key=True)
    label: Mapped[str] = mapped_column(String(50), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class JobRow(Base):
    """A long-running operation (a knowledge-base ingestion, later training and evaluation runs), run by
    the embedded worker pool in whichever process claims it; ``done``/``total`` are its progress."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(40), default=DEFAULT_WORKSPACE)
    kind: Mapped[str] = mapped_column(String(40))
    resource_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued|running|succeeded|failed|cancelled
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    unit: Mapped[str] = mapped_column(String(20), default="items")
    message: Mapped[str] = mapped_column(Text, default="")
    # the same progress as named counts and a phase, for clients that word it themselves (the console)
    progress: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(100), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (Index("ix_jobs_status_created", "status", "created_at"),)


class JobEventRow(Base):
    """Something a job reported along the way (a log line with data), shown by the API and the CLI."""

    __tablename__ = "job_events"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(40), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    level: Mapped[str] = mapped_column(String(10), default="info")  # info|warning|error
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict] = mapped_column(JSON, default=dict)


class JobArtifactRow(Base):
    """A file a job wrote (a report, a model, a dataset); its bytes live in the artifact store."""

    __tablename__ = "job_artifacts"
    job_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)  # relative path, '/'-separated
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class KnowledgeBase(Base):
    """A set of documents searched together, with its chunking, embedding model and retrieval settings."""

    __tablename__ = "knowledge_bases"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(40), default=DEFAULT_WORKSPACE)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    embedding_model: Mapped[str] = mapped_column(String(200))
    dim: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the index's, set at the first embedding
    config: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ux_knowledge_bases_name", "workspace_id", "name", unique=True),)


class KbDocument(Base):
    """One source in a knowledge base (a file, a page, a sheet, a database row).

    Its chunks are written under a new ``generation`` and become visible together when ``live_generation``
    is switched to it, in one transaction: a crash mid-ingestion never shows half a document, and a
    re-ingested document keeps answering from its previous chunks until the new ones are complete.
    """

    __tablename__ = "kb_documents"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kb_id: Mapped[str] = mapped_column(ForeignKey("knowledge_bases.id", ondelete="CASCADE"))
    workspace_id: Mapped[str] = mapped_column(String(40), default=DEFAULT_WORKSPACE)
    source: Mapped[str] = mapped_column(String(1000))  # file name, URL or database source, + "#sheet=..."
    source_type: Mapped[str] = mapped_column(String(20))  # file | url | database
    title: Mapped[str] = mapped_column(String(500), default="")
    media_type: Mapped[str | None] = mapped_column(String(200), nullable=True)
    checksum: Mapped[str] = mapped_column(String(64))  # sha256 of the source bytes
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued|processing|indexed|failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    doc_metadata: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    generation: Mapped[int] = mapped_column(Integer, default=0)  # the one being built (or last built)
    live_generation: Mapped[int] = mapped_column(Integer, default=0)  # 0: nothing visible yet
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    indexed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (Index("ux_kb_documents_source", "kb_id", "source", unique=True),
                      Index("ix_kb_documents_kb_status", "kb_id", "status"))


class KbSource(Base):
    """Where a knowledge base's documents are synced from (a database query), and how far it has read."""

    __tablename__ = "kb_sources"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kb_id: Mapped[str] = mapped_column(ForeignKey("knowledge_bases.id", ondelete="CASCADE"))
    workspace_id: Mapped[str] = mapped_column(String(40), default=DEFAULT_WORKSPACE)
    kind: Mapped[str] = mapped_column(String(20))  # database
    name: Mapped[str] = mapped_column(String(100))  # prefix of its documents' sources: "crm#id=42"
    config: Mapped[dict] = mapped_column(JSON, default=dict)  # url, query, key_column, title_column, group_by
    cursor: Mapped[Any] = mapped_column(JSON, nullable=True)  # the largest key synced
    synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ux_kb_sources_name", "kb_id", "name", unique=True),)


class KbChunk(Base):
    """A chunk of a document: the source of truth every index is built from (its id is the index's)."""

    __tablename__ = "kb_chunks"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    kb_id: Mapped[str] = mapped_column(String(40))
    document_id: Mapped[str] = mapped_column(ForeignKey("kb_documents.id", ondelete="CASCADE"))
    generation: Mapped[int] = mapped_column(Integer)
    ordinal: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(10), default="chunk")  # chunk | parent (never embedded)
    parent_ordinal: Mapped[int | None] = mapped_column(Integer, nullable=True)
    text: Mapped[str] = mapped_column(Text)
    section: Mapped[list] = mapped_column(JSON, default=list)
    page: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    chunk_metadata: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    enrichment: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # summary, keywords, questions

    __table_args__ = (Index("ix_kb_chunks_document", "document_id", "generation", "ordinal"),)


class KbIndexOp(Base):
    """An index change (upsert, delete, publish) made by an ingestion job in another process, waiting for the
    process that owns the knowledge base's embedded index to apply it, in id order (``knowledge/index_ops``)."""

    __tablename__ = "kb_index_ops"
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    kb_id: Mapped[str] = mapped_column(String(40), index=True)
    job_id: Mapped[str] = mapped_column(String(40), index=True)
    op: Mapped[str] = mapped_column(String(10))  # upsert | delete | publish
    body: Mapped[dict] = mapped_column(JSON)
    vectors: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # float32, a row per upserted chunk
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
