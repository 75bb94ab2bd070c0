"""Remote models (openai_compat) through the gateway, driven by the official SDK, against real upstreams."""
from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.conftest import Server
from tests.upstream import Upstream


def add_model(server: Server, model_id: str, **spec: object) -> None:
    r = server.api("POST", "/api/v1/models", json={"id": model_id, **spec})
    assert r.status_code == 201, r.text


@pytest.fixture(scope="module")
def remote(server: Server, upstream: Upstream, upstream2: Upstream) -> Server:
    add_model(server, "remote-chat", base_url=upstream.base_url, upstream_model="vendor-model",
              api_key_env="TEST_UPSTREAM_KEY", input_price=2.0, output_price=8.0, aliases=["rc"])
    add_model(server, "remote-embed", modality="embedding", base_url=upstream.base_url)
    add_model(server, "broken", base_url=upstream.base_url, upstream_model="fail-500")
    add_model(server, "with-fallback", base_url=upstream.base_url, upstream_model="fail-500",
              fallbacks=["remote-chat"])
    add_model(server, "client-error", base_url=upstream.base_url, upstream_model="fail-400")
    add_model(server, "chunked-answer", base_url=upstream.base_url, upstream_model="chunked")
    add_model(server, "too-slow", base_url=upstream.base_url, upstream_model="slow", timeout_s=0.5)
    add_model(server, "balanced", deployments=[
        {"base_url": upstream.base_url, "upstream_model": "lb", "weight": 3},
        {"base_url": upstream2.base_url, "upstream_model": "lb", "weight": 1}])
    return server


def test_chat_passes_unknown_fields_and_returns_vendor_fields(remote: Server, upstream: Upstream) -> None:
    c = remote.client()
    r = c.chat.completions.create(model="rc", messages=[{"role": "user", "content": "hi"}],
                                  extra_body={"top_k": 5, "enable_thinking": True}, seed=3, stop=["x"])
    assert r.choices[0].message.content == "hello from up1"
    assert r.choices[0].message.model_extra["reasoning_content"] == "thinking..."
    assert r.usage.total_tokens == 12
    got = upstream.received[-1]
    assert got["model"] == "vendor-model" and got["top_k"] == 5 and got["enable_thinking"] is True
    assert got["seed"] == 3 and got["stop"] == ["x"] and got["_path"] == "/v1/chat/completions"
    assert got["_auth"] is None  # TEST_UPSTREAM_KEY is not set in the server's environment


