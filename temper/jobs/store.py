"""Jobs in the database: submit, claim (atomically, by any process), report progress and events, finish, recover.

A job's row is the truth about it, so that the server, a CLI in another process and a restart after
``kill -9`` all see the same state: a job whose worker stopped heart-beating is put back in the queue
(or failed after ``MAX_ATTEMPTS``), and its handler runs again from the start, which handlers must allow.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from temper.errors import InvalidRequest, NotFound
from temper.ids import new_id
from temper.store.db import session
from temper.store.tables import DEFAULT_WORKSPACE, JobArtifactRow, JobEventRow, JobRow, iso_utc, utcnow

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")
MAX_ATTEMPTS = 3
EVENT_LEVELS = ("info", "warning", "error")


def job_dict(j: JobRow, artifacts: int = 0) -> dict[str, Any]:
    return {"id": j.id, "object": "job", "kind": j.kind, "workspace_id": j.workspace_id,
            "resource_id": j.resource_id, "status": j.status, "done": j.done, "total": j.total, "unit": j.unit,
            "percent": round(100 * j.done / j.total, 1) if j.total else (100.0 if j.status == "succeeded" else 0.0),
            "message": j.message, "progress": j.progress, "error": j.error, "attempts": j.attempts, "worker": j.worker, "payload": j.payload,
            "created_at": iso_utc(j.created_at), "started_at": iso_utc(j.started_at) if j.started_at else None,
            "finished_at": iso_utc(j.finished_at) if j.finished_at else None, "artifacts": artifacts}


def _dicts(s: Session, rows: list[JobRow]) -> list[dict[str, Any]]:
    """Job dicts with their artifact counts (one grouped query)."""
    counts: dict[str, int] = dict(s.execute(
        select(JobArtifactRow.job_id, func.count()).where(JobArtifactRow.job_id.in_([j.id for j in rows]))
        .group_by(JobArtifactRow.job_id)).all()) if rows else {}
    return [job_dict(j, counts.get(j.id, 0)) for j in rows]


def submit(db: str, kind: str, payload: dict[str, Any], *, workspace_id: str = DEFAULT_WORKSPACE,
           resource_id: str | None = None, unit: str = "items", total: int = 0) -> dict[str, Any]:
    with session(db) as s:
        job = JobRow(id=new_id("job"), workspace_id=workspace_id, kind=kind, resource_id=resource_id,
                     status="queued", payload=payload, done=0, total=total, unit=unit, message="queued",
                     attempts=0, cancel_requested=False)
        s.add(job)
        s.flush()
        return job_dict(job)


def _job(s: Session, job_id: str, workspace_id: str | None) -> JobRow:
    job = s.get(JobRow, job_id)
    if job is None or (workspace_id is not None and job.workspace_id != workspace_id):
        raise NotFound(f"No job with id {job_id!r}.", param="job_id", code="job_not_found", params={"job_id": job_id})
    return job


def get_job(db: str, job_id: str, workspace_id: str | None = None) -> dict[str, Any]:
    with session(db) as s:
        return _dicts(s, [_job(s, job_id, workspace_id)])[0]


def list_jobs(db: str, *, workspace_id: str = DEFAULT_WORKSPACE, kind: str | None = None,
              resource_id: str | None = None, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    if status is not None and status not in STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}.", param="status",
                             code="not_one_of", params={"allowed": ", ".join(STATUSES)})
    stmt = select(JobRow).where(JobRow.workspace_id == workspace_id)
    for column, value in ((JobRow.kind, kind), (JobRow.resource_id, resource_id), (JobRow.status, status)):
        if value is not None:
            stmt = stmt.where(column == value)
    with session(db) as s:
        return _dicts(s, list(s.scalars(stmt.order_by(JobRow.created_at.desc()).limit(limit))))


def cancel(db: str, job_id: str, workspace_id: str | None = None) -> dict[str, Any]:
    """A queued job is cancelled at once; a running one at its next progress report."""
    with session(db) as s:
        job = _job(s, job_id, workspace_id)
        if job.status == "queued":
            job.status, job.finished_at, job.message = "cancelled", utcnow(), "cancelled before it started"
        elif job.status == "running":
            job.cancel_requested = True
        return _dicts(s, [job])[0]


def claim(db: str, worker: str, kinds: list[str], job_id: str | None = None) -> JobRow | None:
    """Take the oldest queued job of ``kinds`` (or ``job_id``) for ``worker``; None when there is none.

    The conditional UPDATE makes the claim atomic across threads and processes: of two claimants of one
    job, exactly one sees its row change.
    """
    with session(db) as s:
        stmt = select(JobRow.id).where(JobRow.status == "queued", JobRow.kind.in_(kinds))
        if job_id is not None:
            stmt = stmt.where(JobRow.id == job_id)
        candidates = list(s.scalars(stmt.order_by(JobRow.created_at).limit(8)))
    for cid in candidates:
        now = utcnow()
        with session(db) as s:
            won = s.execute(update(JobRow).where(JobRow.id == cid, JobRow.status == "queued").values(
                status="running", worker=worker, started_at=now, heartbeat_at=now, attempts=JobRow.attempts + 1,
                message="started")).rowcount
            if won:
                return s.get(JobRow, cid)
    return None


def report(db: str, job_id: str, done: int | None = None, total: int | None = None,
           message: str | None = None, progress: dict[str, Any] | None = None) -> bool:
    """Record progress (and a heartbeat); returns True when someone asked to cancel the job. ``progress`` is
    the same as named counts and a phase, for clients that word it themselves."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    for name, value in (("done", done), ("total", total), ("message", message), ("progress", progress)):
        if value is not None:
            values[name] = value
    with session(db) as s:
        s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.status == "running").values(**values))
        return bool(s.scalar(select(JobRow.cancel_requested).where(JobRow.id == job_id)))


