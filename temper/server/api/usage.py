"""Management API: metered usage, totals, time series and raw records.

What a request, an error and a latency are is defined once in ``temper.ops.analytics``; Usage and Analytics
(``/api/v1/analytics``) count the same rows the same way, so for the same period and filters they agree.
Admins see every key of their workspace; a member (a console session opened with an API key) sees only
its own key.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from temper.auth.keys import KeyInfo, list_keys
from temper.models.metering import usage_records
from temper.ops.analytics import CallFilter, stats, window
from temper.server.api.deps import MAX_HOURS, Offset, caller, own_key, page, runtime
from temper.server.runtime import Runtime

router = APIRouter(prefix="/api/v1/usage", tags=["usage"])
Source = Literal["api", "knowledge", "job", "internal"]


class UsageRow(BaseModel):
    group: str | None
    key_name: str | None = None
    key_prefix: str | None = None
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float
    avg_latency_ms: float | None
    max_latency_ms: float | None


class UsageSummary(BaseModel):
    object: Literal["list"] = "list"
    group_by: str
    since: str | None
    until: str
    data: list[UsageRow]
    total: int
    limit: int
    offset: int
    has_more: bool


class UsagePoint(BaseModel):
    t: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
    avg_latency_ms: float | None
    avg_ttft_ms: float | None


class UsageSeries(BaseModel):
    object: Literal["list"] = "list"
    bucket: str
    since: str
    until: str
    data: list[UsagePoint]


def key_labels(rt: Runtime, rows: list[dict[str, Any]]) -> None:
    """Name each per-key row: ``key_name`` and ``key_prefix`` (both None for calls made on no key, the
    server's own; a key that is gone keeps its id in ``group``)."""
    keys = {k.id: k for k in list_keys(rt.db)} | {rt.auth.admin.id: rt.auth.admin}
    for r in rows:
        k = keys.get(r["group"])
        r["key_name"], r["key_prefix"] = (k.name, k.prefix) if k else (None, None)


def _usage(m: dict[str, Any]) -> dict[str, Any]:
    """An aggregate in the usage naming (prompt/completion tokens, mean latency)."""
    return {"requests": m["requests"], "errors": m["errors"], "prompt_tokens": m["input_tokens"],
            "completion_tokens": m["output_tokens"], "total_tokens": m["input_tokens"] + m["output_tokens"],
            "cost": m["cost"], "avg_latency_ms": m["avg_ms"], "max_latency_ms": m["max_ms"],
            "avg_ttft_ms": m["ttft_avg_ms"]}


@router.get("", response_model=UsageSummary)
def summary(rt: Runtime = Depends(runtime), key: KeyInfo = Depends(caller),
            group_by: Literal["key", "model", "day", "source"] = "key",
            days: int | None = Query(None, ge=1, le=MAX_HOURS // 24, description="Only the last N days."),
            hours: float | None = Query(None, gt=0, le=MAX_HOURS, allow_inf_nan=False,
                                        description="Only the last N hours."),
            since: datetime | None = None, until: datetime | None = None,
            key_id: str | None = None, model: str | None = None, source: Source | None = None,
            limit: int = Query(100, ge=1, le=1000), offset: Offset = 0) -> dict:
    """Totals per key, model, day or source (api, knowledge, job, internal) over the period: all time, the
    last ``days`` or ``hours``, or ``[since, until)``. Latency is that of the successful requests."""
    rt.meter.usage.flush()
    start, end = window(hours=hours if hours is not None else days * 24 if days else None, since=since, until=until)
    s = stats(rt.db, CallFilter(workspace_id=key.workspace_id, key_id=own_key(key, key_id, "usage"), model=model,
                                source=source, since=start, until=end), group_by=group_by)
    rows = [{"group": g["group"]} | _usage(g) for g in s["groups"]]
    rows.sort(key=lambda r: str(r["group"] or ""), reverse=group_by == "day")
    if group_by == "key":
        key_labels(rt, rows)
    return page(rows, limit, offset) | {"group_by": group_by, "since": s["since"], "until": s["until"]}


@router.get("/series", response_model=UsageSeries)
def series(rt: Runtime = Depends(runtime), key: KeyInfo = Depends(caller),
           bucket: Literal["minute", "hour", "day"] = "hour",
           hours: float = Query(24, gt=0, le=24 * 400, description="How far back, in hours."),
           since: datetime | None = None, until: datetime | None = None,
           key_id: str | None = None, model: str | None = None, source: Source | None = None) -> dict:
    """Requests, errors, tokens, cost and mean latency per time bucket (empty buckets included), over the last
    ``hours`` or ``[since, until)``."""
    rt.meter.usage.flush()
    start, end = window(hours=None if since else hours, since=since, until=until)
    s = stats(rt.db, CallFilter(workspace_id=key.workspace_id, key_id=own_key(key, key_id, "usage"), model=model,
                                source=source, since=start, until=end), group_by="source", bucket=bucket)
    return {"object": "list", "bucket": bucket, "since": s["since"], "until": s["until"],
            "data": [{"t": p["t"]} | _usage(p) for p in s["series"]]}


@router.get("/records")
def records(rt: Runtime = Depends(runtime), key: KeyInfo = Depends(caller), limit: int = Query(100, ge=1, le=1000),
            after: int | None = None, key_id: str | None = None, model: str | None = None) -> dict:
    """Newest first; pass the last ``id`` as ``after`` for the next page."""
    rt.meter.usage.flush()
    data = usage_records(rt.db, limit=limit, after=after, key_id=own_key(key, key_id, "usage"), model=model)
    return {"object": "list", "data": data, "has_more": len(data) == limit}
