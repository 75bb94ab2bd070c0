"""Console sign-in sessions, CSRF, member visibility, usage series, model filters and the console shell.

Everything goes over loopback to the real server of the session-scoped ``server`` fixture. The database is
shared with other test files, so every test creates its own keys and filters by their ids.

The session cookie is marked ``Secure`` on loopback, and Python's cookie jar never sends a Secure cookie
over plain http (browsers do, since 127.0.0.1 is a secure context), so the tests send it by hand in a
``Cookie`` header, the way a browser would.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Server

COOKIE = "temper_session"
CHAT = "smollm2-135m-instruct"
HI = [{"role": "user", "content": "Hi"}]


@dataclass(frozen=True)
class Session:
    token: str
    csrf: str
    identity: dict[str, Any]
    set_cookie: str

    def headers(self, csrf: bool = True) -> dict[str, str]:
        h = {"Cookie": f"{COOKIE}={self.token}"}
        if csrf:
            h["x-csrf-token"] = self.csrf
        return h


@dataclass(frozen=True)
class Key:
    id: str
    key: str


def new_key(server: Server, **fields: Any) -> Key:
    r = server.api("POST", "/api/v1/keys", json={"name": "console-test", **fields})
    assert r.status_code == 201, r.text
    return Key(r.json()["id"], r.json()["key"])


def set_cookie_header(r: httpx.Response) -> str:
    found = [v for v in r.headers.get_list("set-cookie") if v.startswith(COOKIE + "=")]
    assert len(found) == 1, r.headers
    return found[0]


def sign_in(server: Server, key: str) -> Session:
    r = httpx.post(server.url + "/api/v1/auth/session", json={"key": key}, timeout=30)
    assert r.status_code == 201, r.text
    header = set_cookie_header(r)
    token = header.split(";", 1)[0].split("=", 1)[1]
    assert token
    return Session(token, r.json()["csrf_token"], r.json(), header)


def call(server: Server, method: str, path: str, sess: Session | None = None, csrf: bool = True,
         headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
    """A request carrying only the session cookie (no Authorization), like the console in a browser."""
    h = {**(sess.headers(csrf) if sess else {}), **(headers or {})}
    return httpx.request(method, server.url + path, headers=h, timeout=60, **kw)


def error_of(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code", "params"} and err["message"]
    if code is not None:
        assert err["code"] == code, err
    return err


def eventually(check: Callable[[], bool], timeout: float = 1.5) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def session_rows(server: Server, key_id: str) -> list[tuple]:
    with server.db() as db:
        return db.execute("SELECT * FROM console_sessions WHERE key_id = ?", (key_id,)).fetchall()


@pytest.fixture(scope="module")
def admin_session(server: Server) -> Session:
    return sign_in(server, server.admin_key)


@pytest.fixture(scope="module")
def member(server: Server) -> tuple[Key, Session]:
    key = new_key(server, name="console-member", allowed_models=[CHAT])
    return key, sign_in(server, key.key)


# --- sign-in -------------------------------------------------------------------------------------------


def test_admin_sign_in_sets_a_hardened_cookie_and_stores_only_its_hash(server: Server) -> None:
    sess = sign_in(server, server.admin_key)
    attrs = {a.strip().split("=", 1)[0].lower(): (a.strip().split("=", 1) + [""])[1]
             for a in sess.set_cookie.split(";")[1:]}
    assert "httponly" in attrs and "secure" in attrs, sess.set_cookie
    assert attrs["samesite"].lower() == "strict" and attrs["path"] == "/"
    assert int(attrs["max-age"]) > 0
    me = sess.identity
    assert me["role"] == "admin" and me["key_id"] == "key_admin" and me["allowed_models"] is None
    assert len(sess.csrf) >= 32 and sess.csrf != sess.token
    assert datetime.fromisoformat(me["expires_at"]) > datetime.now(timezone.utc) + timedelta(hours=1)
    with server.db() as db:
        cur = db.execute("SELECT * FROM console_sessions WHERE token_hash = ?",
                         (hashlib.sha256(sess.token.encode()).hexdigest(),))
        rows = cur.fetchall()
        columns = [d[0] for d in cur.description]
        anywhere = db.execute("SELECT count(*) FROM console_sessions WHERE token_hash = ? OR id = ? OR "
                              "csrf_token = ?", (sess.token, sess.token, sess.token)).fetchone()[0]
    assert len(rows) == 1 and anywhere == 0
    row = dict(zip(columns, rows[0]))
    assert row["key_id"] == "key_admin" and row["csrf_token"] == sess.csrf
    assert sess.token not in [str(v) for v in row.values()]


@pytest.mark.parametrize("body, status, code", [
    ({"key": "sk-temper-definitely-not-a-key"}, 401, "invalid_api_key"),
    ({"key": ""}, 400, None),
    ({}, 400, None),
    ({"key": "x", "remember": True}, 400, None),
])
def test_bad_sign_ins_are_refused_without_a_cookie(server: Server, body: dict, status: int,
                                                   code: str | None) -> None:
    r = httpx.post(server.url + "/api/v1/auth/session", json=body)
    err = error_of(r, status, code)
    assert err["type"] == ("authentication_error" if status == 401 else "invalid_request_error")
    assert "set-cookie" not in r.headers


@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}])
def test_cross_site_sign_in_is_refused(server: Server, headers: dict[str, str]) -> None:
    r = httpx.post(server.url + "/api/v1/auth/session", json={"key": server.admin_key}, headers=headers)
    assert error_of(r, 403, "cross_origin")["type"] == "permission_error"
    assert "set-cookie" not in r.headers
    same = httpx.post(server.url + "/api/v1/auth/session", json={"key": server.admin_key},
                      headers={"Origin": server.url, "Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 201, same.text


def test_session_identity_needs_the_cookie(server: Server, admin_session: Session) -> None:
    r = call(server, "GET", "/api/v1/auth/session", admin_session, csrf=False)
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["role"] == "admin" and me["csrf_token"] == admin_session.csrf
    assert me["expires_at"] == admin_session.identity["expires_at"]
    error_of(call(server, "GET", "/api/v1/auth/session"), 401)
    error_of(call(server, "GET", "/api/v1/auth/session", headers={"Cookie": f"{COOKIE}=forged"}), 401)


def test_sign_in_never_outlives_the_key(server: Server) -> None:
    expires = (datetime.now(timezone.utc) + timedelta(minutes=30)).replace(microsecond=0)
    key = new_key(server, expires_at=expires.isoformat())
    sess = sign_in(server, key.key)
    assert datetime.fromisoformat(sess.identity["expires_at"]) == expires


# --- CSRF ----------------------------------------------------------------------------------------------


def test_state_changes_through_the_cookie_need_the_csrf_header(server: Server, admin_session: Session) -> None:
    name = f"csrf-probe-{time.time_ns()}"

    def count() -> int:
        r = call(server, "GET", "/api/v1/keys", admin_session, csrf=False, params={"limit": 1000})
        assert r.status_code == 200, r.text  # a GET needs no CSRF header
        return sum(k["name"] == name for k in r.json()["data"])

    error_of(call(server, "POST", "/api/v1/keys", admin_session, csrf=False, json={"name": name}), 403,
             "csrf_failed")
    error_of(call(server, "POST", "/api/v1/keys", admin_session, csrf=False, json={"name": name},
                  headers={"x-csrf-token": admin_session.csrf[:-1]}), 403, "csrf_failed")
    assert count() == 0
    ok = call(server, "POST", "/api/v1/keys", admin_session, json={"name": name})
    assert ok.status_code == 201, ok.text
    assert count() == 1


# --- members -------------------------------------------------------------------------------------------


def test_member_sees_only_its_allowed_models(server: Server, member: tuple[Key, Session]) -> None:
    key, sess = member
    me = call(server, "GET", "/api/v1/auth/session", sess).json()
    assert me["role"] == "member" and me["key_id"] == key.id and me["allowed_models"] == [CHAT]
    listed = call(server, "GET", "/api/v1/models", sess).json()
    assert [m["id"] for m in listed["data"]] == [CHAT] and listed["total"] == 1
    assert call(server, "GET", f"/api/v1/models/{CHAT}", sess).status_code == 200
    error_of(call(server, "GET", "/api/v1/models/gemma-3-270m", sess), 404, "model_not_found")
    admin_ids = {m["id"] for m in server.api("GET", "/api/v1/models").json()["data"]}
    assert {"gemma-3-270m", "multilingual-e5-small", CHAT} <= admin_ids


def test_member_cannot_use_admin_endpoints(server: Server, member: tuple[Key, Session]) -> None:
    _, sess = member
    before = server.api("GET", "/api/v1/keys", params={"limit": 1000}).json()["total"]
    error_of(call(server, "POST", "/api/v1/keys", sess, json={"name": "member-made"}), 403, "admin_required")
    error_of(call(server, "GET", "/api/v1/keys", sess), 403, "admin_required")
    error_of(call(server, "POST", "/api/v1/models", sess, json={"id": "member-model"}), 403, "admin_required")
    assert server.api("GET", "/api/v1/keys", params={"limit": 1000}).json()["total"] == before


def test_member_usage_is_pinned_to_its_own_key(server: Server, member: tuple[Key, Session]) -> None:
    key, sess = member
    other = new_key(server, name="console-other")
    server.client(other.key).chat.completions.create(model=CHAT, messages=HI, max_tokens=4)
    server.client(key.key).chat.completions.create(model=CHAT, messages=HI, max_tokens=4)
    for path in ("/api/v1/usage", "/api/v1/usage/series", "/api/v1/usage/records"):
        err = error_of(call(server, "GET", path, sess, params={"key_id": other.id}), 400, "key_not_allowed")
        assert err["param"] == "key_id"
    rows = call(server, "GET", "/api/v1/usage", sess).json()["data"]
    assert [r["group"] for r in rows] == [key.id] and rows[0]["requests"] >= 1
    records = call(server, "GET", "/api/v1/usage/records", sess).json()["data"]
    assert records and {r["key_id"] for r in records} == {key.id}
    by_model = call(server, "GET", "/api/v1/usage", sess, params={"group_by": "model"}).json()["data"]
    assert sum(r["requests"] for r in by_model) == rows[0]["requests"]


# --- the playground: /v1 with the cookie ---------------------------------------------------------------


def test_playground_chat_with_the_session_cookie(server: Server, member: tuple[Key, Session]) -> None:
    key, sess = member
    body = {"model": CHAT, "messages": HI, "max_tokens": 4}
    r = call(server, "POST", "/v1/chat/completions", sess, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["object"] == "chat.completion" and r.json()["usage"]["completion_tokens"] <= 4
    rid = r.headers["x-request-id"]

    def attributed() -> bool:
        recs = server.api("GET", "/api/v1/usage/records", params={"key_id": key.id, "limit": 50}).json()["data"]
        return any(x["request_id"] == rid and x["key_id"] == key.id and x["status"] == 200 for x in recs)

    assert eventually(attributed)
    error_of(call(server, "POST", "/v1/chat/completions", sess, csrf=False, json=body), 403, "csrf_failed")
    error_of(call(server, "POST", "/v1/chat/completions", sess, json={**body, "model": "gemma-3-270m"}), 403)
    models = call(server, "GET", "/v1/models", sess, csrf=False)
    assert models.status_code == 200 and {m["id"] for m in models.json()["data"]} == {CHAT}
    error_of(call(server, "GET", "/v1/models/gemma-3-270m", sess, csrf=False), 404, "model_not_found")
    assert call(server, "GET", f"/v1/models/{CHAT}", sess, csrf=False).status_code == 200
    error_of(call(server, "GET", "/v1/models", headers={"Cookie": f"{COOKIE}=forged"}), 401)


def test_playground_stream_with_the_session_cookie(server: Server, admin_session: Session) -> None:
    body = {"model": "smollm2", "messages": HI, "max_tokens": 4, "stream": True,
            "stream_options": {"include_usage": True}}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=60,
                      headers=admin_session.headers()) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [ln for ln in r.iter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "data: [DONE]" and '"usage"' in lines[-2]


# --- ending sessions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["api", "cli"])
def test_revoking_a_key_ends_its_sessions(server: Server, how: str) -> None:
    """Through the API the server reloads at once; through the CLI it learns of it by polling."""
    key = new_key(server, name=f"console-revoked-{how}", allowed_models=[CHAT])
    first, second = sign_in(server, key.key), sign_in(server, key.key)
    assert call(server, "GET", "/api/v1/auth/session", first).status_code == 200  # cached in the server
    assert len(session_rows(server, key.id)) == 2
    if how == "api":
        assert server.api("DELETE", f"/api/v1/keys/{key.id}").status_code == 200
    else:
        server.cli("keys", "revoke", key.id)
    for sess in (first, second):
        assert eventually(lambda s=sess: call(server, "GET", "/api/v1/auth/session", s).status_code == 401)
        error_of(call(server, "GET", "/v1/models", sess), 401)
        error_of(call(server, "POST", "/v1/chat/completions", sess,
                      json={"model": CHAT, "messages": HI, "max_tokens": 4}), 401)
    assert session_rows(server, key.id) == []
    r = httpx.post(server.url + "/api/v1/auth/session", json={"key": key.key})
    error_of(r, 401)


def test_sign_out_clears_the_cookie_and_ends_the_session(server: Server) -> None:
    sess = sign_in(server, server.admin_key)
    digest = hashlib.sha256(sess.token.encode()).hexdigest()
    error_of(call(server, "DELETE", "/api/v1/auth/session", sess, csrf=False), 403, "csrf_failed")
    assert call(server, "GET", "/api/v1/auth/session", sess).status_code == 200
    r = call(server, "DELETE", "/api/v1/auth/session", sess)
    assert r.status_code == 204 and not r.content
    cleared = set_cookie_header(r).lower()
    assert cleared.startswith(f"{COOKIE}=;") or cleared.startswith(f'{COOKIE}="";')
    assert "max-age=0" in cleared or "expires=thu, 01 jan 1970" in cleared
    error_of(call(server, "GET", "/api/v1/auth/session", sess), 401)
    error_of(call(server, "GET", "/v1/models", sess), 401)
    with server.db() as db:
        assert db.execute("SELECT count(*) FROM console_sessions WHERE token_hash = ?",
                          (digest,)).fetchone()[0] == 0


# --- usage series and pagination -----------------------------------------------------------------------


def test_usage_series_adds_up_to_the_records(server: Server) -> None:
    key = new_key(server, name="console-series")
    client = server.client(key.key)
    hour_before = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:00:00Z")
    n = 3
    for _ in range(n):
        client.chat.completions.create(model=CHAT, messages=HI, max_tokens=4)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=CHAT, messages=HI, max_tokens=0)
    r = server.api("GET", "/api/v1/usage/series", params={"key_id": key.id, "hours": 2, "bucket": "hour"})
    hour_after = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:00:00Z")
    assert r.status_code == 200, r.text
    assert r.json()["bucket"] == "hour"
    points = r.json()["data"]
    ts = [datetime.fromisoformat(p["t"].replace("Z", "+00:00")) for p in points]
    assert all(p["t"].endswith("Z") for p in points) and 3 <= len(points) <= 4
    assert all(b - a == timedelta(hours=1) for a, b in zip(ts, ts[1:]))
    assert points[-1]["t"] in (hour_before, hour_after)
    records = server.api("GET", "/api/v1/usage/records", params={"key_id": key.id}).json()["data"]
    assert len(records) == n + 1
    assert sum(p["requests"] for p in points) == n + 1 and sum(p["errors"] for p in points) == 1
    for field in ("prompt_tokens", "completion_tokens"):
        assert sum(p[field] for p in points) == sum(x[field] for x in records) > 0
    busy = [p for p in points if p["requests"]]
    assert all(p["avg_latency_ms"] is not None for p in busy)
    assert all(p["avg_latency_ms"] is None and p["cost"] == 0 for p in points if not p["requests"])
    minutes = server.api("GET", "/api/v1/usage/series", params={"key_id": key.id, "hours": 1, "bucket": "minute"})
    assert minutes.status_code == 200 and sum(p["requests"] for p in minutes.json()["data"]) == n + 1
    assert len(minutes.json()["data"]) in (61, 62)


@pytest.mark.parametrize("params, param", [
    ({"bucket": "minute", "hours": 100}, "bucket"),
    ({"bucket": "week"}, "bucket"),
    ({"hours": 0}, "hours"),
])
def test_usage_series_rejects_bad_ranges(server: Server, params: dict, param: str) -> None:
    assert error_of(server.api("GET", "/api/v1/usage/series", params=params), 400)["param"] == param


def test_usage_summary_paginates(server: Server) -> None:
    for name in ("console-page-a", "console-page-b"):
        server.client(new_key(server, name=name).key).chat.completions.create(model=CHAT, messages=HI,
                                                                             max_tokens=4)
    full = server.api("GET", "/api/v1/usage", params={"group_by": "key", "limit": 1000}).json()
    total = full["total"]
    assert total >= 2 and total == len(full["data"]) and not full["has_more"]
    first = server.api("GET", "/api/v1/usage", params={"limit": 1, "offset": 0}).json()
    last = server.api("GET", "/api/v1/usage", params={"limit": 1, "offset": total - 1}).json()
    beyond = server.api("GET", "/api/v1/usage", params={"limit": 1, "offset": total}).json()
    assert first["total"] == last["total"] == total and first["has_more"] and not last["has_more"]
    assert first["data"] == full["data"][:1] and last["data"] == full["data"][-1:] and beyond["data"] == []
    assert (first["limit"], last["offset"]) == (1, total - 1)


# --- model list filters --------------------------------------------------------------------------------


def test_model_search_needs_every_word(server: Server) -> None:
    def ids(**params: Any) -> list[str]:
        r = server.api("GET", "/api/v1/models", params={"limit": 1000, **params})
        assert r.status_code == 200, r.text
        return [m["id"] for m in r.json()["data"]]

    assert CHAT in ids(q="SmolLM2 135M") and "gemma-3-270m" not in ids(q="SmolLM2 135M")
    assert ids(q="smollm2 no-such-word-anywhere") == []
    assert "gemma-3-270m" in ids(q="MULTILINGUAL gguf")
    assert set(ids(tag="rerank")) >= {"multilingual-e5-small-rerank"} and CHAT not in ids(tag="rerank")


def test_model_modality_filter(server: Server) -> None:
    r = server.api("GET", "/api/v1/models", params={"modality": "embedding", "limit": 1000})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert "multilingual-e5-small" in {m["id"] for m in data}
    assert {m["modality"] for m in data} == {"embedding"} and r.json()["total"] == len(data)
    assert error_of(server.api("GET", "/api/v1/models", params={"modality": "video"}), 400)["param"] == "modality"


# --- the console shell ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/playground", "/models/some/thing"])
def test_console_pages_serve_the_shell_with_a_strict_csp(server: Server, path: str) -> None:
    r = httpx.get(server.url + path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<div id="app"' in r.text
    csp = {d.split()[0]: d.split()[1:] for d in r.headers["content-security-policy"].split(";") if d.strip()}
    assert "'unsafe-inline'" not in csp["script-src"] and "'unsafe-eval'" not in csp["script-src"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    scripts = r.text.split("<script")[1:]
    assert scripts and all(" src=" in s.split(">", 1)[0] for s in scripts)  # nothing inline for the CSP to block


def test_console_assets_and_api_404s(server: Server) -> None:
    js = httpx.get(server.url + "/assets/js/main.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"] and "import" in js.text
    assert "content-security-policy" in js.headers
    assert httpx.get(server.url + "/assets/nope.js").status_code == 404
    for path in ("/api/v1/nope", "/v1/nope"):
        r = httpx.get(server.url + path, headers={"Authorization": f"Bearer {server.admin_key}"})
        error_of(r, 404, "unknown_url")
        assert "<html" not in r.text.lower()


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_unknown_api_urls_are_404_for_every_method(server: Server, method: str) -> None:
    r = server.api(method, "/api/v1/nope")
    error_of(r, 404, "unknown_url")


@pytest.mark.parametrize("path", ["/api", "/v1"])
def test_bare_api_roots_are_not_console_pages(server: Server, path: str) -> None:
    error_of(httpx.get(server.url + path), 404, "unknown_url")
