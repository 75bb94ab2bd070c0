"""Numbers and strings at the edges of what the types allow get a 4xx, never a 500 (the probe's reproductions)."""
from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Server


def api(server: Server, method: str, path: str, **kw: Any) -> httpx.Response:
    return server.api(method, path, **kw)


@pytest.fixture(scope="module")
def kb(server: Server) -> dict[str, Any]:
    r = server.api("POST", "/api/v1/knowledge-bases", json={"name": "bounds"})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="module")
def prompt(server: Server) -> str:
    r = server.api("POST", "/api/v1/prompts", json={"name": "bounds-prompt", "template": [
        {"role": "user", "content": "hi"}]})
    assert r.status_code == 201, r.text
    return "bounds-prompt"


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/api/v1/usage?days=1000000000", None),
    ("GET", "/api/v1/usage/series?hours=1e308", None),
    ("GET", "/api/v1/traces?hours=inf", None),
    ("GET", "/api/v1/traces?hours=nan", None),
    ("GET", "/api/v1/traces?min_ms=inf", None),
    ("GET", "/api/v1/traces/stats?hours=1e308", None),
    ("GET", "/api/v1/knowledge-bases?offset=9223372036854775808", None),
    ("POST", "/api/v1/keys", {"name": "big", "rpm": 2 ** 63}),
    ("POST", "/api/v1/keys", {"name": "big", "tpm": 2 ** 63}),
    ("POST", "/api/v1/keys", {"name": "big", "token_budget": 2 ** 63}),
])
def test_out_of_range_numbers_are_a_clear_400(server: Server, method: str, path: str, body: Any) -> None:
    r = api(server, method, path, json=body) if body is not None else api(server, method, path)
    assert r.status_code in (400, 422), (r.status_code, r.text)
    assert r.json()["error"]["message"]


def test_out_of_range_paths_and_offsets_on_resources(server: Server, kb: dict[str, Any], prompt: str) -> None:
    for path in (f"/api/v1/prompts/{prompt}/versions/1180591620717411303424",
                 f"/api/v1/knowledge-bases/{kb['id']}/documents?offset=9223372036854775808"):
        r = api(server, "GET", path)
        assert r.status_code in (400, 404, 422), (path, r.status_code, r.text)


@pytest.mark.parametrize("key", ["a'b\"c", "nul\x00key", "x" * 300])
def test_filter_keys_of_any_text_are_a_clear_400(server: Server, kb: dict[str, Any], key: str) -> None:
    r = api(server, "POST", f"/api/v1/knowledge-bases/{kb['id']}/retrieve",
            json={"query": "anything", "filter": {key: "v"}})
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.json()["error"]["param"] == "filter"


def test_a_non_ascii_app_header_is_a_400_metered_and_traced(server: Server) -> None:
    r = httpx.post(server.url + "/v1/embeddings", content=b'{"model": "multilingual-e5-small", "input": "x"}',
                   headers={"Authorization": f"Bearer {server.admin_key}", "Content-Type": "application/json",
                            "x-temper-app": b"caf\xe9"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "x-temper-app"
    assert r.headers["x-trace-id"]
