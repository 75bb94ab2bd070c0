"""Usage metering (batched, off the hot path, never dropped) and per-key rate limits and budgets."""
from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import insert, select

from temper.auth.keys import ADMIN_KEY_ID, KeyInfo, add_tokens_used, tokens_used_by_key
from temper.errors import QuotaExceeded, RateLimited
from temper.models.limits import LimitStore, MemoryLimitStore
from temper.models.catalog import ModelEntry
from temper.models.provider import Usage
from temper.store.db import session
from temper.store.tables import UsageRecord, iso_utc

log = logging.getLogger("temper.metering")


class UsageWriter:
    """Buffers usage rows and writes them in one transaction per flush.

    ``record`` is a list append (no I/O on the request path). A flush that fails keeps its rows and is
    retried, and ``close`` flushes what is left, so a record is never lost while the process lives.
    """

    def __init__(self, db: str, interval_s: float = 0.5) -> None:
        self.db = db
        self.interval_s = interval_s
        self.pending: list[dict] = []
        self.lock = threading.Lock()  # one flush at a time (the loop task vs. close)
        self._task: asyncio.Task | None = None

    def record(self, row: dict) -> None:
        self.pending.append(row)

    def flush(self) -> int:
        with self.lock:
            rows, self.pending = self.pending, []
            if not rows:
                return 0
            try:
                self._write(rows)
            except Exception:
                self.pending[:0] = rows
                raise
            return len(rows)

    def _write(self, rows: list[dict]) -> None:
        spent: dict[str, int] = {}
        for r in rows:
            if r.get("key_id") and r["key_id"] != ADMIN_KEY_ID:
                spent[r["key_id"]] = spent.get(r["key_id"], 0) + r["prompt_tokens"] + r["completion_tokens"]
        with session(self.db) as s:
            s.execute(insert(UsageRecord), rows)
            add_tokens_used(s, spent)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.interval_s)
            if self.pending:
                try:
                    await loop.run_in_executor(None, self.flush)
                except Exception:  # noqa: BLE001 - keep the rows, retry next tick
                    log.exception("writing usage failed; will retry")

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
        await asyncio.get_running_loop().run_in_executor(None, self.flush)


@dataclass
class Admission:
    """What admitting a request reserved (estimated tokens against the key's budget and tokens-per-minute
    bucket, settled by ``Meter.charge``), and the ``x-ratelimit-*`` headers to answer with."""

    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    budget: int = 0
    tpm: int = 0


def _reset(seconds: float) -> str:
    return f"{max(seconds, 0):.3f}s"


