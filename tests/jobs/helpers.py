"""What the runner tests share: settings in a temp home, the built-in kinds, waiting on job rows and pids."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temper.config import Settings
from temper.jobs import store
from temper.jobs.artifacts import artifact_store
from temper.plugins import job_kinds, plugin_manager
from temper.store.db import migrate


def make_settings(home: Path) -> Settings:
    s = Settings(home=home, log_level="warning")
    migrate(s.db_url)
    return s


def builtin_kinds(settings: Settings) -> dict[str, Any]:
    return job_kinds(plugin_manager(), settings)


def until(check: Callable[[], Any], timeout_s: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if got := check():
            return got
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def finished(db: str, job_id: str, timeout_s: float = 20) -> dict[str, Any]:
    return until(lambda: (j := store.get_job(db, job_id))["status"] in store.FINISHED and j, timeout_s,
                 f"job {job_id} to finish")


def started_pids(db: str, job_id: str) -> list[int]:
    """The pid of each attempt of a diag.cpu job (from its "started" events)."""
    return [e["data"]["pid"] for e in store.list_events(db, job_id) if e["message"] == "started"]


def worker_pid(db: str, job_id: str, attempt: int = 1) -> int:
    return until(lambda: len(pids := started_pids(db, job_id)) >= attempt and pids[attempt - 1],
                 what=f"job {job_id} to start")


def report(settings: Settings, job_id: str) -> dict[str, Any]:
    return json.loads(artifact_store(settings).path(job_id, "report.json").read_text())


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie nobody reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
