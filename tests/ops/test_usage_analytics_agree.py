"""Usage and Analytics count the same requests the same way (``temper.ops.analytics`` defines them once), on a
data set seeded through real calls: remote chats (plain, streamed, failed upstream, timed out, unknown model)
on a named and a nameless key, a knowledge base's ingestion job and a retrieval."""
from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Server, start_server, stop_server, wait_job
from tests.upstream import Upstream

HI = [{"role": "user", "content": "hi"}]


def add_model(server: Server, model_id: str, **spec: object) -> None:
    r = server.api("POST", "/api/v1/models", json={"id": model_id, **spec})
    assert r.status_code == 201, r.text


def new_key(server: Server, name: str) -> tuple[str, str]:
    r = server.api("POST", "/api/v1/keys", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["key"]


def records(server: Server, key_id: str) -> list[dict[str, Any]]:
    return server.api("GET", "/api/v1/usage/records", params={"key_id": key_id, "limit": 1000}).json()["data"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own: the knowledge base's first retrieval makes the server's own (internal) calls."""
    s = start_server(tmp_path_factory.mktemp("agree-home"))
    yield s
    stop_server(s)


@pytest.fixture(scope="module")
def seeded(server: Server, upstream: Upstream) -> dict[str, Any]:
    add_model(server, "agree-chat", base_url=upstream.base_url, upstream_model="m", input_price=2.0,
              output_price=8.0)
    add_model(server, "agree-broken", base_url=upstream.base_url, upstream_model="fail-500")
    add_model(server, "agree-slow", base_url=upstream.base_url, upstream_model="slow", timeout_s=0.5)
    since = datetime.now(timezone.utc)
    a_id, a = new_key(server, "agree-a")
    b_id, b = new_key(server, "")
    ca, cb = server.client(a), server.client(b)
    for _ in range(3):
        ca.chat.completions.create(model="agree-chat", messages=HI)
    list(ca.chat.completions.create(model="agree-chat", messages=HI, stream=True,
                                    stream_options={"include_usage": True}))
    for model in ("agree-broken", "agree-slow"):
        with pytest.raises(openai.APIError):
            ca.chat.completions.create(model=model, messages=HI)
    for _ in range(2):
        cb.chat.completions.create(model="agree-chat", messages=HI)
    with pytest.raises(openai.NotFoundError):
        cb.chat.completions.create(model="agree-nope", messages=HI)

    kb = server.api("POST", "/api/v1/knowledge-bases", json={"name": "agree-kb"}).json()
    added = server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/documents/text", json={
        "title": "apt", "text": "Install a package with apt install NAME. 用 apt 安装软件包。"})
    assert added.status_code == 202, added.text
    job = wait_job(server, added.json()["job"]["id"])
    assert job["status"] == "succeeded", job
    deadline = time.time() + 10  # the job's worker writes its usage rows as it closes
    while not [r for r in records(server, "key_admin") if r["request_id"] == job["id"]] and time.time() < deadline:
        time.sleep(0.1)
    r = httpx.post(f"{server.url}/api/v1/knowledge-bases/{kb['id']}/retrieve", json={"query": "apt"},
                   headers={"Authorization": f"Bearer {a}"}, timeout=60)
    assert r.status_code == 200, r.text
    until = datetime.now(timezone.utc) + timedelta(seconds=1)
    return {"a": a_id, "b": b_id, "job": job["id"], "period": {"since": since.isoformat(), "until": until.isoformat()}}


def usage(server: Server, seeded: dict[str, Any], **params: Any) -> dict[str, Any]:
    r = server.api("GET", "/api/v1/usage", params={**seeded["period"], "limit": 1000, **params})
    assert r.status_code == 200, r.text
    return r.json()


def analytics(server: Server, seeded: dict[str, Any], **params: Any) -> dict[str, Any]:
    r = server.api("GET", "/api/v1/analytics", params={**seeded["period"], "bucket": "minute", **params})
    assert r.status_code == 200, r.text
    return r.json()


def same(u: dict[str, Any], a: dict[str, Any]) -> tuple:
    """The numbers both pages show, in usage's names and analytics' names."""
    return ((u["requests"], u["errors"], u["prompt_tokens"], u["completion_tokens"], u["cost"], u["avg_latency_ms"]),
            (a["requests"], a["errors"], a["input_tokens"], a["output_tokens"], a["cost"], a["avg_ms"]))


@pytest.mark.parametrize("group_by", ["key", "model", "source"])
def test_usage_and_analytics_agree_group_by_group(server: Server, seeded: dict[str, Any], group_by: str) -> None:
    u = {r["group"]: r for r in usage(server, seeded, group_by=group_by)["data"]}
    a = analytics(server, seeded, group_by=group_by)
    assert set(u) == {g["group"] for g in a["groups"]}
    for g in a["groups"]:
        mine, theirs = same(u[g["group"]], g)
        assert mine == theirs, g["group"]
        if group_by == "key":
            assert (u[g["group"]]["key_name"], u[g["group"]]["key_prefix"]) == (g["key_name"], g["key_prefix"])
    total = a["totals"]
    assert sum(r["requests"] for r in u.values()) == total["requests"] >= 11
    assert sum(r["errors"] for r in u.values()) == total["errors"] >= 3
    series = server.api("GET", "/api/v1/usage/series", params={**seeded["period"], "bucket": "minute"}).json()
    assert [p["t"] for p in series["data"]] == [p["t"] for p in a["series"]]
    assert sum(p["requests"] for p in series["data"]) == sum(p["requests"] for p in a["series"]) == total["requests"]
    assert server.api("GET", "/api/v1/traces/stats", params={**seeded["period"], "group_by": group_by}).json()[
        "totals"] == total


def test_failures_count_as_errors_and_keep_their_real_duration_out_of_latency(server: Server,
                                                                              seeded: dict[str, Any]) -> None:
    rows = records(server, seeded["a"])
    api = [r for r in rows if r["request_id"].startswith("req_")]
    failed = [r for r in api if r["status"] >= 400]
    assert len(api) == 6 and sorted(r["model"] for r in failed) == ["agree-broken", "agree-slow"]
    assert all(r["latency_ms"] > 0 for r in failed)
    slow = next(r for r in failed if r["model"] == "agree-slow")
    assert slow["latency_ms"] >= 450  # the timeout's real duration is recorded...
    a = analytics(server, seeded, key_id=seeded["a"], source="api")["totals"]
    assert (a["requests"], a["errors"]) == (6, 2)
    assert 0 < a["p50_ms"] <= a["p99_ms"] < slow["latency_ms"]  # ...but latency is that of the successful calls
    assert a["ttft_p50_ms"] is not None and a["input_tokens"] == 4 * 7 and a["output_tokens"] == 4 * 5
    assert a["cost"] == pytest.approx((28 * 2.0 + 20 * 8.0) / 1e6)
    broken = {g["group"]: g for g in analytics(server, seeded, group_by="model")["groups"]}["agree-broken"]
    assert (broken["errors"], broken["p50_ms"], broken["avg_ms"]) == (1, None, None)  # not "0 ms"


def test_jobs_are_their_own_category(server: Server, seeded: dict[str, Any]) -> None:
    job_calls = [r for r in records(server, "key_admin") if r["request_id"] == seeded["job"]]
    kb_calls = [r for r in records(server, seeded["a"]) if r["request_id"].startswith("kbreq_")]
    assert job_calls and kb_calls
    a = analytics(server, seeded, group_by="source")
    sources = {g["group"]: g for g in a["groups"]}
    assert sources["job"]["requests"] == len(job_calls)  # the job's model calls, not the job itself
    assert sources["knowledge"]["requests"] >= len(kb_calls) and sources["api"]["requests"] == 9
    assert set(sources) <= {"api", "knowledge", "job", "internal"}
    models = {g["group"] for g in analytics(server, seeded, group_by="model")["groups"]}
    assert None not in models and "agree-chat" in models  # no job shows up as a model
    (ingest,) = [j for j in a["jobs"] if j["kind"] == "kb.ingest"]
    assert (ingest["jobs"], ingest["failed"], ingest["running"]) == (1, 0, 0) and ingest["p50_s"] >= 0
    u = usage(server, seeded, group_by="source", source="job")["data"]
    assert [(r["group"], r["requests"]) for r in u] == [("job", len(job_calls))]


def test_a_nameless_key_has_its_prefix_and_no_key_is_internal(server: Server, seeded: dict[str, Any]) -> None:
    rows = {r["group"]: r for r in usage(server, seeded, group_by="key")["data"]}
    b = rows[seeded["b"]]
    assert b["key_name"] == "" and b["key_prefix"] and (b["requests"], b["errors"]) == (3, 1)
    assert rows[seeded["a"]]["key_name"] == "agree-a"
    # the server's own calls (a knowledge base's reference vectors) are on no key: source "internal"
    internal = {g["group"]: g for g in analytics(server, seeded, group_by="source")["groups"]}["internal"]
    assert rows[None]["requests"] == internal["requests"] >= 1 and rows[None]["key_name"] is None
