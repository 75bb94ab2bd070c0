"""Management API: background jobs (ingestion, ...) — status with percent, and cancellation."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from temper.auth.keys import KeyInfo
from temper.jobs import store as jobs
from temper.server.api.deps import admin, caller, runtime
from temper.server.runtime import Runtime

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])


@router.get("")
def list_(kind: str | None = None, status: str | None = None, limit: int = Query(50, ge=1, le=500),
          key: KeyInfo = Depends(caller), rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    return {"object": "list", "data": jobs.list_jobs(rt.db, workspace_id=key.workspace_id, kind=kind, status=status,
                                                     limit=limit)}


@router.get("/{job_id}")
def get(job_id: str, key: KeyInfo = Depends(caller), rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    return jobs.get_job(rt.db, job_id, key.workspace_id)


@router.post("/{job_id}/cancel")
def cancel(job_id: str, key: KeyInfo = Depends(admin), rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    return jobs.cancel(rt.db, job_id, key.workspace_id)
