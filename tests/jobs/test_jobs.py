"""The job store's guarantees, which every runner relies on: one claimant per job, and recovery of a dead
worker's job that never undoes a newer claim (several replicas recover at the same time)."""
from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from temper.jobs import store
from temper.store.db import migrate, session
from temper.store.tables import JobRow, utcnow


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    migrate(url)
    return url


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


def _age(db: str, job_id: str, seconds: float) -> None:
    with session(db) as s:
        s.execute(update(JobRow).where(JobRow.id == job_id).values(heartbeat_at=utcnow() - timedelta(seconds=seconds)))


def test_a_stale_job_is_requeued_once_and_a_newer_claim_is_left_alone(db: str) -> None:
    job = store.submit(db, "test.x", {})
    store.claim(db, "dead", ["test.x"])
    with session(db) as s:  # what a slow replica read while the first attempt was running
        seen = s.get(JobRow, job["id"])
        s.expunge(seen)
    _age(db, job["id"], 60)
    assert store.recover_stale(db, 30) == [job["id"]]
    assert store.recover_stale(db, 30) == []  # a second replica finds nothing left to do
    again = store.claim(db, "alive", ["test.x"])
    assert again is not None and again.attempts == 2
    with session(db) as s:  # the slow replica acts on its old read: the second attempt keeps running
        assert store._retry_or_fail(s, seen) is None
    got = store.get_job(db, job["id"])
    assert (got["status"], got["attempts"]) == ("running", 2)


def test_a_heartbeat_after_the_read_saves_the_job(db: str) -> None:
    job = store.submit(db, "test.x", {})
    store.claim(db, "slow", ["test.x"])
    _age(db, job["id"], 60)
    store.heartbeat(db, [job["id"]])  # it was only slow: alive again before the recovery's update
    time.sleep(0.01)
    assert store.recover_stale(db, 30) == []
    assert store.get_job(db, job["id"])["status"] == "running"
