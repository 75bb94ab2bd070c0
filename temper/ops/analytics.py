"""Aggregates over traces: requests, errors, latency and TTFT percentiles, tokens and cost, per time bucket
and per model, key or app. Percentiles are exact (nearest rank), computed in SQL with window functions."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Select, case, func, literal, select

from temper.errors import InvalidRequest
from temper.ops.traces import TraceFilter, iso, now_us
from temper.store.db import session
from temper.store.tables import TraceRow

BUCKET_US = {"minute": 60_000_000, "hour": 3_600_000_000, "day": 86_400_000_000}
GROUPS = {"model": TraceRow.model, "key": TraceRow.key_id, "app": TraceRow.app_id}
MAX_POINTS = 2000
PERCENTILES = (("p50_ms", 0.50), ("p95_ms", 0.95), ("p99_ms", 0.99))


def _empty() -> dict[str, Any]:
    return {"requests": 0, "errors": 0, "error_rate": 0.0, "p50_ms": None, "p95_ms": None, "p99_ms": None,
            "ttft_p50_ms": None, "ttft_p95_ms": None, "input_tokens": 0, "output_tokens": 0, "cost": 0.0}


def _metrics(s: Any, base: Select, part: Any) -> dict[Any, dict[str, Any]]:
    """Every metric per value of ``part`` (a column expression; a literal for the totals)."""
    f = base.add_columns(part.label("g")).subquery()
    out: dict[Any, dict[str, Any]] = {}
    sums = select(f.c.g, func.count(), func.sum(case((f.c.status == "error", 1), else_=0)),
                  func.sum(f.c.input_tokens), func.sum(f.c.output_tokens), func.sum(f.c.cost)).group_by(f.c.g)
    for g, n, errors, tin, tout, cost in s.execute(sums):
        m = _empty()
        m.update(requests=n, errors=errors or 0, error_rate=round((errors or 0) / n, 6) if n else 0.0,
                 input_tokens=tin or 0, output_tokens=tout or 0, cost=round(cost or 0.0, 9))
        out[g] = m
    for column, names in ((f.c.duration_ms, PERCENTILES),
                          (f.c.ttft_ms, (("ttft_p50_ms", 0.50), ("ttft_p95_ms", 0.95)))):
        ranked = select(f.c.g, column.label("v"),
                        func.row_number().over(partition_by=f.c.g, order_by=column).label("rn"),
                        func.count().over(partition_by=f.c.g).label("n")).where(column.isnot(None)).subquery()
        # nearest rank: the smallest value whose rank is at least p * n
        q = select(ranked.c.g, *[func.min(case((ranked.c.rn >= p * ranked.c.n, ranked.c.v))) for _, p in names]
                   ).group_by(ranked.c.g)
        for g, *values in s.execute(q):
            for (name, _), v in zip(names, values):
                out[g][name] = round(v, 3) if v is not None else None
    return out


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
    cols = (TraceRow.start_us, TraceRow.duration_ms, TraceRow.ttft_ms, TraceRow.status, TraceRow.input_tokens,
            TraceRow.output_tokens, TraceRow.cost)
    base = f.apply(select(*cols))
    with session(db) as s:
        totals = _metrics(s, base, literal(1)).get(1, _empty())
        groups = _metrics(s, base, GROUPS[group_by])
        series = _metrics(s, base, TraceRow.start_us // size * size)
    first = start // size * size
    points = [{"t": iso(b)} | series.get(b, _empty()) for b in range(first, end, size)]
    rows = sorted(({"group": g} | m for g, m in groups.items()), key=lambda r: -r["requests"])
    return {"object": "stats", "hours": hours, "bucket": bucket, "group_by": group_by, "since": iso(start),
            "until": iso(end), "totals": totals, "groups": rows, "series": points}
