"""What a job handler sees (``JobContext``), and running one claimed job to its recorded outcome (``run_job``).

Everything here works in any process that reaches the database: a worker process of the server, a Ray worker
on another machine. A handler gets no server objects and no event loop; it reports progress, events and
artifacts through the context, which writes them to the database and the artifact store itself.
"""
from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from typing import Any

from temper.config import Settings
from temper.jobs import store
from temper.jobs.artifacts import JobArtifacts, artifact_store
from temper.jobs.kinds import load_handler
from temper.ops import tracing
from temper.store.tables import JobRow

log = logging.getLogger("temper.jobs")


class Cancelled(Exception):
    """Raised inside a handler (by ``progress``) when the job was cancelled."""


@dataclass(frozen=True)
class ClaimedJob:
    """A claimed job as it travels to the process that runs it."""

    id: str
    kind: str
    workspace_id: str
    resource_id: str | None
    attempt: int
    spec: dict[str, Any]
    done: int
    total: int

    @classmethod
    def of(cls, row: JobRow) -> ClaimedJob:
        return cls(row.id, row.kind, row.workspace_id, row.resource_id, row.attempts, row.payload, row.done,
                   row.total)


class JobContext:
    """A running job: its spec, and throttled progress that raises ``Cancelled`` once a cancel was asked."""

    def __init__(self, job: ClaimedJob, settings: Settings, *, db: str | None = None,
                 report_every_s: float = 0.25) -> None:
        self.job_id = job.id
        self.kind = job.kind
        self.workspace_id = job.workspace_id
        self.resource_id = job.resource_id
        self.attempt = job.attempt
        self.spec = job.spec
        self.settings = settings
        self.db = db or settings.db_url
        self.report_every_s = report_every_s
        self.done, self.total = job.done, job.total
        self._last_report = 0.0
        self._last_check = 0.0
        self._cancelled = False
        self._artifacts: JobArtifacts | None = None
        self._models: Any = None

    def progress(self, done: int | None = None, total: int | None = None, message: str | None = None, *,
                 force: bool = False, detail: dict[str, Any] | None = None) -> None:
        """Update progress; written at most every ``report_every_s`` unless ``force`` or complete. ``detail``
        is the job's ``progress`` in the API: what ``message`` says, as a phase and named counts."""
        self.done = self.done if done is None else done
        self.total = self.total if total is None else total
        now = time.monotonic()
        if not force and now - self._last_report < self.report_every_s and (self.total == 0 or self.done < self.total):
            return
        self._last_report = self._last_check = now
        self._cancelled = store.report(self.db, self.job_id, self.done, self.total, message,
                                       detail) or self._cancelled
        if self._cancelled:
            raise Cancelled()

    def cancelled(self) -> bool:
        """Whether someone asked to cancel this job (read at most every ``report_every_s``)."""
        now = time.monotonic()
        if not self._cancelled and now - self._last_check >= self.report_every_s:
            self._last_check = now
            self._cancelled = store.cancel_requested(self.db, self.job_id)
        return self._cancelled

    def event(self, message: str, *, level: str = "info", **data: Any) -> None:
        """Append an event (``level`` info, warning or error) with JSON-serialisable ``data``."""
        store.add_event(self.db, self.job_id, message, level=level, data=data)

    @property
    def artifacts(self) -> JobArtifacts:
        if self._artifacts is None:
            self._artifacts = JobArtifacts(artifact_store(self.settings, self.db), self.job_id)
        return self._artifacts

    @property
    def models(self) -> Any:
        """A client of the model plaza acting for this job (made at first use)."""
        if self._models is None:
            from temper.models.client import job_model_client

            self._models = job_model_client(self)
        return self._models

    def close(self) -> None:
        """Release what the job made at first use (its model client)."""
        close = getattr(self._models, "close", None)
        self._models = None
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001 - the job's outcome stands
                log.exception("closing the model client of job %s failed", self.job_id)


_spans: Any = None  # this process's span exporter, when jobs installed it


def _record_spans(settings: Settings) -> None:
    """Send the spans jobs make in this process to the span store, as the server does, unless something
    already records them here; made at the first job (its writer is a thread: a worker runs one job at a time)."""
    global _spans
    if _spans is not None or not settings.tracing or tracing.active():
        return
    from temper.ops.exporter import from_settings
    from temper.plugins import plugin_manager

    _spans = from_settings(settings.model_copy(update={"trace_writer": "thread"}), plugin_manager())
    _spans.start()
    tracing.install(_spans)


def run_job(job: ClaimedJob, handler: str, settings: Settings, db: str | None = None) -> str:
    """Run a claimed job's handler (``"module:function"``) and record how it ended; the status written."""
    _record_spans(settings)
    ctx = JobContext(job, settings, db=db)
    try:
        message = load_handler(handler)(job.spec, ctx)
    except Cancelled:
        status, error, message = "cancelled", None, "cancelled"
    except Exception as e:  # noqa: BLE001 - a failed job is recorded, the worker goes on
        log.exception("job %s (%s) failed", job.id, job.kind)
        status, error, message = "failed", str(e) or e.__class__.__name__, None
        ctx.event(f"failed: {error}", level="error", traceback=traceback.format_exc(limit=20))
    else:
        status, error, message = "succeeded", None, message or "done"
    finally:
        ctx.close()
        if _spans is not None:
            _spans.flush()  # the job's trace is complete when its status says it ended
    store.finish(ctx.db, job.id, status, error=error, message=message)
    return status
