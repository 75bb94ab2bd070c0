"""Management API: traces (list, search, one as a tree, JSONL export), analytics and scores.

Analytics counts metered model calls, as Usage does (``temper.ops.analytics`` defines both), not traces.

Admins see every trace of their workspace; a member (a non-admin key or its console session) sees only the
traces made with its own key, like usage, and always with personal data masked, even where the workspace
stores traces verbatim (``PUT /api/v1/traces/settings``, admins only).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from temper.auth.keys import KeyInfo, list_keys
from temper.errors import InvalidRequest, NotFound
from temper.ops.analytics import CallFilter, job_stats, stats, window
from temper.ops.pii import Masker
from temper.ops.scores import add_score, delete_score, list_scores
from temper.ops.trace_masking import get_masking, masker_for, set_masking
from temper.ops.traces import TraceFilter, export_traces, get_trace, list_traces, now_us
from temper.server.api.deps import MAX_HOURS, admin, caller, own_key, runtime
from temper.server.api.usage import key_labels
from temper.server.runtime import Runtime

router = APIRouter(tags=["traces"])


def _us(value: datetime | None) -> int | None:
    return int(value.timestamp() * 1_000_000) if value is not None else None


def trace_filter(key: KeyInfo = Depends(caller), q: str | None = Query(None, max_length=500),
                 model: str | None = None, key_id: str | None = None, app_id: str | None = None,
                 kind: str | None = None, status: Literal["ok", "error"] | None = None,
                 min_ms: float | None = Query(None, ge=0, allow_inf_nan=False),
                 max_ms: float | None = Query(None, ge=0, allow_inf_nan=False),
                 hours: float | None = Query(None, gt=0, le=MAX_HOURS, allow_inf_nan=False,
                                             description="Only the last N hours."),
                 since: datetime | None = None, until: datetime | None = None) -> TraceFilter:
    since_us = _us(since)
    if hours is not None:
        since_us = max(since_us or 0, now_us() - int(hours * 3_600_000_000))
    return TraceFilter(workspace_id=key.workspace_id, q=q or None, model=model, key_id=own_key(key, key_id, "traces"),
                       app_id=app_id, kind=kind, status=status, min_ms=min_ms, max_ms=max_ms, since_us=since_us,
                       until_us=_us(until))


def _fresh(rt: Runtime) -> None:
    """Let the spans finished before this request reach the store (bounded wait)."""
    if rt.spans is not None:
        rt.spans.flush(timeout_s=2.0)


def _masker(rt: Runtime, key: KeyInfo) -> Masker | None:
    """How a caller reads trace text: as stored for admins, masked for everyone else."""
    return None if key.is_admin else masker_for(rt.pm)


def _key_names(rt: Runtime) -> dict[str, str]:
    return {k.id: k.name for k in list_keys(rt.db)} | {rt.auth.admin.id: rt.auth.admin.name}


@router.get("/api/v1/traces")
def traces(rt: Runtime = Depends(runtime), f: TraceFilter = Depends(trace_filter), key: KeyInfo = Depends(caller),
           limit: int = Query(50, ge=1, le=200), cursor: str | None = None) -> dict[str, Any]:
    """Newest first; pass ``next_cursor`` as ``cursor`` for the next page."""
    _fresh(rt)
    data, nxt = list_traces(rt.db, f, limit=limit, cursor=cursor, masker=_masker(rt, key))
    names = _key_names(rt)
    for t in data:
        t["key_name"] = names.get(t["key_id"])
    return {"object": "list", "data": data, "has_more": nxt is not None, "next_cursor": nxt}


@router.get("/api/v1/analytics")
@router.get("/api/v1/traces/stats", include_in_schema=False)
def analytics(rt: Runtime = Depends(runtime), key: KeyInfo = Depends(caller),
              window_hours: float = Query(1.0, alias="hours", gt=0, le=24 * 400, allow_inf_nan=False),
              since: datetime | None = None, until: datetime | None = None,
              bucket: Literal["minute", "hour", "day"] = "minute",
              group_by: Literal["model", "key", "app", "source"] = "model", model: str | None = None,
              key_id: str | None = None, app_id: str | None = None,
              source: Literal["api", "knowledge", "job", "internal"] | None = None,
              status: Literal["ok", "error"] | None = None) -> dict[str, Any]:
    """Requests (metered model calls, as Usage counts them), errors, latency p50/p95/p99 and first-token time
    of the successful ones, tokens and cost over the last ``hours`` (or ``[since, until)``): totals, per
    group, per time bucket; and the background jobs of the period, on their own (``jobs``)."""
    rt.meter.usage.flush()
    start, end = window(hours=None if since else window_hours, since=since, until=until)
    own = own_key(key, key_id, "analytics")
    out = stats(rt.db, CallFilter(workspace_id=key.workspace_id, key_id=own, model=model, app_id=app_id,
                                  source=source, status=status, since=start, until=end),
                group_by=group_by, bucket=bucket)
    out["hours"] = window_hours
    out["jobs"] = job_stats(rt.db, workspace_id=key.workspace_id, key_id=own, since=start, until=end)
    if group_by == "key":
        key_labels(rt, out["groups"])
    return out


@router.get("/api/v1/traces/export")
def export(rt: Runtime = Depends(runtime), f: TraceFilter = Depends(trace_filter), key: KeyInfo = Depends(caller),
           spans: bool = True) -> StreamingResponse:
    """JSONL: one trace per line, newest first, with its spans and scores."""
    _fresh(rt)
    return StreamingResponse(export_traces(rt.db, f, spans=spans, masker=_masker(rt, key)),
                             media_type="application/x-ndjson",
                             headers={"content-disposition": 'attachment; filename="traces.jsonl"'})


@router.get("/api/v1/traces/exporter")
def exporter_stats(rt: Runtime = Depends(runtime), key: KeyInfo = Depends(caller)) -> dict[str, Any]:
    """The span exporter's counters: queued, exported, dropped (queue full), export errors."""
    if rt.spans is None:
        return {"enabled": False}
    endpoint = rt.settings.otlp_endpoint if key.is_admin else None  # where traces go is for admins to know
    return {"enabled": True, "otlp_endpoint": endpoint} | rt.spans.stats()


