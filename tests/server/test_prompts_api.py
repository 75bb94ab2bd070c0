"""The prompts management API over loopback against the session's real server.

The database is shared with other test files, so every test uses its own prompt names.
"""
from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import Server

BASE = "/api/v1/prompts"
CHAT = [{"role": "system", "content": "You answer for {{company}}."}, {"role": "user", "content": "{{question}}"}]


def unique(prefix: str = "p") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def error_of(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code", "params"} and err["message"]
    if code is not None:
        assert err["code"] == code, err
    return err


def create(server: Server, name: str, **fields: Any) -> dict[str, Any]:
    r = server.api("POST", BASE, json={"name": name, "template": CHAT, **fields})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="module")
def member(server: Server) -> httpx.Client:
    key = server.key(name="prompts-member")
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_create_version_label_resolve_diff(server: Server) -> None:
    name = unique()
    p = create(server, name, description="Support", tags=["cs"], labels=["production"],
               model_config={"temperature": 0.2}, message="first")
    assert p["name"] == name and p["latest_version"] == 1 and p["labels"] == {"production": 1}
    v1 = p["versions"][0]
    assert v1["variables"] == ["company", "question"] and v1["model_config"] == {"temperature": 0.2}
    assert v1["created_by"] == "admin" and v1["labels"] == ["production"] and v1["created_at"].endswith("+00:00")

    r = server.api("POST", f"{BASE}/{name}/versions", json={
        "template": [*CHAT, {"role": "assistant", "content": "Hello"}], "message": "prefill", "labels": ["staging"]})
    assert r.status_code == 201, r.text
    assert (r.json()["version"], r.json()["labels"], r.json()["model_config"]) == (2, ["staging"], {"temperature": 0.2})
    r = server.api("POST", f"{BASE}/{name}/versions", json={"model_config": {"temperature": 0.5}})
    assert r.json()["version"] == 3 and r.json()["template"][-1]["content"] == "Hello"

    assert server.api("GET", f"{BASE}/{name}/resolve", params={"label": "production"}).json()["version"] == 1
    assert server.api("GET", f"{BASE}/{name}/resolve").json()["version"] == 3
    assert server.api("GET", f"{BASE}/{name}/resolve", params={"label": "latest"}).json()["version"] == 3
    assert server.api("GET", f"{BASE}/{name}/resolve", params={"version": 2}).json()["message"] == "prefill"

    r = server.api("PUT", f"{BASE}/{name}/labels/production", json={"version": 3})
    assert r.json() == {"prompt": name, "label": "production", "version": 3}
    assert server.api("GET", f"{BASE}/{name}/resolve", params={"label": "production"}).json()["version"] == 3
    assert server.api("DELETE", f"{BASE}/{name}/labels/staging").json()["version"] == 2

    detail = server.api("GET", f"{BASE}/{name}").json()
    assert [v["version"] for v in detail["versions"]] == [3, 2, 1] and detail["labels"] == {"production": 3}
    assert server.api("GET", f"{BASE}/{name}/versions/1").json()["template"] == CHAT  # immutable

    d = server.api("GET", f"{BASE}/{name}/diff", params={"from": 1, "to": "production"}).json()
    assert d["from"] == 1 and d["to"] == 3
    assert "+[assistant]" in d["diff"] and "+model_config.temperature: 0.5" in d["diff"]

    listed = server.api("GET", BASE, params={"q": name}).json()
    assert listed["total"] == 1 and listed["data"][0]["latest_version"] == 3 and "versions" not in listed["data"][0]
    assert listed["data"][0]["labels"] == {"production": 3}


def test_render_and_missing_variables(server: Server) -> None:
    name = unique()
    create(server, name, model_config={"max_tokens": 50}, labels=["production"])
    r = server.api("POST", f"{BASE}/{name}/render", json={
        "label": "production", "variables": {"company": "Acme", "question": "Refund?", "extra": 1}})
    assert r.status_code == 200, r.text
    assert r.json() == {"prompt": name, "version": 1, "type": "chat", "model_config": {"max_tokens": 50},
                        "messages": [{"role": "system", "content": "You answer for Acme."},
                                     {"role": "user", "content": "Refund?"}]}
    err = error_of(server.api("POST", f"{BASE}/{name}/render", json={"variables": {"company": "Acme"}}),
                   400, "missing_variables")
    assert "question" in err["message"] and err["param"] == "variables"

    text = unique("text")
    server.api("POST", BASE, json={"name": text, "template": "Summarise: {{doc}}"})
    r = server.api("POST", f"{BASE}/{text}/render", json={"variables": {"doc": "abc"}})
    assert r.json() == {"prompt": text, "version": 1, "type": "text", "text": "Summarise: abc", "model_config": {}}


def test_chinese_name_in_the_path(server: Server) -> None:
    name = unique("客服提示词")
    create(server, name, template=[{"role": "user", "content": "请回答：{{问题}}"}], description="中文")
    r = server.api("GET", f"{BASE}/{quote(name)}")
    assert r.status_code == 200 and r.json()["name"] == name
    r = server.api("POST", f"{BASE}/{quote(name)}/render", json={"variables": {"问题": "怎么退货？"}})
    assert r.json()["messages"] == [{"role": "user", "content": "请回答：怎么退货？"}]
    assert server.api("GET", BASE, params={"q": name}).json()["total"] == 1


