"""A well-behaved client's latency with and without an abusive client on the same server (issue 17).

The well-behaved client (its own key, one request at a time) cycles through ``/health``, a management read
(``/api/v1/usage``), a chat relayed to a remote model (the shared harness's mock upstream), a short embedding
and a short chat on the packaged local models. The abusive client (another key) meanwhile sends what the
outside probe sent: 1 MB embedding inputs and 256 long ones (giving up after 5 s), chats with ``n`` = 8 ×
``max_tokens`` = 1024, 10 MB prompts, wrong-password sign-ins from 16 threads, and 200 connections sending
their headers one byte a second, each thread pausing 0.1 s between requests. The abuser is a process of its
own at nice 19 (its client-side work stands for another machine's). Phases alternate over ``--rounds``; the
figure is each kind's p99 under abuse against its p99 alone, measured in the same run.

    .venv/bin/python benchmarks/abuse.py --rounds 2 --seconds 30
"""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_out import MODEL, mock_upstream, server, set_up, temper_env  # noqa: E402

ABUSES = ("embeddings", "chat", "prompt", "signin", "trickle")
PAUSE_S = 0.1  # between one abusive thread's requests: abusive content, not a packet flood (a proxy's job)
KINDS = ("health", "management", "remote chat", "local embedding", "local chat")


