"""The embedded runner: job kinds from the hook, jobs in worker processes, CPU slots, progress, events,
artifacts, cancellation (cooperative and forced), and crashes of a worker or of the supervising process."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from temper.config import Settings
from temper.errors import InvalidRequest, NotFound
from temper.hookspecs import hookimpl
from temper.jobs import store
from temper.jobs.artifacts import LocalArtifactStore
from temper.jobs.kinds import JobKind
from temper.jobs.processes import GpuSlots, ProcessRunner
from temper.jobs.runner import gpu_devices, make_runner
from temper.plugins import job_kinds, plugin_manager
from tests.jobs.helpers import alive, builtin_kinds, finished, make_settings, report, started_pids, until, worker_pid

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def runner(settings: Settings) -> Iterator[ProcessRunner]:
    r = ProcessRunner(settings, builtin_kinds(settings), cpus=2, gpu_ids=[], poll_s=0.2, heartbeat_s=0.1,
                      cancel_grace_s=1.0)
    r.start()
    yield r
    r.stop()


def submit(settings: Settings, runner: ProcessRunner | None = None, **spec: object) -> str:
    job = store.submit(settings.db_url, "diag.cpu", spec, unit="steps")
    if runner is not None:
        runner.wake()
    return job["id"]


def test_kinds_come_from_the_hook_and_a_name_registered_twice_fails(settings: Settings) -> None:
    pm = plugin_manager()
    assert job_kinds(pm, settings)["diag.cpu"] == JobKind(
        "diag.cpu", "temper.jobs.builtin:diag_cpu", cpus=1, unit="steps",
        description="Synthetic CPU-bound job: steps × ms_per_step of busy loop, then report.json.")

    class Again:
        @hookimpl
        def register_job_kinds(self, settings: Settings) -> list[JobKind]:
            return [JobKind("diag.cpu", "my_plugin.jobs:run")]

    pm.register(Again())
    with pytest.raises(RuntimeError, match="two plugins register the job kind 'diag.cpu'"):
        job_kinds(pm, settings)
    with pytest.raises(ValueError, match="handler must be 'module:function'"):
        JobKind("x.y", "my_plugin.jobs.run")
    with pytest.raises(ValueError, match="lower-case"):
        JobKind("Train Model", "my_plugin.jobs:run")


def test_the_ray_backend_without_ray_installed_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                                settings: Settings) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    monkeypatch.delitem(sys.modules, "temper.jobs.ray", raising=False)
    with pytest.raises(RuntimeError, match=r"TEMPER_JOBS_BACKEND=ray needs Ray: pip install 'temper\[scale\]'"):
        make_runner(settings.model_copy(update={"jobs_backend": "ray"}), {})


def test_artifact_names_are_checked_and_files_kept_with_their_digest(settings: Settings, tmp_path: Path) -> None:
    arts = LocalArtifactStore(settings.db_url, tmp_path / "artifacts")
    for bad in ("", "../x", "/etc/passwd", "a/../b", "a//b", "a/", ".hidden", "a\\b", "x" * 256, "nul\x00", "a/./b"):
        with pytest.raises(InvalidRequest):
            arts.put("job_1", bad, b"x")
    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom(3_000_000))
    arts.put("job_1", "checkpoints/step 10/weights.bin", source)
    arts.put("job_1", "结果.json", b'{"ok": false}')
    arts.put("job_1", "结果.json", b'{"ok": true}')  # replaced
    listed = {a["name"]: a for a in arts.list("job_1")}
    assert listed["checkpoints/step 10/weights.bin"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert (listed["结果.json"]["size_bytes"], listed["结果.json"]["media_type"]) == (12, "application/json")
    assert arts.open("job_1", "结果.json").read() == b'{"ok": true}'
    assert not [p for p in (tmp_path / "artifacts" / "job_1").rglob(".part-*")]
    with pytest.raises(NotFound):
        arts.path("job_1", "missing.txt")
    assert arts.delete("job_1") == 2
    assert arts.list("job_1") == [] and not (tmp_path / "artifacts" / "job_1").exists()


def test_gpus_are_counted_from_cuda_visible_devices_and_shared_or_taken_whole(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for visible, devices in (("2,3", ["2", "3"]), ("", []), ("-1", []), ("GPU-5d1c", ["GPU-5d1c"])):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        assert gpu_devices() == devices
    gpus = GpuSlots(["2", "3"])
    half = gpus.pick(0.5)
    assert half == ["2"]
    gpus.take(half, 0.5)
    assert gpus.pick(2) is None and gpus.pick(1) == ["3"] and gpus.pick(0.5) == ["2"]
    gpus.give(half, 0.5)
    assert gpus.pick(2) == ["2", "3"]


def test_a_gpu_job_gets_its_device_and_a_worker_of_its_own(settings: Settings) -> None:
    kinds = {"diag.gpu": JobKind("diag.gpu", "temper.jobs.builtin:diag_cpu", cpus=0.5, gpus=1)}
    runner = ProcessRunner(settings, kinds, cpus=2, gpu_ids=["7"], poll_s=0.1, heartbeat_s=0.1)
    ids = [store.submit(settings.db_url, "diag.gpu", {"steps": 5, "ms_per_step": 20})["id"] for _ in range(2)]
    runner.start()
    try:
        jobs = [finished(settings.db_url, i) for i in ids]
    finally:
        runner.stop()
    assert jobs[0]["finished_at"] <= jobs[1]["started_at"]  # one GPU: one at a time, though CPU slots are free
    reports = [report(settings, i) for i in ids]
    assert [r["cuda_visible_devices"] for r in reports] == ["7", "7"]
    assert reports[0]["pid"] != reports[1]["pid"]  # CUDA reads the variable once: a GPU job's worker is not reused


def test_jobs_run_in_worker_processes_with_progress_events_and_a_report(settings: Settings,
                                                                        runner: ProcessRunner) -> None:
    job_id = submit(settings, runner, steps=30, ms_per_step=20)
    partial = until(lambda: 0 < (j := store.get_job(settings.db_url, job_id))["percent"] < 100 and j,
                    what="progress")
    assert (partial["status"], partial["unit"], partial["total"]) == ("running", "steps", 30)
    done = finished(settings.db_url, job_id)
    assert (done["status"], done["percent"], done["artifacts"]) == ("succeeded", 100.0, 1)
    assert done["message"].startswith("30 steps in")
    got = report(settings, job_id)
    assert got["pid"] != os.getpid() and got["pid"] in runner.worker_pids()
    assert started_pids(settings.db_url, job_id) == [got["pid"]]
    assert got["cpu_s"] > 0 and got["steps"] == 30

    failing = submit(settings, runner, steps=5, ms_per_step=1, fail_at=3)
    bad_spec = submit(settings, runner, steps=-1)
    assert finished(settings.db_url, failing)["error"] == "diag.cpu failed at step 3, as its spec asked"
    assert "steps must be a number" in finished(settings.db_url, bad_spec)["error"]
    error = store.list_events(settings.db_url, failing)[-1]
    assert error["level"] == "error" and "RuntimeError" in error["data"]["traceback"]


def test_concurrency_is_bounded_by_the_cpu_slots(settings: Settings, runner: ProcessRunner) -> None:
    ids = [submit(settings, runner, steps=8, ms_per_step=40) for _ in range(3)]
    jobs = [finished(settings.db_url, i) for i in ids]
    assert all(j["status"] == "succeeded" for j in jobs)
    edges = sorted([(j["started_at"], 1) for j in jobs] + [(j["finished_at"], -1) for j in jobs],
                   key=lambda e: (e[0], e[1]))
    running, most = 0, 0
    for _, step in edges:
        running += step
        most = max(most, running)
    assert most == 2  # two at a time on two slots, never three
    assert len({report(settings, i)["pid"] for i in ids}) == 2  # two warm workers served all three


def test_cancel_a_job_that_stops_and_one_that_ignores_the_cancel(settings: Settings, runner: ProcessRunner) -> None:
    polite = submit(settings, runner, steps=100_000, ms_per_step=10)
    stubborn = submit(settings, runner, steps=100_000, ms_per_step=10, ignore_cancel=True)
    polite_pid, stubborn_pid = worker_pid(settings.db_url, polite), worker_pid(settings.db_url, stubborn)
    store.cancel(settings.db_url, polite)
    store.cancel(settings.db_url, stubborn)
    assert finished(settings.db_url, polite)["message"] == "cancelled"  # at its next progress report
    got = finished(settings.db_url, stubborn)
    assert (got["status"], got["message"]) == ("cancelled", "cancelled (stopped after ignoring the cancel for 1 s)")
    until(lambda: not alive(stubborn_pid), 5, "the stubborn job's worker to be killed")
    assert alive(polite_pid) and polite_pid in runner.worker_pids()  # a cooperative cancel keeps the worker
    after = submit(settings, runner, steps=2, ms_per_step=1)
    assert finished(settings.db_url, after)["status"] == "succeeded"


def test_a_job_whose_worker_process_is_killed_is_retried_by_a_new_worker(settings: Settings,
                                                                         runner: ProcessRunner) -> None:
    job_id = submit(settings, runner, steps=20, ms_per_step=20)
    first = worker_pid(settings.db_url, job_id)
    os.kill(first, signal.SIGKILL)
    done = finished(settings.db_url, job_id)
    assert (done["status"], done["attempts"]) == ("succeeded", 2)
    second = report(settings, job_id)["pid"]
    assert started_pids(settings.db_url, job_id) == [first, second] and second != first
    assert first not in runner.worker_pids()


SUPERVISOR = """
import sys, time
from temper.config import Settings
from temper.jobs.processes import ProcessRunner
from tests.jobs.helpers import builtin_kinds
s = Settings(home=sys.argv[1], log_level="warning")
r = ProcessRunner(s, builtin_kinds(s), cpus=2, gpu_ids=[], poll_s=0.1, heartbeat_s=0.2)
r.start()
while len(r.busy) < 2:
    time.sleep(0.02)
print(*r.worker_pids(), flush=True)
time.sleep(600)
"""


def test_workers_exit_when_the_supervising_process_is_killed(settings: Settings) -> None:
    ids = [submit(settings, steps=40, ms_per_step=10) for _ in range(2)]
    proc = subprocess.Popen([sys.executable, "-c", SUPERVISOR, str(settings.home)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(p) for p in pids)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    until(lambda: not any(alive(p) for p in pids), 5, "the orphaned workers to exit")
    assert {store.get_job(settings.db_url, i)["status"] for i in ids} == {"running"}  # until someone recovers them

    recovering = ProcessRunner(settings, builtin_kinds(settings), cpus=2, gpu_ids=[], poll_s=0.1, heartbeat_s=0.1,
                               stale_after_s=0.3)
    recovering.start()
    try:
        done = [finished(settings.db_url, i) for i in ids]
    finally:
        recovering.stop()
    assert [(j["status"], j["attempts"]) for j in done] == [("succeeded", 2), ("succeeded", 2)]