def test_errors_have_the_openai_shape(server: Server) -> None:
    name = unique()
    create(server, name)
    missing = unique("missing")
    error_of(server.api("GET", f"{BASE}/{missing}"), 404, "prompt_not_found")
    error_of(server.api("GET", f"{BASE}/{name}/versions/7"), 404, "version_not_found")
    error_of(server.api("GET", f"{BASE}/{name}/resolve", params={"label": "production"}), 404, "label_not_found")
    error_of(server.api("DELETE", f"{BASE}/{name}/labels/production"), 404, "label_not_found")
    error_of(server.api("POST", BASE, json={"name": name, "template": "x"}), 409, "prompt_exists")
    error_of(server.api("POST", BASE, json={"name": "bad name", "template": "x"}), 400, "invalid_name")
    error_of(server.api("PUT", f"{BASE}/{name}/labels/latest", json={"version": 1}), 400, "reserved_label")
    error_of(server.api("PUT", f"{BASE}/{name}/labels/Prod", json={"version": 1}), 400, "invalid_label")
    err = error_of(server.api("POST", BASE, json={"name": unique(), "template": [{"role": "robot", "content": "x"}]}),
                   400, "invalid_value")
    assert err["param"].startswith("template")
    error_of(server.api("POST", BASE, json={"name": unique(), "template": "x", "model_config": {"temperature": 5}}),
             400)
    error_of(server.api("POST", BASE, json={"name": unique(), "template": "x", "colour": "red"}), 400, "invalid_value")
    error_of(server.api("GET", f"{BASE}/{name}/diff", params={"from": 1}), 400, "invalid_value")
    error_of(server.api("GET", f"{BASE}/{name}/resolve", params={"version": 1, "label": "x"}), 400)
    assert server.api("GET", f"{BASE}/{missing}/resolve").status_code == 404


def test_members_read_and_render_but_cannot_write(server: Server, member: httpx.Client) -> None:
    name = unique()
    create(server, name, labels=["production"])
    assert member.get(f"{BASE}/{name}").status_code == 200
    assert member.get(BASE, params={"q": name}).json()["total"] == 1
    assert member.get(f"{BASE}/{name}/resolve", params={"label": "production"}).json()["version"] == 1
    assert member.post(f"{BASE}/{name}/render",
                       json={"variables": {"company": "A", "question": "B"}}).status_code == 200
    assert member.get(f"{BASE}/templates").status_code == 200
    for method, path, body in [("POST", BASE, {"name": unique(), "template": "x"}),
                               ("POST", f"{BASE}/{name}/versions", {"template": "x"}),
                               ("PUT", f"{BASE}/{name}/labels/staging", {"version": 1}),
                               ("DELETE", f"{BASE}/{name}/labels/production", None),
                               ("POST", f"{BASE}/from-template", {"template_id": "extraction", "lang": "en"}),
                               ("DELETE", f"{BASE}/{name}", None)]:
        error_of(member.request(method, path, json=body), 403, "admin_required")
    assert server.api("GET", f"{BASE}/{name}").json()["latest_version"] == 1
    assert httpx.get(server.url + BASE, timeout=30).status_code == 401


def test_starter_library_and_from_template(server: Server) -> None:
    zh = server.api("GET", f"{BASE}/templates", params={"lang": "zh"}).json()["data"]
    assert len(zh) == 5 and {t["lang"] for t in zh} == {"zh"}
    assert {"id", "lang", "name", "title", "description", "type", "template", "variables", "model_config",
            "tags"} <= set(zh[0])
    assert len(server.api("GET", f"{BASE}/templates").json()["data"]) == 10
    error_of(server.api("GET", f"{BASE}/templates", params={"lang": "fr"}), 400)

    name = unique("合同审查")
    r = server.api("POST", f"{BASE}/from-template", json={"template_id": "contract-review", "lang": "zh", "name": name})
    assert r.status_code == 201, r.text
    v = r.json()["versions"][0]
    assert v["variables"] == ["party", "contract_type", "contract"] and "合同" in v["template"][0]["content"]
    error_of(server.api("POST", f"{BASE}/from-template", json={"template_id": "nope", "lang": "en"}), 404,
             "template_not_found")


def test_delete(server: Server) -> None:
    name = unique()
    create(server, name)
    r = server.api("DELETE", f"{BASE}/{name}")
    assert r.status_code == 200 and r.json()["name"] == name and r.json()["deleted"] is True
    error_of(server.api("GET", f"{BASE}/{name}"), 404, "prompt_not_found")
    error_of(server.api("DELETE", f"{BASE}/{name}"), 404, "prompt_not_found")


def test_openapi_documents_the_routes(server: Server) -> None:
    paths = server.api("GET", "/openapi.json").json()["paths"]
    for p in (BASE, f"{BASE}/templates", f"{BASE}/from-template", f"{BASE}/{{name}}", f"{BASE}/{{name}}/versions",
              f"{BASE}/{{name}}/versions/{{version}}", f"{BASE}/{{name}}/resolve", f"{BASE}/{{name}}/render",
              f"{BASE}/{{name}}/labels/{{label}}", f"{BASE}/{{name}}/diff"):
        assert p in paths, p
