"""Tracing through the gateway, end to end: span trees, x-trace-id, trace queries, stats, scores, queues."""
from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.conftest import Server, start_server, stop_server
from tests.upstream import Upstream


def add_model(server: Server, model_id: str, **spec: object) -> None:
    r = server.api("POST", "/api/v1/models", json={"id": model_id, **spec})
    assert r.status_code == 201, r.text


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Server:
    s = start_server(tmp_path_factory.mktemp("traced"), {"TEMPER_TRACE_FLUSH_S": "0.05"})
    add_model(s, "good", base_url=upstream.base_url, upstream_model="vendor-model", input_price=2.0,
              output_price=8.0)
    add_model(s, "flaky", base_url=upstream.base_url, upstream_model="fail-500", fallbacks=["good"])
    add_model(s, "embed", modality="embedding", base_url=upstream.base_url)
    yield s
    stop_server(s)


def trace_of(server: Server, trace_id: str) -> dict:
    r = server.api("GET", f"/api/v1/traces/{trace_id}")
    assert r.status_code == 200, r.text
    return r.json()


def test_retries_and_fallback_make_one_child_span_per_attempt(traced: Server) -> None:
    r = traced.client().chat.completions.with_raw_response.create(
        model="flaky", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "你好，世界"}],
        temperature=0.3, max_tokens=20)
    trace_id = r.headers["x-trace-id"]
    assert len(trace_id) == 32 and int(trace_id, 16)
    answer = r.parse().choices[0].message.content
    t = trace_of(traced, trace_id)
    root, *children = t["spans"]
    assert root["parent_id"] is None and root["depth"] == 0 and root["kind"] == "gateway"
    assert root["name"] == "chat good" and t["model"] == "good" and t["status"] == "ok"
    attrs = root["attributes"]
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.request.model"] == "flaky"
    assert attrs["gen_ai.response.model"] == "good" and attrs["gen_ai.request.temperature"] == 0.3
    assert attrs["gen_ai.usage.input_tokens"] == t["input_tokens"] > 0
    assert attrs["temper.cost"] == pytest.approx(t["cost"]) and t["cost"] > 0
    assert attrs["temper.key_id"] == "key_admin" == t["key_id"]
    # three failed attempts on the flaky model (1 + 2 retries), then one on the fallback
    assert [c["attributes"]["temper.model"] for c in children] == ["flaky"] * 3 + ["good"]
    assert [c["attributes"]["temper.attempt"] for c in children] == [1, 2, 3, 1]
    assert [c["attributes"]["temper.fallback"] for c in children] == [0, 0, 0, 1]
    assert [c["status"] for c in children] == ["error"] * 3 + ["ok"]
    assert all(c["parent_id"] == root["id"] and c["depth"] == 1 and c["kind"] == "llm" for c in children)
    assert children[0]["attributes"]["error.type"] and "500" in children[0]["error"]
    assert children[-1]["attributes"]["gen_ai.request.model"] == "vendor-model"
    starts = [c["offset_ms"] for c in children]
    assert starts == sorted(starts) and all(0 <= c["offset_ms"] <= root["duration_ms"] for c in children)
    assert all(c["offset_ms"] + c["duration_ms"] <= root["duration_ms"] + 0.01 for c in children)
    assert t["span_count"] == 5
    assert t["input"] == "你好，世界" and t["output"] == answer
    assert "be brief" in root["input"] and "你好，世界" in root["input"] and answer in root["output"]


def test_streamed_answer_is_traced_with_ttft(traced: Server) -> None:
    r = traced.client().chat.completions.with_raw_response.create(
        model="good", messages=[{"role": "user", "content": "stream please"}], stream=True,
        stream_options={"include_usage": True})
    text = "".join(c.choices[0].delta.content or "" for c in r.parse() if c.choices)
    t = trace_of(traced, r.headers["x-trace-id"])
    assert t["output"] == text and text
    assert t["ttft_ms"] is not None and 0 < t["ttft_ms"] <= t["duration_ms"]
    assert t["spans"][0]["attributes"]["temper.stream"] is True