def test_stream_relays_chunks_and_usage_only_when_asked(remote: Server, upstream: Upstream) -> None:
    c = remote.client()
    chunks = list(c.chat.completions.create(model="remote-chat", stream=True,
                                            messages=[{"role": "user", "content": "hi"}]))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "hello from up1"
    assert all(ch.usage is None for ch in chunks)  # not asked for: the forced upstream usage is kept back
    assert upstream.received[-1]["stream_options"] == {"include_usage": True}
    chunks = list(c.chat.completions.create(model="remote-chat", stream=True, stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": "hi"}]))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5
    assert any((ch.choices and ch.choices[0].delta.model_extra.get("reasoning_content") == "hmm") for ch in chunks)


def test_chunked_json_answer_is_reassembled(remote: Server) -> None:
    c = remote.client()
    for _ in range(3):  # the pooled connection is reused after each chunked body
        r = c.chat.completions.create(model="chunked-answer", messages=[{"role": "user", "content": "hi"}])
        assert r.choices[0].message.content == "hello from up1" and r.usage.total_tokens == 12


def test_tools_pass_through(remote: Server) -> None:
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    r = remote.client().chat.completions.create(model="remote-chat", tools=tools, tool_choice="auto",
                                                messages=[{"role": "user", "content": "weather in Paris?"}])
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "weather" and call.function.arguments == '{"city": "Paris"}'


def test_embeddings_remote(remote: Server) -> None:
    r = remote.client().embeddings.create(model="remote-embed", input=["a", "b"])
    assert [d.embedding for d in r.data] == [[0.5, 0.25], [0.5, 0.25]] and r.usage.prompt_tokens == 6


def test_fallback_and_upstream_errors(remote: Server) -> None:
    c = remote.client()
    r = c.chat.completions.with_raw_response.create(model="with-fallback", messages=[{"role": "user", "content": "x"}])
    assert r.headers["x-temper-model"] == "remote-chat" and r.parse().choices[0].message.content == "hello from up1"
    with pytest.raises(openai.APIStatusError) as e:
        c.chat.completions.create(model="broken", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 502 and "boom" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="client-error", messages=[{"role": "user", "content": "x"}])
    assert e.value.body["code"] == "bad"  # the upstream's own 400 is relayed as is
    t0 = time.time()
    with pytest.raises(openai.APIStatusError) as e:
        c.chat.completions.create(model="too-slow", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 504 and time.time() - t0 < 3


def test_weighted_load_balancing(remote: Server, upstream: Upstream, upstream2: Upstream) -> None:
    before1 = sum(1 for r in upstream.received if r["model"] == "lb")
    before2 = sum(1 for r in upstream2.received if r["model"] == "lb")
    c = remote.client()
    for _ in range(80):
        c.chat.completions.create(model="balanced", messages=[{"role": "user", "content": "x"}])
    n1 = sum(1 for r in upstream.received if r["model"] == "lb") - before1
    n2 = sum(1 for r in upstream2.received if r["model"] == "lb") - before2
    assert n1 + n2 == 80 and 40 <= n1 <= 75 and n2 >= 5  # 3:1 weights, generous bounds


def test_usage_is_metered_with_cost(remote: Server) -> None:
    key = remote.key(name="metered")
    c = remote.client(key)
    for _ in range(3):
        c.chat.completions.create(model="remote-chat", messages=[{"role": "user", "content": "x"}])
    list(c.chat.completions.create(model="remote-chat", stream=True, messages=[{"role": "user", "content": "x"}]))
    key_id = next(k["id"] for k in remote.api("GET", "/api/v1/keys").json()["data"] if k["name"] == "metered")
    rows = remote.api("GET", "/api/v1/usage/records", params={"key_id": key_id}).json()["data"]
    assert len(rows) == 4 and all(r["status"] == 200 and r["model"] == "remote-chat" for r in rows)
    assert sum(r["prompt_tokens"] for r in rows) == 28 and sum(r["completion_tokens"] for r in rows) == 20
    assert abs(sum(r["cost"] for r in rows) - (28 * 2.0 + 20 * 8.0) / 1e6) < 1e-12
    assert sum(r["stream"] for r in rows) == 1 and all(r["latency_ms"] > 0 for r in rows)
    summary = remote.api("GET", "/api/v1/usage", params={"group_by": "key"}).json()["data"]
    assert next(s for s in summary if s["group"] == key_id)["total_tokens"] == 48


def test_cli_add_is_picked_up_without_restart(remote: Server, upstream: Upstream) -> None:
    remote.cli("models", "add", "cli-model", "--provider", "openai_compat", "--base-url", upstream.base_url,
               "--upstream-model", "from-cli", "--api-key-env", "TEST_UPSTREAM_KEY")
    deadline = time.time() + 5
    c = remote.client()
    while "cli-model" not in {m.id for m in c.models.list()}:
        assert time.time() < deadline, "the running server did not pick up the new model"
        time.sleep(0.1)
    c.chat.completions.create(model="cli-model", messages=[{"role": "user", "content": "x"}])
    assert upstream.received[-1]["model"] == "from-cli"
    remote.cli("models", "remove", "cli-model")
    deadline = time.time() + 5
    while True:
        try:
            c.models.retrieve("cli-model")
        except openai.NotFoundError:
            break
        assert time.time() < deadline
        time.sleep(0.1)


def test_upstream_key_from_env(tmp_path, upstream: Upstream) -> None:  # noqa: ANN001
    from tests.conftest import start_server, stop_server

    s = start_server(tmp_path, {"TEST_UPSTREAM_KEY": "sk-vendor-secret"})
    try:
        add_model(s, "keyed", base_url=upstream.base_url, api_key_env="TEST_UPSTREAM_KEY")
        s.client().chat.completions.create(model="keyed", messages=[{"role": "user", "content": "x"}])
        assert upstream.received[-1]["_auth"] == "Bearer sk-vendor-secret"
        assert httpx.get(s.url + "/openapi.json").json()["paths"]["/api/v1/models"]
    finally:
        stop_server(s)
