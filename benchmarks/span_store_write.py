"""Where a traced gateway call's tracing CPU goes, stage by stage, in one process (no server, no load).

Each gateway call is recorded through the tracing API as the gateway and the router record it (a root span
with its attribute tuple, the request and answer bodies, one upstream attempt), then followed down the
default path to the store: pickled by the exporter, unpickled by the span writer, shaped into a row, and
inserted into SQLite (multi-row INSERTs, one transaction per 500 calls). The last line inserts the same rows
with their payload columns (attributes, bodies, child spans) empty: the least a row per call costs with
this table and its indexes. Every stage is the best of --repeat runs (this VM's speed drifts); ratios are
against the whole path measured in the same run.

    python benchmarks/span_store_write.py                 # 20,000 calls, best of 3
    python benchmarks/span_store_write.py --calls 50000 --repeat 5

Writes benchmarks/results/span-store-write-<time>.md.
"""
from __future__ import annotations

import argparse
import pickle
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from temper.models.router import ATTEMPT_ATTRIBUTES  # noqa: E402
from temper.ops import tracing  # noqa: E402
from temper.ops.span_store import TRACE_COLUMNS, SpanStoreSink  # noqa: E402
from temper.ops.span_writer import _pack  # noqa: E402
from temper.server.openai.gateway import SPAN_ATTRIBUTES  # noqa: E402
from temper.store.db import migrate  # noqa: E402

BATCH = 1000  # spans per export batch, as the exporter sends them (500 gateway calls)
BODY = orjson.dumps({"model": "mock-model", "messages": [{"role": "user", "content": "Say hello in one short "
                                                                                     "sentence please."}],
                     "max_tokens": 64})
MESSAGES = orjson.dumps(orjson.loads(BODY)["messages"])  # the model call span's input, as the router keeps it
ANSWER = orjson.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "mock-model",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(["tok"] * 16)},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 12, "completion_tokens": 16, "total_tokens": 28}})
EMPTY = {"attributes": "{}", "input": None, "output": None, "raw_input": None, "raw_output": None, "spans": None}


class Capture:
    def __init__(self) -> None:
        self.spans: list[tracing.Finished] = []

    def put(self, span: tracing.Finished) -> None:
        self.spans.append(span)


class KeepRows:
    """Stands in for a table insert: keeps the rows the sink built."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def run(self, conn: object, rows: list[tuple]) -> None:
        self.rows.extend(rows)


def record(calls: int) -> list[tracing.Finished]:
    """``calls`` gateway calls as the gateway and the router record them."""
    sink = Capture()
    tracing.install(sink)
    try:
        for i in range(calls):
            span = tracing.start("chat", "gateway", workspace_id="default")
            started = time.time_ns()
            tracing.emit("chat mock-model", "llm", started, (ATTEMPT_ATTRIBUTES, (
                "chat", "mock-model", "openai", "mock-model", "http://127.0.0.1:1/v1", 1, 0, None, None, 64, None,
                None, False, "mock-model", 12, 16, 3e-05, 40.0)), input=MESSAGES, output=ANSWER)
            span.attributes = (SPAN_ATTRIBUTES, ("chat", "key_abc", f"req_{i:024x}", None, "mock-model", 12, 16,
                                                 3e-05, None, False, 200, "mock-model", None, None, 64, None, None))
            span.input, span.output = BODY, ANSWER
            span.name = "chat mock-model"
            tracing.finish(span)
    finally:
        tracing.install(None)
    return sink.spans


def fresh_store(work: Path) -> SpanStoreSink:
    url = f"sqlite:///{tempfile.mkdtemp(dir=work)}/traces.db"
    migrate(url)
    return SpanStoreSink(url)


def best(fn: Callable[[], None], repeat: int) -> float:
    """The least CPU seconds of ``repeat`` runs of ``fn``."""
    times = []
    for _ in range(repeat):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    n, work = a.calls, Path(tempfile.mkdtemp(prefix="temper-span-write-"))
    try:
        spans = record(n)
        batches = [spans[i:i + BATCH] for i in range(0, len(spans), BATCH)]
        packed = [_pack(b) for b in batches]
        us: dict[str, float] = {
            "recording (event loop)": best(lambda: record(n), a.repeat),
            "pickling (exporter thread)": best(lambda: [_pack(b) for b in batches], a.repeat),
            "unpickling (writer)": best(lambda: [pickle.loads(p) for p in packed], a.repeat),
        }
        shaper = SpanStoreSink(f"sqlite:///{work / 'shape.db'}")  # its inserts are replaced: no table needed
        kept = KeepRows()
        shaper._traces = shaper._spans = kept  # type: ignore[assignment]

        def shape() -> None:
            kept.rows.clear()
            for b in batches:
                shaper.export(b)
        us["shaping rows (writer)"] = best(shape, a.repeat)
        full = list(kept.rows)
        empty = [tuple(EMPTY.get(c, v) for c, v in zip(TRACE_COLUMNS, r)) for r in full]

        def insert(rows: list[tuple]) -> Callable[[], None]:
            """Inserting ``rows``, once per repeat, each time into a fresh store made beforehand (migrating
            and connecting are not timed)."""
            stores = iter([fresh_store(work) for _ in range(a.repeat)])

            def go() -> None:
                sink = next(stores)
                for i in range(0, len(rows), BATCH // 2):
                    with sink.engine.begin() as conn:
                        sink._traces.run(conn, rows[i:i + BATCH // 2])
            return go
        us["SQLite insert, full row (writer)"] = best(insert(full), a.repeat)
        floor = best(insert(empty), a.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    per_call = {k: v / n * 1e6 for k, v in us.items()}
    total = sum(per_call.values())
    lines = [f"Tracing CPU per gateway call, stage by stage: {n:,} calls, best of {a.repeat}, "
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.", "",
             "| stage | µs per call | share of the path |", "| --- | --- | --- |"]
    lines += [f"| {k} | {v:.1f} | {v / total:.2f} |" for k, v in per_call.items()]
    lines += [f"| **whole path** | **{total:.1f}** | 1.00 |",
              f"| SQLite insert, the same rows with empty payload columns | {floor / n * 1e6:.1f} | "
              f"{floor / n * 1e6 / total:.2f} |"]
    out = ROOT / "benchmarks" / "results" / f"span-store-write-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