class Meter:
    """Admits and charges every model call made on a key's behalf: the gateway's, and the calls the studio
    makes for it (a knowledge base's embeddings, answers and rewrites, a job's), so budgets and limits bind
    them all.

    Rate limits are token buckets and budgets are running totals in the ``LimitStore`` (in memory, or Redis
    shared by every replica and job process); the usage table (written by ``usage``) stays the record.
    Admission reserves a request's estimated tokens before any work (so concurrent requests see each
    other), and the charge settles the difference once the real count is known.
    """

    def __init__(self, usage: UsageWriter, store: LimitStore) -> None:
        self.usage = usage
        self.store = store

    async def admit(self, key: KeyInfo, estimate: int = 0) -> Admission:
        """Check the key's budget and rate limits before a request, reserving ``estimate`` tokens.

        A request is admitted while a bucket has at least one token left; its reservation may take the
        bucket below zero, which holds back the next requests until it refills or the charge refunds."""
        admission = Admission()
        if not self.reserves(key) and not key.rpm:
            return admission  # the gateway's hot path for a key without limits
        if key.token_budget is not None:
            await self.check_budget(key)
        if key.rpm:
            admission.headers += await self._take("requests", key.id, key.rpm, 1)
        if key.tpm:
            admission.headers += await self._take("tokens", key.id, key.tpm, estimate)
            admission.tpm = estimate
        admission.budget = await self._reserve_budget(key, estimate)
        return admission

    @staticmethod
    def reserves(key: KeyInfo) -> bool:
        """Whether admitting ``key``'s requests reserves tokens (so an estimate is worth making)."""
        return key.id != ADMIN_KEY_ID and bool(key.tpm or key.token_budget is not None)

    async def reserve(self, key: KeyInfo, estimate: int) -> Admission:
        """The budget part of admission, for a call a capability makes on the key's behalf."""
        await self.check_budget(key)
        return Admission(budget=await self._reserve_budget(key, estimate))

    async def _reserve_budget(self, key: KeyInfo, estimate: int) -> int:
        if key.token_budget is None or not estimate or key.id == ADMIN_KEY_ID:
            return 0
        await self.store.add_spent(key.id, estimate)
        return estimate

    async def check_budget(self, key: KeyInfo) -> None:
        if key.token_budget is not None and await self.store.spent(key.id) >= key.token_budget:
            raise QuotaExceeded(f"API key {key.prefix}… has used its token budget ({key.token_budget} tokens).",
                                headers={"x-should-retry": "false"}, params={"budget": key.token_budget})

    async def _take(self, kind: str, key_id: str, limit: int, amount: float) -> list[tuple[bytes, bytes]]:
        level, wait = await self.store.take(f"{kind}:{key_id}", limit, limit / 60, amount)
        if wait:
            retry_after = max(1, math.ceil(wait))
            raise RateLimited(f"Rate limit reached for {kind}: limit {limit} per minute. "
                              f"Please try again in {wait:.2f}s.",
                              params={"limit": limit, "kind": kind, "retry_after": retry_after},
                              headers={"retry-after": str(retry_after),
                                       f"x-ratelimit-limit-{kind}": str(limit),
                                       f"x-ratelimit-remaining-{kind}": "0",
                                       f"x-ratelimit-reset-{kind}": _reset(wait)})
        return [(f"x-ratelimit-limit-{kind}".encode(), str(limit).encode()),
                (f"x-ratelimit-remaining-{kind}".encode(), str(max(0, int(level))).encode()),
                (f"x-ratelimit-reset-{kind}".encode(), _reset((limit - level) * 60 / limit).encode())]

    async def charge(self, record: dict, key: KeyInfo | None, entry: ModelEntry | None, usage: Usage | None,
                     t0: float, admission: Admission | None = None) -> None:
        """Complete ``record`` (tokens, cost, latency since ``t0``) and queue it; count the tokens against
        the key's budget and tokens-per-minute limit, less what ``admission`` reserved for them."""
        total = 0
        if usage is not None:
            record["prompt_tokens"], record["completion_tokens"] = usage.prompt_tokens, usage.completion_tokens
            if entry is not None:
                record["cost"] = entry.cost(usage.prompt_tokens, usage.completion_tokens)
            total = usage.total_tokens
        record["latency_ms"] = (time.perf_counter() - t0) * 1000
        record["created_at"] = datetime.now(timezone.utc)
        self.usage.record(record)  # first: the record is kept whatever happens to the limit store
        await self.settle(key, total, admission)

    async def settle(self, key: KeyInfo | None, total: int, admission: Admission | None) -> None:
        """Count ``total`` tokens against the key's budget and bucket, less what ``admission`` reserved
        (0 for a call abandoned before it was charged: its reservation is given back)."""
        if key is None or key.id == ADMIN_KEY_ID:
            return
        admission = admission or Admission()
        if key.token_budget is not None and total != admission.budget:
            await self.store.add_spent(key.id, total - admission.budget)
        if key.tpm and total != admission.tpm:
            await self.store.charge("tokens:" + key.id, key.tpm, key.tpm / 60, total - admission.tpm)

    async def load_spent(self, db: str) -> None:
        """Seed the budgets' running totals from the keys' recorded usage; a total the store already has
        (another replica's, or this process's unflushed tokens) is kept."""
        totals = await asyncio.get_running_loop().run_in_executor(None, tokens_used_by_key, db)
        await self.store.seed_spent(totals)

    async def catch_up(self, db: str) -> None:
        """In memory only: take in tokens that other processes (jobs in worker processes) recorded, so this
        process's budgets see them within a poll. Shared stores are current already."""
        if not isinstance(self.store, MemoryLimitStore):
            return
        totals = await asyncio.get_running_loop().run_in_executor(None, tokens_used_by_key, db)
        for key_id, recorded in totals.items():
            known = await self.store.spent(key_id)
            if recorded > known:
                await self.store.add_spent(key_id, recorded - known)


def usage_row(request_id: str, workspace_id: str, key_id: str | None, operation: str, model: str = "", *,
              app_id: str | None = None, stream: bool = False) -> dict:
    """A usage record before the call: what was asked, by whom; ``Meter.charge`` fills in the outcome."""
    return {"request_id": request_id, "workspace_id": workspace_id, "key_id": key_id, "app_id": app_id,
            "model": model, "operation": operation, "prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0,
            "ttft_ms": None, "status": 200, "error_code": None, "stream": stream}


def _filtered(q, *, since: datetime | None, workspace_id: str | None, key_id: str | None,  # type: ignore[no-untyped-def]
              model: str | None):
    if since is not None:
        q = q.where(UsageRecord.created_at >= since)
    if workspace_id:
        q = q.where(UsageRecord.workspace_id == workspace_id)
    if key_id:
        q = q.where(UsageRecord.key_id == key_id)
    if model:
        q = q.where(UsageRecord.model == model)
    return q


def usage_records(db: str, *, limit: int = 100, after: int | None = None,
                  key_id: str | None = None, model: str | None = None) -> list[dict]:
    q = select(UsageRecord).order_by(UsageRecord.id.desc()).limit(limit)
    if after is not None:
        q = q.where(UsageRecord.id < after)
    if key_id:
        q = q.where(UsageRecord.key_id == key_id)
    if model:
        q = q.where(UsageRecord.model == model)
    with session(db) as s:
        return [{c: getattr(r, c) for c in UsageRecord.__table__.columns.keys()} | {"created_at": iso_utc(r.created_at)}
                for r in s.scalars(q)]


def since_days(days: int) -> datetime:
    return datetime.now(timezone.utc) - timedelta(days=days)

