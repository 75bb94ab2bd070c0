"""The whole schema on PostgreSQL and on SQLite: every store's public functions, the same checks on both.

Each backend gets one fresh database for this module (PostgreSQL: a new database on the session's server,
whose default time zone is set away from UTC, as a server in China would have it).
"""
from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from temper.auth.keys import active_keys_by_hash, create_key, get_key, hash_key, list_keys, revoke_key, tokens_used_by_key
from temper.auth.sessions import create_session, find_session
from temper.errors import Conflict, InvalidRequest, NotFound
from temper.jobs import store as jobs
from temper.models.catalog import Catalog, ModelEntry, add_model, remove_model, stored_entries
from temper.models.metering import UsageWriter, usage_records, usage_row
from temper.models.provider import Deployment
from temper.ops import tracing
from temper.ops.analytics import CallFilter, stats
from temper.ops.annotations import create_queue, delete_queue, export_dataset, get_queue, next_item, submit
from temper.ops.exporter import SpanExporter
from temper.ops.prompts import store as prompts
from temper.ops.scores import add_score, delete_score, list_scores
from temper.ops.span_store import SpanStoreSink
from temper.ops.traces import (TraceFilter, count_traces, delete_before, export_traces, get_trace, list_traces,
                               now_us)
from temper.store.db import bump_revision, get_engine, migrate, revisions, session
from temper.store.tables import DEFAULT_WORKSPACE, SpanRow, Workspace

HOUR_US = 3_600_000_000


def _pg_database(dsn: str) -> tuple[str, str]:
    """A new, empty database on the server at ``dsn``: (its name, its SQLAlchemy URL)."""
    name = f"temper_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(f"ALTER DATABASE \"{name}\" SET timezone TO 'Asia/Shanghai'")
    url = make_url(dsn).set(drivername="postgresql+psycopg", database=name)
    return name, url.render_as_string(hide_password=False)


def _fresh(backend: str, tmp: Path, request: pytest.FixtureRequest) -> tuple[str, str | None]:
    if backend == "sqlite":
        return f"sqlite:///{tmp / f'{uuid.uuid4().hex}.db'}", None
    name, url = _pg_database(request.getfixturevalue("postgres_dsn"))
    return url, name


