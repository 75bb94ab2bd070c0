"""Runners of the registered job kinds, behind one small interface, with the supervision loop they share.

A runner claims queued jobs of its kinds from the database (``store.claim``), so the row stays the truth and
several runners (servers, a Ray driver, the knowledge package's thread pool) share one queue without taking
each other's jobs. The embedded backend (``processes``) runs each job in a worker process of the server; the
``ray`` backend runs it as a task on a Ray cluster. Both run the same handler with the same ``JobContext``.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from temper.config import Settings
from temper.jobs import store
from temper.jobs.context import ClaimedJob
from temper.jobs.kinds import JobKind

log = logging.getLogger("temper.jobs")
EPS = 1e-9  # slack when adding up fractional slots


class Runner(Protocol):
    kinds: dict[str, JobKind]

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def wake(self) -> None:
        """A job was just submitted: look for work now rather than at the next poll."""

    def running(self) -> list[str]:
        """Ids of the jobs running now."""


def make_runner(settings: Settings, kinds: dict[str, JobKind], db: str | None = None) -> Runner:
    """The runner TEMPER_JOBS_BACKEND names (not started)."""
    if settings.jobs_backend == "ray":
        from temper.jobs.ray import RayRunner

        return RayRunner(settings, kinds, db)
    from temper.jobs.processes import ProcessRunner

    return ProcessRunner(settings, kinds, db)


def cpu_slots(settings: Settings) -> float:
    """TEMPER_JOB_CPUS, or the cores this process may run on."""
    return settings.job_cpus or float(len(os.sched_getaffinity(0)))


def gpu_devices() -> list[str]:
    """The GPUs jobs may use, as CUDA_VISIBLE_DEVICES names them: that variable's list when set, else the
    devices ``nvidia-smi -L`` lists; none without either."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(ln for ln in out.splitlines() if ln.startswith("GPU "))]


@dataclass
class Running:
    job: ClaimedJob
    kind: JobKind
    cpus: float
    gpus: float
    handle: Any = None  # the backend's: a worker process, a Ray object ref
    cancel_seen: float | None = None  # when the supervisor first saw a cancel request
    killed: bool = False  # stopped by the supervisor after the grace period (already recorded as cancelled)


