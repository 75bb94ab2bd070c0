"""The playground's everyday tools in a real Chromium, in English and in Chinese: a Markdown answer with a code
block (Copy works) where HTML and javascript: links stay inert → regenerate → the answer's trace → "View code"
(the Python and curl samples really run) → the context warning → an error after a long prompt, in view →
save, rename, reload, open and delete a conversation → code samples on a model's page and in the "key created"
dialog.

Answers come from the loopback upstream's ``echo`` model (tests/upstream.py), which answers with the last
message's text, so the test chooses exactly what the model "says"."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.conftest import Server
from tests.console.browser import Console, no_raw_keys
from tests.upstream import Upstream

pytestmark = pytest.mark.browser

TEXT = {
    "en": {"copy": "Copy", "view_code": "View code", "warning": "context length", "renamed": "Release notes chat",
           "saved_note": "this browser only", "samples": "Call it from code"},
    "zh": {"copy": "复制", "view_code": "查看代码", "warning": "上下文长度", "renamed": "发布说明对话",
           "saved_note": "仅保存在本浏览器", "samples": "用代码调用"},
}
CODE = 'def greet(name):\n    return f"<b>{name}</b>"'
# A Markdown answer with a heading, a list, a fenced code block, a safe link and three XSS attempts.
ANSWER = ("## Greeting\n\nUse **greet** like `greet('x')`:\n\n- one\n- two\n\n```python\n" + CODE + "\n```\n\n"
          "<script>window.__xss = 1</script> <img src=x onerror=\"window.__xss = 2\">\n"
          "[docs](https://example.com/docs) and [bad](javascript:window.__xss=3)")
CONTEXT = 700  # the echo model's context length: the conversation fits, a long prompt does not


@pytest.fixture(scope="module")
def models(console_server: Server, upstream: Upstream) -> Iterator[None]:
    for mid, upstream_model, extra in (("md-echo", "echo", {"context_length": CONTEXT}), ("md-broken", "fail-400", {})):
        r = console_server.api("POST", "/api/v1/models", json={
            "id": mid, "provider": "openai_compat", "base_url": upstream.base_url, "upstream_model": upstream_model, **extra})
        assert r.status_code == 201, r.text
    yield



def send(page: Page, prompt: str) -> Locator:
    """Send a prompt; returns the newest answer's bubble once it is complete (or failed)."""
    n = page.locator(".msg.assistant").count()
    page.fill("[data-test=prompt]", prompt)
    page.click("[data-test=send]")
    expect(page.locator(".msg.assistant")).to_have_count(n + 1)
    expect(page.locator("[data-test=send]")).to_be_enabled()
    return page.locator(".msg.assistant").last


def inside(inner: dict, outer: dict) -> bool:
    return (inner["y"] >= outer["y"] - 1 and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 1
            and inner["x"] >= outer["x"] - 1 and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 1)


