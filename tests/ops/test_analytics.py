"""Analytics (temper.ops.analytics) against numbers computed by hand from the same usage rows: totals, groups
and per-minute buckets, with latency and first-token figures over the successful requests only."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from temper.ops.analytics import CallFilter, stats
from temper.store.db import migrate, session
from temper.store.tables import UsageRecord

Row = tuple[str, str, float, float | None, int, int, int, float, datetime]  # model, key, ms, ttft, status, in, out, cost, at


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    migrate(url)
    return url


def _seed(db: str, rows: list[Row]) -> None:
    with session(db) as s:
        for i, (model, key, ms, ttft, status, tin, tout, cost, at) in enumerate(rows):
            s.add(UsageRecord(request_id=f"req_{i:024x}", workspace_id="ws_a", key_id=key, model=model,
                              operation="chat", prompt_tokens=tin, completion_tokens=tout, cost=cost, latency_ms=ms,
                              ttft_ms=ttft, status=status, created_at=at))


def _rank(values: list[float], p: float) -> float | None:
    ordered = sorted(values)
    return ordered[math.ceil(p * len(ordered)) - 1] if ordered else None


def _expect(rows: list[Row]) -> dict:
    ok = [r for r in rows if r[4] < 400]
    ms = [r[2] for r in ok]
    ttft = [r[3] for r in ok if r[3] is not None]
    errors = len(rows) - len(ok)
    return {"requests": len(rows), "errors": errors, "error_rate": round(errors / len(rows), 6),
            "avg_ms": round(sum(ms) / len(ms), 3), "max_ms": max(ms),
            "p50_ms": _rank(ms, .5), "p95_ms": _rank(ms, .95), "p99_ms": _rank(ms, .99),
            "ttft_avg_ms": round(sum(ttft) / len(ttft), 3), "ttft_p50_ms": _rank(ttft, .5),
            "ttft_p95_ms": _rank(ttft, .95), "input_tokens": sum(r[5] for r in rows),
            "output_tokens": sum(r[6] for r in rows), "cost": pytest.approx(sum(r[7] for r in rows))}


def test_analytics_equal_hand_computed_numbers(db: str) -> None:
    end = datetime.now(timezone.utc).replace(second=30, microsecond=0)
    rows: list[Row] = []
    for i in range(37):  # two models, two keys, three minutes, some errors (with long latencies), TTFT on some
        model, key = ("a", "k1") if i % 3 else ("b", "k2")
        failed = i % 7 == 0
        rows.append((model, key, 5000.0 if failed else float((i * 37) % 101 + 1), float(i) if i % 4 else None,
                     502 if failed else 200, 10 + i, i, 0.001 * i, end - timedelta(minutes=i % 3, seconds=1)))
    rows.append(("a", "k1", 5.0, None, 200, 1, 1, 0.0, end - timedelta(hours=5)))  # outside the window
    _seed(db, rows)
    inside = rows[:-1]
    s = stats(db, CallFilter(workspace_id="ws_a", since=end - timedelta(hours=1), until=end), bucket="minute",
              group_by="model")
    assert s["totals"] == _expect(inside)
    assert s["totals"]["max_ms"] < 5000  # a failure's latency is not a latency
    assert {g["group"]: {k: v for k, v in g.items() if k != "group"} for g in s["groups"]} == {
        m: _expect([r for r in inside if r[0] == m]) for m in ("a", "b")}
    points = {p["t"]: p for p in s["series"] if p["requests"]}
    assert len(points) == 3 and sum(p["requests"] for p in s["series"]) == len(inside)
    for t, p in points.items():
        start = datetime.fromisoformat(t.replace("Z", "+00:00"))
        bucket = [r for r in inside if start <= r[8] < start + timedelta(minutes=1)]
        assert {k: v for k, v in p.items() if k != "t"} == _expect(bucket)
    by_key = stats(db, CallFilter(workspace_id="ws_a", model="a", since=end - timedelta(hours=1), until=end),
                   group_by="key")
    assert [(g["group"], g["requests"]) for g in by_key["groups"]] == [("k1", sum(r[0] == "a" for r in inside))]
