"""Generation spans (issue 18, item 1): a model call's span lasts until the answer's last byte and carries the
models, the parameters, the usage and cost, the time to the first token, and the input and output; streamed
or not, local (SmolLM2 on llama.cpp) or remote (a mock upstream that takes its time), through the gateway and
inside a knowledge-base answer; a stream that fails or is abandoned ends its span as an error at that moment."""
from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.conftest import Server, start_server, stop_server, wait_job
from tests.upstream import Upstream

DELAY_S = 0.08  # the slow upstream's pause before an answer and before each streamed event (8 events)
LOCAL = "smollm2-135m-instruct"
PARAMS = {"temperature": 0.0, "top_p": 0.9, "max_tokens": 16, "seed": 7}


class SlowUpstream(Upstream):
    """The mock upstream, pausing ``DELAY_S`` before its answer and before each streamed event; the upstream
    model ``break`` drops the connection after its third streamed event."""

    def __init__(self) -> None:
        super().__init__("slow")
        self.server.handle_error = lambda *_: None  # a reader that went away is expected here

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        up, base = self, super()._handler()

        class Handler(base):  # type: ignore[valid-type, misc]
            sent = 0  # streamed events of the current request (a handler serves a keep-alive connection)

            def do_POST(self) -> None:  # noqa: N802
                self.sent = 0
                super().do_POST()

            def _json(self, status: int, obj: dict) -> None:
                time.sleep(DELAY_S)
                super()._json(status, obj)

            def _chunk(self, data: bytes) -> None:
                time.sleep(DELAY_S)
                self.sent += 1
                if self.sent > 3 and up.received[-1].get("model") == "break":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    raise ConnectionAbortedError("dropped on purpose")
                super()._chunk(data)

        return Handler


@pytest.fixture(scope="module")
def slow() -> Iterator[SlowUpstream]:
    up = SlowUpstream()
    yield up
    up.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, slow: SlowUpstream) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("generation-spans"), {"TEMPER_TRACE_FLUSH_S": "0.05"})
    for model_id, upstream_model, modality in (("remote", "vendor-model", "chat"), ("breaks", "break", "chat"),
                                               ("writer", "vendor-model", "completion")):
        r = s.api("POST", "/api/v1/models", json={"id": model_id, "base_url": slow.base_url, "modality": modality,
                                                  "upstream_model": upstream_model, "input_price": 2.0,
                                                  "output_price": 8.0})
        assert r.status_code == 201, r.text
    yield s
    stop_server(s)


def spans_of(server: Server, trace_id: str, kind: str, count: int = 1) -> tuple[dict, list[dict]]:
    """The trace's root and its spans of ``kind``, once ``count`` of them are stored."""
    deadline = time.time() + 10
    while True:
        r = server.api("GET", f"/api/v1/traces/{trace_id}")
        if r.status_code == 200:
            spans = r.json()["spans"]
            found = [s for s in spans if s["kind"] == kind]
            if len(found) >= count or time.time() > deadline:
                return spans[0], found
        assert time.time() < deadline, r.text
        time.sleep(0.05)


def check_generation(span: dict, root: dict, *, upstream_model: str, params: dict[str, Any], stream: bool,
                     question: str, answer: str, priced: bool) -> None:
    """What every generation span carries, and that it lasts until the answer's last byte."""
    a = span["attributes"]
    assert span["status"] == "ok" and span["kind"] == "llm"
    assert a["gen_ai.request.model"] == upstream_model == a["gen_ai.response.model"]
    assert [a.get(f"gen_ai.request.{p}") for p in ("temperature", "top_p", "max_tokens", "seed")] == [
        params.get(p) for p in ("temperature", "top_p", "max_tokens", "seed")] and a["temper.stream"] is stream
    assert a["gen_ai.usage.input_tokens"] > 0 and 0 < a["gen_ai.usage.output_tokens"] <= params["max_tokens"]
    assert a["temper.cost"] > 0 if priced else a["temper.cost"] == 0
    assert 0 < a["temper.ttft_ms"] <= span["duration_ms"]
    assert question in span["input"] and span["output"] == answer and answer
    # it ends with the call (its caller's span), and lasts most of it, not just a stream's setup
    assert span["offset_ms"] + span["duration_ms"] >= root["duration_ms"] - 50, (span, root)
    assert span["duration_ms"] >= 0.8 * (root["duration_ms"] - span["offset_ms"]), (span, root)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("model", ["remote", LOCAL])
