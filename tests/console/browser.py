"""Browser-test helpers: Debian's Chromium driven by Playwright, one `Console` per signed-in user.

Every page a test opens is watched for JavaScript errors and failed requests the test did not expect,
and `shot()` saves a screenshot under ``test-output/screenshots/<lang>/`` for people to look at.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, expect

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update", "--disable-dev-shm-usage"]
LOCALES = {"en": "en-US", "zh": "zh-CN"}
_KEYS = json.loads((ROOT / "temper/server/console/static/locales/en.json").read_text(encoding="utf-8"))
# A locale key on screen ("play.send") means a string is missing from a locale file; a key inside a longer
# dotted name (the span attribute gen_ai.usage.input_tokens) is not one.
RAW_KEY = re.compile(r"(?<![\w.])(" + "|".join(re.escape(k) for k in sorted(_KEYS, key=len, reverse=True))
                     + r")(?![\w.])")


def chromium_path() -> str:
    path = os.environ.get("TEMPER_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise RuntimeError("Browser tests need Chromium: `apt-get install chromium fonts-noto-cjk` "
                           "(or set TEMPER_CHROMIUM to its path).")
    return path


def no_raw_keys(page: Page) -> None:
    """No locale key shows on ``page`` in place of its text."""
    found = RAW_KEY.search(page.locator("body").inner_text())
    assert found is None, f"untranslated string on {page.url}: {found.group(0)}"


class Console:
    """One browser context (its own cookies) on the console at ``url``, in language ``lang``, with a desktop
    window unless ``viewport`` ({"width", "height"}) says otherwise."""

    def __init__(self, browser: Browser, url: str, lang: str, viewport: dict[str, int] | None = None) -> None:
        self.url = url
        self.lang = lang
        self.context: BrowserContext = browser.new_context(viewport=viewport or {"width": 1280, "height": 800},
                                                           locale=LOCALES[lang])
        self.context.add_init_script(f"localStorage.setItem('temper.lang', '{lang}')")
        self.page: Page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.problems: list[str] = []
        self.expected_statuses: set[int] = set()  # a test adds the failures it provokes (a wrong key: 401)
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("response", self._response)

    def _response(self, response) -> None:  # type: ignore[no-untyped-def]
        if response.status >= 400 and response.status not in self.expected_statuses:
            self.problems.append(f"{response.status} {response.request.method} {response.url}")

    def goto(self, path: str) -> Page:
        self.page.goto(self.url + path)
        return self.page

    def sign_in(self, key: str) -> None:
        self.goto("/")
        expect(self.page).to_have_url(re.compile(r"/signin"))
        self.page.fill("[data-test=signin-key]", key)
        self.page.click("[data-test=signin-submit]")
        expect(self.page.locator("[data-test=sign-out]")).to_be_visible()

    def nav(self, page_id: str) -> None:
        """Go to a page through the sidebar, as a user would."""
        self.page.click(f"[data-nav={page_id}]")
        expect(self.page.locator(f"[data-nav={page_id}]")).to_have_class(re.compile("active"))

    def shot(self, name: str) -> Path:
        path = SHOTS / self.lang / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.wait_for_timeout(150)  # let charts finish drawing
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        self.context.close()
        assert not self.problems, "the console had errors:\n" + "\n".join(self.problems)
