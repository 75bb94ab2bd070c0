"""Tracing overhead: the same Temper gateway with tracing off and on, in short paired bursts.

This VM's speed drifts by up to 50% within minutes, which swamps a 10% effect when each mode runs
for a whole scenario. So both gateways run at once (idle in turn, each on CPU 0), and the load
alternates between them in short bursts: off, on, on, off, off, on, ... Each burst is measured as
the CPU time per request of the gateway's whole process group (all threads, and the span writer
process), of the gateway process alone, and of its event-loop thread, read after the span exporter
has drained; and as RPS. The overhead is the median over the pairs of on/off ratios, so drift cancels
within each pair. The mock upstream and the load generator (the shared harness in
../shared/bench_gateway) run on CPU 1. The span writer process shares CPU 0 unless --writer-cpus
moves it (a server with a core to spare).

    python benchmarks/tracing_overhead.py                        # non-stream and stream, c=32
    python benchmarks/tracing_overhead.py --pairs 30 --requests 4000 --scenarios ns
    python benchmarks/tracing_overhead.py --writer-cpus 1        # the span writer on the other core
    python benchmarks/tracing_overhead.py --writer thread        # spans written by a thread in the server
    python benchmarks/tracing_overhead.py --sample-rate 0.1      # TEMPER_TRACE_SAMPLE_RATE on the traced one

Writes benchmarks/results/tracing-<time>/overhead.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS = Path(os.environ.get("BENCH_GATEWAY_DIR", ROOT.parent / "shared" / "bench_gateway"))
KEY, MODEL = "sk-bench-1234567890", "mock-model"
GATEWAY_CPU, AUX_CPUS = {0}, {1}
sys.path.insert(0, str(HARNESS))
from bench import proc_group_stats  # noqa: E402 - the shared harness is not a package


def wait_ready(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up in {timeout_s:.0f} s")


def start(cmd: list[str], env: dict[str, str], cpus: set[int]) -> subprocess.Popen:
    return subprocess.Popen(cmd, env={**os.environ, **env}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: os.sched_setaffinity(0, cpus))


def exporter_stats(port: int, home: Path) -> dict:
    """The traced gateway's span exporter counters (spans dropped or failed would flatter the figures)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/traces/exporter",
                                 headers={"authorization": f"Bearer {(home / 'admin_key').read_text().strip()}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def burst(port: int, stream: bool, requests: int, concurrency: int) -> dict:
    cmd = [sys.executable, str(HARNESS / "loadgen.py"), "--base-url", f"http://127.0.0.1:{port}/v1",
           "--api-key", KEY, "--model", MODEL, "-c", str(concurrency), "-n", str(requests), "--warmup", "0"]
    if stream:
        cmd.append("--stream")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         preexec_fn=lambda: os.sched_setaffinity(0, AUX_CPUS))
    return json.loads(out.stdout)


def _stat(path: str) -> list[str]:
    """The fields of a /proc .../stat file after the command name (field 3 onwards)."""
    with open(path) as f:
        return f.read().rsplit(")", 1)[1].split()


def _cpu(stat_path: str) -> float:
    fields = _stat(stat_path)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def group_members(pgid: int) -> list[int]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if int(_stat(f"/proc/{pid}/stat")[2]) == pgid:
                out.append(int(pid))
        except (OSError, ValueError):
            continue
    return out


