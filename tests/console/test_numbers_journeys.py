"""Usage and Analytics in a real Chromium, in English and Chinese: the same request total for the same period,
a nameless key named by its prefix and the server's own calls named as such (never "—"), and the definition of
a request on both pages.

Traffic comes from the loopback upstream in tests/upstream.py through /v1 (good, streamed and failed calls on
the admin key and on a key without a name) and from a small knowledge base: its ingestion job's embedding,
and a retrieval whose first search makes the server's own calls (on no key)."""
from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.conftest import Server, wait_job
from tests.console.browser import Console
from tests.upstream import Upstream

pytestmark = pytest.mark.browser

HI = [{"role": "user", "content": "hi"}]
DEFINITION = {"en": "A request is one model call", "zh": "一次请求即一次模型调用"}
INTERNAL = {"en": "Server (internal)", "zh": "服务器（内部）"}


@pytest.fixture(scope="module")
def traffic(console_server: Server, upstream: Upstream) -> dict[str, str | int]:
    """Requests: four on the admin key through /v1 (one streamed, one failed upstream), three on a nameless
    key, and the knowledge base's (its job's, a retrieval's and the server's own)."""
    s = console_server
    for mid, upstream_model in (("num-remote", "m"), ("num-broken", "fail-500")):
        r = s.api("POST", "/api/v1/models", json={"id": mid, "base_url": upstream.base_url,
                                                    "upstream_model": upstream_model, "input_price": 1.0})
        assert r.status_code == 201, r.text
    made = s.api("POST", "/api/v1/keys", json={}).json()
    admin, nameless = s.client(), s.client(made["key"])
    for _ in range(2):
        admin.chat.completions.create(model="num-remote", messages=HI)
    list(admin.chat.completions.create(model="num-remote", messages=HI, stream=True))
    with pytest.raises(Exception):
        admin.chat.completions.create(model="num-broken", messages=HI)
    for _ in range(3):
        nameless.chat.completions.create(model="num-remote", messages=HI)
    kb = s.api("POST", "/api/v1/knowledge-bases", json={"name": "numbers"}).json()
    added = s.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/documents/text",
                  json={"title": "apt", "text": "Install a package with apt install NAME."}).json()
    assert wait_job(s, added["job"]["id"])["status"] == "succeeded"
    assert s.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/retrieve", json={"query": "apt"}).status_code == 200
    rows = s.api("GET", "/api/v1/usage", params={"group_by": "source"}).json()["data"]
    assert {r["group"] for r in rows} == {"api", "job", "knowledge", "internal"}, rows
    return {"prefix": made["prefix"], "requests": sum(r["requests"] for r in rows)}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_usage_and_analytics_show_the_same_requests(lang: str, open_console: Callable[[str], Console],
                                                    console_server: Server, traffic: dict) -> None:
    c = open_console(lang)
    c.sign_in(console_server.admin_key)
    page = c.page
    c.nav("usage")  # the last 24 hours, per key
    expect(page.locator("[data-test=stat-requests] .v")).to_have_text(str(traffic["requests"]))
    expect(page.locator("[data-test=stat-errors] .v")).to_have_text("1")
    expect(page.locator("[data-test=definition]")).to_contain_text(DEFINITION[lang])
    table = page.locator("table.tbl").last
    nameless = table.locator("tr", has_text=f"{traffic['prefix']}…")
    expect(nameless).to_contain_text("3")
    expect(table.locator("tr", has_text=INTERNAL[lang])).to_have_count(1)  # the server's own calls
    expect(table.locator("td", has_text="—")).to_have_count(0)
    c.shot("usage-by-key")

    c.nav("analytics")  # the last 24 hours too
    expect(page.locator("[data-test=stat-requests] .v")).to_have_text(str(traffic["requests"]))
    expect(page.locator("[data-test=definition]")).to_contain_text(DEFINITION[lang])
    page.select_option("[data-test=group-by]", "key")
    groups = page.locator("[data-test=groups] table")
    expect(groups.locator("tr", has_text=f"{traffic['prefix']}…")).to_contain_text("3")
    expect(groups.locator("tr", has_text=INTERNAL[lang])).to_have_count(1)
    page.select_option("[data-test=group-by]", "source")
    expect(groups.locator("tbody tr")).to_have_count(4)
    expect(groups.locator("tbody tr", has_text="API (/v1)" if lang == "en" else "API 调用（/v1）")).to_contain_text("7")
    c.shot("analytics-by-source")
