"""The embedded runner: jobs run in worker processes of the server, never in its threads, so a CPU-heavy job
cannot stall the server's event loop.

A supervisor thread claims jobs while their kind's CPUs and GPUs fit the free slots and hands each to a warm
worker (``temper.jobs.worker``, a fresh interpreter: never forked from a process with threads and an event
loop, and not ``multiprocessing``'s spawn, which re-imports the server's whole ``__main__`` in every worker).
Idle workers stay warm so that a job starts in milliseconds; one that dies is replaced, and its job requeued
or failed by the store's attempt rules. A job of a kind with GPUs gets a worker of its own, started with
``CUDA_VISIBLE_DEVICES`` naming the devices it was given, and retired after it.
"""
from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection, wait
from typing import Any

from temper.config import Settings
from temper.jobs import store
from temper.jobs.context import ClaimedJob
from temper.jobs.kinds import JobKind
from temper.jobs.runner import EPS, Running, SupervisedRunner, gpu_devices

IDLE_RETIRE_S = 300.0  # idle workers beyond the first are stopped after this long


class Worker:
    """One worker process and the supervisor's end of its socket pair."""

    def __init__(self, settings: Settings, db: str, gpu_ids: list[str] | None = None) -> None:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        if gpu_ids is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_ids)
        self.proc = subprocess.Popen([sys.executable, "-m", "temper.jobs.worker", str(theirs.fileno()),
                                      str(os.getpid())], pass_fds=(theirs.fileno(),), env=env,
                                     stdin=subprocess.DEVNULL)
        theirs.close()
        self.conn = Connection(ours.detach())
        self.conn.send((settings, db))
        self.gpu_ids = gpu_ids
        self.job_id: str | None = None
        self.idle_since = time.monotonic()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def run(self, job: ClaimedJob, handler: str) -> None:
        self.job_id = job.id
        self.conn.send((job, handler))

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.conn.close()

    def close(self, timeout_s: float = 2.0) -> None:
        try:
            self.conn.send(None)
            self.proc.wait(timeout_s)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.conn.close()


class GpuSlots:
    """GPU devices and the share of each that is free: a job with ``n ≥ 1`` GPUs takes ``ceil(n)`` whole
    devices, one with a fraction shares a device with others."""

    def __init__(self, devices: list[str]) -> None:
        self.free = {d: 1.0 for d in devices}

    def pick(self, need: float) -> list[str] | None:
        """Devices that can take ``need`` now (None: they cannot), without taking them."""
        if need <= 0:
            return []
        if need < 1:
            return next(([d] for d, f in self.free.items() if f + EPS >= need), None)
        whole = [d for d, f in self.free.items() if f + EPS >= 1][:math.ceil(need)]
        return whole if len(whole) == math.ceil(need) else None

    def take(self, devices: list[str], need: float) -> None:
        for d in devices:
            self.free[d] -= min(need, 1.0)

    def give(self, devices: list[str], need: float) -> None:
        for d in devices:
            self.free[d] += min(need, 1.0)


class ProcessRunner(SupervisedRunner):
    backend = "processes"

    def __init__(self, settings: Settings, kinds: dict[str, JobKind], db: str | None = None, *,
                 gpu_ids: list[str] | None = None, **kw: Any) -> None:
        devices = gpu_devices() if gpu_ids is None else gpu_ids
        super().__init__(settings, kinds, db, gpus=float(len(devices)), **kw)
        self.gpu_slots = GpuSlots(devices)
        self.idle: list[Worker] = []
        self.busy: dict[str, Worker] = {}  # by job id
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)

    def wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):  # already woken (or stopped)
            pass

    def worker_pids(self) -> list[int]:
        return [w.pid for w in [*self.idle, *self.busy.copy().values()]]

    def _warm(self) -> None:
        """Keep one idle worker ready. Workers start in the supervisor thread only: PR_SET_PDEATHSIG follows
        the thread that started them."""
        if not self.idle and not self._stop.is_set():
            self.idle.append(Worker(self.settings, self.db))

    def _fits(self, kind: JobKind) -> bool:
        return super()._fits(kind) and self.gpu_slots.pick(kind.gpus) is not None

    def _launch(self, run: Running) -> None:
        devices = self.gpu_slots.pick(run.gpus) or []
        if devices:
            self.gpu_slots.take(devices, run.gpus)
            worker = Worker(self.settings, self.db, devices)
        else:
            worker = self.idle.pop() if self.idle else Worker(self.settings, self.db)
        run.handle = worker
        self.busy[run.job.id] = worker
        try:
            worker.run(run.job, run.kind.handler)
        except OSError:  # it died since it last answered
            worker.kill()
            raise

    def _ended(self, job_id: str) -> Running | None:
        run = super()._ended(job_id)
        worker = self.busy.pop(job_id, None)
        if worker is not None:
            worker.job_id = None
            worker.idle_since = time.monotonic()
            if worker.gpu_ids:
                self.gpu_slots.give(worker.gpu_ids, run.gpus if run else 0)
        return run

    def _wait(self, timeout_s: float) -> None:
        workers = {w.conn: w for w in [*self.idle, *self.busy.values()]}
        for ready in wait([*workers, self._wake_r], timeout_s):
            if ready is self._wake_r:
                self._wake_r.recv(4096)
                continue
            worker = workers[ready]  # type: ignore[index]
            try:
                _, job_id, _status = worker.conn.recv()
            except (EOFError, OSError):
                self._died(worker)
                continue
            self._ended(job_id)
            if worker.gpu_ids:
                worker.close()  # CUDA_VISIBLE_DEVICES is read once per process: not reused
            else:
                self.idle.append(worker)

    def _died(self, worker: Worker) -> None:
        """A worker's socket closed: it exited. The warm worker is replaced at the next heartbeat (not at
        once: a worker that cannot start would be restarted in a tight loop)."""
        worker.kill()
        if worker in self.idle:
            self.idle.remove(worker)
        if worker.job_id is not None:
            run = self._ended(worker.job_id)
            if run is not None:
                self._lost(run, f"its worker process {worker.pid} died (exit status {worker.proc.returncode})")

    def _kill(self, run: Running) -> None:
        worker: Worker = run.handle
        worker.kill()
        self._ended(run.job.id)

    def _beat_extra(self) -> None:
        self._warm()
        now = time.monotonic()
        for worker in self.idle[1:]:
            if now - worker.idle_since > IDLE_RETIRE_S:
                self.idle.remove(worker)
                worker.close()

    def _shutdown(self) -> None:
        """Stop every worker; a job still running goes back to the queue (its attempt not counted)."""
        for job_id, worker in list(self.busy.items()):
            worker.kill()
            store.release(self.db, job_id)
            self._ended(job_id)
        for worker in self.idle:
            worker.close()
        self.idle.clear()
        self._wake_r.close()
        self._wake_w.close()
