"""Two defects a new user hit: access decided on the resolved model (aliases), and a bug inside the gateway
answered as an OpenAI-shaped 500 that is metered and traced as an error.

The crashing provider is a real plugin, found through the ``temper`` entry-point group like any
third-party one: a package with its ``.dist-info`` on the server's ``PYTHONPATH``.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import ROOT, Server, start_server, stop_server
from tests.upstream import Upstream

MSG = [{"role": "user", "content": "hi"}]
PLUGIN = '''
from temper.hookspecs import hookimpl
from temper.models.provider import Reply


class Crashing:
    """A provider with a bug: it raises before answering, or in the middle of a stream."""

    name = "crashing"

    async def call(self, op, deployment, req, *, stream):
        if req["model"] == "before":
            raise KeyError("choices")

        async def events():
            yield {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m",
                   "choices": [{"index": 0, "delta": {"content": "partial"}, "finish_reason": None}]}
            raise ZeroDivisionError("division by zero")

        return Reply(events=events())

    async def aclose(self):
        pass


@hookimpl
def register_providers(settings):
    return [Crashing()]
'''


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Server]:
    plugins = tmp_path_factory.mktemp("plugins")
    (plugins / "temper_crashing.py").write_text(PLUGIN)
    info = plugins / "temper_crashing-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: temper-crashing\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[temper]\ncrashing = temper_crashing\n")
    s = start_server(tmp_path_factory.mktemp("defects"), {"PYTHONPATH": f"{ROOT}:{plugins}",
                                                         "TEMPER_TRACE_FLUSH_S": "0.05"})
    for spec in ({"id": "alias-chat", "aliases": ["ac"], "base_url": upstream.base_url},
                 {"id": "crash-before", "provider": "crashing", "upstream_model": "before"},
                 {"id": "crash-mid", "provider": "crashing", "upstream_model": "mid"}):
        r = s.api("POST", "/api/v1/models", json=spec)
        assert r.status_code == 201, r.text
    yield s
    stop_server(s)


def usage_of(s: Server, request_id: str) -> dict:
    deadline = time.time() + 10
    while time.time() < deadline:
        rows = [r for r in s.api("GET", "/api/v1/usage/records", params={"limit": 50}).json()["data"]
                if r["request_id"] == request_id]
        if rows:
            return rows[0]
        time.sleep(0.1)
    raise AssertionError(f"no usage row for {request_id}")


def trace_of(s: Server, trace_id: str) -> dict:
    deadline = time.time() + 10
    while time.time() < deadline:
        r = s.api("GET", f"/api/v1/traces/{trace_id}")
        if r.status_code == 200:
            return r.json()
        time.sleep(0.1)
    raise AssertionError(f"trace {trace_id} never stored")


@pytest.mark.parametrize("allowed", [["ac"], ["alias-chat"]])
def test_a_key_allowed_a_model_by_any_name_may_call_it_by_any_name(srv: Server, allowed: list[str]) -> None:
    c = srv.client(srv.key(allowed_models=allowed))
    assert [m.id for m in c.models.list()] == ["alias-chat"]
    assert c.models.retrieve("alias-chat").id == "alias-chat"
    assert c.models.retrieve("ac").id == "alias-chat"
    for name in ("alias-chat", "ac"):
        r = c.chat.completions.with_raw_response.create(model=name, messages=MSG)
        assert r.headers["x-temper-model"] == "alias-chat" and r.parse().choices[0].message.content
    with pytest.raises(openai.PermissionDeniedError) as e:
        c.embeddings.create(model="e5-small", input="x")
    assert e.value.body["code"] == "model_not_allowed"
    with pytest.raises(openai.NotFoundError):
        c.models.retrieve("multilingual-e5-small")


def test_a_crash_before_the_answer_is_an_openai_500_metered_and_traced(srv: Server) -> None:
    r = httpx.post(srv.base_url + "/chat/completions", json={"model": "crash-before", "messages": MSG},
                   headers={"Authorization": f"Bearer {srv.admin_key}"})
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    rid = r.headers["x-request-id"]
    err = r.json()["error"]
    assert err["type"] == "server_error" and err["code"] == "internal_error" and rid in err["message"]
    assert "choices" not in err["message"]  # the bug's details stay in the log and the trace
    row = usage_of(srv, rid)
    assert (row["status"], row["error_code"], row["model"]) == (500, "internal_error", "crash-before")
    t = trace_of(srv, r.headers["x-trace-id"])
    assert t["status"] == "error" and "KeyError" in t["error"]
    assert t["spans"][0]["attributes"]["error.type"] == "internal_error"
    with pytest.raises(openai.InternalServerError):  # what the SDK makes of it
        srv.client().chat.completions.create(model="crash-before", messages=MSG)


def test_a_crash_mid_stream_ends_the_stream_with_an_error_event(srv: Server) -> None:
    with httpx.stream("POST", srv.base_url + "/chat/completions",
                      json={"model": "crash-mid", "messages": MSG, "stream": True},
                      headers={"Authorization": f"Bearer {srv.admin_key}"}) as r:
        assert r.status_code == 200
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
        rid = r.headers["x-request-id"]
    assert json.loads(events[0])["choices"][0]["delta"]["content"] == "partial"
    assert json.loads(events[-1])["error"]["code"] == "internal_error" and "[DONE]" not in events
    row = usage_of(srv, rid)
    assert (row["status"], row["error_code"], row["stream"]) == (500, "internal_error", True)


def test_the_server_keeps_serving_after_crashes(srv: Server) -> None:
    assert srv.client().chat.completions.create(model="ac", messages=MSG).choices[0].message.content
    assert Path(srv.home / "server.log").read_text().count("ZeroDivisionError") >= 1
