"""Trace and analytics query latency over a large store (SQLite by default).

Fills a fresh database with N spans through the real export path (SpanStoreSink: 1 trace row per root plus
its child spans), arriving in time order over 7 days, 6 models, 40 keys, 3% errors, Chinese and English inputs,
and one usage row per trace (what metering writes for each call: Usage and Analytics count those); then times
the queries the console and the API run: trace lists with filters, one trace as a tree, analytics.

    python benchmarks/trace_query.py --spans 1000000      # ~1M spans: a few minutes to fill
    python benchmarks/trace_query.py --db sqlite:////tmp/spans.db --reuse   # query an existing fill again
"""
from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import insert

from temper.ops.analytics import CallFilter, stats
from temper.ops.span_store import SpanStoreSink
from temper.ops import tracing
from temper.ops.tracing import Finished, Span
from temper.ops.traces import TraceFilter, get_trace, list_traces, now_us
from temper.store.db import get_engine, migrate
from temper.store.tables import UsageRecord

MODELS = ["qwen3-8b", "smollm2-135m-instruct", "gpt-4o-mini", "deepseek-v3", "glm-4", "multilingual-e5-small"]
TOPICS = ["保险理赔需要哪些材料", "合同终止条款怎么写", "how do I reset my password", "summarise this report",
          "退货政策是什么", "extract the invoice total", "营业时间", "what is the refund window"]
DAY_US = 86_400_000_000


def fill(db: str, n_spans: int, seed: int = 7) -> int:
    rng = random.Random(seed)
    sink = SpanStoreSink(db)
    end = now_us()
    first = end - 7 * DAY_US
    step = 7 * DAY_US / (n_spans / 2.6)  # traces arrive in time order, as they do in a running server
    made = traces = 0
    batch: list[Finished] = []
    calls: list[dict] = []
    tracing.install(type("Batch", (), {"put": staticmethod(batch.append)})())  # what Span.end hands over
    t0 = time.perf_counter()
    while made < n_spans:
        model = rng.choice(MODELS)
        start_us = min(end, int(first + (traces + rng.uniform(-0.5, 0.5)) * step))  # in order, jittered
        duration_ms = rng.lognormvariate(5.5, 0.8)
        failed = rng.random() < 0.03
        root = Span(f"chat {model}", "gateway", None, {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": model, "gen_ai.response.model": model,
            "temper.key_id": f"key_{rng.randrange(40):04d}", "gen_ai.usage.input_tokens": rng.randrange(20, 2000),
            "gen_ai.usage.output_tokens": rng.randrange(1, 800), "temper.cost": rng.random() / 100,
            "temper.ttft_ms": duration_ms * rng.uniform(0.05, 0.4)}, "ws_default")
        root.input = f'{{"model":"{model}","messages":[{{"role":"user","content":"{rng.choice(TOPICS)} #{traces}"}}]}}'
        root.output = "好的，以下是回答。" * rng.randrange(1, 20)
        root.start_ns = start_us * 1000
        root_end = int((start_us + duration_ms * 1000) * 1000)
        if failed:
            root.fail("upstream timed out", "upstream_timeout")
        for attempt in range(rng.choice((1, 1, 1, 2, 3))):
            c = Span(f"chat {model}", "llm", root, {"temper.attempt": attempt + 1, "gen_ai.request.model": model},
                     None)
            c.start_ns = root.start_ns + attempt * 1_000_000
            c.end(min(root_end, c.start_ns + int(duration_ms * 0.9e6)))
            made += 1
        root.end(root_end)
        made += 1
        traces += 1
        attrs = root.attributes
        calls.append({"request_id": f"req_{traces:024x}", "workspace_id": "ws_default", "key_id": attrs["temper.key_id"],
                      "model": model, "operation": "chat", "prompt_tokens": attrs["gen_ai.usage.input_tokens"],
                      "completion_tokens": attrs["gen_ai.usage.output_tokens"], "cost": attrs["temper.cost"],
                      "latency_ms": duration_ms, "ttft_ms": attrs["temper.ttft_ms"], "status": 500 if failed else 200,
                      "error_code": "upstream_timeout" if failed else None,
                      "created_at": datetime.fromtimestamp(start_us / 1e6, timezone.utc)})
        if len(batch) >= 2000:
            sink.export(batch)
            batch.clear()
            with sink.engine.begin() as conn:
                conn.execute(insert(UsageRecord), calls)
            calls.clear()
            if traces % 50_000 < 700:
                print(f"  {made:,} spans ({made / (time.perf_counter() - t0):,.0f}/s)", flush=True)
    if batch:
        sink.export(batch)
    if calls:
        with sink.engine.begin() as conn:
            conn.execute(insert(UsageRecord), calls)
    tracing.install(None)
    return traces


