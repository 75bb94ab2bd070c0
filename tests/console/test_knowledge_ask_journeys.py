"""Knowledge Ask explained, in a real Chromium, in English and in Chinese: a refused question shows why (the relevance
floor and the best relevance), the candidates considered with their relevance against the floor; an admin changes the
floor right there (saved as the knowledge base's setting, the question asked again, the settings form showing it)
while a member only reads it; the retrieval test shows the score its list is ordered by; the counts of chunks are
labelled so that they cannot contradict; browser Back closes the chunk viewer and stays on the page."""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import Server, wait_job
from tests.console.browser import Console, no_raw_keys
from tests.knowledge.test_ask_explain import APT_QUESTION, GUIDE, UNRELATED
from tests.knowledge.test_kb_api import create_kb, upload

pytestmark = pytest.mark.browser

CASES = {
    "en": {"reason": "no candidate reached the relevance floor", "below": "below the floor",
           "searchable": "Searchable chunks", "index": "Index entries", "ordered": "ordered by rank score", "saved": "Relevance floor saved.",
           "readonly": "Relevance floor: 2.75 (an admin can change it)."},
    "zh": {"reason": "没有候选达到最低相关度", "below": "低于最低相关度", "searchable": "可检索的分块",
           "index": "索引条目", "ordered": "按排序分排列", "saved": "最低相关度已保存。",
           "readonly": "最低相关度：2.75（管理员可以修改）。"},
}
SLOW = 180_000  # the first answer loads SmolLM2 on a busy two-core machine


@pytest.fixture(scope="module")
def kb(console_server: Server) -> dict[str, Any]:
    kb = create_kb(console_server, "apt guide", chunking={"chunk_tokens": 40, "overlap_tokens": 0})
    job = wait_job(console_server, upload(console_server, kb["id"], [("guide.md", GUIDE)])["job"]["id"])
    assert job["status"] == "succeeded", job
    return kb


def ask(console: Console, question: str) -> None:
    page = console.page
    page.fill("[data-test=ask-max-tokens]", "16")
    page.fill("[data-test=ask-question]", question)
    page.click("[data-test=ask-submit]")
    expect(page.locator("[data-test=answer-status] .badge")).to_be_visible(timeout=SLOW)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_refusal_is_explained_and_an_admin_adjusts_the_floor(lang: str, open_console: Callable[[str], Console],
                                                               console_server: Server, kb: dict[str, Any]) -> None:
    case = CASES[lang]
    admin = open_console(lang)
    page = admin.page
    admin.sign_in(console_server.admin_key)
    admin.goto(f"/knowledge/{kb['id']}")
    expect(page.locator("[data-test=stat-chunks]")).to_contain_text(case["searchable"])
    expect(page.locator("[data-test=stat-indexed-chunks]")).to_contain_text(case["index"])

    # the retrieval test: the score shown first is the one the list is ordered by, and it says so
    page.fill("[data-test=retrieve-query]", APT_QUESTION)
    page.click("[data-test=retrieve-submit]")
    expect(page.locator("[data-test=hit]").first).to_be_visible(timeout=60_000)
    expect(page.locator("[data-test=ordered-by]")).to_contain_text(case["ordered"])
    scores = page.locator("[data-test=hit-score]").evaluate_all("els => els.map(e => e.dataset.score)")
    shown = [float(x) for x in scores]
    assert len(shown) > 1 and shown == sorted(shown, reverse=True)

    # a refusal says why, with the candidates considered
    ask(admin, UNRELATED)
    refusal = page.locator("[data-test=refusal]")
    expect(refusal).to_have_attribute("data-reason", "below_relevance_floor")
    expect(refusal.locator("[data-test=refusal-reason]")).to_contain_text(case["reason"])
    expect(refusal.locator("[data-test=refusal-reason]")).to_contain_text("2.75")
    candidates = page.locator("[data-test=candidate]")
    expect(candidates.first).to_be_visible()
    expect(candidates.first).to_contain_text(case["below"])
    expect(candidates.first.locator("[data-test=candidate-where]")).to_contain_text("guide.md")
    no_raw_keys(page)
    page.locator("[data-test=ask-output]").scroll_into_view_if_needed()
    admin.shot("knowledge-refusal-explained")

    # the admin lowers the floor there: saved as the setting, and the question is asked again
    page.fill("[data-test=floor-input]", "-100")
    page.click("[data-test=floor-save]")
    expect(page.locator(".toast").filter(has_text=case["saved"])).to_be_visible()
    expect(page.locator("[data-test=source]").first).to_be_visible(timeout=SLOW)
    expect(page.locator("[data-test=refusal][data-reason=below_relevance_floor]")).to_have_count(0)
    stored = console_server.api("GET", f"/api/v1/knowledge-bases/{kb['id']}").json()["config"]["answer"]
    assert stored["min_relevance"] == -100
    page.click("[data-test=settings-toggle]")
    expect(page.locator("[data-test=set-min-relevance]")).to_have_value("-100")
    r = console_server.api("PATCH", f"/api/v1/knowledge-bases/{kb['id']}",
                           json={"config": {"answer": {"min_relevance": None}}})
    assert r.status_code == 200, r.text

    # a member reads the floor but cannot change it
    if lang == "en":
        member = open_console(lang)
        member.sign_in(console_server.key(name="ask-member"))
        member.goto(f"/knowledge/{kb['id']}")
        ask(member, UNRELATED)
        expect(member.page.locator("[data-test=floor]")).to_have_text(case["readonly"])
        expect(member.page.locator("[data-test=floor-input]")).to_have_count(0)


def test_back_closes_the_chunk_viewer_and_stays_on_the_page(open_console: Callable[[str], Console],
                                                           console_server: Server, kb: dict[str, Any]) -> None:
    admin = open_console("en")
    page = admin.page
    admin.sign_in(console_server.admin_key)
    admin.nav("knowledge")
    page.locator(f"tr[data-kb='{kb['id']}']").click()
    expect(page).to_have_url(re.compile(f"/knowledge/{kb['id']}$"))
    page.locator("[data-test=doc-row][data-doc='guide.md']").click()
    expect(page.locator("[data-test=chunk-viewer]")).to_be_visible()
    page.go_back()
    expect(page.locator("[data-test=chunk-viewer]")).to_have_count(0)
    expect(page).to_have_url(re.compile(f"/knowledge/{kb['id']}$"))
    expect(page.locator("[data-test=kb-title]")).to_have_text("apt guide")
    # closed with its button, it leaves no extra history entry: Back then leaves the page
    page.locator("[data-test=doc-row][data-doc='guide.md']").click()
    page.click("[data-test=close-chunks]")
    expect(page.locator("[data-test=chunk-viewer]")).to_have_count(0)
    expect(page).to_have_url(re.compile(f"/knowledge/{kb['id']}$"))
    page.go_back()
    expect(page).to_have_url(re.compile(r"/knowledge$"))
