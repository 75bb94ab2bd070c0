"""The knowledge package's job kinds, registered through ``register_job_kinds`` like any plugin's: they run in
a worker process of the server or as Ray tasks, acting (and metered) for whoever started them."""
from __future__ import annotations

from typing import Any

from temper.config import Settings
from temper.hookspecs import hookimpl
from temper.jobs.context import JobContext
from temper.jobs.kinds import JobKind
from temper.knowledge import pipeline, sync
from temper.knowledge.job_env import JobEnv

INGEST = "kb.ingest"
SYNC = "kb.sync"


@hookimpl
def register_job_kinds(settings: Settings) -> list[JobKind]:
    return [JobKind(INGEST, "temper.knowledge.jobs:ingest", cpus=1, unit="chunks",
                    description="Parse, chunk, embed and index a knowledge base's queued documents."),
            JobKind(SYNC, "temper.knowledge.jobs:sync_source", cpus=1, unit="chunks",
                    description="Read a database source's new rows as documents, then ingest them.")]


def ingest(spec: dict[str, Any], ctx: JobContext) -> str:
    env = JobEnv(ctx)
    try:
        return pipeline.IngestJob(env, ctx, spec["kb_id"], list(spec["document_ids"])).run()
    finally:
        env.close()


def sync_source(spec: dict[str, Any], ctx: JobContext) -> str:
    env = JobEnv(ctx)
    try:
        return sync.run(env, ctx, spec["source_id"])
    finally:
        env.close()