def ago(**delta: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(**delta)


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    fn()  # warm the page cache and the statement cache
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--db", default=None, help="SQLAlchemy URL (default: a fresh SQLite file in a temp dir)")
    ap.add_argument("--reuse", action="store_true", help="query the --db as it is, without filling it")
    ap.add_argument("--runs", type=int, default=40)
    a = ap.parse_args()
    db = a.db or f"sqlite:///{Path(tempfile.mkdtemp()) / 'spans.db'}"
    migrate(db)
    if not a.reuse:
        t = time.perf_counter()
        n = fill(db, a.spans)
        print(f"filled {a.spans:,} spans ({n:,} traces) in {time.perf_counter() - t:.0f} s")
    with get_engine(db).connect() as c:
        spans = c.exec_driver_sql("SELECT (SELECT count(*) FROM spans) + (SELECT count(*) FROM traces)").scalar()
        some = [r[0] for r in c.exec_driver_sql("SELECT trace_id FROM traces ORDER BY random() LIMIT 50")]
    rng = random.Random(1)
    ws = "ws_default"
    day_ago = now_us() - DAY_US
    cases: list[tuple[str, Callable[[], object]]] = [
        ("list newest 50", lambda: list_traces(db, TraceFilter(workspace_id=ws), limit=50)),
        ("list by model", lambda: list_traces(db, TraceFilter(workspace_id=ws, model=rng.choice(MODELS)), limit=50)),
        ("list by model, last 24 h, page 2", lambda: list_traces(
            db, TraceFilter(workspace_id=ws, model=rng.choice(MODELS), since_us=day_ago), limit=50,
            cursor=list_traces(db, TraceFilter(workspace_id=ws, model=MODELS[0], since_us=day_ago), limit=50)[1])),
        ("list by key + errors", lambda: list_traces(
            db, TraceFilter(workspace_id=ws, key_id=f"key_{rng.randrange(40):04d}", status="error"), limit=50)),
        ("list by model + latency > 1 s", lambda: list_traces(
            db, TraceFilter(workspace_id=ws, model=rng.choice(MODELS), min_ms=1000), limit=50)),
        ("list errors, last 24 h", lambda: list_traces(
            db, TraceFilter(workspace_id=ws, status="error", since_us=day_ago), limit=50)),
        ("search text (common), last 24 h", lambda: list_traces(
            db, TraceFilter(workspace_id=ws, q=rng.choice(TOPICS)[:4], since_us=day_ago), limit=50)),
        ("show one trace (tree)", lambda: get_trace(db, rng.choice(some))),
        ("analytics last 1 h by model", lambda: stats(db, CallFilter(workspace_id=ws, since=ago(hours=1)),
                                                      group_by="model")),
        ("analytics last 24 h by key, hourly", lambda: stats(db, CallFilter(workspace_id=ws, since=ago(hours=24)),
                                                             bucket="hour", group_by="key")),
    ]
    print(f"\n{spans:,} spans stored; {a.runs} runs per query\n")
    print("| query | p50 ms | p99 ms | p50 / 50 ms target |")
    print("|---|---|---|---|")
    for name, fn in cases:
        p50, p99 = timed(fn, a.runs)
        print(f"| {name} | {p50:.1f} | {p99:.1f} | {p50 / 50:.2f} |")


if __name__ == "__main__":
    main()
