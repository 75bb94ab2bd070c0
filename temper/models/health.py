"""Whether remote models answer: a one-call probe (an admin's "test connection") and the last check of each
remote model, kept in ``model_health`` and refreshed in the background.

A probe asks ``GET {base_url}/models`` (free at every vendor). When ``thorough`` (an admin asked) and the
upstream has no model list, it makes one 1-token call instead. Local models are not probed: they always
answer. Admins add these URLs, so the web-source address rules do not apply; every probe is bounded by a
short timeout instead.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from temper.models.catalog import Catalog, ModelEntry
from temper.store.db import session
from temper.store.tables import ModelHealth, as_utc, iso_utc, utcnow

log = logging.getLogger("temper.health")
PROBE_TIMEOUT_S = 10.0
CONCURRENCY = 8
_PINGS: dict[str, tuple[str, dict[str, Any]]] = {
    "chat": ("/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}),
    "completion": ("/completions", {"prompt": "hi", "max_tokens": 1}),
    "embedding": ("/embeddings", {"input": "hi"}),
    "rerank": ("/rerank", {"query": "hi", "documents": ["hi"]}),
}


@dataclass
class Check:
    """One probe's outcome. ``code``: None when ok, else key_missing, unreachable, timeout, bad_key,
    model_not_listed or upstream_error; ``status``: the upstream's HTTP status, if it answered."""

    ok: bool
    code: str | None = None
    message: str = ""
    status: int | None = None
    latency_ms: float | None = None
    method: str = "models"
    checked_at: datetime = field(default_factory=utcnow)

    @property
    def state(self) -> str:
        if self.ok:
            return "healthy"
        return "unreachable" if self.code in ("unreachable", "timeout") else "unhealthy"

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "state": self.state, "code": self.code, "message": self.message,
                "status": self.status, "latency_ms": self.latency_ms, "method": self.method,
                "checked_at": iso_utc(self.checked_at)}


def _upstream_message(r: httpx.Response) -> str:
    try:
        err = r.json().get("error")
        text = err.get("message") if isinstance(err, dict) else err
    except (ValueError, AttributeError):
        text = r.text
    return str(text or r.reason_phrase)[:300]


def _listed(r: httpx.Response) -> list[str] | None:
    """The model ids of a ``/models`` answer, or None when it is not a model list."""
    try:
        data = r.json().get("data")
    except (ValueError, AttributeError):
        return None
    if not isinstance(data, list):
        return None
    return [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]


def _judge(r: httpx.Response, model: str, method: str) -> Check | None:
    """A verdict from an answer, or None when the answer says only "no such endpoint"."""
    if r.status_code in (401, 403):
        return Check(False, "bad_key", f"The upstream rejected the API key (HTTP {r.status_code}): "
                     f"{_upstream_message(r)}", r.status_code, method=method)
    if method == "models" and r.status_code in (404, 405, 501):
        return None
    if method != "models" and r.status_code == 404:
        return Check(False, "model_not_listed", f"The upstream does not know the model {model!r}: "
                     f"{_upstream_message(r)}", r.status_code, method=method)
    if r.status_code >= 400:
        return Check(False, "upstream_error", f"The upstream answered HTTP {r.status_code}: {_upstream_message(r)}",
                     r.status_code, method=method)
    ids = _listed(r) if method == "models" else None
    if ids and model not in ids:
        return Check(False, "model_not_listed", f"The upstream does not list the model {model!r} (it lists "
                     f"{len(ids)}: {', '.join(ids[:5])}{'…' if len(ids) > 5 else ''}).", r.status_code, method=method)
    return Check(True, None, "", r.status_code, method=method)


async def probe(base_url: str, model: str, api_key_env: str | None, modality: str = "chat", *,
                thorough: bool = True, timeout_s: float = PROBE_TIMEOUT_S) -> Check:
    """Probe one endpoint with the key the server would use: the model list, then (``thorough``, when the
    upstream has no list) a 1-token call."""
    if api_key_env and not os.environ.get(api_key_env):
        return Check(False, "key_missing", f"The environment variable {api_key_env} is not set on the server.")
    headers = {"Authorization": f"Bearer {os.environ[api_key_env]}"} if api_key_env else {}
    host = urlsplit(base_url).netloc or base_url
    base = base_url.rstrip("/")
    t0 = time.perf_counter()
    try:
        async with httpx.AsyncClient(timeout=timeout_s, trust_env=False, follow_redirects=False) as client:
            listing = await client.get(base + "/models", headers=headers)
            check = _judge(listing, model, "models")
            if check is None and thorough and modality in _PINGS:
                path, body = _PINGS[modality]
                check = _judge(await client.post(base + path, json={"model": model, **body}, headers=headers),
                               model, modality)
            if check is None:  # reachable; it only has no model list
                check = Check(True, None, "The upstream does not list its models.", listing.status_code)
    except httpx.TimeoutException:
        check = Check(False, "timeout", f"No answer from {host} within {timeout_s:g} s.")
    except (httpx.HTTPError, OSError) as e:
        check = Check(False, "unreachable", f"Cannot connect to {host}: {str(e) or type(e).__name__}")
    except (httpx.InvalidURL, ValueError) as e:  # e.g. a host name that is not a valid IDNA name
        check = Check(False, "unreachable", f"Invalid URL {base_url!r}: {e}")
    check.latency_ms = round((time.perf_counter() - t0) * 1000, 1)
    return check


