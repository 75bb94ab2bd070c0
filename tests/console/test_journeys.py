"""The newcomer's journey in a real Chromium, in English and in Chinese: sign in → browse the plaza and add a
remote model → chat with the local model (streamed) → compare two models → create a key → a member signs
in with it and chats → the admin sees that key's usage. Screenshots of every page land in test-output/."""
from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Server
from tests.console.browser import Console, no_raw_keys
from tests.upstream import Upstream

pytestmark = pytest.mark.browser

TEXT = {  # a few strings per language, to check the page really is in that language
    "en": {"plaza": "Model plaza", "send": "Send", "chat": "Chat", "keys": "API keys", "requests": "Requests"},
    "zh": {"plaza": "模型广场", "send": "发送", "chat": "对话", "keys": "API 密钥", "requests": "请求数"},
}



def watch_updates(page: Page) -> None:
    """Count DOM updates inside the conversation, to tell streamed text from one final paint."""
    page.evaluate("""() => { window.__updates = 0;
        new MutationObserver(() => window.__updates++).observe(document.querySelector('.columns'),
            {subtree: true, childList: true, characterData: true}); }""")


def chat(page: Page, prompt: str) -> None:
    """Send a prompt and wait until every column has its answer with the token counts under it."""
    cols = page.locator("[data-test=column]")
    before = [cols.nth(i).locator("[data-test=answer-meta]").count() for i in range(cols.count())]
    page.fill("[data-test=prompt]", prompt)
    page.click("[data-test=send]")
    for i, n in enumerate(before):
        metas = cols.nth(i).locator("[data-test=answer-meta]")
        expect(metas).to_have_count(n + 1)
        expect(metas.last).to_have_text(re.compile(r"\d+ \+ \d+"), timeout=90_000)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_newcomer_journey(lang: str, open_console: Callable[[str], Console], console_server: Server,
                          upstream: Upstream) -> None:
    words = TEXT[lang]
    admin = open_console(lang)
    page = admin.page

    # Sign in
    admin.goto("/playground")
    expect(page).to_have_url(re.compile(r"/signin\?next=%2Fplayground"))
    expect(page.locator("[data-test=signin-submit]")).to_be_visible()
    admin.shot("signin")
    admin.expected_statuses.add(401)
    page.fill("[data-test=signin-key]", "sk-temper-wrong-key-000000")
    page.click("[data-test=signin-submit]")
    expect(page.locator(".alert")).to_be_visible()
    admin.sign_in(console_server.admin_key)

    # Model plaza: cards, search, add a remote provider, detail page
    admin.nav("models")
    expect(page.locator("h1")).to_have_text(words["plaza"])
    expect(page.locator("[data-model=smollm2-135m-instruct]")).to_contain_text(words["chat"])
    no_raw_keys(page)
    admin.shot("models")
    page.fill("[data-test=model-search]", "reranker")
    expect(page.locator(".card")).to_have_count(1)
    page.fill("[data-test=model-search]", "")
    expect(page.locator("[data-model=gemma-3-270m]")).to_be_visible()
    remote = f"remote-{lang}"
    page.click("[data-test=add-model]")
    page.fill(".modal [name=id]", remote)
    page.fill(".modal [name=base_url]", upstream.base_url)
    page.fill(".modal [name=upstream_model]", "vendor-model")
    page.fill(".modal [name=input_price]", "1.5")
    page.fill(".modal [name=tags]", "remote, test")
    admin.shot("models-add")
    page.click("[data-test=add-model-submit]")
    expect(page).to_have_url(re.compile(f"/models/{remote}$"))
    expect(page.locator("table")).to_contain_text(upstream.base_url)
    admin.shot("model-detail")

    # Playground: the local model streams its answer
    admin.nav("playground")
    expect(page.locator("[data-test=send]")).to_have_text(words["send"])
    expect(page.locator("[data-test=model-select]")).to_have_value("smollm2-135m-instruct")
    page.fill("[data-test=system-prompt]", "You are a concise assistant.")
    page.fill("[data-test=max-tokens]", "40")
    watch_updates(page)
    chat(page, "Name three colours." if lang == "en" else "说出三种颜色。")
    answer = page.locator("[data-test=answer]").first
    expect(answer).not_to_be_empty()
    assert page.evaluate("window.__updates") >= 5, "the answer did not arrive as a stream"
    no_raw_keys(page)
    admin.shot("playground")

    # Compare the local model with the remote one on the same prompt
    page.click("[data-test=compare-2]")
    selects = page.locator("[data-test=model-select]")
    expect(selects).to_have_count(2)
    selects.nth(0).select_option("smollm2-135m-instruct")
    selects.nth(1).select_option(remote)
    chat(page, "Hello!")
    columns = page.locator("[data-test=column]")
    expect(columns.nth(1).locator("[data-test=answer]").last).to_have_text("hello from up1")
    expect(columns.nth(1).locator("[data-test=answer-meta]").last).to_contain_text("7 + 5")
    expect(columns.nth(0).locator("[data-test=answer]").last).not_to_be_empty()
    admin.shot("playground-compare")

    # Create a key: the secret is shown once
    admin.nav("keys")
    expect(page.locator("h1")).to_have_text(words["keys"])
    name = f"journey-{lang}"
    page.click("[data-test=create-key]")
    page.fill("[data-test=key-name]", name)
    page.locator(".modal [data-model=smollm2-135m-instruct]").check()
    page.fill(".modal [name=rpm]", "60")
    page.click("[data-test=create-key-submit]")
    secret = page.locator("[data-test=new-key-secret]").inner_text().strip()
    assert secret.startswith("sk-temper-")
    admin.shot("keys-created")
    page.click("[data-test=secret-done]")
    row = page.locator("tr", has_text=name)
    expect(row).to_contain_text("smollm2-135m-instruct")
    assert secret not in page.content(), "the console shows a stored secret"
    admin.shot("keys")

    # A member signs in with that key and chats; the playground is metered to the key
    member = open_console(lang)
    member.sign_in(secret)
    expect(member.page.locator("[data-nav=keys]")).to_have_count(0)
    member.nav("playground")
    expect(member.page.locator("[data-test=model-select] option")).to_have_count(1)
    member.page.fill("[data-test=max-tokens]", "16")
    chat(member.page, "Hi")
    member.nav("usage")
    expect(member.page.locator("[data-test=stat-requests] .v")).to_have_text("1")
    member.shot("usage-member")

    # The admin sees the usage of the key just used
    row.locator("[data-test=key-usage]").click()
    expect(page).to_have_url(re.compile(r"/usage\?key_id=key_"))
    expect(page.locator("[data-test=stat-requests] .v")).to_have_text("1")
    expect(page.locator("[data-test=stat-tokens] .v")).not_to_have_text("0")
    expect(page.locator("canvas")).to_have_count(2)
    expect(page.locator("table")).to_contain_text("smollm2-135m-instruct")
    expect(page.locator("[data-test=stat-requests] .k")).to_have_text(words["requests"])
    no_raw_keys(page)
    admin.shot("usage")

    # Sign out ends the session
    page.click("[data-test=sign-out]")
    expect(page).to_have_url(re.compile(r"/signin"))
    admin.goto("/keys")
    expect(page).to_have_url(re.compile(r"/signin\?next=%2Fkeys"))


def test_sign_in_with_a_password(open_console: Callable[[str], Console], console_server: Server) -> None:
    r = console_server.api("POST", "/api/v1/users", json={"username": "李雷", "password": "a long enough pass"})
    assert r.status_code == 201
    user = open_console("zh")
    page = user.page
    user.goto("/")
    page.click("[data-test=signin-mode-password]")
    page.fill("[data-test=signin-username]", "李雷")
    page.fill("[data-test=signin-password]", "a long enough pass")
    user.shot("signin-password")
    page.click("[data-test=signin-submit]")
    expect(page.locator("header.top")).to_contain_text("李雷 (console)")
    expect(page.locator("header.top")).to_contain_text("成员")
    expect(page.locator("[data-nav=keys]")).to_have_count(0)
    user.goto("/keys")  # an admin-only page sends a member back to the plaza
    expect(page).to_have_url(re.compile(r"/models$"))
