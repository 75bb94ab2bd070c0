"""The job store and the embedded runner: concurrency, progress, failure, cancellation, crash recovery."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from temper.jobs import store
from temper.jobs.local import JobContext, LocalRunner
from temper.store.db import migrate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    migrate(url)
    return url


def wait_for(db: str, job_id: str, statuses: tuple[str, ...], timeout_s: float = 20) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = store.get_job(db, job_id)
        if job["status"] in statuses:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {store.get_job(db, job_id)['status']}")


def test_jobs_run_concurrently_with_progress(db: str) -> None:
    both_running = threading.Barrier(2, timeout=10)  # only passes if two handlers run at the same time

    def ingest(ctx: JobContext) -> str:
        both_running.wait()
        for i in range(1, 6):
            ctx.progress(i, 5, f"chunk {i}")
        return f"{ctx.payload['name']} done"

    runner = LocalRunner(db, {"test.ingest": ingest}, workers=2, poll_s=0.05)
    jobs = [store.submit(db, "test.ingest", {"name": n}, unit="chunks") for n in ("a", "b")]
    runner.start()
    try:
        finished = [wait_for(db, j["id"], store.FINISHED) for j in jobs]
    finally:
        runner.stop()
    assert [(j["status"], j["done"], j["total"], j["percent"], j["message"]) for j in finished] == [
        ("succeeded", 5, 5, 100.0, "a done"), ("succeeded", 5, 5, 100.0, "b done")]
    assert all(j["attempts"] == 1 and j["unit"] == "chunks" for j in finished)


def test_a_failing_job_records_its_error_and_the_worker_goes_on(db: str) -> None:
    def work(ctx: JobContext) -> str:
        if ctx.payload["fail"]:
            raise ValueError("The file is encrypted.")
        return "ok"

    runner = LocalRunner(db, {"test.work": work}, workers=1, poll_s=0.05)
    bad = store.submit(db, "test.work", {"fail": True})
    good = store.submit(db, "test.work", {"fail": False})
    runner.start()
    try:
        assert wait_for(db, bad["id"], store.FINISHED)["error"] == "The file is encrypted."
        assert wait_for(db, good["id"], store.FINISHED)["status"] == "succeeded"
    finally:
        runner.stop()
    assert store.get_job(db, bad["id"])["status"] == "failed"


def test_cancel_a_queued_and_a_running_job(db: str) -> None:
    started = threading.Event()

    def endless(ctx: JobContext) -> str:
        started.set()
        i = 0
        while True:
            i += 1
            ctx.progress(i, 0, force=True)
            time.sleep(0.01)

    runner = LocalRunner(db, {"test.endless": endless}, workers=1, poll_s=0.05)
    running = store.submit(db, "test.endless", {})
    runner.start()
    try:
        assert started.wait(10)
        queued = store.submit(db, "test.endless", {})  # the only worker is busy: it stays queued
        assert store.cancel(db, queued["id"])["status"] == "cancelled"
        store.cancel(db, running["id"])
        assert wait_for(db, running["id"], store.FINISHED)["status"] == "cancelled"
    finally:
        runner.stop()
    assert store.get_job(db, queued["id"])["started_at"] is None


def test_a_claim_is_won_by_exactly_one_worker(db: str) -> None:
    ids = {store.submit(db, "test.x", {})["id"] for _ in range(30)}
    won: list[str] = []

    def claimer(name: str) -> None:
        while (job := store.claim(db, name, ["test.x"])) is not None:
            won.append(job.id)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == sorted(ids)


CRASHING_WORKER = """
import sys, time
from temper.jobs.local import LocalRunner
def slow(ctx):
    ctx.progress(1, 10, "first batch", force=True)
    print("claimed", flush=True)
    time.sleep(60)
LocalRunner(sys.argv[1], {"test.slow": slow}, workers=1).run(sys.argv[2])
"""


def test_a_job_whose_worker_is_killed_is_retried_by_another(db: str) -> None:
    job = store.submit(db, "test.slow", {"n": 10})
    worker = subprocess.Popen([sys.executable, "-c", CRASHING_WORKER, db, job["id"]], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    assert worker.stdout is not None and worker.stdout.readline().strip() == "claimed"
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    assert store.get_job(db, job["id"])["status"] == "running"  # nobody knows yet that its worker died

    def quick(ctx: JobContext) -> str:
        ctx.progress(10, 10)
        return f"finished on attempt {ctx.attempt}"

    runner = LocalRunner(db, {"test.slow": quick}, workers=1, poll_s=0.05, heartbeat_s=0.1, stale_after_s=0.5)
    runner.start()
    try:
        done = wait_for(db, job["id"], store.FINISHED)
    finally:
        runner.stop()
    assert (done["status"], done["message"], done["attempts"]) == ("succeeded", "finished on attempt 2", 2)
