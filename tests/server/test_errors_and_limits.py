"""Bad input, keys, limits and budgets: the right OpenAI error, status and headers, and the DB intact."""
from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.conftest import Server
from tests.upstream import Upstream

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def srv(server: Server, upstream: Upstream) -> Server:
    r = server.api("POST", "/api/v1/models", json={"id": "err-chat", "base_url": upstream.base_url,
                                                   "context_length": 1000})
    assert r.status_code in (201, 409), r.text
    return server


def post(s: Server, body: bytes | dict, key: str | None = None, path: str = "/v1/chat/completions") -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or s.admin_key}", "Content-Type": "application/json"}
    if isinstance(body, dict):
        return httpx.post(s.url + path, json=body, headers=headers)
    return httpx.post(s.url + path, content=body, headers=headers)


def error_of(r: httpx.Response) -> dict:
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code", "params"} and err["message"]
    assert r.headers["x-request-id"].startswith("req_")
    return err


@pytest.mark.parametrize("body, param, code", [
    (b"{not json", None, "invalid_json"),
    (b"[1, 2]", None, "invalid_json"),
    ({"messages": MSG}, "model", "missing_required_parameter"),
    ({"model": "err-chat"}, "messages", "missing_required_parameter"),
    ({"model": "err-chat", "messages": "hi"}, "messages", "invalid_type"),
    ({"model": "err-chat", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role", "invalid_value"),
    ({"model": "err-chat", "messages": [{"role": "user"}]}, "messages[0].content", "missing_required_parameter"),
    ({"model": "err-chat", "messages": MSG, "temperature": "hot"}, "temperature", "invalid_type"),
    ({"model": "err-chat", "messages": MSG, "temperature": 3}, "temperature", "invalid_value"),
    ({"model": "err-chat", "messages": MSG, "max_tokens": 0}, "max_tokens", "integer_below_min_value"),
    ({"model": "err-chat", "messages": MSG, "max_tokens": 10**9}, "max_tokens", "invalid_value"),
    ({"model": "err-chat", "messages": MSG, "max_completion_tokens": True}, "max_completion_tokens", "invalid_type"),
    ({"model": "err-chat", "messages": MSG, "stream_options": {"include_usage": True}}, "stream_options", None),
    ({"model": "err-chat", "messages": MSG, "n": 0}, "n", "invalid_value"),
    ({"model": "err-chat", "messages": MSG, "stop": ["a", "b", "c", "d", "e"]}, "stop", None),
    ({"model": "err-chat", "messages": MSG, "tool_choice": "required"}, "tool_choice", None),
    ({"model": "err-chat", "messages": MSG, "tools": [{"type": "function", "function": {"name": "bad name"}}]},
     "tools[0].function.name", "invalid_value"),
    ({"model": "err-chat", "messages": MSG, "response_format": {"type": "xml"}}, "response_format.type",
     "invalid_value"),
    ({"model": "err-chat", "messages": MSG, "response_format": {"type": "json_schema"}},
     "response_format.json_schema", "missing_required_parameter"),
    ({"model": "err-chat", "messages": MSG, "top_logprobs": 3}, "top_logprobs", None),
])
def test_bad_chat_requests_get_400(srv: Server, body: bytes | dict, param: str | None, code: str | None) -> None:
    r = post(srv, body)
    assert r.status_code == 400, r.text
    err = error_of(r)
    assert err["type"] == "invalid_request_error" and err["param"] == param
    if code:
        assert err["code"] == code


@pytest.mark.parametrize("path, body, param", [
    ("/v1/embeddings", {"model": "multilingual-e5-small", "input": ""}, "input"),
    ("/v1/embeddings", {"model": "multilingual-e5-small", "input": []}, "input"),
    ("/v1/embeddings", {"model": "multilingual-e5-small", "input": "x", "encoding_format": "hex"}, "encoding_format"),
    ("/v1/completions", {"model": "gemma-3-270m"}, "prompt"),
    ("/v1/rerank", {"model": "multilingual-e5-small-rerank", "query": "q", "documents": []}, "documents"),
    ("/v1/rerank", {"model": "multilingual-e5-small-rerank", "documents": ["a"]}, "query"),
    ("/v1/completions", {"model": "smollm2-135m-instruct", "prompt": "x"}, "model"),  # a chat model
])
def test_bad_requests_on_other_endpoints(srv: Server, path: str, body: dict, param: str) -> None:
    r = post(srv, body, path=path)
    assert r.status_code == 400, r.text
    assert error_of(r)["param"] == param


def test_unknown_model_and_url(srv: Server) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        srv.client().chat.completions.create(model="no-such-model", messages=MSG)
    assert e.value.body["code"] == "model_not_found"
    r = httpx.get(srv.url + "/v1/nothing", headers={"Authorization": f"Bearer {srv.admin_key}"})
    assert r.status_code == 404 and error_of(r)["code"] == "unknown_url"
    r = httpx.get(srv.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {srv.admin_key}"})
    assert r.status_code == 405 and error_of(r)["code"] == "method_not_allowed"


def test_missing_wrong_revoked_and_expired_keys(srv: Server) -> None:
    r = httpx.post(srv.url + "/v1/chat/completions", json={"model": "err-chat", "messages": MSG})
    assert r.status_code == 401 and error_of(r)["code"] == "missing_api_key"
    with pytest.raises(openai.AuthenticationError) as e:
        srv.client("sk-wrong-key").chat.completions.create(model="err-chat", messages=MSG)
    assert e.value.body["code"] == "invalid_api_key"
    key = srv.key(name="to-revoke")
    srv.client(key).chat.completions.create(model="err-chat", messages=MSG)
    key_id = next(k["id"] for k in srv.api("GET", "/api/v1/keys").json()["data"] if k["name"] == "to-revoke")
    assert srv.api("DELETE", f"/api/v1/keys/{key_id}").json()["revoked_at"]
    with pytest.raises(openai.AuthenticationError):
        srv.client(key).chat.completions.create(model="err-chat", messages=MSG)
    r = srv.api("POST", "/api/v1/keys", json={"expires_at": "2020-01-01T00:00:00Z"})
    assert r.status_code == 400 and error_of(r)["param"] == "expires_at"


def test_cli_revocation_reaches_running_server(srv: Server) -> None:
    key = srv.key(name="cli-revoke")
    key_id = next(k["id"] for k in srv.api("GET", "/api/v1/keys").json()["data"] if k["name"] == "cli-revoke")
    assert "revoked" in srv.cli("keys", "revoke", key_id).stdout
    deadline = time.time() + 5
    while True:
        try:
            srv.client(key).chat.completions.create(model="err-chat", messages=MSG)
        except openai.AuthenticationError:
            break
        assert time.time() < deadline, "revoked key still accepted"
        time.sleep(0.1)


def test_allowed_models(srv: Server) -> None:
    key = srv.key(allowed_models=["err-chat"])
    srv.client(key).chat.completions.create(model="err-chat", messages=MSG)
    with pytest.raises(openai.PermissionDeniedError) as e:
        srv.client(key).embeddings.create(model="multilingual-e5-small", input="x")
    assert e.value.body["code"] == "model_not_allowed"


def test_rpm_limit_gives_429_with_retry_after(srv: Server) -> None:
    key = srv.key(rpm=2)
    ok = [post(srv, {"model": "err-chat", "messages": MSG}, key) for _ in range(2)]
    assert all(r.status_code == 200 for r in ok)
    assert ok[0].headers["x-ratelimit-limit-requests"] == "2"
    assert int(ok[0].headers["x-ratelimit-remaining-requests"]) == 1
    r = post(srv, {"model": "err-chat", "messages": MSG}, key)
    assert r.status_code == 429 and error_of(r)["code"] == "rate_limit_exceeded"
    assert int(r.headers["retry-after"]) >= 1 and "x-should-retry" not in r.headers


def test_tpm_limit(srv: Server) -> None:
    key = srv.key(tpm=10)
    assert post(srv, {"model": "err-chat", "messages": MSG}, key).status_code == 200  # uses 12 tokens
    r = post(srv, {"model": "err-chat", "messages": MSG}, key)
    assert r.status_code == 429 and error_of(r)["code"] == "rate_limit_exceeded"
    assert r.headers["x-ratelimit-limit-tokens"] == "10"


def test_budget_gives_insufficient_quota(srv: Server) -> None:
    key = srv.key(token_budget=20)
    for _ in range(2):
        assert post(srv, {"model": "err-chat", "messages": MSG}, key).status_code == 200  # 12 + 12 tokens
    r = post(srv, {"model": "err-chat", "messages": MSG}, key)
    assert r.status_code == 429 and error_of(r)["code"] == "insufficient_quota"
    assert r.headers["x-should-retry"] == "false"
    with pytest.raises(openai.RateLimitError):
        srv.client(key).chat.completions.create(model="err-chat", messages=MSG)


def test_management_api_errors(srv: Server) -> None:
    r = httpx.get(srv.url + "/api/v1/models")
    assert r.status_code == 401 and error_of(r)["code"] == "missing_api_key"
    r = httpx.get(srv.url + "/api/v1/keys", headers={"Authorization": f"Bearer {srv.key()}"})
    assert r.status_code == 403 and error_of(r)["code"] == "admin_required"
    assert srv.api("POST", "/api/v1/models", json={"id": "x", "modality": "video", "base_url": "http://a"}
                   ).status_code == 400
    r = srv.api("POST", "/api/v1/models", json={"id": "bad id!", "base_url": "http://a"})
    assert r.status_code == 400 and error_of(r)["param"] == "id"
    r = srv.api("POST", "/api/v1/models", json={"id": "err-chat", "base_url": "http://a"})
    assert r.status_code == 409
    r = srv.api("POST", "/api/v1/models", json={"id": "nowhere", "base_url": "ftp://a"})
    assert r.status_code == 400 and error_of(r)["param"] == "base_url"
    r = srv.api("POST", "/api/v1/models", json={"id": "noprov", "provider": "magic", "base_url": "http://a"})
    assert r.status_code == 400 and "unknown provider" in error_of(r)["message"]
    r = srv.api("DELETE", "/api/v1/models/smollm2-135m-instruct")
    assert r.status_code == 400 and "built-in" in error_of(r)["message"]
    r = srv.api("POST", "/api/v1/keys", json={"rpm": -1})
    assert r.status_code == 400 and error_of(r)["param"] == "rpm"


def test_database_intact_after_abuse(srv: Server) -> None:
    before = srv.api("GET", "/api/v1/usage/records", params={"limit": 1}).json()["data"][0]["id"]
    for body in (b"\xff\xfe garbage", b'{"model": 1}', b'{"model":"err-chat","messages":[{"role":"user",'
                 b'"content":"x"}],"max_tokens":-5}'):
        assert post(srv, body).status_code == 400
    with srv.db() as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT count(*) FROM models WHERE id = 'err-chat'").fetchone()[0] == 1
    time.sleep(0.3)
    after = srv.api("GET", "/api/v1/usage/records", params={"limit": 5}).json()["data"]
    assert [r["status"] for r in after if r["id"] > before][-3:] == [400, 400, 400]