def measure(pid: int, port: int, stream: bool, requests: int, concurrency: int, settle_s: float) -> dict:
    """CPU per request of the gateway's whole process group (its span writer included), of the gateway
    process alone, and of its main thread (the event loop; it has the process's id)."""
    def sample() -> tuple[float, float, float]:
        return proc_group_stats(pid)[0], _cpu(f"/proc/{pid}/stat"), _cpu(f"/proc/{pid}/task/{pid}/stat")

    before = sample()
    r = burst(port, stream, requests, concurrency)
    time.sleep(settle_s)  # the span exporter drains every 0.5 s: its work counts against this burst
    if r.get("errors"):
        raise SystemExit(f"errors under load: {r.get('first_error')}")
    after = sample()
    per = [(a - b) * 1000 / r["ok"] for a, b in zip(after, before)]
    return {"rps": r["rps"], "cpu_ms_per_req": per[0], "process_cpu_ms_per_req": per[1],
            "loop_cpu_ms_per_req": per[2]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--requests", type=int, default=3000, help="per burst")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--scenarios", default="ns,s", help="ns (non-stream), s (stream, 20 chunks)")
    ap.add_argument("--settle", type=float, default=1.2, help="seconds after a burst before reading CPU")
    ap.add_argument("--writer", choices=("process", "thread"), default="process", help="TEMPER_TRACE_WRITER")
    ap.add_argument("--sample-rate", type=float, default=1.0, help="TEMPER_TRACE_SAMPLE_RATE of the traced gateway")
    ap.add_argument("--writer-cpus", default="", help="pin the span writer process to these CPUs (e.g. 1); by "
                    "default it shares the gateway's")
    a = ap.parse_args()
    out = ROOT / "benchmarks" / "results" / f"tracing-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    out.mkdir(parents=True)
    work = Path(tempfile.mkdtemp(prefix="temper-tracing-bench-"))
    mock_port, ports = 18091, {"off": 18092, "on": 18093}
    procs = [start([sys.executable, str(HARNESS / "mock_upstream.py"), "--port", str(mock_port)], {}, AUX_CPUS)]
    try:
        wait_ready(f"http://127.0.0.1:{mock_port}/health")
        pids = {}
        for mode, port in ports.items():
            env = {"GATEWAY_PORT": str(port), "MOCK_BASE_URL": f"http://127.0.0.1:{mock_port}/v1",
                   "BENCH_WORKDIR": str(work / mode), "BENCH_API_KEY": KEY, "BENCH_MODEL": MODEL,
                   "TEMPER_TRACING": "true" if mode == "on" else "false", "TEMPER_TRACE_WRITER": a.writer,
                   "TEMPER_TRACE_SAMPLE_RATE": str(a.sample_rate)}
            (work / mode).mkdir()
            p = start(["bash", str(ROOT / "benchmarks" / "gateways" / "temper.sh")], env, GATEWAY_CPU)
            procs.append(p)
            wait_ready(f"http://127.0.0.1:{port}/health")
            pids[mode] = p.pid  # its own session: the process group id
        results: dict[str, list[dict]] = {}
        for scenario in a.scenarios.split(","):
            stream = scenario == "s"
            for mode, port in ports.items():  # warm both (connections, caches, the first SQLite pages)
                burst(port, stream, a.requests // 2, a.concurrency)
            if a.writer_cpus and a.writer == "process":
                time.sleep(a.settle)  # the writer starts with the first batch
                for child in group_members(pids["on"]):
                    if child != pids["on"]:
                        os.sched_setaffinity(child, {int(c) for c in a.writer_cpus.split(",")})
            pairs = results[scenario] = []
            for i in range(a.pairs):
                order = ("off", "on") if i % 2 == 0 else ("on", "off")
                pair = {m: measure(pids[m], ports[m], stream, a.requests, a.concurrency, a.settle) for m in order}
                pairs.append(pair)
                print(f"{scenario} pair {i + 1}/{a.pairs}: rps {pair['off']['rps']:.0f} → {pair['on']['rps']:.0f}, "
                      f"CPU ms/req {pair['off']['cpu_ms_per_req']:.3f} → {pair['on']['cpu_ms_per_req']:.3f} "
                      f"(process {pair['off']['process_cpu_ms_per_req']:.3f} → {pair['on']['process_cpu_ms_per_req']:.3f}, "
                      f"event loop {pair['off']['loop_cpu_ms_per_req']:.3f} → {pair['on']['loop_cpu_ms_per_req']:.3f})",
                      flush=True)
        exporter = exporter_stats(ports["on"], work / "on" / "temper-home")
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            p.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    (out / "overhead.json").write_text(json.dumps(results, indent=1))
    lines = [f"Paired bursts: {a.pairs} pairs × {a.requests} requests, c={a.concurrency}; medians over pairs; "
             f"span writer: {a.writer}" + (f", on CPU {a.writer_cpus or 'of the gateway'}" if a.writer == "process"
                                            else "") + f"; sample rate {a.sample_rate:g}.", "",
             "| scenario | RPS off | RPS on | RPS on/off (median of pairs) | CPU ms/req off | CPU ms/req on "
             "| CPU on/off (median of pairs) | CPU on/off, middle half of pairs | gateway process only, on/off "
             "| event-loop thread CPU ms/req off → on |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for scenario, pairs in results.items():
        rps = sorted(p["on"]["rps"] / p["off"]["rps"] for p in pairs)
        cpu = sorted(p["on"]["cpu_ms_per_req"] / p["off"]["cpu_ms_per_req"] for p in pairs)
        process = statistics.median(p["on"]["process_cpu_ms_per_req"] / p["off"]["process_cpu_ms_per_req"]
                                    for p in pairs)
        q = len(cpu) // 4
        med = lambda mode, k: statistics.median(p[mode][k] for p in pairs)  # noqa: E731
        lines.append(f"| {'stream' if scenario == 's' else 'non-stream'} | {med('off', 'rps'):,.0f} | "
                     f"{med('on', 'rps'):,.0f} | {statistics.median(rps):.3f} | {med('off', 'cpu_ms_per_req'):.3f} | "
                     f"{med('on', 'cpu_ms_per_req'):.3f} | {statistics.median(cpu):.3f} | "
                     f"{cpu[q]:.3f}–{cpu[-q - 1]:.3f} | {process:.3f} | {med('off', 'loop_cpu_ms_per_req'):.3f} → "
                     f"{med('on', 'loop_cpu_ms_per_req'):.3f} |")
    lines += ["", "Span exporter of the traced gateway at the end: " + ", ".join(
        f"{k} {exporter[k]:,}" for k in ("accepted", "exported", "dropped", "errors", "sampled_out"))]
    (out / "overhead.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
