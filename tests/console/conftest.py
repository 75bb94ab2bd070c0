"""Fixtures for the browser tests: one Chromium per session and a console server per module."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.conftest import Server, start_server, stop_server
from tests.console.browser import CHROMIUM_ARGS, Console, chromium_path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Module-scoped: Playwright's sync API keeps an event loop that must be gone before async tests run."""
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own, so that the usage on screen comes only from the journey."""
    s = start_server(tmp_path_factory.mktemp("console-home"))
    yield s
    stop_server(s)


@pytest.fixture
def open_console(browser: Browser, console_server: Server) -> Iterator[Callable[[str], Console]]:
    """Open a console (its own cookie jar) in a language; every one is checked for errors at the end."""
    opened: list[Console] = []

    def make(lang: str = "en") -> Console:
        opened.append(Console(browser, console_server.url, lang))
        return opened[-1]

    yield make
    for c in opened:
        c.close()
