"""Management API: metered usage, totals, time series and raw records.

Admins see every key; a member (a console session opened with an API key) sees only its own key.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from temper.auth.keys import KeyInfo, list_keys
from temper.errors import InvalidRequest
from temper.models.metering import BUCKETS, since_days, usage_records, usage_series, usage_summary
from temper.server.api.deps import MAX_HOURS, Offset, caller, own_key, page, runtime
from temper.server.runtime import Runtime

router = APIRouter(prefix="/api/v1/usage", tags=["usage"])
MAX_POINTS = 2000


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
    data: list[UsagePoint]


@router.get("", response_model=UsageSummary)
def summary(rt: Runtime = Depends(runtime), key: KeyInfo = Depends(caller),
            group_by: Literal["key", "model", "day"] = "key",
            days: int | None = Query(None, ge=1, le=MAX_HOURS // 24, description="Only the last N days."),
            key_id: str | None = None, model: str | None = None,
            limit: int = Query(100, ge=1, le=1000), offset: Offset = 0) -> dict:
    rt.meter.usage.flush()
    rows = usage_summary(rt.db, group_by=group_by, since=since_days(days) if days else None,
                         key_id=own_key(key, key_id, "usage"), model=model)
    if group_by == "key":
        names = {k.id: k for k in list_keys(rt.db)} | {rt.auth.admin.id: rt.auth.admin}
        for r in rows:
            k = names.get(r["group"])
            r["key_name"], r["key_prefix"] = (k.name, k.prefix) if k else (None, None)
    return page(rows, limit, offset) | {"group_by": group_by}


@router.get("/series", response_model=UsageSeries)
def series(rt: Runtime = Depends(runtime), key: KeyInfo = Depends(caller),
           bucket: Literal["minute", "hour", "day"] = "hour",
           hours: float = Query(24, gt=0, le=24 * 400, description="How far back, in hours."),
           key_id: str | None = None, model: str | None = None) -> dict:
    """Requests, errors, tokens, cost and mean latency per time bucket (empty buckets included)."""
    if hours * 3600 / BUCKETS[bucket][1].total_seconds() > MAX_POINTS:
        raise InvalidRequest(f"That is more than {MAX_POINTS} {bucket}s; pick a larger bucket.", param="bucket")
    rt.meter.usage.flush()
    since = datetime.now(timezone.utc) - timedelta(hours=hours)
    data = usage_series(rt.db, bucket=bucket, since=since, key_id=own_key(key, key_id, "usage"), model=model)
    return {"object": "list", "bucket": bucket, "data": data}


@router.get("/records")
def records(rt: Runtime = Depends(runtime), key: KeyInfo = Depends(caller), limit: int = Query(100, ge=1, le=1000),
            after: int | None = None, key_id: str | None = None, model: str | None = None) -> dict:
    """Newest first; pass the last ``id`` as ``after`` for the next page."""
    rt.meter.usage.flush()
    data = usage_records(rt.db, limit=limit, after=after, key_id=own_key(key, key_id, "usage"), model=model)
    return {"object": "list", "data": data, "has_more": len(data) == limit}
