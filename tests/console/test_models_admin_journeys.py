"""An admin looks after models and keys in a real Chromium, in English and Chinese: tests a connection before
adding a model (a wrong key, then the right one), sees "No price set" rather than "Free", edits the model to a
dead endpoint and sees it unreachable, then edits a key's limits and revokes it, leaving only revoked keys."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import expect

from tests.conftest import UPSTREAM_KEYS, Server, free_port, start_server, stop_server
from tests.console.browser import Console
from tests.upstream import Upstream

pytestmark = pytest.mark.browser
TEXT = {
    "en": {"bad_key": "rejected the API key (HTTP 401)", "ok": "Connected in", "no_price": "No price set",
           "free": "Free", "reachable": "Reachable", "unreachable": "Unreachable", "cannot_reach": "Cannot reach",
           "rpm": "7 req/min", "none_active": "No active API keys", "revoked": "Revoked"},
    "zh": {"bad_key": "拒绝了该 API 密钥（HTTP 401）", "ok": "连接成功", "no_price": "未设置价格", "free": "免费",
           "reachable": "可访问", "unreachable": "无法访问", "cannot_reach": "无法连接到该地址",
           "rpm": "7 次/分钟", "none_active": "没有有效的 API 密钥", "revoked": "已吊销"},
}


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("models-admin-console"), UPSTREAM_KEYS)
    yield s
    stop_server(s)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_models_and_keys_are_administered(lang: str, open_console: Callable[[str], Console], console_server: Server,
                                          listed: Upstream) -> None:
    words = TEXT[lang]
    admin = open_console(lang)
    page = admin.page
    admin.sign_in(console_server.admin_key)

    # Add a model, testing the connection first: a wrong key, then the right one
    admin.nav("models")
    model = f"vendor-{lang}"
    page.click("[data-test=add-model]")
    page.fill(".modal [name=id]", model)
    page.fill(".modal [name=base_url]", listed.base_url)
    page.fill(".modal [name=upstream_model]", "vendor-a")
    page.fill(".modal [name=api_key_env]", "UP_WRONG_KEY")
    page.click("[data-test=test-connection]")
    result = page.locator("[data-test=test-result]")
    expect(result).to_have_attribute("data-ok", "false")
    expect(result).to_contain_text(words["bad_key"])
    page.fill(".modal [name=api_key_env]", "UP_GOOD_KEY")
    page.click("[data-test=test-connection]")
    expect(result).to_have_attribute("data-ok", "true")
    expect(result).to_contain_text(words["ok"])
    admin.shot("models-test-connection")
    page.click("[data-test=add-model-submit]")
    expect(page).to_have_url(re.compile(f"/models/{model}$"))
    expect(page.locator(".facts")).to_contain_text(words["no_price"])  # no prices were given: not "Free"
    page.click("[data-test=check-model]")
    expect(page.locator("[data-test=model-health] [data-health=healthy]")).to_have_text(words["reachable"])

    # Edit it: a dead endpoint, explicit zero prices
    dead = f"http://127.0.0.1:{free_port()}/v1"
    page.click("[data-test=edit-model]")
    expect(page.locator(".modal [name=base_url]")).to_have_value(listed.base_url)
    expect(page.locator(".modal [name=api_key_env]")).to_have_value("UP_GOOD_KEY")
    page.fill(".modal [name=base_url]", dead)
    page.fill(".modal [name=input_price]", "0")
    page.fill(".modal [name=output_price]", "0")
    admin.shot("model-edit")
    page.click("[data-test=edit-model-submit]")
    expect(page.locator(".modal")).to_have_count(0)
    expect(page.locator("table")).to_contain_text(dead)
    expect(page.locator(".facts")).to_contain_text(words["free"])
    page.click("[data-test=check-model]")
    expect(page.locator("[data-test=model-health] [data-health=unreachable]")).to_have_text(words["unreachable"])
    expect(page.locator("[data-test=test-result]")).to_contain_text(words["cannot_reach"])
    admin.shot("model-unreachable")
    admin.nav("models")  # the plaza shows it too, beside "Active"
    expect(page.locator(f"[data-model={model}] [data-health=unreachable]")).to_have_text(words["unreachable"])

    # A key's limits are edited; once it is revoked, the page says so rather than "No API keys yet"
    console_server.key(name=f"app-{lang}")
    admin.nav("keys")
    row = page.locator("tr", has_text=f"app-{lang}")
    row.locator("[data-test=edit-key]").click()
    page.fill(".modal [data-test=key-rpm]", "7")
    page.click("[data-test=edit-key-submit]")
    expect(row).to_contain_text(words["rpm"])
    row.locator("button.danger").click()
    page.locator(".modal button.danger").click()
    expect(page.locator(".empty")).to_contain_text(words["none_active"])
    admin.shot("keys-only-revoked")
    page.locator(".empty button").click()
    expect(page.locator("[data-test=show-revoked]")).to_be_checked()
    expect(page.locator("tr", has_text=f"app-{lang}")).to_contain_text(words["revoked"])
