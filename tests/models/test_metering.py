"""Rate-limit buckets and the usage writer, on real state (no server)."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from temper.auth.keys import create_key, get_key
from temper.errors import QuotaExceeded, RateLimited
from temper.models.metering import Limits, MemoryLimitStore, UsageWriter, usage_summary
from temper.store.db import migrate


def test_bucket_empties_then_refills_per_minute() -> None:
    store = MemoryLimitStore()
    for _ in range(3):
        assert store.take("r:k", 3, 3 / 60, 1, now=100.0)[1] == 0
    level, wait = store.take("r:k", 3, 3 / 60, 1, now=100.0)
    assert level == 0 and wait == pytest.approx(20.0)  # one request back every 20 s
    assert store.take("r:k", 3, 3 / 60, 1, now=121.0)[1] == 0
    store.charge("t:k", 100, 100 / 60, 250, now=0.0)  # an answer larger than the limit
    assert store.take("t:k", 100, 100 / 60, 0, now=60.0)[1] > 0  # still in debt after a minute


def test_limits_raise_the_right_errors(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 't.db'}"
    migrate(db)
    key, _ = create_key(db, rpm=1, token_budget=10)
    limits = Limits(MemoryLimitStore())
    headers = dict(limits.admit(key, spent=0))
    assert headers[b"x-ratelimit-limit-requests"] == b"1"
    with pytest.raises(RateLimited) as e:
        limits.admit(key, spent=0)
    assert int(e.value.headers["retry-after"]) >= 1
    with pytest.raises(QuotaExceeded) as q:
        limits.admit(key, spent=10)
    assert q.value.headers["x-should-retry"] == "false" and q.value.status == 429


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
    (total,) = usage_summary(db, group_by="key")
    assert total["requests"] == 5 and total["total_tokens"] == 35 and total["cost"] == pytest.approx(2.5)