class SupervisedRunner:
    """The loop both backends share, in one supervisor thread: claim queued jobs of the registered kinds while
    their slots fit, heartbeat the running ones, stop a cancelled job that keeps running past the grace
    period, and requeue the jobs of workers that died anywhere (``store.recover_stale``).

    A backend implements ``wake``, ``_launch`` (start a claimed job), ``_wait`` (until a job ended, ``wake()``
    or the timeout; calling ``_ended`` for each job that ended), ``_kill`` and ``_shutdown``.
    """

    backend = "runner"

    def __init__(self, settings: Settings, kinds: dict[str, JobKind], db: str | None = None, *,
                 cpus: float | None = None, gpus: float = 0, poll_s: float = 1.0,
                 heartbeat_s: float | None = None, stale_after_s: float | None = None,
                 cancel_grace_s: float | None = None) -> None:
        self.settings = settings
        self.kinds = kinds
        self.db = db or settings.db_url
        self.cpus = cpus if cpus is not None else cpu_slots(settings)
        self.gpus = gpus
        self.poll_s = poll_s
        self.stale_after_s = stale_after_s or settings.job_stale_after_s
        self.heartbeat_s = heartbeat_s or min(5.0, self.stale_after_s / 3)
        self.cancel_grace_s = cancel_grace_s or settings.job_cancel_grace_s
        self.name = f"{socket.gethostname()}:{os.getpid()}:{self.backend}:{uuid.uuid4().hex[:6]}"
        self.jobs: dict[str, Running] = {}  # changed by the supervisor thread only
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the interface ----------------------------------------------------------------------------------

    def start(self) -> None:
        store.recover_stale(self.db, self.stale_after_s)
        self._open()
        for kind in self.kinds.values():
            if kind.gpus > self.gpus + EPS:
                log.warning("job kind %s needs %s GPUs and this %s runner has %s: its jobs wait for another runner",
                            kind.name, kind.gpus, self.backend, self.gpus)
        self._thread = threading.Thread(target=self._supervise, name=f"temper-jobs-{self.backend}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def running(self) -> list[str]:
        return list(self.jobs.copy())

    def wake(self) -> None:
        raise NotImplementedError

    # --- what a backend implements ----------------------------------------------------------------------

    def _open(self) -> None:
        """Prepare in the caller's thread of ``start()``, so that a failure is raised there."""

    def _launch(self, run: Running) -> None:
        raise NotImplementedError

    def _wait(self, timeout_s: float) -> None:
        raise NotImplementedError

    def _kill(self, run: Running) -> None:
        raise NotImplementedError

    def _shutdown(self) -> None:
        raise NotImplementedError

    def _beat_extra(self) -> None:
        """Backend housekeeping at each heartbeat."""

    # --- the loop ---------------------------------------------------------------------------------------

    def _supervise(self) -> None:
        next_beat = 0.0
        try:
            while not self._stop.is_set():
                try:
                    now = time.monotonic()
                    if now >= next_beat:
                        self._beat()
                        next_beat = now + self.heartbeat_s
                    self._claim()
                    self._wait(max(0.0, min(self.poll_s, next_beat - time.monotonic())))
                except Exception:  # noqa: BLE001 - e.g. the database is briefly unavailable: try again
                    log.exception("the %s job runner's loop failed; retrying", self.backend)
                    self._stop.wait(1.0)
        finally:
            self._shutdown()

    def _need(self, kind: JobKind) -> tuple[float, float]:
        """The slots one job of ``kind`` takes here: a kind asking for more CPUs than there are runs alone."""
        return min(kind.cpus, self.cpus), kind.gpus

    def _fits(self, kind: JobKind) -> bool:
        cpus, gpus = self._need(kind)
        used_cpus = sum(r.cpus for r in self.jobs.values())
        used_gpus = sum(r.gpus for r in self.jobs.values())
        return used_cpus + cpus <= self.cpus + EPS and used_gpus + gpus <= self.gpus + EPS

    def _claim(self) -> None:
        while not self._stop.is_set():
            fitting = [k.name for k in self.kinds.values() if self._fits(k)]
            row = store.claim(self.db, self.name, fitting) if fitting else None
            if row is None:
                return
            job = ClaimedJob.of(row)
            kind = self.kinds[job.kind]
            run = Running(job, kind, *self._need(kind))
            self.jobs[job.id] = run
            try:
                self._launch(run)
            except Exception as e:  # noqa: BLE001 - the job is retried (or failed) like one whose worker died
                log.exception("starting job %s failed", job.id)
                self._ended(job.id)
                self._lost(run, f"it could not be started ({e})")

    def _beat(self) -> None:
        cancelled = store.heartbeat(self.db, self.running())
        now = time.monotonic()
        for job_id in cancelled:
            run = self.jobs[job_id]
            if run.cancel_seen is None:
                run.cancel_seen = now
            elif now - run.cancel_seen >= self.cancel_grace_s and not run.killed:
                log.warning("job %s ignored its cancel for %.0f s: stopping it", job_id, now - run.cancel_seen)
                run.killed = True
                store.finish(self.db, job_id, "cancelled", message=f"cancelled (stopped after ignoring the "
                             f"cancel for {self.cancel_grace_s:g} s)")
                self._kill(run)
        store.recover_stale(self.db, self.stale_after_s)
        self._beat_extra()

    def _ended(self, job_id: str) -> Running | None:
        """Free a job's slots."""
        return self.jobs.pop(job_id, None)

    def _lost(self, run: Running, why: str) -> None:
        """A job whose worker died: requeued, or failed after ``store.MAX_ATTEMPTS`` (unless we stopped it)."""
        if not run.killed:
            requeued = store.worker_died(self.db, run.job.id)
            log.warning("job %s (%s): %s; %s", run.job.id, run.kind.name, why,
                        "requeued" if requeued else "not retried")
