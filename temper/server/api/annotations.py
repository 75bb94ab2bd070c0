"""Management API: annotation queues (admin): create from trace filters, annotate in order, export JSONL."""
from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from temper.auth.keys import KeyInfo
from temper.ops import annotations
from temper.ops.traces import TraceFilter, now_us
from temper.server.api.deps import MAX_HOURS, admin, runtime
from temper.server.runtime import Runtime

router = APIRouter(prefix="/api/v1/annotation-queues", tags=["annotations"])


class Filters(BaseModel):
    q: str | None = None
    model: str | None = None
    key_id: str | None = None
    app_id: str | None = None
    kind: str | None = None
    status: Literal["ok", "error"] | None = None
    min_ms: float | None = Field(None, ge=0, allow_inf_nan=False)
    max_ms: float | None = Field(None, ge=0, allow_inf_nan=False)
    hours: float | None = Field(None, gt=0, le=MAX_HOURS, allow_inf_nan=False)


class ScoreConfig(BaseModel):
    name: str
    data_type: Literal["numeric", "categorical", "boolean"]
    categories: list[str] | None = None
    min: float | None = Field(None, allow_inf_nan=False)
    max: float | None = Field(None, allow_inf_nan=False)
    description: str | None = None


class QueueIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=5000)
    filters: Filters = Filters()
    limit: int = Field(100, ge=1, le=annotations.MAX_ITEMS)
    score_configs: list[ScoreConfig] = Field(min_length=1)


class Submission(BaseModel):
    status: Literal["done", "skipped"] = "done"
    scores: dict[str, bool | float | str] = {}
    comment: str | None = Field(None, max_length=10_000)


@router.post("", status_code=201)
def create(body: QueueIn, rt: Runtime = Depends(runtime), key: KeyInfo = Depends(admin)) -> dict[str, Any]:
    """Snapshot the newest ``limit`` traces matching ``filters``; they are annotated oldest first."""
    if rt.spans is not None:
        rt.spans.flush(timeout_s=2.0)
    f = body.filters.model_dump(exclude_none=True)
    hours = f.pop("hours", None)
    tf = TraceFilter(**f, since_us=now_us() - int(hours * 3_600_000_000) if hours else None)
    return annotations.create_queue(rt.db, body.name, tf, [c.model_dump(exclude_none=True) for c in body.score_configs],
                                    description=body.description, limit=body.limit, workspace_id=key.workspace_id)


@router.get("")
def queues(rt: Runtime = Depends(runtime), key: KeyInfo = Depends(admin)) -> dict[str, Any]:
    return {"object": "list", "data": annotations.list_queues(rt.db, key.workspace_id)}


@router.get("/{queue_id}")
def queue(queue_id: str, rt: Runtime = Depends(runtime), key: KeyInfo = Depends(admin)) -> dict[str, Any]:
    return annotations.get_queue(rt.db, queue_id, key.workspace_id)


@router.delete("/{queue_id}")
def delete(queue_id: str, rt: Runtime = Depends(runtime), key: KeyInfo = Depends(admin)) -> dict[str, Any]:
    annotations.delete_queue(rt.db, queue_id, key.workspace_id)
    return {"id": queue_id, "object": "annotation_queue", "deleted": True}


@router.get("/{queue_id}/next")
def next_item(queue_id: str, rt: Runtime = Depends(runtime), key: KeyInfo = Depends(admin)) -> dict[str, Any]:
    """The first pending item and its trace; ``item`` is null when the queue is done."""
    return annotations.next_item(rt.db, queue_id, key.workspace_id)


@router.post("/{queue_id}/items/{item_id}")
def submit(queue_id: str, item_id: str, body: Submission, rt: Runtime = Depends(runtime),
           key: KeyInfo = Depends(admin)) -> dict[str, Any]:
    return annotations.submit(rt.db, queue_id, item_id, body.status, body.scores, comment=body.comment,
                              author=key.name, workspace_id=key.workspace_id)


@router.get("/{queue_id}/export")
def export(queue_id: str, rt: Runtime = Depends(runtime), key: KeyInfo = Depends(admin)) -> StreamingResponse:
    """The annotated items as JSONL: messages (chat format, for fine-tuning), input, output, scores."""
    queue = annotations.get_queue(rt.db, queue_id, key.workspace_id)  # 404 before the stream starts
    return StreamingResponse(annotations.export_dataset(rt.db, queue_id, key.workspace_id),
                             media_type="application/x-ndjson",
                             headers={"content-disposition": annotations.export_disposition(queue)})
