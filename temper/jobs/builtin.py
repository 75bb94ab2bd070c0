"""The built-in job kinds, registered through the plugin hook like any third-party kind.

``diag.cpu`` is a synthetic job for checking a runner: it busy-loops in pure Python (so it really holds a
core), reports progress every step and writes a JSON report naming the process that ran it (and the GPUs
it was given). ``steps: 0`` is
the empty job (no progress, no event, no artifact) that measures dispatch overhead; ``fail_at`` fails it at
a step, and ``ignore_cancel`` makes it a job that does not stop when cancelled (its worker gets killed).
"""
from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

from temper.config import Settings
from temper.hookspecs import hookimpl
from temper.jobs.context import Cancelled, JobContext
from temper.jobs.kinds import JobKind


@hookimpl
def register_job_kinds(settings: Settings) -> list[JobKind]:
    return [JobKind("diag.cpu", "temper.jobs.builtin:diag_cpu", cpus=1, unit="steps",
                    description="Synthetic CPU-bound job: steps × ms_per_step of busy loop, then report.json.")]


def _number(spec: dict[str, Any], name: str, default: float) -> float:
    value = spec.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"diag.cpu: {name} must be a number ≥ 0, not {value!r}")
    return value


def diag_cpu(spec: dict[str, Any], ctx: JobContext) -> str:
    steps = int(_number(spec, "steps", 10))
    seconds_per_step = _number(spec, "ms_per_step", 100) / 1000
    fail_at = spec.get("fail_at")
    if steps == 0:
        return "empty job"

    def progress(step: int) -> None:
        try:
            ctx.progress(step, steps, f"step {step} of {steps}", force=step == 0)
        except Cancelled:
            if not spec.get("ignore_cancel"):
                raise

    ctx.event("started", pid=os.getpid(), host=socket.gethostname(), attempt=ctx.attempt)
    progress(0)
    wall, cpu = time.perf_counter(), time.process_time()
    x = 0
    for step in range(1, steps + 1):
        until = time.perf_counter() + seconds_per_step
        while time.perf_counter() < until:
            x = (x * 31 + step) % 1_000_003
        if step == fail_at:
            raise RuntimeError(f"diag.cpu failed at step {step}, as its spec asked")
        progress(step)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    report = {"pid": os.getpid(), "host": socket.gethostname(), "attempt": ctx.attempt, "steps": steps,
              "ms_per_step": seconds_per_step * 1000, "wall_s": round(wall, 4), "cpu_s": round(cpu, 4),
              "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    ctx.artifacts.put("report.json", json.dumps(report, indent=2).encode(), "application/json")
    return f"{steps} steps in {wall:.2f} s ({cpu / max(wall, 1e-9):.0%} of a core)"