async def check_entry(entry: ModelEntry, *, thorough: bool) -> Check | None:
    """Probe every remote deployment of ``entry`` at once; the first failure, else the slowest success
    (None for a local model)."""
    deps = [d for d in entry.deployments if d.base_url]
    if not deps:
        return None
    checks = await asyncio.gather(*(probe(d.base_url or "", d.upstream_model or entry.id, d.api_key_env,
                                          entry.modality, thorough=thorough) for d in deps))
    failed = [c for c in checks if not c.ok]
    return failed[0] if failed else max(checks, key=lambda c: c.latency_ms or 0)


def save_check(db: str, model_id: str, check: Check) -> None:
    try:
        with session(db) as s:
            row = s.get(ModelHealth, model_id) or ModelHealth(model_id=model_id)
            row.state, row.code, row.message = check.state, check.code, check.message
            row.status, row.latency_ms, row.checked_at = check.status, check.latency_ms, check.checked_at
            s.add(row)
    except IntegrityError:  # another replica stored its first check of this model at the same moment
        log.info("a check of %s was stored elsewhere at the same time", model_id)


def forget_check(db: str, model_id: str) -> None:
    with session(db) as s:
        s.execute(delete(ModelHealth).where(ModelHealth.model_id == model_id))


def _checked_at(db: str) -> dict[str, datetime]:
    with session(db) as s:
        return {m: as_utc(t) for m, t in s.execute(select(ModelHealth.model_id, ModelHealth.checked_at))}


def health_by_model(db: str) -> dict[str, dict[str, Any]]:
    """The last check of every model that has one, as the API shows it."""
    with session(db) as s:
        return {r.model_id: {"state": r.state, "code": r.code, "message": r.message, "status": r.status,
                             "latency_ms": r.latency_ms, "checked_at": iso_utc(r.checked_at)}
                for r in s.scalars(select(ModelHealth))}


class HealthMonitor:
    """Checks every active remote model whose last check is older than ``every_s`` (0: only when asked),
    and a model soon after it is added or changed. Results go to the database, so every replica shows them."""

    def __init__(self, db: str, catalog: Callable[[], Catalog], every_s: float) -> None:
        self.db = db
        self.catalog = catalog
        self.every_s = every_s
        self._pending: dict[str, asyncio.Task] = {}

    async def check(self, entry: ModelEntry, *, thorough: bool = True) -> Check | None:
        result = await check_entry(entry, thorough=thorough)
        if result is not None:
            await asyncio.get_running_loop().run_in_executor(None, save_check, self.db, entry.id, result)
        return result

    def soon(self, entry: ModelEntry) -> None:
        """Check ``entry`` in the background (once at a time per model)."""
        if not entry.remote or entry.id in self._pending:
            return
        task = asyncio.get_running_loop().create_task(self.check(entry, thorough=False))
        self._pending[entry.id] = task

        def done(t: asyncio.Task) -> None:
            self._pending.pop(entry.id, None)
            if not t.cancelled() and t.exception() is not None:
                log.warning("checking %s failed: %s", entry.id, t.exception())

        task.add_done_callback(done)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(entry: ModelEntry) -> None:
            async with gate:
                await self.check(entry, thorough=False)

        while True:
            try:
                last = await loop.run_in_executor(None, _checked_at, self.db)
                now = utcnow()
                due = [e for e in self.catalog().list() if e.remote and e.status == "active"
                       and e.id not in self._pending
                       and (e.id not in last or (now - last[e.id]).total_seconds() >= self.every_s)]
                await asyncio.gather(*(one(e) for e in due))
            except Exception:  # noqa: BLE001 - a transient DB error must not stop the checks
                log.exception("checking the health of remote models failed")
            await asyncio.sleep(self.every_s)

    def close(self) -> None:
        for task in list(self._pending.values()):
            task.cancel()
