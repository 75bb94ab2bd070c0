"""The Ray runner on a real local Ray cluster: progress, events and artifacts from a Ray task, cancellation
(cooperative, then forced after the grace period), and a killed Ray worker's job retried."""
from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from temper.config import Settings
from temper.jobs import store
from tests.jobs.helpers import builtin_kinds, finished, make_settings, report, started_pids, until, worker_pid

ray = pytest.importorskip("ray")
from temper.jobs.ray import RayRunner  # after the skip: it needs ray


@pytest.fixture(scope="module")  # Ray stops after these tests, not at the end of the suite
def ray_cluster() -> Iterator[Any]:
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def runner(ray_cluster: Any, settings: Settings) -> Iterator[RayRunner]:
    r = RayRunner(settings, builtin_kinds(settings), poll_s=0.2, heartbeat_s=0.1, cancel_grace_s=1.0)
    r.start()
    yield r
    r.stop()


def submit(settings: Settings, runner: RayRunner, **spec: object) -> str:
    job_id = store.submit(settings.db_url, "diag.cpu", spec, unit="steps")["id"]
    runner.wake()
    return job_id


def test_a_job_runs_as_a_ray_task_with_progress_events_and_a_report(settings: Settings, runner: RayRunner) -> None:
    assert (runner.cpus, runner.owns_ray) == (2.0, False)  # used the cluster this process had joined
    job_id = submit(settings, runner, steps=30, ms_per_step=20)
    partial = until(lambda: 0 < (j := store.get_job(settings.db_url, job_id))["percent"] < 100 and j,
                    what="progress")
    assert partial["status"] == "running"
    done = finished(settings.db_url, job_id)
    assert (done["status"], done["percent"], done["artifacts"]) == ("succeeded", 100.0, 1)
    got = report(settings, job_id)
    assert got["pid"] != os.getpid() and started_pids(settings.db_url, job_id) == [got["pid"]]


def test_cancel_on_ray_cooperative_and_forced(settings: Settings, runner: RayRunner) -> None:
    polite = submit(settings, runner, steps=100_000, ms_per_step=10)
    stubborn = submit(settings, runner, steps=100_000, ms_per_step=10, ignore_cancel=True)
    worker_pid(settings.db_url, polite), worker_pid(settings.db_url, stubborn)
    store.cancel(settings.db_url, polite)
    store.cancel(settings.db_url, stubborn)
    assert finished(settings.db_url, polite)["message"] == "cancelled"
    got = finished(settings.db_url, stubborn)
    assert (got["status"], got["message"]) == ("cancelled", "cancelled (stopped after ignoring the cancel for 1 s)")
    until(lambda: not runner.running(), 10, "the force-cancelled task to end")
    after = submit(settings, runner, steps=2, ms_per_step=1)
    assert finished(settings.db_url, after)["status"] == "succeeded"


def test_a_job_whose_ray_worker_is_killed_is_retried(settings: Settings, runner: RayRunner) -> None:
    job_id = submit(settings, runner, steps=20, ms_per_step=20)
    first = worker_pid(settings.db_url, job_id)
    os.kill(first, signal.SIGKILL)
    done = finished(settings.db_url, job_id, timeout_s=30)
    assert (done["status"], done["attempts"]) == ("succeeded", 2)
    assert report(settings, job_id)["pid"] != first