def test_gateway_calls_have_full_generation_spans(server: Server, model: str, stream: bool) -> None:
    question = f"Name a colour. ({model}, {stream})"
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}]
    raw = server.client().chat.completions.with_raw_response.create(model=model, messages=messages, stream=stream,
                                                                    **PARAMS)
    if stream:
        answer = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    else:
        answer = raw.parse().choices[0].message.content
    root, (llm,) = spans_of(server, raw.headers["x-trace-id"], "llm")
    check_generation(llm, root, upstream_model="vendor-model" if model == "remote" else LOCAL, params=PARAMS,
                     stream=stream, question=question, answer=answer, priced=model == "remote")
    assert llm["duration_ms"] >= 0.8 * root["duration_ms"]
    if model == "remote":  # the slow upstream's answer takes 1 pause whole, 8 streamed (ttft: 2)
        assert llm["duration_ms"] >= (8 if stream else 1) * DELAY_S * 1000 * 0.9
        if stream:
            assert llm["attributes"]["temper.ttft_ms"] < llm["duration_ms"] / 2
        assert (llm["attributes"]["gen_ai.usage.input_tokens"], llm["attributes"]["gen_ai.usage.output_tokens"]
                ) == (7, 5)
        assert llm["attributes"]["temper.cost"] == pytest.approx((7 * 2.0 + 5 * 8.0) / 1e6)


def test_a_completion_is_traced_like_a_chat(server: Server) -> None:
    raw = server.client().completions.with_raw_response.create(model="writer", prompt="Once upon a time",
                                                               stream=True, **PARAMS)
    list(raw.parse())
    root, (llm,) = spans_of(server, raw.headers["x-trace-id"], "llm")
    assert llm["name"] == "text_completion vendor-model" and llm["input"] == "Once upon a time"
    assert llm["output"] == "hello from slow"  # what the mock streams, whatever the endpoint
    assert llm["duration_ms"] >= 0.8 * root["duration_ms"] and llm["attributes"]["gen_ai.usage.output_tokens"] == 5


def test_a_stream_that_breaks_or_is_abandoned_ends_its_span_as_an_error_then(server: Server) -> None:
    started = time.perf_counter()
    raw = server.client().chat.completions.with_raw_response.create(
        model="breaks", messages=[{"role": "user", "content": "go"}], stream=True)
    with pytest.raises(openai.APIError):
        for _ in raw.parse():
            pass
    root, (llm,) = spans_of(server, raw.headers["x-trace-id"], "llm")
    assert llm["status"] == "error" and llm["attributes"]["error.type"] == "upstream_error"
    assert 3 * DELAY_S * 1000 <= llm["duration_ms"] <= (time.perf_counter() - started) * 1000
    assert llm["output"] == "hello " and llm["attributes"]["gen_ai.request.model"] == "break"

    with httpx.stream("POST", server.base_url + "/chat/completions", timeout=30,
                      headers={"Authorization": f"Bearer {server.admin_key}"},
                      json={"model": "remote", "stream": True, "messages": [{"role": "user", "content": "go"}]}) as r:
        trace_id = r.headers["x-trace-id"]
        next(r.iter_lines())  # the first event, then the client goes away
    root, (llm,) = spans_of(server, trace_id, "llm")
    assert root["attributes"]["error.type"] == "client_closed"
    assert llm["status"] == "error" and llm["attributes"]["error.type"] == "stream_closed"
    assert llm["duration_ms"] < 6 * DELAY_S * 1000  # ended when the client left, not when the upstream would have


def test_knowledge_answers_have_full_generation_spans(server: Server) -> None:
    r = server.api("POST", "/api/v1/knowledge-bases", json={"name": "colours", "config": {}})
    assert r.status_code == 201, r.text
    kb = r.json()
    r = server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/documents",
                   files=[("files", ("sky.md", b"# Sky\n\nThe sky is blue on a clear day."))])
    assert r.status_code == 202, r.text
    assert wait_job(server, r.json()["job"]["id"])["status"] == "succeeded"
    question = "What colour is the sky?"
    params = {"temperature": 0.0, "max_tokens": 16}
    body: dict[str, Any] = {"question": question, "answer": {"model": "remote", "min_relevance": -1e9, **params}}

    with httpx.stream("POST", f"{server.url}/api/v1/knowledge-bases/{kb['id']}/answer", timeout=60,
                      headers={"Authorization": f"Bearer {server.admin_key}"}, json={**body, "stream": True}) as s:
        events = [orjson.loads(ln[6:]) for ln in s.iter_lines() if ln.startswith("data: {")]
    streamed = "".join(e["text"] for e in events if e["type"] == "delta")
    root, (llm,) = spans_of(server, events[0]["trace_id"], "llm")
    assert root["kind"] == "chain"
    check_generation(llm, root, upstream_model="vendor-model", params=params, stream=True, question=question,
                     answer=streamed, priced=True)
    assert llm["duration_ms"] >= 8 * DELAY_S * 1000 * 0.9
    _, embeddings = spans_of(server, events[0]["trace_id"], "embedding")
    embedding = next(e for e in embeddings if question in e["input"])
    assert embedding["output"] == "1 embedding(s)" and embedding["attributes"]["gen_ai.usage.input_tokens"] > 0
    assert embedding["attributes"]["gen_ai.request.model"] == "multilingual-e5-small"

    r = server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/answer", json=body)
    assert r.status_code == 200, r.text
    root, (llm,) = spans_of(server, r.json()["trace_id"], "llm")
    check_generation(llm, root, upstream_model="vendor-model", params=params, stream=False, question=question,
                     answer="hello from slow", priced=True)
