"""Errors carry a stable code and the named values of their message (``params``), so that the console can word
them in its own language; a job's progress is structured too; "who am I?" answers 200 when signed out."""
from __future__ import annotations

import urllib.parse
import uuid

import httpx
import openai
import pytest

from tests.conftest import Server, wait_job

CHAT = "smollm2-135m-instruct"


def error_of(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code", "params"} and err["message"], err
    assert err["code"] == code, err
    return err


def test_unknown_model_on_v1_has_a_code_and_params(server: Server) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        server.client().chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert e.value.code == "model_not_found" and e.value.param == "model"
    assert isinstance(e.value.body["params"], dict)  # type: ignore[index]


def test_not_found_errors_name_what_was_missing(server: Server) -> None:
    err = error_of(server.api("GET", "/api/v1/annotation-queues/aq_nope"), 404, "queue_not_found")
    assert err["params"] == {"queue_id": "aq_nope"}
    err = error_of(server.api("GET", "/api/v1/knowledge-bases/kb_nope"), 404, "knowledge_base_not_found")
    assert err["params"] == {"kb_id": "kb_nope"}
    err = error_of(server.api("GET", "/api/v1/prompts/no-such-prompt"), 404, "prompt_not_found")
    assert err["params"] == {"name": "no-such-prompt"}


def test_sign_in_errors_have_codes_and_params(server: Server) -> None:
    def sign_in(body: dict) -> httpx.Response:
        return httpx.post(server.url + "/api/v1/auth/session", json=body, timeout=30)

    assert error_of(sign_in({"key": "sk-temper-wrong-000000"}), 401, "invalid_api_key")["params"] == {}
    err = error_of(sign_in({"key": "", "username": "x"}), 400, "invalid_value")
    assert err["param"] == "key" and err["params"] == {"param": "key", "reason": "string_too_short", "min_length": 1}
    assert error_of(sign_in({"username": "x"}), 400, "signin_fields")["param"] == "key"
    user = server.api("POST", "/api/v1/users", json={"username": "停用的人", "password": "a long enough pass"}).json()
    assert server.api("DELETE", f"/api/v1/keys/{user['key_id']}").status_code == 200
    err = error_of(sign_in({"username": "停用的人", "password": "a long enough pass"}), 401, "account_disabled")
    assert err["params"] == {"username": "停用的人"}


def test_who_am_i_is_not_a_failure_when_signed_out(server: Server) -> None:
    status = httpx.get(server.url + "/api/v1/auth/status", timeout=30)
    assert status.status_code == 200 and status.json() == {"signed_in": False, "identity": None}
    ended = httpx.get(server.url + "/api/v1/auth/status", cookies={"temper_session": "not-a-session"}, timeout=30)
    assert ended.status_code == 200 and ended.json()["signed_in"] is False
    # a wrong key sent on purpose is still refused, and GET /session still says 401 to the signed-out
    bad = httpx.get(server.url + "/api/v1/auth/status", headers={"Authorization": "Bearer sk-wrong"}, timeout=30)
    assert bad.status_code == 401
    assert httpx.get(server.url + "/api/v1/auth/session", timeout=30).status_code == 401
    signed = httpx.post(server.url + "/api/v1/auth/session", json={"key": server.admin_key}, timeout=30)
    assert signed.status_code == 201
    # the cookie is Secure (loopback is secure to browsers, not to httpx): sent by hand
    me = httpx.get(server.url + "/api/v1/auth/status", timeout=30,
                   headers={"cookie": f"temper_session={signed.cookies['temper_session']}"}).json()
    assert me["signed_in"] is True and me["identity"]["role"] == "admin" and me["identity"]["csrf_token"]


def test_ingestion_progress_is_structured(server: Server) -> None:
    kb = server.api("POST", "/api/v1/knowledge-bases", json={"name": f"progress-{uuid.uuid4().hex[:6]}"}).json()
    text = "\n\n".join(f"# Part {i}\n\n" + f"Paragraph {i} talks about topic {i} at some length. " * 20 for i in range(6))
    r = server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/documents/text", json={"title": "notes", "text": text})
    assert r.status_code == 202, r.text
    job = wait_job(server, r.json()["job"]["id"])
    assert job["status"] == "succeeded", job
    p = job["progress"]
    assert p == {"phase": "done", "documents_done": 1, "documents_failed": 0, "documents_total": 1,
                 "chunks_done": job["done"], "chunks_total": job["done"]}, p
    assert p["chunks_done"] > 1
    assert job["message"]  # the English summary stays for the CLI and scripts


def test_annotation_export_is_named_after_the_queue(server: Server) -> None:
    tag = f"export-{uuid.uuid4().hex[:8]}"
    server.client().chat.completions.create(model=CHAT, max_tokens=2, messages=[{"role": "user", "content": tag}])
    r = server.api("POST", "/api/v1/annotation-queues", json={
        "name": "拒答 review / v2", "filters": {"q": tag, "hours": 1},
        "score_configs": [{"name": "ok", "data_type": "boolean"}]})
    assert r.status_code == 201, r.text
    disposition = server.api("GET", f"/api/v1/annotation-queues/{r.json()['id']}/export").headers["content-disposition"]
    assert 'filename="review _ v2.jsonl"' in disposition, disposition
    assert "filename*=UTF-8''" + urllib.parse.quote("拒答 review _ v2.jsonl", safe="") in disposition, disposition
