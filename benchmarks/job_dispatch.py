"""Job dispatch overhead: an empty job (diag.cpu with steps=0) from submit to done, per runner backend.

For each backend (the embedded worker processes, then Ray on a local cluster it starts) in a fresh SQLite
database: latency of one job at a time (created_at → finished_at of its row, as the runner wrote them: no
polling error), then throughput of a burst submitted at once (first submit → last finished).

    python benchmarks/job_dispatch.py                 # both backends, 200 jobs one at a time, a burst of 500
    python benchmarks/job_dispatch.py --backends local --serial 500
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from temper.config import Settings
from temper.jobs import store
from temper.jobs.runner import Runner, cpu_slots, make_runner
from temper.plugins import job_kinds, plugin_manager
from temper.store.db import migrate, session
from temper.store.tables import JobRow, as_utc


def wait_all(db: str, ids: list[str], timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with session(db) as s:
            left = s.scalar(select(func.count()).where(JobRow.id.in_(ids), JobRow.status.not_in(store.FINISHED)))
        if not left:
            return
        time.sleep(0.001 if len(ids) == 1 else 0.01)
    raise TimeoutError("jobs did not finish")


def latencies_ms(db: str, ids: list[str]) -> list[float]:
    with session(db) as s:
        rows = s.execute(select(JobRow.created_at, JobRow.finished_at, JobRow.status).where(JobRow.id.in_(ids)))
        out = []
        for created, finished, status in rows:
            assert status == "succeeded" and finished is not None, status
            out.append((as_utc(finished) - as_utc(created)).total_seconds() * 1000)
    return out


def measure(runner: Runner, db: str, serial: int, burst: int) -> tuple[list[float], float]:
    def one() -> str:
        job_id = store.submit(db, "diag.cpu", {"steps": 0})["id"]
        runner.wake()
        return job_id

    for _ in range(20):  # warm: workers started, handler imported
        wait_all(db, [one()])
    ids = []
    for _ in range(serial):
        ids.append(one())
        wait_all(db, ids[-1:])
    t0 = time.perf_counter()
    burst_ids = [one() for _ in range(burst)]
    wait_all(db, burst_ids)
    return latencies_ms(db, ids), burst / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="local,ray")
    ap.add_argument("--serial", type=int, default=200, help="jobs submitted one at a time (latency)")
    ap.add_argument("--burst", type=int, default=500, help="jobs submitted at once (throughput)")
    args = ap.parse_args()
    rows = []
    for backend in args.backends.split(","):
        home = Path(tempfile.mkdtemp(prefix=f"temper-bench-{backend}-"))
        settings = Settings(home=home, jobs_backend=backend, log_level="warning")
        migrate(settings.db_url)
        runner = make_runner(settings, job_kinds(plugin_manager(), settings))
        t0 = time.perf_counter()
        runner.start()
        started_s = time.perf_counter() - t0
        try:
            lat, rate = measure(runner, settings.db_url, args.serial, args.burst)
        finally:
            runner.stop()
        q = statistics.quantiles(lat, n=100)
        rows.append((backend, started_s, q[49], q[94], rate))
    print(f"\nempty job (diag.cpu steps=0), {args.serial} one at a time, a burst of {args.burst}; "
          f"{cpu_slots(Settings()):g} CPU slots\n")
    print("| backend | start s | submit→done p50 ms | p95 ms | burst jobs/s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for backend, started_s, p50, p95, rate in rows:
        print(f"| {backend} | {started_s:.2f} | {p50:.1f} | {p95:.1f} | {rate:.0f} |")


if __name__ == "__main__":
    main()
