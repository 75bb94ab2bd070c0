"""The scale-out runner: each claimed job runs as a Ray task with its kind's ``num_cpus``/``num_gpus``.

Claims, heartbeats and the cancel grace are the shared supervision loop's (``runner.SupervisedRunner``); the
task runs the same handler with the same ``JobContext`` as a worker process would, writing progress, events
and artifacts itself. So every node of a cluster must reach the database (PostgreSQL, not a SQLite file) and
the artifact directory (TEMPER_ARTIFACTS_DIR on shared storage), and have Temper and the plugins installed.
A task that dies (its worker killed, its node lost) leaves the job to the store's attempt rules: Ray's own
retries are off. Ray is the optional extra ``temper[scale]``; only this module imports it.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from temper.config import Settings
from temper.jobs import store
from temper.jobs.context import ClaimedJob, run_job
from temper.jobs.kinds import JobKind
from temper.jobs.runner import Running, SupervisedRunner

try:
    import ray
    from ray.exceptions import RayError
except ImportError as e:
    raise RuntimeError("TEMPER_JOBS_BACKEND=ray needs Ray: pip install 'temper[scale]'") from e

POLL_RUNNING_S = 0.05  # how often the supervisor looks for new work while tasks run


@ray.remote(max_retries=0)
def run_task(job: ClaimedJob, handler: str, settings: Settings, db: str) -> str:
    return run_job(job, handler, settings, db)


class RayRunner(SupervisedRunner):
    backend = "ray"

    def __init__(self, settings: Settings, kinds: dict[str, JobKind], db: str | None = None, **kw: Any) -> None:
        super().__init__(settings, kinds, db, **kw)
        self.address = settings.ray_address
        self.owns_ray = False  # we called ray.init: ray.shutdown at stop (which stops a cluster it started)
        self.refs: dict[Any, str] = {}  # object ref -> job id
        self._wake = threading.Event()

    def _open(self) -> None:
        """Join TEMPER_RAY_ADDRESS, or start a local cluster with the job CPU slots (unless this process
        already joined one, as a Ray driver program does)."""
        if not ray.is_initialized():
            ray.init(address=self.address, num_cpus=None if self.address else max(1, round(self.cpus)),
                     include_dashboard=False, logging_level=logging.ERROR)
            self.owns_ray = True
        self._resources()

    def _resources(self) -> None:
        """The cluster's CPU and GPU totals are this runner's slots (nodes come and go)."""
        total = ray.cluster_resources()
        self.cpus, self.gpus = float(total.get("CPU", 0)), float(total.get("GPU", 0))

    def wake(self) -> None:
        self._wake.set()

    def _launch(self, run: Running) -> None:
        ref = run_task.options(num_cpus=run.cpus, num_gpus=run.gpus, name=f"{run.kind.name}:{run.job.id}").remote(
            run.job, run.kind.handler, self.settings, self.db)
        run.handle = ref
        self.refs[ref] = run.job.id

    def _wait(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self._wake.is_set() and (left := deadline - time.monotonic()) > 0:
            if not self.refs:
                self._wake.wait(left)
                break
            ready, rest = ray.wait(list(self.refs), num_returns=1, timeout=min(left, POLL_RUNNING_S))
            if ready:
                if rest:
                    ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
                self._collect(ready)
                return
        self._wake.clear()

    def _collect(self, ready: list[Any]) -> None:
        for ref in ready:
            run = self._ended(self.refs.pop(ref))
            try:
                ray.get(ref)
            except RayError as e:
                if run is not None:
                    self._lost(run, f"its Ray task ended with {e.__class__.__name__}")

    def _kill(self, run: Running) -> None:
        ray.cancel(run.handle, force=True)

    def _beat_extra(self) -> None:
        self._resources()

    def _shutdown(self) -> None:
        """Cancel the tasks still running (their jobs go back to the queue); stop the cluster if we started it."""
        for ref, job_id in self.refs.items():
            ray.cancel(ref, force=True)
            store.release(self.db, job_id)
            self._ended(job_id)
        self.refs.clear()
        if self.owns_ray:
            ray.shutdown()