class TraceSettings(BaseModel):
    mask_pii: bool | None = Field(description="Store this workspace's traces with personal data masked (true) or "
                                  "verbatim (false); null: as the server's TEMPER_TRACE_MASK_PII says.")


@router.get("/api/v1/traces/settings")
def trace_settings(rt: Runtime = Depends(runtime), key: KeyInfo = Depends(admin)) -> dict[str, Any]:
    """Whether this workspace's traces are stored with personal data masked (``mask_pii``), by its own choice
    (``mask_pii_workspace``) or the server's default."""
    return get_masking(rt.db, key.workspace_id, rt.settings.trace_mask_pii)


@router.put("/api/v1/traces/settings")
def put_trace_settings(body: TraceSettings, rt: Runtime = Depends(runtime),
                       key: KeyInfo = Depends(admin)) -> dict[str, Any]:
    """Choose how this workspace's traces are stored from now on; members read them masked either way."""
    return set_masking(rt.db, key.workspace_id, body.mask_pii, rt.settings.trace_mask_pii)


def _visible(rt: Runtime, key: KeyInfo, trace_id: str) -> dict[str, Any]:
    t = get_trace(rt.db, trace_id, key.workspace_id, masker=_masker(rt, key))
    if not key.is_admin and t["key_id"] != key.id:
        raise NotFound(f"No trace with id {trace_id!r}.", param="trace_id", code="trace_not_found",
                       params={"trace_id": trace_id})
    return t


@router.get("/api/v1/traces/{trace_id}")
def trace(trace_id: str, rt: Runtime = Depends(runtime), key: KeyInfo = Depends(caller)) -> dict[str, Any]:
    """The trace with its spans (depth-first, with ``depth`` and ``offset_ms`` for a waterfall) and scores."""
    _fresh(rt)
    t = _visible(rt, key, trace_id)
    t["key_name"] = _key_names(rt).get(t["key_id"])
    return t


class ScoreIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    value: bool | float | str
    data_type: Literal["numeric", "categorical", "boolean"] | None = None
    span_id: str | None = None
    source: Literal["human", "judge", "code"] | None = None
    comment: str | None = Field(None, max_length=10_000)


@router.post("/api/v1/traces/{trace_id}/scores", status_code=201)
def score(trace_id: str, body: ScoreIn, request: Request, rt: Runtime = Depends(runtime),
          key: KeyInfo = Depends(caller)) -> dict[str, Any]:
    """Attach a score; ``source`` defaults to ``code`` with an API key and ``human`` from the console."""
    _fresh(rt)
    _visible(rt, key, trace_id)
    source = body.source or ("code" if request.headers.get("authorization") else "human")
    return add_score(rt.db, trace_id, body.name, body.value, data_type=body.data_type, span_id=body.span_id,
                     source=source, author=key.name, comment=body.comment, workspace_id=key.workspace_id)


@router.get("/api/v1/scores")
def scores(rt: Runtime = Depends(runtime), key: KeyInfo = Depends(caller), trace_id: str | None = None,
           name: str | None = None, limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    if trace_id:
        _visible(rt, key, trace_id)
    elif not key.is_admin:
        raise InvalidRequest("Give the trace_id whose scores you want.", param="trace_id",
                             code="missing_required_parameter")
    return {"object": "list", "data": list_scores(rt.db, workspace_id=key.workspace_id, trace_id=trace_id,
                                                  name=name, limit=limit)}


@router.delete("/api/v1/scores/{score_id}")
def remove_score(score_id: str, rt: Runtime = Depends(runtime), key: KeyInfo = Depends(admin)) -> dict[str, Any]:
    delete_score(rt.db, score_id, key.workspace_id)
    return {"id": score_id, "object": "score", "deleted": True}