def _drop(url: str, name: str | None, request: pytest.FixtureRequest) -> None:
    get_engine(url).dispose()
    if name is not None:
        with psycopg.connect(request.getfixturevalue("postgres_dsn"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url, name = _fresh(request.param, tmp_path_factory.mktemp("schema"), request)
    migrate(url)
    yield url
    _drop(url, name, request)


@pytest.fixture
def spans(db: str) -> Iterator[SpanExporter]:
    """Finished spans go to the span store in this process (the thread writer's path), on ``drain``."""
    ex = SpanExporter([SpanStoreSink(db)])
    tracing.install(ex)
    yield ex
    tracing.install(None)
    ex.close()


def _ws() -> str:
    """A workspace of one test's own: the module's tests share a database."""
    return f"ws_{uuid.uuid4().hex[:12]}"


def _root(name: str, kind: str, start_us: int, ms: float, attrs: dict[str, Any], ws: str, *,
          error: str | None = None, input: Any = None, output: Any = None) -> tracing.Span:
    """A trace's root span that started at ``start_us`` and took ``ms``, ended now (stored on ``drain``)."""
    s = tracing.start(name, kind, attrs, workspace_id=ws, input=input, activate=False)
    s.start_ns = start_us * 1000
    if error:
        s.fail(error, "UpstreamError")
    if output is not None:
        s.set(output=output)
    s.end(s.start_ns + int(ms * 1e6))
    return s


# --- migrations and revisions ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_replicas_starting_together_migrate_one_at_a_time(backend: str, tmp_path: Path,
                                                          request: pytest.FixtureRequest) -> None:
    url, name = _fresh(backend, tmp_path, request)
    errors: list[BaseException] = []

    def start() -> None:
        try:
            migrate(url)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == []
        with session(url) as s:
            assert [w.id for w in s.scalars(select(Workspace))] == [DEFAULT_WORKSPACE]
    finally:
        _drop(url, name, request)


def test_a_first_revision_bumped_by_two_writers_at_once_counts_both(db: str) -> None:
    """Neither writer finds the row to update, so both insert it: the second must count, not fail."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with session(db) as s:
                bump_revision(s, name)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    with session(db) as s:
        bump_revision(s, name)
        s.flush()
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.3)  # the second writer now waits for this transaction
    t.join(30)
    assert errors == [] and revisions(db)[name] == 2


# --- tracing: the span store and trace queries -------------------------------------------------------------


def test_spans_are_stored_and_read_back_as_one_tree(db: str, spans: SpanExporter) -> None:
    ws = _ws()

    async def pipeline() -> tracing.Span:
        with tracing.span("answer", "chain", {tracing.APP_ID: "app_demo", tracing.KEY_ID: "key_x"},
                          workspace_id=ws, input="什么是 BM25? 50% off_sale") as root:
            with tracing.span("retrieve", "retrieval") as r:
                with tracing.span("bm25", "retrieval", {"temper.hits": 2}):
                    pass
                r.set(output=["doc-1", "doc-2"])
            with tracing.span("generate", "llm", {tracing.INPUT_TOKENS: 30, tracing.OUTPUT_TOKENS: 12,
                                                   tracing.COST: 0.25, tracing.REQUEST_MODEL: "small"}):
                pass
            try:
                with tracing.span("tool", "tool"):
                    raise ValueError("tool broke")
            except ValueError:
                pass
            root.set(output="答案 done")
            return root

    root = asyncio.run(pipeline())
    spans.drain()
    t = get_trace(db, root.trace_hex)
    assert [(s["name"], s["depth"]) for s in t["spans"]] == [
        ("answer", 0), ("retrieve", 1), ("bm25", 2), ("generate", 1), ("tool", 1)]
    by_name = {s["name"]: s for s in t["spans"]}
    assert by_name["bm25"]["parent_id"] == by_name["retrieve"]["id"]
    assert by_name["bm25"]["attributes"] == {"temper.hits": 2}
    assert (by_name["tool"]["status"], by_name["tool"]["error"]) == ("error", "tool broke")
    assert (t["input_tokens"], t["output_tokens"], t["cost"], t["span_count"]) == (30, 12, 0.25, 5)
    assert (t["input"], t["output"], t["app_id"], t["key_id"], t["workspace_id"]) == (
        "什么是 BM25? 50% off_sale", "答案 done", "app_demo", "key_x", ws)
    assert t["start"].endswith("Z") and t["attributes"] == {tracing.APP_ID: "app_demo", tracing.KEY_ID: "key_x"}

    # a trace whose child spans reach the store before its root: they go to the spans table
    late = tracing.start("agent run", "agent", workspace_id=ws, activate=False)
    tracing.Span("step", "llm", late, {tracing.INPUT_TOKENS: 4}, None).end()
    spans.drain()
    with session(db) as s:
        assert s.scalar(select(SpanRow.name).where(SpanRow.trace_id == late.trace_hex)) == "step"
    late.end()
    spans.drain()
    t = get_trace(db, late.trace_hex)
    assert [(s["name"], s["depth"]) for s in t["spans"]] == [("agent run", 0), ("step", 1)]
    assert (t["span_count"], t["input_tokens"]) == (2, 4)
    with pytest.raises(NotFound):
        get_trace(db, late.trace_hex, workspace_id="ws_other")


def test_traces_are_listed_filtered_paged_exported_and_expired(db: str, spans: SpanExporter) -> None:
    ws, base = _ws(), now_us() - HOUR_US // 2
    for i in range(7):
        _root(f"call {i}", "gateway", base + i * 1000, 10 * (i + 1),
              {tracing.REQUEST_MODEL: "big" if i % 2 else "small", tracing.KEY_ID: f"key_{i % 3}"}, ws,
              error="boom" if i == 3 else None, input=orjson.dumps({"messages": [
                  {"role": "user", "content": f"Question {i}: 100% BM25_Score?"}]}), output="fine")
    spans.drain()
    everything = TraceFilter(workspace_id=ws)
    page, cursor = list_traces(db, everything, limit=3)
    assert [t["name"] for t in page] == ["call 6", "call 5", "call 4"] and cursor
    page2, cursor2 = list_traces(db, everything, limit=3, cursor=cursor)
    page3, cursor3 = list_traces(db, everything, limit=3, cursor=cursor2)
    assert [t["name"] for t in page2 + page3] == ["call 3", "call 2", "call 1", "call 0"] and cursor3 is None
    assert page[0]["input"] == "Question 6: 100% BM25_Score?" and page[0]["output"] == "fine"

    def names(**kw: Any) -> list[str]:
        return [t["name"] for t in list_traces(db, TraceFilter(workspace_id=ws, **kw))[0]]

    assert names(model="big") == ["call 5", "call 3", "call 1"]
    assert names(key_id="key_0", status="ok") == ["call 6", "call 0"]
    assert names(status="error") == ["call 3"]
    assert names(min_ms=30, max_ms=50) == ["call 4", "call 3", "call 2"]
    assert names(since_us=base + 5000) == ["call 6", "call 5"]
    assert names(q="question 2") == ["call 2"]  # case-insensitive, on either database
    assert names(q="100% bm25_score") == names()  # % and _ are matched literally
    assert names(q="100%_bm25") == [] and names(q="问题") == []
    assert count_traces(db, TraceFilter(workspace_id=ws, model="small")) == 4
    with pytest.raises(InvalidRequest):
        names(status="weird")

    lines = [orjson.loads(x) for x in export_traces(db, TraceFilter(workspace_id=ws, model="big"), batch=2)]
    assert [x["name"] for x in lines] == ["call 5", "call 3", "call 1"] and all("spans" in x for x in lines)

    old = _root("old call", "gateway", base - 48 * HOUR_US, 5, {}, ws)
    spans.drain()
    assert delete_before(db, base - HOUR_US) == 1
    with pytest.raises(NotFound):
        get_trace(db, old.trace_hex)
    assert count_traces(db, everything) == 7


def test_analytics_totals_groups_and_series_with_exact_percentiles(db: str) -> None:
    """Requests (usage rows) as temper.ops.analytics counts them; latency percentiles over the successful ones."""
    ws = _ws()
    end = datetime.now(timezone.utc).replace(second=0, microsecond=0)  # on a minute boundary
    writer = UsageWriter(db)
    for i in range(20):  # 10, 20, ... 200 ms; small: the even ones; errors: every fifth
        writer.record(usage_row(f"req_{uuid.uuid4().hex}", ws, None, "chat", "small" if i % 2 == 0 else "big") | {
            "latency_ms": 10.0 * (i + 1), "ttft_ms": float(i), "prompt_tokens": i, "completion_tokens": 1, "cost": 0.5,
            "status": 502 if i % 5 == 4 else 200, "created_at": end - timedelta(minutes=10, seconds=-30 * i)})
    writer.flush()
    out = stats(db, CallFilter(workspace_id=ws, since=end - timedelta(minutes=15), until=end), bucket="minute",
                group_by="model")
    totals = out["totals"]
    assert (totals["requests"], totals["errors"], totals["error_rate"]) == (20, 4, 0.2)
    assert (totals["p50_ms"], totals["p95_ms"], totals["p99_ms"]) == (90, 190, 190)  # 50, 100, 150, 200: failed
    assert (totals["ttft_p50_ms"], totals["input_tokens"], totals["output_tokens"], totals["cost"]) == (8, 190, 20, 10)
    groups = {g["group"]: g for g in out["groups"]}
    assert (groups["small"]["requests"], groups["small"]["p50_ms"], groups["big"]["p99_ms"]) == (10, 90, 180)
    series = out["series"]
    assert len(series) == 15 and sum(p["requests"] for p in series) == 20
    assert [p["requests"] for p in series[5:]] == [2] * 10 and series[5]["p50_ms"] == 10
    by_key = stats(db, CallFilter(workspace_id=ws, status="error", since=end - timedelta(hours=1), until=end),
                   bucket="hour", group_by="source")
    assert by_key["totals"]["requests"] == 4 and [g["group"] for g in by_key["groups"]] == ["internal"]


def test_scores_on_traces_and_spans(db: str, spans: SpanExporter) -> None:
    ws = _ws()
    with tracing.span("run", "agent", workspace_id=ws) as root:
        with tracing.span("step", "llm") as step:
            pass
    spans.drain()
    add_score(db, root.trace_hex, "quality", 0.75, workspace_id=ws, source="judge", comment="ok")
    add_score(db, root.trace_hex, "helpful", True, span_id=step.span_hex, workspace_id=ws, source="human")
    label = add_score(db, root.trace_hex, "label", "好", workspace_id=ws)
    with pytest.raises(NotFound):
        add_score(db, root.trace_hex, "x", 1, span_id="0" * 16, workspace_id=ws)
    with pytest.raises(NotFound):
        add_score(db, root.trace_hex, "x", 1)  # another workspace's trace
    got = {s["name"]: s for s in list_scores(db, workspace_id=ws, trace_id=root.trace_hex)}
    assert (got["quality"]["value"], got["helpful"]["value"], got["label"]["value"]) == (0.75, True, "好")
    assert got["helpful"]["span_id"] == step.span_hex and got["quality"]["created_at"].endswith("Z")
    delete_score(db, label["id"], workspace_id=ws)
    assert sorted(s["name"] for s in get_trace(db, root.trace_hex)["scores"]) == ["helpful", "quality"]


def test_an_annotation_queue_is_worked_through_and_exported(db: str, spans: SpanExporter) -> None:
    ws, base = _ws(), now_us() - 60_000_000
    for i in range(3):
        _root(f"chat {i}", "gateway", base + i, 5, {tracing.REQUEST_MODEL: "small"}, ws,
              input=orjson.dumps({"messages": [{"role": "user", "content": f"问题 {i}"}]}), output=f"答 {i}")
    spans.drain()
    configs = [{"name": "correct", "data_type": "boolean"},
               {"name": "tone", "data_type": "categorical", "categories": ["warm", "cold"]}]
    q = create_queue(db, "review", TraceFilter(model="small"), configs, limit=10, workspace_id=ws)
    assert q["counts"] == {"total": 3, "pending": 3, "done": 0, "skipped": 0}
    first = next_item(db, q["id"], ws)
    assert first["trace"]["input"] == "问题 0"  # the oldest first
    with pytest.raises(InvalidRequest):
        submit(db, q["id"], first["item"]["id"], "done", {"tone": "hot"}, workspace_id=ws)
    submit(db, q["id"], first["item"]["id"], "done", {"correct": True, "tone": "warm"}, author="ann",
           comment="好", workspace_id=ws)
    second = next_item(db, q["id"], ws)
    submit(db, q["id"], second["item"]["id"], "skipped", {}, workspace_id=ws)
    third = next_item(db, q["id"], ws)
    submit(db, q["id"], third["item"]["id"], "done", {"correct": False}, author="ann", workspace_id=ws)
    assert next_item(db, q["id"], ws)["item"] is None
    assert get_queue(db, q["id"], ws)["counts"] == {"total": 3, "pending": 0, "done": 2, "skipped": 1}
    rows = [orjson.loads(x) for x in export_dataset(db, q["id"], ws)]
    assert [(r["input"], r["scores"], r["comment"]) for r in rows] == [
        ("问题 0", {"correct": True, "tone": "warm"}, "好"), ("问题 2", {"correct": False}, None)]
    assert rows[0]["messages"][-1] == {"role": "assistant", "content": "答 0"}
    assert rows[0]["annotated_at"].endswith("Z")
    delete_queue(db, q["id"], ws)
    with pytest.raises(NotFound):
        get_queue(db, q["id"], ws)
    assert len(list_scores(db, workspace_id=ws)) == 3  # the scores stay on their traces


# --- usage metering, keys, catalogue -----------------------------------------------------------------------


def test_usage_is_written_and_summarised_per_key_model_and_time(db: str) -> None:
    key, _ = create_key(db, name="metered", token_budget=5_000_000_000)  # budgets beyond 32 bits
    writer = UsageWriter(db)
    now = datetime.now(timezone.utc).replace(second=30, microsecond=0)
    if now > datetime.now(timezone.utc):
        now -= timedelta(minutes=1)
    stamps = [now - timedelta(hours=2), now - timedelta(hours=2), now - timedelta(minutes=1), now]
    for i, at in enumerate(stamps):
        writer.record({"request_id": f"req_{uuid.uuid4().hex}", "workspace_id": DEFAULT_WORKSPACE, "key_id": key.id,
                       "app_id": None, "model": "small" if i < 3 else "big", "operation": "chat",
                       "prompt_tokens": 10 * (i + 1), "completion_tokens": 1, "cost": 0.5, "ttft_ms": 5.0,
                       "latency_ms": 100.0 * (i + 1), "status": 500 if i == 3 else 200, "error_code": None,
                       "stream": i == 0, "created_at": at})
    for i in range(2):  # a key's lifetime count passes 2^31
        writer.record({"request_id": f"req_big{i}", "workspace_id": DEFAULT_WORKSPACE, "key_id": key.id,
                       "app_id": None, "model": "small", "operation": "chat", "prompt_tokens": 1_500_000_000,
                       "completion_tokens": 0, "cost": 0.0, "ttft_ms": None, "latency_ms": 1.0, "status": 200,
                       "error_code": None, "stream": False, "created_at": now - timedelta(days=3)})
    assert writer.flush() == 6
    assert tokens_used_by_key(db)[key.id] == 3_000_000_104 and get_key(db, key.id).tokens_used == 3_000_000_104

    since = now - timedelta(days=1)
    def groups(group_by: str, since: datetime | None = None) -> list[dict]:
        return stats(db, CallFilter(key_id=key.id, since=since), group_by=group_by)["groups"]

    by_model = {r["group"]: r for r in groups("model", since)}
    assert (by_model["small"]["requests"], by_model["small"]["input_tokens"], by_model["small"]["errors"]) == (3, 60, 0)
    # latency is that of the successful requests: "big" only failed (temper.ops.analytics defines it)
    big = by_model["big"]
    assert (big["errors"], big["max_ms"], big["input_tokens"] + big["output_tokens"]) == (1, None, 41)
    assert by_model["small"]["max_ms"] == 300
    by_day = groups("day")
    assert {r["group"] for r in by_day} == {(now - timedelta(days=3)).strftime("%Y-%m-%d"),
                                            *(t.strftime("%Y-%m-%d") for t in stamps)}
    assert sum(r["requests"] for r in by_day) == 6

    hours = stats(db, CallFilter(key_id=key.id, since=now - timedelta(hours=3)), bucket="hour")["series"]
    counted = {p["t"]: p["requests"] for p in hours if p["requests"]}
    two_ago = (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:00:00Z")
    assert counted[two_ago] == 2 and sum(counted.values()) == 4
    minutes = {p["t"]: p for p in stats(db, CallFilter(key_id=key.id, model="small",
                                                       since=now - timedelta(minutes=5)), bucket="minute")["series"]}
    one_ago = minutes[(now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:00Z")]
    assert (one_ago["requests"], one_ago["avg_ms"], one_ago["ttft_avg_ms"]) == (1, 300, 5)
    assert sum(p["requests"] for p in minutes.values()) == 1

    records = usage_records(db, key_id=key.id, limit=3)
    older = usage_records(db, key_id=key.id, after=records[-1]["id"])
    assert records[0]["request_id"] == "req_big1" and len(records + older) == 6
    assert {r["stream"] for r in records + older} == {True, False}
    assert all(r["created_at"].endswith("Z") for r in records)  # UTC on both databases, marked as such


def test_keys_are_created_listed_and_revoked(db: str) -> None:
    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=7)
    key, plain = create_key(db, name="模型 key", allowed_models=["small"], rpm=60, tpm=1000, expires_at=expires)
    assert get_key(db, key.id).as_dict() == key.as_dict()
    got = get_key(db, key.id)
    assert got.expires_at == expires and got.expires_at.utcoffset() == timedelta(0)
    assert got.as_dict()["expires_at"] == expires.isoformat()  # UTC on either database
    assert hash_key(plain) in active_keys_by_hash(db)
    with pytest.raises(Conflict):
        create_key(db, secret=plain)
    with pytest.raises(InvalidRequest):
        create_key(db, rpm=0)
    _, token = create_session(db, key, timedelta(hours=1))
    assert find_session(db, token) is not None
    revoked = revoke_key(db, key.id)
    assert revoked.revoked_at is not None and find_session(db, token) is None
    assert hash_key(plain) not in active_keys_by_hash(db)
    assert key.id not in {k.id for k in list_keys(db, include_revoked=False)}
    assert key.id in {k.id for k in list_keys(db, workspace_id=DEFAULT_WORKSPACE)}
    with pytest.raises(NotFound):
        get_key(db, "key_missing")


def test_the_catalogue_keeps_added_models(db: str) -> None:
    builtin = ModelEntry(id="builtin-small", modality="chat", deployments=[Deployment(provider="local")],
                         builtin=True)
    catalog = Catalog([builtin], stored_entries(db))
    name = f"remote-{uuid.uuid4().hex[:6]}"
    entry = ModelEntry(id=name, modality="chat", aliases=[name + "-alias"],
                       deployments=[Deployment(provider="openai_compat", base_url="http://127.0.0.1:9/v1",
                                               upstream_model="m", weight=2)],
                       fallbacks=["builtin-small"], input_price=0.5, tags=["中文"], context_length=4096)
    add_model(db, catalog, entry, providers=["local", "openai_compat"])
    stored = {e.id: e for e in stored_entries(db)}[entry.id]
    assert (stored.aliases, stored.fallbacks, stored.tags, stored.context_length) == (
        [name + "-alias"], ["builtin-small"], ["中文"], 4096)
    assert stored.deployments[0].weight == 2 and abs(stored.created - time.time()) < 60
    catalog = Catalog([builtin], stored_entries(db))
    assert catalog.resolve(name + "-alias").id == name
    with pytest.raises(Conflict):
        add_model(db, catalog, entry, providers=["local", "openai_compat"])
    with pytest.raises(InvalidRequest):
        remove_model(db, catalog, "builtin-small")
    remove_model(db, catalog, entry.id)
    assert entry.id not in {e.id for e in stored_entries(db)}


# --- prompts -----------------------------------------------------------------------------------------------


def test_prompt_versions_and_labels(db: str) -> None:
    ws = _ws()
    prompts.create_prompt(db, "客服", [{"role": "system", "content": "You help {{product}} users."}],
                          labels=["production"], tags=["zh"], workspace_id=ws)
    with pytest.raises(Conflict):
        prompts.create_prompt(db, "客服", "again", workspace_id=ws)
    numbers: list[int] = []
    threads = [threading.Thread(target=lambda: numbers.append(
        prompts.add_version(db, "客服", model_config={"temperature": 0.2}, workspace_id=ws).version))
        for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(numbers) == [2, 3, 4, 5]  # concurrent writers get distinct numbers
    prompts.set_label(db, "客服", "staging", 3, workspace_id=ws)
    assert prompts.get_version(db, "客服", label="staging", workspace_id=ws).version == 3
    assert prompts.get_version(db, "客服", label="production", workspace_id=ws).labels == ["production"]
    assert prompts.get_version(db, "客服", label="latest", workspace_id=ws).version == 5
    info = prompts.get_prompt(db, "客服", ws)
    assert ([v.version for v in info.versions or []], info.labels) == ([5, 4, 3, 2, 1],
                                                                        {"production": 1, "staging": 3})
    assert info.versions and info.versions[0].model_config == {"temperature": 0.2}
    listed = prompts.list_prompts(db, q="zh", workspace_id=ws)
    assert [(p.name, p.latest_version) for p in listed] == [("客服", 5)] and listed[0].updated_at is not None
    assert "+model_config.temperature: 0.2" in prompts.diff(db, "客服", "production", 2, ws)["diff"]
    assert prompts.remove_label(db, "客服", "staging", ws) == 3
    deleted = prompts.delete_prompt(db, "客服", ws)
    assert deleted.latest_version == 5 and prompts.list_prompts(db, workspace_id=ws) == []


# --- jobs --------------------------------------------------------------------------------------------------


def test_jobs_are_claimed_once_reported_cancelled_and_recovered(db: str) -> None:
    kind = f"test.{uuid.uuid4().hex[:8]}"
    job = jobs.submit(db, kind, {"name": "语料"}, resource_id="kb_1", total=4, unit="documents")
    barrier = threading.Barrier(2)
    won: list[Any] = []

    def claimant(worker: str) -> None:
        barrier.wait()
        won.append(jobs.claim(db, worker, [kind]))

    threads = [threading.Thread(target=claimant, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    winners = [j for j in won if j is not None]
    assert len(won) == 2 and len(winners) == 1 and winners[0].id == job["id"] and winners[0].attempts == 1
    assert jobs.claim(db, "w3", [kind]) is None
    assert jobs.report(db, job["id"], done=2, message="2 of 4") is False
    got = jobs.get_job(db, job["id"])
    assert (got["status"], got["percent"], got["payload"], got["started_at"][-1]) == ("running", 50.0,
                                                                                      {"name": "语料"}, "Z")
    jobs.cancel(db, job["id"])
    assert jobs.report(db, job["id"], done=3) is True  # the worker learns it at its next report
    jobs.finish(db, job["id"], "cancelled", message="stopped")
    assert jobs.get_job(db, job["id"])["status"] == "cancelled"

    queued = jobs.submit(db, kind, {})
    assert jobs.cancel(db, queued["id"])["status"] == "cancelled" and jobs.claim(db, "w1", [kind]) is None

    stale = jobs.submit(db, kind, {})
    assert jobs.claim(db, "w1", [kind]) is not None
    time.sleep(0.05)
    assert jobs.recover_stale(db, 3600) == []  # it heart-beat just now
    assert jobs.recover_stale(db, 0.01) == [stale["id"]]
    assert [j["id"] for j in jobs.list_jobs(db, kind=kind, status="queued")] == [stale["id"]]
    for _ in range(jobs.MAX_ATTEMPTS - 1):
        assert jobs.claim(db, "w1", [kind]) is not None
        time.sleep(0.05)
        jobs.recover_stale(db, 0.01)
    assert jobs.get_job(db, stale["id"])["status"] == "failed"
    assert [j["status"] for j in jobs.list_jobs(db, kind=kind)] == ["failed", "cancelled", "cancelled"]
