"""Artifacts: the files a job writes (reports, models, datasets), kept per job and downloadable.

Their bytes sit in an ``ArtifactStore``; their metadata (size, media type, SHA-256) in ``job_artifacts`` rows,
so lists never touch the files. ``LocalArtifactStore`` keeps them under ``<artifacts dir>/<job id>/<name>``; on
a Ray cluster of several machines that directory must be shared (NFS, a mounted bucket). Writing a name again
replaces it, and a job run again after a crash finds the artifacts of its earlier attempt (checkpoints).
"""
from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from sqlalchemy import delete, select

from temper.config import Settings
from temper.errors import InvalidRequest, NotFound
from temper.store.db import session
from temper.store.tables import JobArtifactRow, iso_utc, utcnow

MAX_NAME = 255
NAME_PART = re.compile(r"^\w[\w.\- ]*$")  # Unicode letters and digits; no leading dot, no control characters
JOB_ID = re.compile(r"^[\w-]{1,40}$")
MEDIA_TYPES = {".jsonl": "application/jsonl", ".md": "text/markdown", ".log": "text/plain"}
Listing = list[dict[str, Any]]


def check_name(name: str) -> str:
    """An artifact name: a relative path of '/'-separated parts, none empty, '.', '..' or hidden."""
    parts = name.split("/")
    if not name or len(name) > MAX_NAME or any(not NAME_PART.match(p) or p != p.rstrip() for p in parts):
        raise InvalidRequest(f"Artifact name {name!r}: use a relative path of letters, digits, '.', '-', '_' and "
                             f"spaces, parts separated by '/' (no '..', no leading '/' or '.'), at most "
                             f"{MAX_NAME} characters.", param="name", code="invalid_artifact_name",
                             params={"name": name})
    return name


def media_type_of(name: str) -> str:
    return MEDIA_TYPES.get(Path(name).suffix.lower()) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def artifact_dict(a: JobArtifactRow) -> dict[str, Any]:
    return {"object": "job.artifact", "job_id": a.job_id, "name": a.name, "size_bytes": a.size_bytes,
            "media_type": a.media_type, "sha256": a.sha256, "created_at": iso_utc(a.created_at)}


class ArtifactStore(Protocol):
    def put(self, job_id: str, name: str, data: bytes | Path, media_type: str | None = None) -> dict[str, Any]:
        """Store bytes, or a file's content, as ``name``; its metadata."""

    def list(self, job_id: str) -> Listing:
        ...

    def info(self, job_id: str, name: str) -> dict[str, Any]:
        """One artifact's metadata; NotFound when there is none."""

    def path(self, job_id: str, name: str) -> Path:
        """A local file with the artifact's bytes (for downloads); NotFound when there is none."""

    def open(self, job_id: str, name: str) -> BinaryIO:
        ...

    def delete(self, job_id: str) -> int:
        """Remove every artifact of a job; how many there were."""


class LocalArtifactStore:
    def __init__(self, db: str, root: Path) -> None:
        self.db = db
        self.root = root

    def _dir(self, job_id: str) -> Path:
        if not JOB_ID.match(job_id):
            raise InvalidRequest(f"Not a job id: {job_id!r}.", param="job_id",
                                 code="invalid_job_id", params={"job_id": job_id})
        return self.root / job_id

    def put(self, job_id: str, name: str, data: bytes | Path, media_type: str | None = None) -> dict[str, Any]:
        target = self._dir(job_id) / check_name(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(data, Path):
                    with data.open("rb") as src:
                        while block := src.read(1 << 20):
                            digest.update(block)
                            out.write(block)
                else:
                    digest.update(data)
                    out.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        row = JobArtifactRow(job_id=job_id, name=name, size_bytes=target.stat().st_size,
                             media_type=media_type or media_type_of(name), sha256=digest.hexdigest(),
                             created_at=utcnow())
        with session(self.db) as s:
            s.merge(row)
        return artifact_dict(row)

    def list(self, job_id: str) -> Listing:
        with session(self.db) as s:
            rows = s.scalars(select(JobArtifactRow).where(JobArtifactRow.job_id == job_id)
                             .order_by(JobArtifactRow.name))
            return [artifact_dict(a) for a in rows]

    def info(self, job_id: str, name: str) -> dict[str, Any]:
        with session(self.db) as s:
            row = s.get(JobArtifactRow, (job_id, name))
            if row is None:
                raise NotFound(f"Job {job_id} has no artifact named {name!r}.", param="name",
                               code="artifact_not_found", params={"job_id": job_id, "name": name})
            return artifact_dict(row)

    def path(self, job_id: str, name: str) -> Path:
        self.info(job_id, name)
        path = self._dir(job_id) / check_name(name)
        if not path.is_file():
            raise NotFound(f"The file of artifact {name!r} of job {job_id} is missing from {self.root}.",
                           param="name", code="artifact_not_found", params={"job_id": job_id, "name": name})
        return path

    def open(self, job_id: str, name: str) -> BinaryIO:
        return self.path(job_id, name).open("rb")

    def delete(self, job_id: str) -> int:
        shutil.rmtree(self._dir(job_id), ignore_errors=True)
        with session(self.db) as s:
            return s.execute(delete(JobArtifactRow).where(JobArtifactRow.job_id == job_id)).rowcount


def artifact_store(settings: Settings, db: str | None = None) -> ArtifactStore:
    """The configured store: files under TEMPER_ARTIFACTS_DIR (default ``<TEMPER_HOME>/artifacts``)."""
    return LocalArtifactStore(db or settings.db_url, settings.artifacts_dir or settings.home_dir / "artifacts")


class JobArtifacts:
    """The artifact store as one job's handler sees it: names relative to the job."""

    def __init__(self, store: ArtifactStore, job_id: str) -> None:
        self.store = store
        self.job_id = job_id

    def put(self, name: str, data: bytes | Path, media_type: str | None = None) -> dict[str, Any]:
        return self.store.put(self.job_id, name, data, media_type)

    def list(self) -> Listing:
        return self.store.list(self.job_id)

    def path(self, name: str) -> Path:
        return self.store.path(self.job_id, name)

    def open(self, name: str) -> BinaryIO:
        return self.store.open(self.job_id, name)
