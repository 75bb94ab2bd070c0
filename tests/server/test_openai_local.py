"""The bundled local models through the server, driven by the official openai SDK."""
from __future__ import annotations

import base64
import json
import time

import httpx
import numpy as np
import openai

from tests.conftest import Server

HI = [{"role": "user", "content": "Say hello."}]


def test_models_list_has_builtins(server: Server) -> None:
    c = server.client()
    ids = {m.id for m in c.models.list()}
    assert {"smollm2-135m-instruct", "gemma-3-270m", "multilingual-e5-small"} <= ids
    m = c.models.retrieve("smollm2")  # by alias
    assert m.id == "smollm2-135m-instruct" and m.model_extra["modality"] == "chat"


def test_chat_non_stream(server: Server) -> None:
    r = server.client().chat.completions.create(model="smollm2-135m-instruct", messages=HI, max_tokens=12,
                                                temperature=0)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.choices[0].message.role == "assistant" and r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 12
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_stream_with_usage(server: Server) -> None:
    chunks = list(server.client().chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "用中文说你好"}], max_tokens=10, stream=True,
        stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert chunks[-2].choices[0].finish_reason in ("stop", "length")
    assert len({ch.id for ch in chunks}) == 1
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text.strip()


def test_seed_makes_sampling_repeatable_and_stop_cuts(server: Server) -> None:
    c = server.client()
    kw = dict(model="smollm2", messages=[{"role": "user", "content": "Tell me a story."}], max_tokens=20,
              temperature=1.0, seed=1234)
    a = c.chat.completions.create(**kw).choices[0].message.content
    b = c.chat.completions.create(**kw).choices[0].message.content
    assert a == b
    full = c.chat.completions.create(model="smollm2", messages=HI, max_tokens=20, temperature=0)
    word = full.choices[0].message.content.split()[1]
    cut = c.chat.completions.create(model="smollm2", messages=HI, max_tokens=20, temperature=0, stop=[word])
    assert word not in cut.choices[0].message.content and cut.choices[0].finish_reason == "stop"


def test_n_fans_out(server: Server) -> None:
    r = server.client().chat.completions.create(model="smollm2", messages=HI, max_tokens=5, n=2, temperature=1)
    assert [ch.index for ch in r.choices] == [0, 1]


def test_json_schema_strict(server: Server) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    r = server.client().chat.completions.create(
        model="smollm2", max_tokens=60, temperature=0,
        messages=[{"role": "user", "content": "Give me a person as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}})
    obj = json.loads(r.choices[0].message.content)
    assert set(obj) == {"name", "age"} and isinstance(obj["age"], int)


def test_json_object_mode(server: Server) -> None:
    r = server.client().chat.completions.create(
        model="smollm2", max_tokens=300, temperature=0, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Describe a cat as a JSON object with keys name and colour."}])
    assert r.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_named_tool_choice_streams_a_tool_call(server: Server) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                               "parameters": {"type": "object",
                                                              "properties": {"city": {"type": "string"}},
                                                              "required": ["city"]}}}]
    c = server.client()
    r = c.chat.completions.create(model="smollm2", tools=tools, max_tokens=60, temperature=0,
                                  tool_choice={"type": "function", "function": {"name": "get_weather"}},
                                  messages=[{"role": "user", "content": "What's the weather in Paris?"}])
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)
    chunks = list(c.chat.completions.create(model="smollm2", tools=tools, max_tokens=60, temperature=0, stream=True,
                                            tool_choice="required",
                                            messages=[{"role": "user", "content": "Weather in Rome?"}]))
    deltas = [tc for ch in chunks if ch.choices for tc in (ch.choices[0].delta.tool_calls or ())]
    assert deltas and deltas[0].function.name == "get_weather"
    assert json.loads("".join(d.function.arguments or "" for d in deltas))
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_completions_on_gemma(server: Server) -> None:
    c = server.client()
    r = c.completions.create(model="gemma-3-270m", prompt="The capital of France is", max_tokens=8, temperature=0)
    assert r.object == "text_completion" and r.choices[0].text and r.usage.completion_tokens > 0
    chunks = list(c.completions.create(model="gemma-3-270m", prompt="1, 2, 3,", max_tokens=6, stream=True,
                                       stream_options={"include_usage": True}))
    assert "".join(ch.choices[0].text for ch in chunks if ch.choices) and chunks[-1].usage.completion_tokens > 0


def test_embeddings_float_and_base64_agree(server: Server) -> None:
    c = server.client()
    texts = ["The cat sits on the mat.", "猫坐在垫子上。"]
    f = c.embeddings.create(model="multilingual-e5-small", input=texts, encoding_format="float")
    raw = httpx.post(server.base_url + "/embeddings", headers={"Authorization": f"Bearer {server.admin_key}"},
                     json={"model": "e5-small", "input": texts, "encoding_format": "base64"}).json()
    assert len(f.data) == 2 and len(f.data[0].embedding) == 384 and f.usage.prompt_tokens > 0
    for d, b in zip(f.data, raw["data"]):
        vec = np.frombuffer(base64.b64decode(b["embedding"]), dtype="<f4")
        assert np.allclose(vec, d.embedding, atol=1e-6)
    sdk_default = c.embeddings.create(model="multilingual-e5-small", input=texts)  # the SDK asks for base64
    assert np.allclose(sdk_default.data[1].embedding, f.data[1].embedding, atol=1e-6)
    a, z = (np.array(d.embedding) for d in f.data)
    assert float(a @ z) > 0.8  # the same sentence in English and Chinese


def test_rerank_puts_relevant_document_first(server: Server) -> None:
    r = httpx.post(server.base_url + "/rerank", headers={"Authorization": f"Bearer {server.admin_key}"},
                   json={"model": "multilingual-e5-small-rerank", "query": "如何申请退款？", "top_n": 2,
                         "documents": ["今天天气很好。", "退款申请需要在订单页面提交。", "The stock market fell."]}).json()
    assert [x["index"] for x in r["results"]][0] == 1 and len(r["results"]) == 2
    assert r["results"][0]["relevance_score"] >= r["results"][1]["relevance_score"]


def test_context_overflow_is_a_clean_400(server: Server) -> None:
    long = "word " * 6000
    try:
        server.client().chat.completions.create(model="smollm2", messages=[{"role": "user", "content": long}],
                                                max_tokens=5)
    except openai.BadRequestError as e:
        assert e.body["code"] == "context_length_exceeded"
    else:
        raise AssertionError("expected a 400")


def test_disconnect_cancels_generation(server: Server) -> None:
    """A client that goes away mid-stream frees the model: the next request is served at once."""
    headers = {"Authorization": f"Bearer {server.admin_key}"}
    body = {"model": "smollm2", "messages": [{"role": "user", "content": "Write a very long essay."}],
            "max_tokens": 3000, "stream": True, "temperature": 1, "stop": []}
    with httpx.stream("POST", server.base_url + "/chat/completions", json=body, headers=headers, timeout=60) as r:
        for i, _ in enumerate(r.iter_lines()):
            if i > 5:
                break  # hang up after a few tokens
    t0 = time.time()
    result = server.client().chat.completions.create(model="smollm2", messages=HI, max_tokens=4)
    assert result.choices[0].message.content is not None
    assert time.time() - t0 < 5  # 3000 tokens would take >10 s if generation had gone on
    time.sleep(0.3)
    rows = server.api("GET", "/api/v1/usage/records", params={"limit": 5}).json()["data"]
    assert 499 in [row["status"] for row in rows]
