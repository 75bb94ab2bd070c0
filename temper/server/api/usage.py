"""Management API: metered usage, totals and raw records."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from temper.models.metering import since_days, usage_records, usage_summary
from temper.server.api.deps import admin, runtime
from temper.server.runtime import Runtime

router = APIRouter(prefix="/api/v1/usage", tags=["usage"], dependencies=[Depends(admin)])


class UsageRow(BaseModel):
    group: str | None
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


@router.get("", response_model=UsageSummary)
def summary(rt: Runtime = Depends(runtime), group_by: Literal["key", "model", "day"] = "key",
            days: int | None = Query(None, ge=1, description="Only the last N days.")) -> dict:
    rt.usage.flush()
    rows = usage_summary(rt.db, group_by=group_by, since=since_days(days) if days else None)
    return {"object": "list", "group_by": group_by, "data": rows}


@router.get("/records")
def records(rt: Runtime = Depends(runtime), limit: int = Query(100, ge=1, le=1000), after: int | None = None,
            key_id: str | None = None, model: str | None = None) -> dict:
    """Newest first; pass the last ``id`` as ``after`` for the next page."""
    rt.usage.flush()
    data = usage_records(rt.db, limit=limit, after=after, key_id=key_id, model=model)
    return {"object": "list", "data": data, "has_more": len(data) == limit}
