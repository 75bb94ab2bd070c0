"""The ``kb.sync`` job: read a database source's new rows as documents, then ingest what changed.

Rows are read incrementally (key column greater than the source's cursor). Each row (or group) becomes a
document named ``<source name>#<key>``; its records are stored as parsed blocks (JSON), so ingestion needs no
parser and a retry needs no second query. The cursor moves once every row read is registered, and a rerun
after a crash also ingests the documents an earlier attempt registered but did not finish.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import orjson

from temper.errors import InvalidRequest
from temper.jobs.local import JobContext
from temper.knowledge import pipeline, store
from temper.knowledge.sources.database import DatabaseSource, read_documents
from temper.knowledge.types import Block, ParsedDocument
from temper.ops import tracing

if TYPE_CHECKING:
    from temper.knowledge.service import KnowledgeService

JOB_KIND = "kb.sync"
MEDIA_TYPE = "application/x-temper-records+json"
CONFIG_FIELDS = ("url", "query", "key_column", "title_column", "group_by")


def encode(doc: ParsedDocument) -> bytes:
    return orjson.dumps(dataclasses.asdict(doc))


def decode(data: bytes) -> ParsedDocument:
    d = orjson.loads(data)
    return ParsedDocument(d["title"], [Block(**b) for b in d["blocks"]], d["metadata"], d["source_suffix"])


def source_of(config: dict[str, Any]) -> DatabaseSource:
    missing = [k for k in ("url", "query", "key_column") if not config.get(k)]
    if missing:
        raise InvalidRequest(f"A database source needs {', '.join(missing)}.", param=missing[0])
    return DatabaseSource(**{k: config.get(k) for k in CONFIG_FIELDS})


def _later(a: Any, b: Any) -> Any:
    """The larger of two cursors (None is smallest)."""
    if a is None:
        return b
    try:
        return b if b > a else a
    except TypeError:  # mixed types in the key column: compare as text
        return b if str(b) > str(a) else a


def run(service: KnowledgeService, ctx: JobContext) -> str:
    config, cursor = store.source_config(service.db, ctx.payload["source_id"])
    kb_id, name = config["kb_id"], config["name"]
    source = source_of(config)
    read = changed = 0
    with tracing.span(f"sync {name}", "ingest", {"temper.kb.id": kb_id, "temper.source": name,
                                                   "temper.job.id": ctx.job_id,
                                                   **service.models.caller_attributes()}) as span:
        for row in read_documents(source, since=cursor):
            data = encode(row.document)
            doc, needed = store.add_document(service.db, kb_id, name + row.key, source_type="database",
                                             checksum=row.checksum, size_bytes=len(data), title=row.title,
                                             media_type=MEDIA_TYPE, metadata=config.get("metadata") or {})
            if needed:
                service.blobs.put(kb_id, doc["id"], data)
                changed += 1
            read += 1
            cursor = _later(cursor, row.max_key)
            ctx.progress(message=f"read {read} documents from {name} ({changed} new or changed)")
        store.synced(service.db, ctx.payload["source_id"], cursor)
        span.set({"temper.sync.read": read, "temper.sync.changed": changed})
    pending = store.pending_of_source(service.db, kb_id, name)
    if not pending:
        return f"read {read} documents, none new or changed"
    return f"read {read} documents; " + pipeline.IngestJob(service, ctx, kb_id, pending).run()
