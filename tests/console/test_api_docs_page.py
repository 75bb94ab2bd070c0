"""The API docs page (/docs) in a real Chromium: Swagger UI renders from the vendored files, loads nothing
from elsewhere and breaks none of the page's CSP (Chromium reports violations as console errors)."""
from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import Server

pytestmark = pytest.mark.browser


def test_api_docs_render_under_the_csp(browser: Browser, console_server: Server) -> None:
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: None if r.url.startswith(console_server.url) else problems.append(r.url))
    page.goto(console_server.url + "/docs")
    expect(page.locator(".opblock").first).to_be_visible()
    page.locator(".opblock-summary").first.click()
    expect(page.locator(".try-out__btn").first).to_be_visible()
    page.close()
    assert not problems, problems
