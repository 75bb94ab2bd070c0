"""Rate-limit buckets and the usage writer, on real state (no server)."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from temper.auth.keys import create_key, get_key
from temper.errors import QuotaExceeded, RateLimited
from temper.models.limits import MemoryLimitStore
from temper.models.metering import Meter, UsageWriter, usage_row
from temper.ops.analytics import CallFilter, stats
from temper.models.provider import Usage
from temper.store.db import migrate


async def test_meter_raises_the_right_errors_and_counts_the_budget(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 't.db'}"
    migrate(db)
    key, _ = create_key(db, rpm=1, token_budget=10)
    meter = Meter(UsageWriter(db), MemoryLimitStore())
    headers = dict((await meter.admit(key)).headers)
    assert headers[b"x-ratelimit-limit-requests"] == b"1"
    with pytest.raises(RateLimited) as e:
        await meter.admit(key)
    assert int(e.value.headers["retry-after"]) >= 1
    await meter.charge(usage_row("req_1", key.workspace_id, key.id, "chat", "m"), key, None, Usage(4, 6), 0.0)
    with pytest.raises(QuotaExceeded) as q:
        await meter.check_budget(key)  # 10 tokens spent of 10
    assert q.value.headers["x-should-retry"] == "false" and q.value.status == 429
    assert meter.usage.flush() == 1 and get_key(db, key.id).tokens_used == 10


async def test_a_budget_catches_up_with_tokens_other_processes_recorded(tmp_path: Path) -> None:
    """In memory, usage a job recorded from its worker process reaches the server's budget within a poll."""
    db = f"sqlite:///{tmp_path / 'c.db'}"
    migrate(db)
    key, _ = create_key(db, token_budget=100)
    server = Meter(UsageWriter(db), MemoryLimitStore())
    await server.load_spent(db)
    job = UsageWriter(db)  # another process's writer
    job.record(_row(key.id, 1) | {"prompt_tokens": 60, "completion_tokens": 40})
    job.flush()
    await server.check_budget(key)  # not seen yet
    await server.catch_up(db)
    with pytest.raises(QuotaExceeded):
        await server.check_budget(key)


async def test_admission_reserves_estimated_tokens_and_the_charge_settles_them(tmp_path: Path) -> None:
    """Concurrent requests see each other's reservations before any answer is counted; the charge replaces
    the estimate by the real count, and a call abandoned before its charge gives its reservation back."""
    db = f"sqlite:///{tmp_path / 'r.db'}"
    migrate(db)
    key, _ = create_key(db, tpm=600, token_budget=1000)
    meter = Meter(UsageWriter(db), MemoryLimitStore())
    first = await meter.admit(key, 700)  # in flight: 700 of the bucket's 600 and the budget's 1000 reserved
    assert first.budget == first.tpm == 700 and await meter.store.spent(key.id) == 700
    with pytest.raises(RateLimited):
        await meter.admit(key, 10)  # the bucket is below zero while the first request runs
    await meter.charge(usage_row("req_1", key.workspace_id, key.id, "chat", "m"), key, None, Usage(40, 60), 0.0,
                       first)
    assert await meter.store.spent(key.id) == 100  # settled: the real 100 tokens, not the 700 estimated
    second = await meter.admit(key, 300)  # the refund refilled the bucket
    await meter.settle(key, 0, second)  # abandoned
    assert await meter.store.spent(key.id) == 100
    reserved = await meter.reserve(key, 950)  # a capability's call: the budget part only
    assert reserved.tpm == 0 and await meter.store.spent(key.id) == 1050
    with pytest.raises(QuotaExceeded):
        await meter.admit(key, 1)  # the reservation counts against the budget at once


def _row(key_id: str, n: int) -> dict:
    return {"request_id": f"req_{n}", "workspace_id": "ws_default", "key_id": key_id, "app_id": None,
            "model": "m", "operation": "chat", "prompt_tokens": 3, "completion_tokens": 4, "cost": 0.5,
            "latency_ms": 1.0, "ttft_ms": None, "status": 200, "error_code": None, "stream": False,
            "created_at": datetime.now(timezone.utc)}


def test_usage_writer_keeps_rows_when_a_write_fails(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'u.db'}"
    migrate(db)
    key, _ = create_key(db)
    broken = UsageWriter(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    broken.record(_row(key.id, 1))
    with pytest.raises(Exception):
        broken.flush()
    assert len(broken.pending) == 1  # not dropped
    writer = UsageWriter(db)
    for n in range(5):
        writer.record(_row(key.id, n))
    assert writer.flush() == 5 and writer.pending == []
    assert get_key(db, key.id).tokens_used == 35
    (total,) = stats(db, CallFilter(), group_by="key")["groups"]
    assert total["requests"] == 5 and total["input_tokens"] + total["output_tokens"] == 35
    assert total["cost"] == pytest.approx(2.5)
