"""Every console page at phone width (390×844), in English and in Chinese: nothing sticks out past the right edge
of the screen (wide tables scroll inside their own box), the navigation and the language selector can be reached,
the playground's chat gets the width, and the trace waterfall stays readable (axis labels apart, every bar
visible, stat cards that break lines between words only).

The data (a remote model on the loopback upstream with one call through it, a key, a knowledge base, an
annotation queue, a prompt) is made once through the API; the journey only looks."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import Server
from tests.console.browser import RAW_KEY, Console
from tests.upstream import Upstream

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}

# Elements whose right edge lies past the screen (or, in the page, past the page's padding), outside any box of
# their own that scrolls or clips them (the shell, the main column and the page itself do not count as such
# boxes: they are the page).
OVERFLOW_JS = """(vw) => {
  const page = document.getElementById('page');
  const pageBoxes = new Set([document.body, document.documentElement, document.querySelector('.shell'),
                             document.querySelector('.main'), page]);
  const pageRight = page ? page.getBoundingClientRect().right - parseFloat(getComputedStyle(page).paddingRight) : vw;
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    const limit = (page && el !== page && page.contains(el) ? Math.min(vw, pageRight) : vw) + 1;
    if (r.width === 0 || r.height === 0 || r.right <= limit || !el.checkVisibility()) continue;
    let held = false;
    for (let a = el.parentElement; a && !pageBoxes.has(a); a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== 'visible' && a.getBoundingClientRect().right <= limit) { held = true; break; }
    }
    if (!held) out.push(`${el.tagName.toLowerCase()}.${[...el.classList].join('.')} right=${Math.round(r.right)}`);
  }
  // Boxes that cut their content off sideways without an ellipsis (a row of buttons in a rounded box, say)
  for (const el of document.querySelectorAll('body *')) {
    const st = getComputedStyle(el);
    if (['hidden', 'clip'].includes(st.overflowX) && st.textOverflow !== 'ellipsis' && el.scrollWidth > el.clientWidth + 1
        && el.checkVisibility()) out.push(`${el.tagName.toLowerCase()}.${[...el.classList].join('.')} cuts its content`);
  }
  return {doc: document.scrollingElement.scrollWidth, page: page ? page.scrollWidth - page.clientWidth : 0,
          out: out.slice(0, 8)};
}"""

# Visible axis labels of the waterfall, and every bar against its track.
WATERFALL_JS = """() => {
  const box = (e) => { const r = e.getBoundingClientRect(); return {l: r.left, r: r.right, t: r.top, b: r.bottom, w: r.width}; };
  const labels = [...document.querySelectorAll('.wf-axis span')].filter((s) => s.checkVisibility({visibilityProperty: true}))
    .map((s) => ({text: s.textContent, ...box(s)}));
  const bars = [...document.querySelectorAll('[data-test=span-bar]')].map((b) => ({bar: box(b), track: box(b.parentElement)}));
  return {labels, bars};
}"""

# Each whitespace-separated word of the trace's stat cards: the distinct line tops it is drawn on.
WORD_LINES_JS = """() => {
  const out = [];
  for (const v of document.querySelectorAll('.stats .stat .v')) {
    const walker = document.createTreeWalker(v, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      for (const m of n.textContent.matchAll(/\\S+/g)) {
        const range = document.createRange();
        range.setStart(n, m.index);
        range.setEnd(n, m.index + m[0].length);
        const tops = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
        out.push({word: m[0], lines: tops.size});
      }
    }
  }
  return out;
}"""


@pytest.fixture(scope="module")
def data(console_server: Server, upstream: Upstream) -> dict[str, str]:
    """One of everything a page lists: a remote model and a trace of a call to it, an API key, a knowledge base,
    an annotation queue and a prompt."""
    s = console_server
    r = s.api("POST", "/api/v1/models", json={"id": "phone-remote", "provider": "openai_compat",
                                              "base_url": upstream.base_url, "upstream_model": "vendor-model"})
    assert r.status_code == 201, r.text
    s.client().chat.completions.create(model="phone-remote", messages=[{"role": "user", "content": "hello phone"}])
    for _ in range(100):  # the span store writes in batches
        traces = s.api("GET", "/api/v1/traces", params={"limit": 5, "hours": 1}).json()["data"]
        if traces:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the trace did not arrive")
    s.key(name="phone-app", rpm=60)
    kb = s.api("POST", "/api/v1/knowledge-bases", json={"name": "phone notes"})
    assert kb.status_code == 201, kb.text
    queue = s.api("POST", "/api/v1/annotation-queues", json={
        "name": "phone review", "score_configs": [{"name": "quality", "data_type": "numeric", "min": 1, "max": 5}]})
    assert queue.status_code == 201, queue.text
    prompt = s.api("POST", "/api/v1/prompts", json={"name": "phone-prompt", "template": "Summarise {{text}} briefly."})
    assert prompt.status_code == 201, prompt.text
    return {"trace": traces[0]["id"], "kb": kb.json()["id"], "queue": queue.json()["id"]}


@pytest.fixture
def phone(browser: Browser, console_server: Server) -> Iterator[Callable[[str], Console]]:
    """A console at phone width; checked for JavaScript errors and failed requests at the end."""
    opened: list[Console] = []

    def make(lang: str) -> Console:
        opened.append(Console(browser, console_server.url, lang, viewport=PHONE))
        return opened[-1]

    yield make
    for c in opened:
        c.close()


def off_screen(page: Page, selector: str) -> str | None:
    """Why the first element matching ``selector`` cannot be used on a phone screen, or None."""
    loc = page.locator(selector).first
    if not loc.is_visible():
        return f"{selector} is hidden"
    box = loc.bounding_box()
    if not box or box["x"] < -1 or box["x"] + box["width"] > PHONE["width"] + 1:
        return f"{selector} is off screen: {box}"
    return None


def check_page(c: Console, name: str, bare: bool = False) -> list[str]:
    """What every page must hold at phone width: the problems found, after a screenshot. ``bare``: a page without
    the top bar and navigation (sign-in), or a dialog over a page."""
    page = c.page
    c.shot(f"phone-{name}")
    got = page.evaluate(OVERFLOW_JS, PHONE["width"])
    problems = []
    if got["doc"] > PHONE["width"] + 1:
        problems.append(f"the page scrolls sideways ({got['doc']} px wide)")
    if got["page"] > 1:
        problems.append(f"the page's content is {got['page']} px wider than the screen")
    if got["out"]:
        problems.append(f"cut off at the right edge: {got['out']}")
    if raw := RAW_KEY.search(page.locator("body").inner_text()):
        problems.append(f"untranslated string: {raw.group(0)}")
    if bare:
        return [f"{name}: {p}" for p in problems]
    # The language selector and sign-out can be used; the navigation is on screen or behind a menu button on screen
    problems += filter(None, (off_screen(page, s) for s in ("header.top select", "[data-test=sign-out]")))
    if off_screen(page, "[data-nav=prompts]"):
        if why := off_screen(page, "[data-test=menu]"):
            problems.append(f"the navigation is off screen and so is its menu button: {why}")
        else:
            page.click("[data-test=menu]")
            problems += filter(None, (off_screen(page, f"[data-nav={n}]") for n in ("models", "prompts")))
            if name == "models":
                c.shot("phone-menu")
            page.click("[data-test=menu]")
            expect(page.locator("[data-nav=models]")).to_be_hidden()
    return [f"{name}: {p}" for p in problems]


def waterfall_problems(page: Page) -> list[str]:
    """The trace's time axis labels apart, every bar at least 2 px wide inside its track, and stat cards whose
    lines break between words."""
    problems = []
    wf = page.evaluate(WATERFALL_JS)
    labels = wf["labels"]
    if len(labels) < 2:
        problems.append(f"the time axis shows {labels}")
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            if a["r"] > b["l"] and b["r"] > a["l"]:
                problems.append(f"axis labels overlap: {a['text']!r} {a['l']:.0f}-{a['r']:.0f} / "
                                f"{b['text']!r} {b['l']:.0f}-{b['r']:.0f}")
    for x in wf["bars"]:
        bar, track = x["bar"], x["track"]
        if bar["w"] < 2:
            problems.append(f"a bar is {bar['w']:.1f} px wide")
        if bar["l"] < track["l"] - 0.5 or bar["r"] > track["r"] + 0.5:
            problems.append(f"a bar leaves its track: {x}")
    split = [w["word"] for w in page.evaluate(WORD_LINES_JS) if w["lines"] > 1]
    if split:
        problems.append(f"stat cards break inside words: {split}")
    return [f"trace: {p}" for p in problems]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_page_at_phone_width(lang: str, phone: Callable[[str], Console], console_server: Server,
                                   data: dict[str, str]) -> None:
    c = phone(lang)
    page = c.page
    problems: list[str] = []  # every page is looked at before failing, so one run shows all that is wrong
    c.goto("/signin")
    expect(page.locator("[data-test=signin-key]")).to_be_visible()
    problems += check_page(c, "signin", bare=True)
    c.sign_in(console_server.admin_key)
    pages = [  # (name, path, what shows that the page has loaded)
        ("models", "/models", "[data-model=phone-remote]"),
        ("model", "/models/phone-remote", "#page h1"),
        ("playground", "/playground", "[data-test=column]"),
        ("keys", "/keys", "table.tbl"),
        ("usage", "/usage", "#page h1"),
        ("traces", "/traces", "table.tbl tbody tr"),
        ("trace", f"/traces/{data['trace']}", "[data-test=span-row]"),
        ("analytics", "/analytics", "[data-test=groups]"),
        ("annotations", "/annotations", "table.tbl tbody tr"),
        ("annotate", f"/annotations/{data['queue']}", "[data-test=annotate-item]"),
        ("knowledge", "/knowledge", f"[data-kb='{data['kb']}']"),
        ("knowledge-base", f"/knowledge/{data['kb']}", "[data-test=kb-title]"),
        ("prompts", "/prompts", "table.tbl tbody tr"),
        ("prompt", "/prompts/phone-prompt", "[data-test=version-view]"),
    ]
    for name, path, ready in pages:
        c.goto(path)
        expect(page.locator(ready).first).to_be_visible()
        expect(page.locator("#page > .spinner")).to_have_count(0)
        problems += check_page(c, name)
        if name == "playground":
            width = page.locator("[data-test=column]").first.bounding_box()["width"]
            if width < 300:
                problems.append(f"playground: the chat pane is {width:.0f} px wide")
        if name == "trace":
            problems += waterfall_problems(page)
        if name == "prompts":  # a dialog fits the screen
            page.click("[data-test=create-prompt]")
            expect(page.locator(".modal")).to_be_visible()
            problems += check_page(c, "prompt-create", bare=True)
            page.keyboard.press("Escape")
            expect(page.locator(".modal")).to_have_count(0)
    assert not problems, "at 390 px wide:\n" + "\n".join(problems)
