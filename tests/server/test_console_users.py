"""Console users: password sign-in, personal keys that carry rights and metering, removal, throttling."""
from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEMPER, Server, start_server, stop_server

PASSWORD = "correct horse battery"


def sign_in(srv: Server, **body: str) -> httpx.Response:
    return httpx.post(srv.url + "/api/v1/auth/session", json=body, timeout=30)


def signed_in_client(srv: Server, username: str, password: str) -> tuple[httpx.Client, str]:
    c = httpx.Client(base_url=srv.url, timeout=60)
    r = c.post("/api/v1/auth/session", json={"username": username, "password": password})
    assert r.status_code == 201, r.text
    # The cookie is Secure (loopback counts as secure for browsers, not for httpx): send it by hand.
    c.cookies.clear()
    c.headers["cookie"] = f"temper_session={r.cookies['temper_session']}"
    return c, r.json()["csrf_token"]


def test_user_signs_in_with_a_password_and_is_metered_under_their_name(server: Server) -> None:
    r = server.api("POST", "/api/v1/users", json={"username": "王小明", "password": PASSWORD})
    assert r.status_code == 201, r.text
    user = r.json()
    assert user["role"] == "member" and user["key_id"].startswith("key_")
    assert "password" not in r.text and PASSWORD not in r.text

    c, csrf = signed_in_client(server, "王小明", PASSWORD)
    me = c.get("/api/v1/auth/session").json()
    assert me["role"] == "member" and me["key_id"] == user["key_id"] and me["key_name"] == "王小明 (console)"
    assert c.get("/api/v1/keys").status_code == 403
    r = c.post("/v1/chat/completions", headers={"x-csrf-token": csrf},
               json={"model": "smollm2-135m-instruct", "max_tokens": 4, "messages": [{"role": "user", "content": "你好"}]})
    assert r.status_code == 200, r.text
    rows = server.api("GET", "/api/v1/usage", params={"key_id": user["key_id"]}).json()["data"]
    assert rows and rows[0]["key_name"] == "王小明 (console)" and rows[0]["requests"] == 1
    row = server.db().execute("select password_hash from users where id = ?", (user["id"],)).fetchone()
    assert row[0].startswith("scrypt$") and PASSWORD not in row[0]
    # Revoking the personal key (e.g. from the keys page) disables the account
    assert server.api("DELETE", f"/api/v1/keys/{user['key_id']}").status_code == 200
    r = sign_in(server, username="王小明", password=PASSWORD)
    assert r.status_code == 401 and r.json()["error"]["code"] == "account_disabled"


def test_wrong_credentials_and_bad_input(server: Server) -> None:
    assert server.api("POST", "/api/v1/users", json={"username": "ann", "password": PASSWORD}).status_code == 201
    wrong = sign_in(server, username="ann", password="not the password")
    unknown = sign_in(server, username="nobody-here", password=PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"] == unknown.json()["error"]
    assert wrong.json()["error"]["code"] == "invalid_credentials"
    assert sign_in(server, username="ANN", password=PASSWORD).status_code == 201  # names are case-insensitive
    assert sign_in(server, key=server.admin_key, username="ann", password=PASSWORD).status_code == 400
    assert sign_in(server, username="ann").status_code == 400
    r = server.api("POST", "/api/v1/users", json={"username": "Ann", "password": PASSWORD})
    assert r.status_code == 409
    r = server.api("POST", "/api/v1/users", json={"username": "bo", "password": "short"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "password"
    r = server.api("POST", "/api/v1/users", json={"username": "has space", "password": PASSWORD})
    assert r.status_code == 400 and r.json()["error"]["param"] == "username"
    r = server.api("POST", "/api/v1/users", json={"username": "x", "password": PASSWORD, "role": "owner"})
    assert r.status_code == 400


def test_admin_users_password_change_and_removal(server: Server) -> None:
    r = server.api("POST", "/api/v1/users", json={"username": "root-ops", "password": PASSWORD, "role": "admin"})
    assert r.status_code == 201
    c, _ = signed_in_client(server, "root-ops", PASSWORD)
    assert c.get("/api/v1/auth/session").json()["role"] == "admin"
    assert c.get("/api/v1/keys").status_code == 200

    new = "a brand new passphrase"
    assert server.api("PUT", "/api/v1/users/root-ops/password", json={"password": new}).status_code == 200
    assert sign_in(server, username="root-ops", password=PASSWORD).status_code == 401
    assert sign_in(server, username="root-ops", password=new).status_code == 201

    removed = server.api("DELETE", "/api/v1/users/root-ops")
    assert removed.status_code == 200
    deadline = time.time() + 3
    while c.get("/api/v1/auth/session").status_code != 401 and time.time() < deadline:
        time.sleep(0.1)
    assert c.get("/api/v1/auth/session").status_code == 401
    assert sign_in(server, username="root-ops", password=new).status_code == 401
    key = server.api("GET", f"/api/v1/keys/{removed.json()['key_id']}").json()
    assert key["revoked_at"] is not None
    assert server.api("DELETE", "/api/v1/users/root-ops").status_code == 404


def test_users_cli(server: Server) -> None:
    env = {**server.env, "TEMPER_NEW_PASSWORD": PASSWORD}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*TEMPER, "users", *args], env=env, capture_output=True, text=True, timeout=60)

    r = run("add", "cli-user", "--role", "member")
    assert r.returncode == 0 and "added cli-user" in r.stdout, r.stdout + r.stderr
    assert "cli-user" in run("list").stdout
    assert sign_in(server, username="cli-user", password=PASSWORD).status_code == 201
    r = run("add", "cli-user")
    assert r.returncode == 1 and "already exists" in r.stdout + r.stderr and "Traceback" not in r.stderr
    r = run("add", "other", "--role", "boss")
    assert r.returncode == 1 and "role must be one of" in r.stdout + r.stderr
    assert run("remove", "cli-user").returncode == 0
    assert "cli-user" not in run("list").stdout


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Server]:
    s = start_server(tmp_path, {"TEMPER_SIGNIN_ATTEMPTS": "30"})  # the default
    yield s
    stop_server(s)


def test_sign_in_attempts_are_throttled(fresh: Server) -> None:
    statuses = [sign_in(fresh, key=f"sk-temper-guess-{i:04d}-xxxxxxxx").status_code for i in range(30)]
    assert statuses == [401] * 30
    r = sign_in(fresh, key=fresh.admin_key)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1

