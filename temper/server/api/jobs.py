"""Management API: background jobs (ingestion, plugin job kinds) — submit, status with percent, events,
artifacts, and cancellation."""
from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from temper.auth.keys import KeyInfo
from temper.errors import NotFound, TemperError
from temper.jobs import store as jobs
from temper.jobs.artifacts import artifact_store
from temper.jobs.runner import Runner
from temper.server.api.deps import admin, caller, runtime
from temper.server.runtime import Runtime

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(description="A registered job kind (GET /api/v1/jobs/kinds).")
    spec: dict[str, Any] = Field(default_factory=dict, description="The kind's parameters.")
    resource_id: str | None = Field(None, max_length=40, description="What the job works on, to find it by.")


def _runner(rt: Runtime) -> Runner:
    if rt.job_runner is None:
        raise TemperError("The server is still starting; try again.", status=503, code="starting")
    return rt.job_runner


def started_by(job: dict[str, Any], key: KeyInfo) -> bool:
    """Whether ``key`` may see this job: admins see all; members the jobs started with their own key."""
    return key.is_admin or job["payload"].get("key_id") == key.id


def _job(rt: Runtime, job_id: str, key: KeyInfo) -> dict[str, Any]:
    job = jobs.get_job(rt.db, job_id, key.workspace_id)
    if not started_by(job, key):
        raise NotFound(f"No job {job_id!r}.", param="job_id", code="job_not_found", params={"job_id": job_id})
    return job


@router.get("")
def list_(kind: str | None = None, status: str | None = None, limit: int = Query(50, ge=1, le=500),
          key: KeyInfo = Depends(caller), rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    """Newest first: every job for admins, a member's own jobs for members."""
    found = jobs.list_jobs(rt.db, workspace_id=key.workspace_id, kind=kind, status=status,
                           limit=limit if key.is_admin else 500)
    return {"object": "list", "data": [j for j in found if started_by(j, key)][:limit]}


@router.post("", status_code=201)
def submit(body: JobIn, key: KeyInfo = Depends(admin), rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    """Queue a job of a registered kind; its model calls are made for the submitting key."""
    runner = _runner(rt)
    kind = runner.kinds.get(body.kind)
    if kind is None:
        raise NotFound(f"No job kind {body.kind!r}; GET /api/v1/jobs/kinds lists them.", param="kind",
                       code="job_kind_not_found", params={"kind": body.kind})
    job = jobs.submit(rt.db, kind.name, {**body.spec, "key_id": key.id}, workspace_id=key.workspace_id,
                      resource_id=body.resource_id, unit=kind.unit)
    runner.wake()
    return job


@router.get("/kinds", dependencies=[Depends(caller)])
def kinds(rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    return {"object": "list", "data": [
        {"object": "job.kind", "name": k.name, "description": k.description, "cpus": k.cpus, "gpus": k.gpus,
         "unit": k.unit} for k in _runner(rt).kinds.values()]}


@router.get("/{job_id}")
def get(job_id: str, key: KeyInfo = Depends(caller), rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    return _job(rt, job_id, key)


@router.post("/{job_id}/cancel")
def cancel(job_id: str, key: KeyInfo = Depends(admin), rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    return jobs.cancel(rt.db, job_id, key.workspace_id)


@router.get("/{job_id}/events")
def events(job_id: str, after: int = Query(0, ge=0, description="Only events with a greater id (to follow)."),
           limit: int = Query(100, ge=1, le=1000), key: KeyInfo = Depends(caller),
           rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    _job(rt, job_id, key)
    data = jobs.list_events(rt.db, job_id, key.workspace_id, after=after, limit=limit + 1)
    return {"object": "list", "data": data[:limit], "has_more": len(data) > limit}


@router.get("/{job_id}/artifacts")
def artifacts(job_id: str, key: KeyInfo = Depends(caller), rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    _job(rt, job_id, key)
    return {"object": "list", "data": artifact_store(rt.settings, rt.db).list(job_id)}


@router.get("/{job_id}/artifacts/{name:path}", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}}, "description": "The artifact's bytes."}})
def download(job_id: str, name: str, key: KeyInfo = Depends(caller), rt: Runtime = Depends(runtime)) -> FileResponse:
    _job(rt, job_id, key)
    store = artifact_store(rt.settings, rt.db)
    meta = store.info(job_id, name)
    return FileResponse(store.path(job_id, name), media_type=meta["media_type"],
                        filename=PurePosixPath(name).name, headers={"x-content-sha256": meta["sha256"]})
