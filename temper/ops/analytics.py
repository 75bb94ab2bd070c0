"""Aggregates over traces: requests, errors, latency and TTFT percentiles, tokens and cost, per time bucket
and per model, key or app.

One indexed query fetches the window's rows as plain tuples; totals, groups and buckets are then computed
from per-(bucket, group) accumulators. Percentiles are exact (nearest rank: the smallest value whose rank is at least p·n). Measured
against nine SQL passes with window functions, this is 5-10x faster on SQLite (docs/performance.md).
"""
from __future__ import annotations

import math
from typing import Any

from sqlalchemy import select

from temper.errors import InvalidRequest
from temper.ops.traces import TraceFilter, iso, now_us
from temper.store.db import get_engine
from temper.store.tables import TraceRow

BUCKET_US = {"minute": 60_000_000, "hour": 3_600_000_000, "day": 86_400_000_000}
GROUPS = {"model": TraceRow.model, "key": TraceRow.key_id, "app": TraceRow.app_id}
MAX_POINTS = 2000


class _Acc:
    """Running sums plus the latency and TTFT samples of one group."""

    __slots__ = ("n", "errors", "tin", "tout", "cost", "ms", "ttft")

    def __init__(self) -> None:
        self.n = self.errors = self.tin = self.tout = 0
        self.cost = 0.0
        self.ms: list[float] = []
        self.ttft: list[float] = []

    def add(self, ms: float, ttft: float | None, status: str, tin: int, tout: int, cost: float) -> None:
        self.n += 1
        self.errors += status == "error"
        self.tin += tin or 0
        self.tout += tout or 0
        self.cost += cost or 0.0
        self.ms.append(ms)
        if ttft is not None:
            self.ttft.append(ttft)

    def merge(self, other: _Acc) -> None:
        self.n += other.n
        self.errors += other.errors
        self.tin += other.tin
        self.tout += other.tout
        self.cost += other.cost
        self.ms.extend(other.ms)
        self.ttft.extend(other.ttft)

    def metrics(self) -> dict[str, Any]:
        self.ms.sort()
        self.ttft.sort()
        return {"requests": self.n, "errors": self.errors,
                "error_rate": round(self.errors / self.n, 6) if self.n else 0.0,
                "p50_ms": _rank(self.ms, 0.50), "p95_ms": _rank(self.ms, 0.95), "p99_ms": _rank(self.ms, 0.99),
                "ttft_p50_ms": _rank(self.ttft, 0.50), "ttft_p95_ms": _rank(self.ttft, 0.95),
                "input_tokens": self.tin, "output_tokens": self.tout, "cost": round(self.cost, 9)}


def _rank(ordered: list[float], p: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[max(0, math.ceil(p * len(ordered)) - 1)], 3)


def stats(db: str, f: TraceFilter, *, hours: float = 1.0, bucket: str = "minute", group_by: str = "model",
          until_us: int | None = None) -> dict[str, Any]:
    """Totals, per-group rows and a time series (empty buckets included) over the last ``hours``."""
    if bucket not in BUCKET_US:
        raise InvalidRequest("bucket must be minute, hour or day.", param="bucket")
    if group_by not in GROUPS:
        raise InvalidRequest("group_by must be model, key or app.", param="group_by")
    size = BUCKET_US[bucket]
    end = until_us or now_us()
    start = end - int(hours * 3_600_000_000)
    if (end - start) / size > MAX_POINTS:
        raise InvalidRequest(f"That is more than {MAX_POINTS} {bucket}s; pick a larger bucket.", param="bucket")
    f.since_us, f.until_us = max(start, f.since_us or start), min(end, f.until_us or end)
    stmt = f.apply(select(TraceRow.start_us, GROUPS[group_by], TraceRow.duration_ms, TraceRow.ttft_ms,
                          TraceRow.status, TraceRow.input_tokens, TraceRow.output_tokens, TraceRow.cost))
    cells: dict[tuple[int, Any], _Acc] = {}  # (bucket, group): one accumulator per row, merged below
    with get_engine(db).connect() as conn:
        for t, g, ms, ttft, status, tin, tout, cost in conn.execute(stmt):
            cell = (t // size * size, g)
            acc = cells.get(cell)
            if acc is None:
                acc = cells[cell] = _Acc()
            acc.add(ms, ttft, status, tin, tout, cost)
    total, groups, series = _Acc(), {}, {}
    for (b, g), acc in cells.items():
        total.merge(acc)
        groups.setdefault(g, _Acc()).merge(acc)
        series.setdefault(b, _Acc()).merge(acc)
    empty = _Acc().metrics()
    points = [{"t": iso(b)} | (series[b].metrics() if b in series else empty)
              for b in range(start // size * size, end, size)]
    rows = sorted(({"group": g} | a.metrics() for g, a in groups.items()), key=lambda r: -r["requests"])
    return {"object": "stats", "hours": hours, "bucket": bucket, "group_by": group_by, "since": iso(start),
            "until": iso(end), "totals": total.metrics(), "groups": rows, "series": points}