def heartbeat(db: str, job_ids: list[str]) -> set[str]:
    """Mark the jobs as alive; returns those of them that someone asked to cancel."""
    if not job_ids:
        return set()
    with session(db) as s:
        s.execute(update(JobRow).where(JobRow.id.in_(job_ids), JobRow.status == "running")
                  .values(heartbeat_at=utcnow()))
        return set(s.scalars(select(JobRow.id).where(JobRow.id.in_(job_ids), JobRow.cancel_requested)))


def cancel_requested(db: str, job_id: str) -> bool:
    with session(db) as s:
        return bool(s.scalar(select(JobRow.cancel_requested).where(JobRow.id == job_id)))


def finish(db: str, job_id: str, status: str, *, error: str | None = None, message: str | None = None) -> None:
    assert status in FINISHED
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "error": error}
    if message is not None:
        values["message"] = message
    with session(db) as s:
        s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.status == "running").values(**values))


def _retry_or_fail(s: Any, job: JobRow, *still: Any) -> bool | None:
    """A running job whose worker died: back to the queue (True), or failed after MAX_ATTEMPTS (False).

    A compare-and-set on the attempt the caller saw (plus ``still``, conditions that must hold yet): of two
    replicas recovering the same job, one does it, and a job claimed again meanwhile is left alone (None).
    """
    if job.attempts >= MAX_ATTEMPTS:
        values: dict[str, Any] = {"status": "failed", "finished_at": utcnow(), "error":
                                  f"The worker running this job stopped {job.attempts} times (crash or kill); gave up."}
    else:
        values = {"status": "queued", "worker": None, "message": "requeued: its worker stopped"}
    changed = s.execute(update(JobRow).where(JobRow.id == job.id, JobRow.status == "running",
                                             JobRow.attempts == job.attempts, *still).values(**values)
                        .execution_options(synchronize_session=False)).rowcount
    return (values["status"] == "queued") if changed else None


def recover_stale(db: str, stale_after_s: float) -> list[str]:
    """Jobs whose worker stopped heart-beating (it died): back to the queue, or failed after MAX_ATTEMPTS."""
    cutoff = utcnow() - timedelta(seconds=stale_after_s)
    stale = or_(JobRow.heartbeat_at < cutoff, and_(JobRow.heartbeat_at.is_(None), JobRow.started_at < cutoff))
    requeued: list[str] = []
    with session(db) as s:
        for job in list(s.scalars(select(JobRow).where(JobRow.status == "running", stale))):
            if _retry_or_fail(s, job, stale):
                requeued.append(job.id)
    return requeued


def worker_died(db: str, job_id: str) -> bool:
    """What ``recover_stale`` does, at once, for a job whose runner saw its worker die; True if requeued."""
    with session(db) as s:
        job = s.get(JobRow, job_id)
        return job is not None and job.status == "running" and bool(_retry_or_fail(s, job))


def release(db: str, job_id: str) -> None:
    """Put a running job back in the queue without counting the attempt (its runner is shutting down)."""
    with session(db) as s:
        s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.status == "running").values(
            status="queued", worker=None, attempts=JobRow.attempts - 1, message="requeued: its runner stopped"))


def add_event(db: str, job_id: str, message: str, *, level: str = "info", data: dict[str, Any] | None = None) -> None:
    if level not in EVENT_LEVELS:
        raise ValueError(f"event level must be one of {', '.join(EVENT_LEVELS)}")
    with session(db) as s:
        s.add(JobEventRow(job_id=job_id, at=utcnow(), level=level, message=message, data=data or {}))


def list_events(db: str, job_id: str, workspace_id: str | None = None, *, after: int = 0,
                limit: int = 100) -> list[dict[str, Any]]:
    """A job's events in order, those with an id above ``after`` (to follow a running job)."""
    with session(db) as s:
        _job(s, job_id, workspace_id)
        rows = s.scalars(select(JobEventRow).where(JobEventRow.job_id == job_id, JobEventRow.id > after)
                         .order_by(JobEventRow.id).limit(limit))
        return [{"id": e.id, "object": "job.event", "job_id": e.job_id, "at": iso_utc(e.at), "level": e.level,
                 "message": e.message, "data": e.data} for e in rows]