def test_caller_traceparent_continues_its_trace(traced: Server) -> None:
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    r = httpx.post(traced.base_url + "/embeddings", json={"model": "embed", "input": "x"},
                   headers={"Authorization": f"Bearer {traced.admin_key}",
                            "traceparent": f"00-{caller_trace}-{caller_span}-01"})
    assert r.status_code == 200 and r.headers["x-trace-id"] == caller_trace
    t = trace_of(traced, caller_trace)
    assert t["spans"][0]["attributes"]["gen_ai.operation.name"] == "embeddings"
    assert t["spans"][1]["kind"] == "embedding" and t["output"].startswith("1 embedding(s)")


def test_failed_requests_are_traced_as_errors(traced: Server) -> None:
    c = traced.client()
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="good", messages=[{"role": "user", "content": "x"}], temperature=7)
    trace_id = e.value.response.headers["x-trace-id"]
    t = trace_of(traced, trace_id)
    assert t["status"] == "error" and "temperature" in t["error"] and t["span_count"] == 1
    assert t["spans"][0]["attributes"]["error.type"] == e.value.code


def test_list_filters_and_search(traced: Server) -> None:
    c = traced.client()
    marker = f"needle-{time.time_ns()}"
    c.chat.completions.create(model="good", messages=[{"role": "user", "content": f"find the {marker} 中文"}])
    r = traced.api("GET", "/api/v1/traces", params={"q": marker})
    data = r.json()["data"]
    assert len(data) == 1 and marker in data[0]["input"] and data[0]["key_name"]
    assert traced.api("GET", "/api/v1/traces", params={"q": "中文", "model": "good"}).json()["data"]
    assert not traced.api("GET", "/api/v1/traces", params={"q": marker, "status": "error"}).json()["data"]
    assert not traced.api("GET", "/api/v1/traces", params={"q": marker, "min_ms": 60_000}).json()["data"]
    errors = traced.api("GET", "/api/v1/traces", params={"status": "error"}).json()["data"]
    assert errors and all(t["status"] == "error" for t in errors)
    # pagination: pages do not overlap and come newest first
    first = traced.api("GET", "/api/v1/traces", params={"limit": 2}).json()
    assert first["has_more"] and len(first["data"]) == 2
    second = traced.api("GET", "/api/v1/traces", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert {t["id"] for t in first["data"]}.isdisjoint(t["id"] for t in second["data"])
    assert first["data"][-1]["start"] >= second["data"][0]["start"]
    bad = traced.api("GET", "/api/v1/traces", params={"cursor": "nonsense"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"
    assert traced.api("GET", "/api/v1/traces/" + "0" * 32).json()["error"]["code"] == "trace_not_found"


def test_stats_per_model_and_key_for_the_last_hour(traced: Server) -> None:
    c = traced.client()
    for _ in range(3):
        c.embeddings.create(model="embed", input="stats")
    s = traced.api("GET", "/api/v1/traces/stats", params={"hours": 1, "group_by": "model"}).json()
    listed = traced.api("GET", "/api/v1/traces", params={"hours": 1, "limit": 200}).json()["data"]
    assert s["totals"]["requests"] == len(listed)
    assert s["totals"]["errors"] == sum(t["status"] == "error" for t in listed)
    by_model = {g["group"]: g for g in s["groups"]}
    assert by_model["embed"]["requests"] == sum(t["model"] == "embed" for t in listed) >= 3
    assert sum(p["requests"] for p in s["series"]) == len(listed) and len(s["series"]) in (60, 61)
    keys = traced.api("GET", "/api/v1/traces/stats", params={"hours": 1, "group_by": "key"}).json()
    assert keys["groups"][0]["group"] == "key_admin" and keys["groups"][0]["key_name"]
    assert traced.api("GET", "/api/v1/traces/stats", params={"hours": 100, "bucket": "minute"}).status_code == 400


def test_members_see_only_their_own_traces(traced: Server) -> None:
    member = traced.key(name="member")
    r = traced.client(member).chat.completions.with_raw_response.create(
        model="good", messages=[{"role": "user", "content": "mine"}])
    own = r.headers["x-trace-id"]
    h = {"Authorization": f"Bearer {member}"}
    listed = httpx.get(traced.url + "/api/v1/traces", headers=h).json()["data"]
    assert [t["id"] for t in listed] == [own]
    admin_trace = traced.api("GET", "/api/v1/traces", params={"key_id": "key_admin", "limit": 1}).json()["data"][0]
    assert httpx.get(traced.url + f"/api/v1/traces/{admin_trace['id']}", headers=h).status_code == 404
    assert httpx.get(traced.url + "/api/v1/traces", params={"key_id": "key_admin"}, headers=h).status_code == 400
    assert httpx.post(traced.url + "/api/v1/annotation-queues", headers=h, json={}).status_code in (400, 403)


def test_scores_on_traces_and_spans(traced: Server) -> None:
    r = traced.client().chat.completions.with_raw_response.create(
        model="good", messages=[{"role": "user", "content": "score me"}])
    tid = r.headers["x-trace-id"]
    span_id = trace_of(traced, tid)["spans"][1]["id"]
    ok = [traced.api("POST", f"/api/v1/traces/{tid}/scores", json=body) for body in (
        {"name": "accuracy", "value": 0.8, "comment": "mostly right"},
        {"name": "helpful", "value": True, "source": "judge"},
        {"name": "tone", "value": "polite", "span_id": span_id})]
    assert [x.status_code for x in ok] == [201] * 3, [x.text for x in ok]
    assert [x.json()["data_type"] for x in ok] == ["numeric", "boolean", "categorical"]
    assert ok[0].json()["source"] == "code" and ok[1].json()["source"] == "judge"
    scores = trace_of(traced, tid)["scores"]
    assert {(s["name"], s["value"]) for s in scores} == {("accuracy", 0.8), ("helpful", True), ("tone", "polite")}
    bad = traced.api("POST", f"/api/v1/traces/{tid}/scores", json={"name": "x", "value": "y", "span_id": "f" * 16})
    assert bad.status_code == 404 and bad.json()["error"]["code"] == "span_not_found"
    bad = traced.api("POST", f"/api/v1/traces/{tid}/scores", json={"name": "x", "value": "1", "data_type": "numeric"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "value"
    gone = traced.api("DELETE", f"/api/v1/scores/{ok[0].json()['id']}")
    assert gone.status_code == 200 and len(trace_of(traced, tid)["scores"]) == 2


def test_annotation_queue_exports_a_dataset(traced: Server) -> None:
    c = traced.client()
    tag = f"annotate-{time.time_ns()}"
    for i in range(3):
        c.chat.completions.create(model="good", messages=[{"role": "user", "content": f"{tag} question {i}"}])
    r = traced.api("POST", "/api/v1/annotation-queues", json={
        "name": "review", "filters": {"q": tag, "hours": 1},
        "score_configs": [{"name": "correct", "data_type": "boolean"},
                          {"name": "quality", "data_type": "categorical", "categories": ["good", "bad"]}]})
    assert r.status_code == 201, r.text
    q = r.json()
    assert q["counts"] == {"total": 3, "pending": 3, "done": 0, "skipped": 0}
    seen = []
    for verdict in ("good", "skip", "bad"):
        nxt = traced.api("GET", f"/api/v1/annotation-queues/{q['id']}/next").json()
        seen.append(nxt["trace"]["input"])
        item = nxt["item"]["id"]
        body = {"status": "skipped"} if verdict == "skip" else {
            "scores": {"correct": verdict == "good", "quality": verdict}, "comment": f"was {verdict}"}
        if verdict == "bad":  # a value outside the categories is refused and nothing is written
            wrong = traced.api("POST", f"/api/v1/annotation-queues/{q['id']}/items/{item}",
                               json={"scores": {"correct": False, "quality": "meh"}})
            assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "value"
        done = traced.api("POST", f"/api/v1/annotation-queues/{q['id']}/items/{item}", json=body)
        assert done.status_code == 200, done.text
    assert seen == [f"{tag} question {i}" for i in range(3)]  # oldest first
    final = traced.api("GET", f"/api/v1/annotation-queues/{q['id']}/next").json()
    assert final["item"] is None and final["counts"] == {"total": 3, "pending": 0, "done": 2, "skipped": 1}
    lines = traced.api("GET", f"/api/v1/annotation-queues/{q['id']}/export").text.splitlines()
    rows = [json.loads(x) for x in lines]
    assert [r["scores"] for r in rows] == [{"correct": True, "quality": "good"}, {"correct": False, "quality": "bad"}]
    assert rows[0]["input"] == f"{tag} question 0" and rows[0]["comment"] == "was good"
    assert rows[0]["messages"][0] == {"role": "user", "content": f"{tag} question 0"}
    assert rows[0]["messages"][-1]["role"] == "assistant" and rows[0]["messages"][-1]["content"] == rows[0]["output"]
    empty = traced.api("POST", "/api/v1/annotation-queues", json={
        "name": "none", "filters": {"q": "no-such-text-anywhere"}, "score_configs": [{"name": "x", "data_type": "boolean"}]})
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "no_traces"


def test_tracing_can_be_turned_off(tmp_path, upstream: Upstream) -> None:  # noqa: ANN001
    s = start_server(tmp_path, {"TEMPER_TRACING": "false"})
    try:
        add_model(s, "good", base_url=upstream.base_url)
        r = s.client().chat.completions.with_raw_response.create(model="good", messages=[{"role": "user", "content": "x"}])
        assert "x-trace-id" not in r.headers
        assert s.api("GET", "/api/v1/traces").json()["data"] == []
        assert s.api("GET", "/api/v1/traces/exporter").json() == {"enabled": False}
    finally:
        stop_server(s)


def test_sampling_keeps_every_trace_with_a_failed_span(tmp_path, upstream: Upstream) -> None:  # noqa: ANN001
    """With TEMPER_TRACE_SAMPLE_RATE=0 only failed traces are stored, with all their spans."""
    s = start_server(tmp_path, {"TEMPER_TRACE_SAMPLE_RATE": "0", "TEMPER_TRACE_FLUSH_S": "0.05"})
    try:
        add_model(s, "good", base_url=upstream.base_url)
        add_model(s, "flaky", base_url=upstream.base_url, upstream_model="fail-500", fallbacks=["good"])
        messages = [{"role": "user", "content": "抽样 sampling"}]
        fine = s.client().chat.completions.with_raw_response.create(model="good", messages=messages)
        retried = s.client().chat.completions.with_raw_response.create(model="flaky", messages=messages)
        assert fine.status_code == retried.status_code == 200
        kept = trace_of(s, retried.headers["x-trace-id"])  # a failed attempt, then the fallback answered
        assert kept["status"] == "ok" and [c["status"] for c in kept["spans"][1:]] == ["error"] * 3 + ["ok"]
        missing = s.api("GET", f"/api/v1/traces/{fine.headers['x-trace-id']}")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "trace_not_found"
        assert [t["id"] for t in s.api("GET", "/api/v1/traces").json()["data"]] == [kept["id"]]
        stats = s.api("GET", "/api/v1/traces/exporter").json()
        assert stats["sample_rate"] == 0 and stats["sampled_out"] == 2 and stats["dropped"] == 0
    finally:
        stop_server(s)


@pytest.mark.parametrize("content", [[{"type": "text", "text": 5}], [7, None, {"type": "text"}], {"text": "x"}])
def test_a_rejected_request_of_any_shape_leaves_the_trace_pages_working(traced: Server, content: object) -> None:
    r = httpx.post(traced.base_url + "/chat/completions", json={"model": "good", "messages": [
        {"role": "user", "content": content}]}, headers={"Authorization": f"Bearer {traced.admin_key}"})
    assert r.status_code == 400, r.text
    listed = traced.api("GET", "/api/v1/traces")
    assert listed.status_code == 200, listed.text
    mine = next(t for t in listed.json()["data"] if t["id"] == r.headers["x-trace-id"])
    assert mine["status"] == "error" and isinstance(mine["input"], str)
    assert trace_of(traced, mine["id"])["spans"][0]["status"] == "error"
    exported = traced.api("GET", "/api/v1/traces/export")
    assert exported.status_code == 200 and r.headers["x-trace-id"] in exported.text
