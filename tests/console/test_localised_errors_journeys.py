"""Server errors and job progress in the console's language, in a real Chromium, in English and in Chinese: the
first load logs no console error (signed out is not a failed request), a wrong key's sign-in error, an unknown
annotation queue's page and a finished ingestion job are worded from the error's code and params and the job's
structured progress, never with the server's English message."""
from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.conftest import Server
from tests.console.browser import Console

pytestmark = pytest.mark.browser

CASES = {
    "en": {"signin_error": "That key is not valid, or it has been revoked.",
           "queue_missing": "There is no annotation queue aq_missing.",
           "progress": re.compile(r"^Finished · 1/1 documents · (\d+)/\1 chunks$")},
    "zh": {"signin_error": "密钥无效，或已被吊销。",
           "queue_missing": "没有标注队列 aq_missing。",
           "progress": re.compile(r"^已结束 · 1/1 篇文档 · (\d+)/\1 个分块$")},
}
SLOW = 180_000  # the first ingestion loads the embedding model on a shared two-core machine
TEXT = "# 退货\n\n" + "顾客可以在收货后三十天内退货，商品须未使用并保留原包装。" * 8


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_errors_and_progress_speak_the_console_language(lang: str, open_console: Callable[[str], Console],
                                                          console_server: Server) -> None:
    case = CASES[lang]
    kb = console_server.api("POST", "/api/v1/knowledge-bases", json={"name": f"errors-{lang}"}).json()
    admin = open_console(lang)
    page = admin.page
    logged: list[str] = []
    page.on("console", lambda m: logged.append(m.text) if m.type == "error" else None)

    # First load, signed out: the console asks who we are without a failed request
    admin.goto("/")
    expect(page.locator("[data-test=signin-submit]")).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert not logged, f"console errors on the first load: {logged}"

    # A wrong key: the error is worded from its code
    admin.expected_statuses.add(401)
    page.fill("[data-test=signin-key]", "sk-temper-wrong-key-000000")
    page.click("[data-test=signin-submit]")
    expect(page.locator(".signin .alert")).to_have_text(case["signin_error"])
    admin.expected_statuses.discard(401)
    admin.sign_in(console_server.admin_key)

    # A page for something that does not exist: the not-found error names it, in the console's words
    admin.expected_statuses.add(404)
    admin.goto("/annotations/aq_missing")
    expect(page.locator("main .alert")).to_have_text(case["queue_missing"])
    admin.expected_statuses.discard(404)

    # Ingestion progress: phase and counts from the job's structure, polled until done
    admin.goto(f"/knowledge/{kb['id']}")
    page.click("[data-test=add-text]")
    page.fill("[data-test=text-title]", "退货")
    page.fill("[data-test=text-body]", TEXT)
    page.click("[data-test=add-text-submit]")
    job = page.locator("[data-test=kb-job]").first
    expect(job).to_have_attribute("data-status", "succeeded", timeout=SLOW)
    expect(job.locator("[data-test=job-message]")).to_have_text(case["progress"])
    admin.shot("localised-job-progress")

    if lang == "zh":  # nothing of the server's English summary ("1 of 1 documents indexed (1 chunks)")
        assert not re.search(r"[A-Za-z]{3,}", job.inner_text()), job.inner_text()
