"""The ``kb.sync`` job: read a database source's new rows as documents, then ingest what changed.

Rows are read incrementally (key column greater than the source's cursor). Each row (or group) becomes a
document named ``<source name>#<key>``; its records are stored as parsed blocks (JSON), so ingestion needs no
parser and a retry needs no second query. The cursor moves once every row read is registered, and a rerun
after a crash also ingests the documents an earlier attempt registered but did not finish.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from temper.knowledge import pipeline, store
from temper.knowledge.limits import Limits, clip
from temper.knowledge.sources.database import MEDIA_TYPE, check_not_studio, encode, read_documents, source_of
from temper.models.client import ModelClient
from temper.ops import tracing

if TYPE_CHECKING:
    from temper.jobs.context import JobContext
    from temper.knowledge.job_env import JobEnv


def _later(a: Any, b: Any) -> Any:
    """The larger of two cursors (None is smallest)."""
    if a is None:
        return b
    try:
        return b if b > a else a
    except TypeError:  # mixed types in the key column: compare as text
        return b if str(b) > str(a) else a


def run(env: JobEnv, ctx: JobContext, source_id: str) -> str:
    config, cursor = store.source_config(env.db, source_id)
    kb_id, name = config["kb_id"], config["name"]
    source = source_of(config)
    check_not_studio(source.url, env.db, env.settings.home_dir)  # also for sources stored before this check
    read = changed = 0
    title_chars = Limits.of(env.settings).title_chars
    with tracing.span(f"sync {name}", "ingest", {"temper.kb.id": kb_id, "temper.source": name,
                                                   "temper.job.id": ctx.job_id,
                                                   **ModelClient.caller_attributes()}) as span:
        for row in read_documents(source, since=cursor):
            data = encode(row.document)
            doc, needed = store.add_document(env.db, kb_id, name + row.key, source_type="database",
                                             checksum=row.checksum, size_bytes=len(data),
                                             title=clip(row.title, title_chars),
                                             media_type=MEDIA_TYPE, metadata=config.get("metadata") or {})
            if needed:
                env.blobs.put(kb_id, doc["id"], data)
                changed += 1
            read += 1
            cursor = _later(cursor, row.max_key)
            ctx.progress(message=f"read {read} documents from {name} ({changed} new or changed)",
                         detail={"phase": "reading", "source": name, "documents_read": read,
                                 "documents_changed": changed})
        store.synced(env.db, source_id, cursor)
        span.set({"temper.sync.read": read, "temper.sync.changed": changed})
    pending = store.pending_of_source(env.db, kb_id, name)
    if not pending:
        return f"read {read} documents, none new or changed"
    return f"read {read} documents; " + pipeline.IngestJob(env, ctx, kb_id, pending).run()
