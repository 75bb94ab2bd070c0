"""Administering models and keys after the fact: test a connection, edit a model, its health, prices left
unset, and a key's limits changed on a live server (real server, real upstreams on loopback, the SDK)."""
from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.conftest import UPSTREAM_KEYS, Server, free_port, start_server, stop_server
from tests.upstream import Upstream

GOOD = UPSTREAM_KEYS["UP_GOOD_KEY"]


@pytest.fixture(scope="module")
def plain() -> Iterator[Upstream]:
    """An upstream without a model list or a key (a bare vLLM or Ollama)."""
    up = Upstream("plain")
    yield up
    up.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("model-admin"), UPSTREAM_KEYS)
    yield s
    stop_server(s)


def as_member(key: str, method: str, url: str, **kw: object) -> httpx.Response:
    return httpx.request(method, url, headers={"Authorization": f"Bearer {key}"}, timeout=30, **kw)


def closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


def add(server: Server, model_id: str, **spec: object) -> dict:
    r = server.api("POST", "/api/v1/models", json={"id": model_id, **spec})
    assert r.status_code == 201, r.text
    return r.json()


def test_connection(server: Server, listed: Upstream, plain: Upstream) -> None:
    def test(**body: object) -> dict:
        r = server.api("POST", "/api/v1/models/test-connection", json=body)
        assert r.status_code == 200, r.text
        return r.json()

    ok = test(base_url=listed.base_url, upstream_model="vendor-a", api_key_env="UP_GOOD_KEY")
    assert ok["ok"] and ok["state"] == "healthy" and ok["status"] == 200 and ok["method"] == "models"
    assert ok["code"] is None and ok["latency_ms"] > 0
    bad = test(base_url=listed.base_url, upstream_model="vendor-a", api_key_env="UP_WRONG_KEY")
    assert not bad["ok"] and bad["code"] == "bad_key" and bad["status"] == 401 and bad["state"] == "unhealthy"
    missing = test(base_url=listed.base_url, upstream_model="vendor-b", api_key_env="UP_GOOD_KEY")
    assert missing["code"] == "model_not_listed" and "vendor-b" in missing["message"]
    unset = test(base_url=listed.base_url, upstream_model="vendor-a", api_key_env="NO_SUCH_VARIABLE")
    assert unset["code"] == "key_missing" and "NO_SUCH_VARIABLE" in unset["message"]
    down = test(base_url=closed_url(), upstream_model="x")
    assert not down["ok"] and down["code"] == "unreachable" and down["state"] == "unreachable"
    assert down["status"] is None
    before = len(plain.received)  # no model list: one 1-token call instead
    fallback = test(base_url=plain.base_url, upstream_model="anything")
    assert fallback["ok"] and fallback["method"] == "chat"
    assert len(plain.received) == before + 1 and plain.received[-1]["max_tokens"] == 1
    member = server.key(name="member")
    r = as_member(member, "POST", server.url + "/api/v1/models/test-connection",
                  json={"base_url": plain.base_url, "upstream_model": "x"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_required"
    r = server.api("POST", "/api/v1/models/test-connection", json={"base_url": "file:///etc/passwd",
                                                                    "upstream_model": "x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "base_url"


def test_a_model_is_edited_and_calls_follow_it(server: Server, listed: Upstream, plain: Upstream) -> None:
    add(server, "editable", base_url=plain.base_url, upstream_model="old-name", api_key_env="UP_GOOD_KEY",
        input_price=1.0, output_price=2.0)
    c = server.client()
    hi = [{"role": "user", "content": "hi"}]
    assert c.chat.completions.create(model="editable", messages=hi).choices[0].message.content == "hello from plain"
    r = server.api("PATCH", "/api/v1/models/editable", json={
        "base_url": listed.base_url, "upstream_model": "vendor-a", "context_length": 32000, "aliases": ["ed"],
        "tags": ["edited"], "description": "moved", "input_price": None})
    assert r.status_code == 200, r.text
    m = r.json()
    dep = m["deployments"][0]  # the key variable is kept when only the URL and name change
    assert (dep["base_url"], dep["upstream_model"], dep["api_key_env"]) == (listed.base_url, "vendor-a", "UP_GOOD_KEY")
    assert m["input_price"] is None and m["output_price"] == 2.0 and m["tags"] == ["edited"]
    seen = c.models.retrieve("editable")
    assert seen.context_length == 32000 and seen.aliases == ["ed"]
    assert c.chat.completions.create(model="ed", messages=hi).choices[0].message.content == "hello from listed"
    assert listed.received[-1]["model"] == "vendor-a" and listed.received[-1]["_auth"] == f"Bearer {GOOD}"
    r = server.api("PATCH", "/api/v1/models/editable", json={"api_key_env": None})  # a null clears it
    assert r.status_code == 200 and r.json()["deployments"][0]["api_key_env"] is None
    with pytest.raises(openai.APIStatusError):  # the upstream wants a key the model no longer sends
        c.chat.completions.create(model="ed", messages=hi)
    r = server.api("PATCH", "/api/v1/models/editable", json={"base_url": "ftp://nowhere"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "base_url"


def _health(server: Server, model_id: str, want: str, timeout: float = 20) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        health = server.api("GET", f"/api/v1/models/{model_id}").json()["health"]
        if health["state"] == want:
            return health
        time.sleep(0.1)
    raise AssertionError(f"{model_id} health stayed {health}")


def test_health_is_checked_and_shown(server: Server, listed: Upstream) -> None:
    add(server, "gone", base_url=closed_url())
    add(server, "fine", base_url=listed.base_url, upstream_model="vendor-a", api_key_env="UP_GOOD_KEY")
    add(server, "wrong-key", base_url=listed.base_url, upstream_model="vendor-a", api_key_env="UP_WRONG_KEY")
    gone = _health(server, "gone", "unreachable")  # checked in the background soon after it was added
    assert gone["code"] == "unreachable" and gone["checked_at"].endswith("Z")
    assert server.api("GET", "/api/v1/models/gone").json()["status"] == "active"  # enabled, yet not answering
    assert _health(server, "fine", "healthy")["latency_ms"] is not None
    assert _health(server, "wrong-key", "unhealthy")["code"] == "bad_key"
    now = server.api("POST", "/api/v1/models/gone/check").json()
    assert now["ok"] is False and now["code"] == "unreachable"
    listing = {m["id"]: m for m in server.api("GET", "/api/v1/models").json()["data"]}
    assert listing["gone"]["health"]["state"] == "unreachable" and listing["smollm2-135m-instruct"]["health"] is None
    local = server.api("POST", "/api/v1/models/smollm2-135m-instruct/check").json()
    assert local["ok"] and local["method"] == "local"
    member = server.key(name="health-member")
    seen = as_member(member, "GET", server.url + "/api/v1/models/gone").json()["health"]
    assert seen["state"] == "unreachable" and seen["message"] == ""  # no upstream address for members


def test_no_price_is_not_free(server: Server, plain: Upstream) -> None:
    assert add(server, "unpriced", base_url=plain.base_url)["input_price"] is None
    free = add(server, "free", base_url=plain.base_url, input_price=0, output_price=0)
    assert (free["input_price"], free["output_price"]) == (0.0, 0.0)
    local = server.api("GET", "/api/v1/models/smollm2-135m-instruct").json()
    assert (local["input_price"], local["output_price"]) == (0.0, 0.0)  # local models are free, explicitly
    r = server.client().chat.completions.create(model="unpriced", messages=[{"role": "user", "content": "hi"}])
    assert r.usage.total_tokens == 12  # metered with no price: costs count as 0


def test_key_limits_are_edited_and_apply(server: Server, plain: Upstream) -> None:
    add(server, "limited", base_url=plain.base_url)
    r = server.api("POST", "/api/v1/keys", json={"name": "app"})
    key_id, secret = r.json()["id"], r.json()["key"]
    c = server.client(secret)
    hi = [{"role": "user", "content": "hi"}]
    for _ in range(3):
        c.chat.completions.create(model="limited", messages=hi)
    r = server.api("PATCH", f"/api/v1/keys/{key_id}", json={"rpm": 1, "name": "app (throttled)",
                                                            "token_budget": 1_000_000})
    assert r.status_code == 200, r.text
    assert (r.json()["rpm"], r.json()["name"], r.json()["token_budget"]) == (1, "app (throttled)", 1_000_000)
    c.chat.completions.create(model="limited", messages=hi)
    with pytest.raises(openai.RateLimitError):
        c.chat.completions.create(model="limited", messages=hi)
    r = server.api("PATCH", f"/api/v1/keys/{key_id}", json={"rpm": None, "allowed_models": ["smollm2"]})
    assert r.json()["rpm"] is None and r.json()["token_budget"] == 1_000_000  # only what was given changes
    with pytest.raises(openai.PermissionDeniedError):  # no longer among the key's models
        c.chat.completions.create(model="limited", messages=hi)
    assert server.api("PATCH", f"/api/v1/keys/{key_id}", json={"allowed_models": None}).status_code == 200
    c.chat.completions.create(model="limited", messages=hi)  # every model, and no rate limit, again
    c.chat.completions.create(model="limited", messages=hi)
    r = server.api("PATCH", f"/api/v1/keys/{key_id}", json={"rpm": 0})
    assert r.status_code == 400 and r.json()["error"]["param"] == "rpm"
    assert server.api("DELETE", f"/api/v1/keys/{key_id}").status_code == 200
    r = server.api("PATCH", f"/api/v1/keys/{key_id}", json={"rpm": 5})
    assert r.status_code == 400 and r.json()["error"]["code"] == "key_revoked"
    assert server.api("PATCH", "/api/v1/keys/key_nope", json={"rpm": 5}).status_code == 404