def well_behaved(url: str, key: str, admin: dict[str, str]) -> list[tuple[str, Callable[[httpx.Client], object]]]:
    auth = {"Authorization": f"Bearer {key}"}
    return [
        ("health", lambda c: c.get(url + "/health")),
        ("management", lambda c: c.get(url + "/api/v1/usage?days=1", headers=admin)),
        ("remote chat", lambda c: c.post(url + "/v1/chat/completions", headers=auth, json={
            "model": MODEL, "messages": [{"role": "user", "content": "hi"}]})),
        ("local embedding", lambda c: c.post(url + "/v1/embeddings", headers=auth, json={
            "model": "multilingual-e5-small", "input": "how do I install a package?"})),
        ("local chat", lambda c: c.post(url + "/v1/chat/completions", headers=auth, json={
            "model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8})),
    ]


def measure(url: str, key: str, admin: dict[str, str], seconds: float) -> dict[str, list[float]]:
    calls = well_behaved(url, key, admin)
    out: dict[str, list[float]] = {k: [] for k in KINDS}
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=120) as client:
        while time.monotonic() < deadline:
            for kind, call in calls:
                t0 = time.perf_counter()
                r = call(client)
                out[kind].append(time.perf_counter() - t0)
                if r.status_code != 200:  # type: ignore[attr-defined]
                    raise RuntimeError(f"the well-behaved {kind} call failed: {r.status_code} {r.text[:200]}")  # type: ignore[attr-defined]
    return out


def _loop(stop: threading.Event, work: Callable[[], object]) -> None:
    while not stop.is_set():
        try:
            work()
        except (httpx.HTTPError, OSError):
            pass  # the abuser gives up, or the server refuses it: both expected
        time.sleep(PAUSE_S)


def _trickle(url: str, stop: threading.Event) -> None:
    """A connection that sends its request line and headers one byte a second."""
    host, port = url.removeprefix("http://").split(":")
    while not stop.is_set():
        try:
            with socket.create_connection((host, int(port)), timeout=5) as s:
                for byte in b"POST /api/v1/knowledge-bases HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n":
                    if stop.is_set():
                        return
                    s.sendall(bytes([byte]))
                    time.sleep(1)
        except OSError:
            time.sleep(0.5)


def run_abuser(url: str, key: str, kinds: str) -> None:
    """The abusive client, in a process of its own (so its threads do not slow the measuring one), until
    killed; its bodies are encoded once."""
    stop = threading.Event()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def post(path: str, body: dict, timeout: float = 5) -> Callable[[], object]:
        raw = json.dumps(body).encode()
        return lambda: httpx.post(url + path, headers=headers, content=raw, timeout=timeout)

    signin = json.dumps({"username": "admin", "password": "wrong"}).encode()
    work = {"embeddings": [post("/v1/embeddings", {"model": "multilingual-e5-small", "input": "word " * 200_000}),
                           post("/v1/embeddings", {"model": "multilingual-e5-small",
                                                   "input": ["word " * 600] * 256})],
            "chat": [post("/v1/chat/completions", {"model": "smollm2-135m-instruct", "n": 8, "max_tokens": 1024,
                                                   "messages": [{"role": "user", "content": "Write a long story."}]},
                          120)],
            "prompt": [post("/v1/chat/completions", {"model": "smollm2-135m-instruct",
                                                     "messages": [{"role": "user", "content": "word " * 2_000_000}]},
                            30)],
            "signin": [lambda: httpx.post(url + "/api/v1/auth/session", content=signin, timeout=30,
                                          headers={"Content-Type": "application/json"})] * 16}
    chosen = kinds.split(",")
    threads = [threading.Thread(target=_loop, args=(stop, w), daemon=True)
               for kind in chosen for w in work.get(kind, [])]
    if "trickle" in chosen:
        threads += [threading.Thread(target=_trickle, args=(url, stop), daemon=True) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@contextmanager
def abuse(url: str, key: str, kinds: str) -> Iterator[None]:
    # nice 19: on a 2-core box the abuser's own client work must not pass for the server's (it would run on
    # another machine); what it sends is unchanged
    proc = subprocess.Popen(["nice", "-n", "19", sys.executable, __file__, "--abuser", url, key, kinds])
    time.sleep(3)  # let the abuse build up
    try:
        yield
    finally:
        proc.kill()  # its connections close: the server stops its work at the next token or turn
        proc.wait()
        time.sleep(2)


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98] if len(values) > 1 else values[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=30, help="length of each phase")
    ap.add_argument("--abuse", default=",".join(ABUSES), help=f"what the abuser sends, of {','.join(ABUSES)}")
    ap.add_argument("--abuser-tpm", type=int, help="a tokens-per-minute limit on the abuser's key")
    ap.add_argument("--abuser", nargs=3, metavar=("URL", "KEY", "KINDS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.abuser:
        return run_abuser(*args.abuser)
    with tempfile.TemporaryDirectory(prefix="temper-abuse-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        upstream = stack.enter_context(mock_upstream(work))
        env = temper_env(work / "home", {"TEMPER_RUN_JOBS": "false"})
        set_up(env, upstream)
        url = stack.enter_context(server(env, work / "server.log"))
        admin = {"Authorization": "Bearer " + (work / "home" / "admin_key").read_text().strip()}
        keys = [httpx.post(url + "/api/v1/keys", headers=admin, json={"name": name, **limits}).json()["key"]
                for name, limits in (("well-behaved", {}), ("abusive", {"tpm": args.abuser_tpm} if args.abuser_tpm
                                                                       else {}))]
        measure(url, keys[0], admin, 5)  # warm: models loaded
        phases: dict[str, dict[str, list[float]]] = {"alone": {k: [] for k in KINDS},
                                                     "abused": {k: [] for k in KINDS}}
        for r in range(args.rounds):
            for phase in ("alone", "abused") if r % 2 == 0 else ("abused", "alone"):
                with abuse(url, keys[1], args.abuse) if phase == "abused" else ExitStack():
                    for kind, values in measure(url, keys[0], admin, args.seconds).items():
                        phases[phase][kind] += values
        report = {kind: {"p50_alone_ms": statistics.median(phases["alone"][kind]) * 1000,
                         "p99_alone_ms": p99(phases["alone"][kind]) * 1000,
                         "p50_abused_ms": statistics.median(phases["abused"][kind]) * 1000,
                         "p99_abused_ms": p99(phases["abused"][kind]) * 1000,
                         "p99_ratio": p99(phases["abused"][kind]) / p99(phases["alone"][kind]),
                         "calls": (len(phases["alone"][kind]), len(phases["abused"][kind]))} for kind in KINDS}
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