def sample_text(page: Page, lang: str) -> str:
    page.click(f"[data-test=view-code-dialog] [data-test=sample-tab-{lang}]")
    return page.locator("[data-test=view-code-dialog] [data-test=code-sample] pre").inner_text()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_playground_tools(lang: str, open_console: Callable[[str], Console], console_server: Server,
                          upstream: Upstream, models: None, tmp_path: Path) -> None:
    words = TEXT[lang]
    admin = open_console(lang)
    admin.expected_statuses.add(400)  # md-broken's answer
    admin.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=console_server.url)
    page = admin.page
    admin.sign_in(console_server.admin_key)
    admin.goto("/playground?model=md-echo")

    # Markdown: a heading, a list, a code block with Copy; HTML and a javascript: link stay text.
    answer = send(page, ANSWER)
    body = answer.locator("[data-test=answer]")
    expect(body.locator("h4")).to_have_text("Greeting")
    expect(body.locator("strong")).to_have_text("greet")
    expect(body.locator("li")).to_have_count(2)
    expect(body.locator("pre code")).to_have_text(CODE)
    expect(body.locator("a[href='https://example.com/docs']")).to_have_attribute("rel", re.compile("noopener"))
    expect(body).to_contain_text("<script>window.__xss = 1</script>")
    expect(body).to_contain_text("[bad](javascript:window.__xss=3)")
    assert body.locator("script, img, a[href^=javascript]").count() == 0
    copy = body.locator("[data-test=copy-code]")
    expect(copy).to_have_text(words["copy"])
    copy.click()
    assert page.evaluate("navigator.clipboard.readText()") == CODE
    assert page.evaluate("window.__xss") is None

    # Copy the whole answer; Regenerate replaces it (a second upstream call, still one answer on screen).
    answer.locator("[data-test=copy-answer]").click()
    assert page.evaluate("navigator.clipboard.readText()") == ANSWER
    calls = len(upstream.received)
    answer.locator("[data-test=regenerate]").click()
    expect(page.locator("[data-test=send]")).to_be_enabled()
    expect(page.locator(".msg.assistant")).to_have_count(1)
    expect(page.locator("[data-test=answer] pre code")).to_have_text(CODE)
    assert len(upstream.received) == calls + 1 and upstream.received[-1]["messages"][-1]["content"] == ANSWER

    # The answer links to its trace, which opens in a new tab.
    link = page.locator(".msg.assistant").last.locator("[data-test=trace-link]")
    href = link.get_attribute("href") or ""
    assert re.fullmatch(r"/traces/[0-9a-f]{32}", href), href
    for _ in range(100):  # spans are written in batches
        if console_server.api("GET", f"/api/v1{href}").status_code == 200:
            break
        time.sleep(0.1)
    with admin.context.expect_page() as opened:
        link.click()
    trace_page = opened.value
    expect(trace_page).to_have_url(re.compile(re.escape(href) + "$"))
    expect(trace_page.locator("[data-test=waterfall]")).to_be_visible()
    trace_page.close()

    # View code: curl, Python and JavaScript for md-echo with this server's URL and no secret in them.
    page.click("[data-test=view-code]")
    expect(page.locator("[data-test=view-code]")).to_have_text(words["view_code"])
    samples = {tab: sample_text(page, tab) for tab in ("curl", "python", "javascript")}
    assert f"{console_server.url}/v1/chat/completions" in samples["curl"]
    assert "from openai import OpenAI" in samples["python"] and 'import OpenAI from "openai"' in samples["javascript"]
    for text in samples.values():
        assert "md-echo" in text and "TEMPER_API_KEY" in text and console_server.admin_key not in text
    if lang == "en":  # the samples run as shown: the echo model answers with the last message (the answer)
        env = {**os.environ, "TEMPER_API_KEY": console_server.admin_key}
        py = subprocess.run([sys.executable, "-c", samples["python"]], env=env, capture_output=True, text=True, timeout=60)
        assert py.returncode == 0 and CODE in py.stdout, py.stderr
        curl = subprocess.run(["bash", "-c", samples["curl"]], env=env, capture_output=True, text=True, timeout=60)
        assert curl.returncode == 0 and '"chat.completion"' in curl.stdout, curl.stderr
        if shutil.which("node"):  # no openai npm here: check the JavaScript's syntax
            (tmp_path / "sample.mjs").write_text(samples["javascript"])
            node = subprocess.run(["node", "--check", str(tmp_path / "sample.mjs")], capture_output=True, text=True, timeout=60)
            assert node.returncode == 0, node.stderr
    page.keyboard.press("Escape")

    # The context warning: an estimated prompt plus max tokens over md-echo's context length.
    warning = page.locator("[data-test=context-warning]")
    expect(warning).to_be_hidden()
    page.fill("[data-test=prompt]", "x" * 1500)
    expect(warning).to_be_visible()
    expect(warning).to_contain_text(words["warning"])
    expect(warning).to_contain_text("md-echo")
    page.fill("[data-test=prompt]", "")
    expect(warning).to_be_hidden()

    # Save the conversation, rename it; it survives a reload and opens again.
    page.click("[data-test=save-conversation]")
    item = page.locator("[data-test=saved-item]")
    expect(item).to_have_count(1)
    expect(page.locator(".play .saved")).to_contain_text(words["saved_note"])
    item.locator("[data-test=rename-conversation]").click()
    page.fill("[data-test=conversation-title]", words["renamed"])
    page.click("[data-test=rename-submit]")
    expect(item.locator("[data-test=open-conversation]")).to_have_text(words["renamed"])
    no_raw_keys(page)
    admin.shot("playground-markdown")

    # An error after a long prompt is in view whole (on a model without a context length: no warning).
    page.select_option("[data-test=model-select]", "md-broken")
    failed = send(page, "\n".join(f"line {i} of a long prompt" for i in range(300)))
    error = failed.locator("[data-test=answer-error]")
    expect(error).to_be_visible()
    box, pane = error.bounding_box(), page.locator("[data-test=messages]").bounding_box()
    viewport = {"x": 0, "y": 0, **page.viewport_size}
    assert box and pane and inside(box, pane) and inside(box, viewport), (box, pane)

    page.reload()
    saved = page.locator("[data-test=open-conversation]")
    expect(saved).to_have_text([words["renamed"]])
    saved.click()
    # Saved as it stood after the last exchange: its model, and no failed turn in the history.
    expect(page.locator("[data-test=model-select]")).to_have_value("md-broken")
    expect(page.locator("[data-test=question]")).to_have_count(1)
    expect(page.locator("[data-test=answer] pre code")).to_have_text(CODE)
    page.locator("[data-test=delete-conversation]").click()
    page.locator(".modal .danger").click()
    expect(page.locator("[data-test=saved-item]")).to_have_count(0)

    # A model's page shows code samples for it.
    admin.goto("/models/md-echo")
    panel = page.locator("[data-test=model-samples]")
    expect(panel).to_contain_text(words["samples"])
    panel.locator("[data-test=sample-tab-curl]").click()
    expect(panel.locator("[data-test=code-sample]")).to_contain_text('"model": "md-echo"')

    # The "key created" dialog: the new key in an export line, samples that read it from the environment.
    admin.goto("/keys")
    page.click("[data-test=create-key]")
    page.fill("[data-test=key-name]", f"samples-{lang}")
    page.locator("[data-model=md-echo]").check()
    page.click("[data-test=create-key-submit]")
    secret = page.locator("[data-test=new-key-secret]").inner_text().strip()
    samples_box = page.locator("[data-test=key-samples]")
    expect(samples_box).to_contain_text(f'export TEMPER_API_KEY="{secret}"')
    expect(samples_box.locator("[data-test=code-sample]")).to_contain_text("md-echo")
    assert secret not in samples_box.locator("[data-test=code-sample]").inner_text()
    no_raw_keys(page)
    admin.shot("key-created-samples")
    page.click("[data-test=secret-done]")
