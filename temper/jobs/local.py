"""The embedded job runner: a pool of worker threads in this process that claim jobs from the database.

Handlers are plain functions of a ``JobContext``, registered by job kind. Jobs submitted by another
process (the CLI) are found by polling every ``poll_s``; ``wake()`` makes a local submission start at once.
Threads suit the work here: the heavy parts (parsing libraries, the embedding engine, SQLite, the
vector index) release the GIL.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from temper.jobs import store
from temper.jobs.context import Cancelled  # one class for both runners' handlers
from temper.store.tables import JobRow

log = logging.getLogger("temper.jobs")


class JobContext:
    """What a handler sees: its job's payload, and a throttled way to report progress."""

    def __init__(self, db: str, job: JobRow, report_every_s: float = 0.25) -> None:
        self.db = db
        self.job_id = job.id
        self.kind = job.kind
        self.workspace_id = job.workspace_id
        self.resource_id = job.resource_id
        self.payload: dict[str, Any] = job.payload
        self.attempt = job.attempts
        self.report_every_s = report_every_s
        self.done, self.total = job.done, job.total
        self._last = 0.0

    def progress(self, done: int | None = None, total: int | None = None, message: str | None = None, *,
                 force: bool = False) -> None:
        """Update progress; written at most every ``report_every_s`` unless ``force``. Raises ``Cancelled``."""
        self.done = self.done if done is None else done
        self.total = self.total if total is None else total
        now = time.monotonic()
        if not force and now - self._last < self.report_every_s and (self.total == 0 or self.done < self.total):
            return
        self._last = now
        if store.report(self.db, self.job_id, self.done, self.total, message):
            raise Cancelled()


Handler = Callable[[JobContext], str | None]  # returns the final message


class LocalRunner:
    def __init__(self, db: str, handlers: dict[str, Handler], *, workers: int = 2, poll_s: float = 1.0,
                 heartbeat_s: float = 5.0, stale_after_s: float = 30.0) -> None:
        self.db = db
        self.handlers = handlers
        self.workers = workers
        self.poll_s = poll_s
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.running: set[str] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        store.recover_stale(self.db, self.stale_after_s)
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"temper-job-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._beat, name="temper-job-heartbeat", daemon=True)
        t.start()
        self._threads.append(t)

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout_s)

    def run(self, job_id: str) -> bool:
        """Run one queued job in the calling thread (the CLI does this); False if another worker has it."""
        job = store.claim(self.db, self.name, list(self.handlers), job_id)
        if job is None:
            return False
        self._run(job)
        return True

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                job = store.claim(self.db, self.name, list(self.handlers))
            except Exception:  # noqa: BLE001 - the database is briefly unavailable; try again later
                log.exception("claiming a job failed")
                job = None
            if job is None:
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            self._run(job)

    def _run(self, job: JobRow) -> None:
        ctx = JobContext(self.db, job)
        self.running.add(job.id)
        try:
            message = self.handlers[job.kind](ctx)
        except Cancelled:
            store.finish(self.db, job.id, "cancelled", message="cancelled")
        except Exception as e:  # noqa: BLE001 - a failed job is recorded, the worker goes on
            log.exception("job %s (%s) failed", job.id, job.kind)
            store.finish(self.db, job.id, "failed", error=str(e) or e.__class__.__name__)
        else:
            store.finish(self.db, job.id, "succeeded", message=message or "done")
        finally:
            self.running.discard(job.id)

    def _beat(self) -> None:
        """Heartbeats for the jobs running here, and recovery of jobs whose worker died elsewhere."""
        while not self._stop.wait(self.heartbeat_s):
            try:
                store.heartbeat(self.db, list(self.running))
                if store.recover_stale(self.db, self.stale_after_s):
                    self._wake.set()
            except Exception:  # noqa: BLE001
                log.exception("job heartbeat failed")
