"""The operations centre in a real Chromium, in English and in Chinese: traces (filter, open one, the waterfall,
a span's attributes, add a score) → analytics (the request counts) → an annotation queue (create, annotate,
skip, export JSONL) → prompts (from a starter template, a new version, move a label, the diff).

Traffic comes from the loopback upstream in tests/upstream.py through /v1, never from a local model, so the
journeys are quick and the numbers on screen are known."""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import Server
from tests.console.browser import Console, no_raw_keys
from tests.upstream import Upstream

pytestmark = pytest.mark.browser

TEXT = {  # a few strings per language, to check the page really is in that language
    "en": {"traces": "Traces", "analytics": "Analytics", "prompts": "Prompts", "annotations": "Annotation",
           "error": "Error", "requests": "Requests", "done": "Queue complete"},
    "zh": {"traces": "链路追踪", "analytics": "效果分析", "prompts": "提示词", "annotations": "人工标注",
           "error": "错误", "requests": "请求数", "done": "队列已全部完成"},
}
OK_CALLS = 5  # successful chat calls through the remote model, made once for the module
FAILED_CALLS = 1



@pytest.fixture(scope="module")
def traffic(console_server: Server, upstream: Upstream) -> Iterator[dict]:
    """Two remote models on the loopback upstream (one answers 500) and a few calls through /v1: five good
    ones (one streamed) and one that fails; one of the good ones with a member key."""
    s = console_server
    for mid, upstream_model in (("ops-remote", "vendor-model"), ("ops-broken", "fail-500")):
        r = s.api("POST", "/api/v1/models", json={"id": mid, "provider": "openai_compat", "base_url": upstream.base_url,
                                                    "upstream_model": upstream_model, "input_price": 1.5, "output_price": 2})
        assert r.status_code == 201, r.text
    member_key = s.key(name="ops-member")
    client = s.client()
    for i in range(OK_CALLS - 2):
        client.chat.completions.create(model="ops-remote", messages=[{"role": "user", "content": f"question {i}: refund?"}])
    stream = client.chat.completions.create(model="ops-remote", stream=True,
                                            messages=[{"role": "user", "content": "a streamed question"}])
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "hello from up1"
    s.client(member_key).chat.completions.create(model="ops-remote",
                                                 messages=[{"role": "user", "content": "member asks about delivery"}])
    with pytest.raises(Exception):
        client.chat.completions.create(model="ops-broken", messages=[{"role": "user", "content": "this one breaks"}])
    # The span store writes in batches: wait until every trace is queryable.
    for _ in range(100):
        r = s.api("GET", "/api/v1/traces", params={"limit": 50, "hours": 1})
        if r.status_code == 200 and len(r.json()["data"]) >= OK_CALLS + FAILED_CALLS:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"traces did not arrive: {r.status_code} {r.text[:500]}")
    yield {"member_key": member_key}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_traces_and_analytics(lang: str, open_console: Callable[[str], Console], console_server: Server,
                              traffic: dict) -> None:
    words = TEXT[lang]
    admin = open_console(lang)
    page = admin.page
    admin.sign_in(console_server.admin_key)

    # The list: every call, newest first, with status badges
    admin.nav("traces")
    expect(page.locator("h1")).to_have_text(words["traces"])
    rows = page.locator("table.tbl tbody tr")
    expect(rows).to_have_count(OK_CALLS + FAILED_CALLS)
    expect(page.locator("table.tbl")).to_contain_text("ops-remote")
    no_raw_keys(page)
    admin.shot("traces")

    # Filters: status, text search, latency; the URL keeps them
    page.select_option("[data-test=filter-status]", "error")
    expect(rows).to_have_count(FAILED_CALLS)
    expect(rows.first).to_contain_text("ops-broken")
    expect(rows.first.locator(".badge.err")).to_have_text(words["error"])
    expect(page).to_have_url(re.compile(r"status=error"))
    page.select_option("[data-test=filter-status]", "")
    page.fill("[data-test=trace-search]", "delivery")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("member asks about delivery")
    page.fill("[data-test=trace-search]", "")
    page.fill("[data-test=filter-min_ms]", "600000")
    page.locator("[data-test=filter-min_ms]").dispatch_event("change")
    expect(page.locator(".empty")).to_be_visible()
    page.fill("[data-test=filter-min_ms]", "")
    page.locator("[data-test=filter-min_ms]").dispatch_event("change")
    page.select_option("[data-test=filter-model]", "ops-remote")
    expect(rows).to_have_count(OK_CALLS)
    admin.shot("traces-filtered")

    # Cursor paging: with pages of two, "load more" brings the rest
    page.route(re.compile(r".*/api/v1/traces\?.*limit=50.*"),
               lambda route: route.continue_(url=route.request.url.replace("limit=50", "limit=2")))
    page.select_option("[data-test=filter-status]", "ok")
    expect(rows).to_have_count(2)
    for n in range(4, OK_CALLS + 2, 2):
        page.click("[data-test=load-more]")
        expect(rows).to_have_count(min(n, OK_CALLS))
    expect(page.locator("[data-test=load-more]")).to_have_count(0)
    page.unroute(re.compile(r".*/api/v1/traces\?.*limit=50.*"))

    # Export what the filters show, as JSONL with the spans
    with page.expect_download() as dl:
        page.click("[data-test=export-traces]")
    exported = [json.loads(x) for x in Path(dl.value.path()).read_text(encoding="utf-8").splitlines() if x.strip()]
    assert len(exported) == OK_CALLS and all(x["model"] == "ops-remote" and x["spans"] for x in exported), exported[:1]

    # One trace: stats, a waterfall with a bar per span, a span's attributes, input and output
    rows.filter(has_text="a streamed question").click()
    expect(page).to_have_url(re.compile(r"/traces/[0-9a-f]{32}$"))
    expect(page.locator("[data-test=trace-model]")).to_contain_text("ops-remote")
    spans = page.locator("[data-test=span-row]")
    expect(spans.first).to_be_visible()
    assert spans.count() >= 2, "a gateway call has a span per upstream attempt under its own"
    widths = page.locator("[data-test=span-bar]").evaluate_all("bars => bars.map(b => b.style.width)")
    assert all(w.endswith("%") and float(w[:-1]) > 0 for w in widths), widths
    depths = page.locator(".wf-name").evaluate_all("els => els.slice(1).map(e => parseInt(e.style.paddingLeft))")
    assert depths[1] > depths[0], "child spans are indented under their parent"
    expect(page.locator("[data-test=span-input]")).to_contain_text("a streamed question")  # the whole trace
    expect(page.locator("[data-test=span-output]")).to_contain_text("hello from up1")
    spans.nth(1).click()  # the upstream attempt
    attributes = page.locator("[data-test=span-detail] [data-test=span-attributes]")
    expect(attributes).to_contain_text("gen_ai.request.model")
    expect(attributes).to_contain_text("vendor-model")
    expect(spans.nth(1)).to_have_class(re.compile("sel"))
    no_raw_keys(page)
    admin.shot("trace-detail")

    # A score on the trace
    page.fill("[data-test=score-name]", f"quality-{lang}")
    page.fill("[data-test=score-value]", "0.9")
    page.fill("[data-test=score-comment]", "clear answer" if lang == "en" else "回答清楚")
    page.click("[data-test=score-submit]")
    scores = page.locator("[data-test=scores] table")
    expect(scores).to_contain_text(f"quality-{lang}")
    expect(scores).to_contain_text("0.9")
    trace_id = page.url.rsplit("/", 1)[1]
    got = console_server.api("GET", f"/api/v1/traces/{trace_id}").json()["scores"]
    assert any(s["name"] == f"quality-{lang}" and s["value"] == 0.9 for s in got), got
    # A boolean score on the selected span, then deleted again
    page.fill("[data-test=score-name]", "grounded")
    page.fill("[data-test=score-value]", "yes")
    page.select_option("[data-test=score-type]", "boolean")
    page.select_option("[data-test=score-target]", index=1)
    page.click("[data-test=score-submit]")
    grounded = scores.locator("tr", has_text="grounded")
    expect(grounded).to_contain_text("chat vendor-model")
    page.locator("[data-test=score-form]").scroll_into_view_if_needed()
    admin.shot("trace-scored")
    grounded.locator("[data-test=delete-score]").click()
    page.click(".modal button.danger")
    expect(grounded).to_have_count(0)
    got = console_server.api("GET", f"/api/v1/traces/{trace_id}").json()["scores"]
    assert [s["name"] for s in got].count("grounded") == 0

    # An error trace shows its error and a red span
    admin.goto("/traces?status=error")
    rows.first.click()
    expect(page.locator("[data-test=trace-error]")).to_be_visible()
    expect(page.locator("[data-test=span-row].err").first).to_be_visible()

    # Analytics: the same counts, charts and a row per model
    admin.nav("analytics")
    expect(page.locator("h1")).to_have_text(words["analytics"])
    page.click("[data-test=period] [data-value='1h']")
    expect(page.locator("[data-test=stat-requests] .v")).to_have_text(str(OK_CALLS + FAILED_CALLS))
    expect(page.locator("[data-test=stat-requests] .k")).to_have_text(words["requests"])
    expect(page.locator("canvas")).to_have_count(3)
    groups = page.locator("[data-test=groups] table")
    expect(groups.locator("tr", has_text="ops-remote")).to_contain_text(str(OK_CALLS))
    expect(groups.locator("tr", has_text="ops-broken")).to_contain_text("100")
    no_raw_keys(page)
    admin.shot("analytics")
    page.select_option("[data-test=group-by]", "key")
    expect(groups).to_contain_text("ops-member")
    admin.shot("analytics-by-key")
    groups.locator("tr", has_text="ops-member").click()  # drill down into that key's traces
    expect(page).to_have_url(re.compile(r"/traces\?key_id=key_"))
    expect(rows).to_have_count(1)

    # A member sees only the traces of its own key, and no admin actions
    member = open_console(lang)
    member.sign_in(traffic["member_key"])
    expect(member.page.locator("[data-nav=annotations]")).to_have_count(0)  # queues are for admins
    member.nav("traces")
    expect(member.page.locator("table.tbl tbody tr")).to_have_count(1)
    expect(member.page.locator("[data-test=filter-key]")).to_have_count(0)
    member.page.locator("table.tbl tbody tr").click()
    expect(member.page.locator("[data-test=span-row]").first).to_be_visible()
    member.nav("analytics")
    expect(member.page.locator("[data-test=stat-requests] .v")).to_have_text("1")
    member.shot("analytics-member")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_annotation_queue(lang: str, open_console: Callable[[str], Console], console_server: Server,
                          traffic: dict, tmp_path: Path) -> None:
    words = TEXT[lang]
    admin = open_console(lang)
    page = admin.page
    admin.sign_in(console_server.admin_key)
    admin.nav("annotations")
    expect(page.locator("h1")).to_have_text(words["annotations"])

    # A queue of the remote model's traces with three kinds of score
    name = f"review-{lang}"
    page.click("[data-test=create-queue]")
    page.fill("[data-test=queue-name]", name)
    page.select_option("[data-test=queue-model]", "ops-remote")
    configs = page.locator("[data-test=config-row]")
    configs.nth(0).locator("[data-role=name]").fill("quality")
    configs.nth(0).locator("[data-role=min]").fill("1")
    configs.nth(0).locator("[data-role=max]").fill("5")
    page.click("[data-test=add-config]")
    configs.nth(1).locator("[data-role=name]").fill("helpful")
    configs.nth(1).locator("[data-role=type]").select_option("boolean")
    page.click("[data-test=add-config]")
    configs.nth(2).locator("[data-role=name]").fill("tone")
    configs.nth(2).locator("[data-role=type]").select_option("categorical")
    configs.nth(2).locator("[data-role=categories]").fill("warm, neutral, cold")
    admin.shot("annotation-create")
    page.click("[data-test=create-queue-submit]")

    # Annotate: the first item gets every score, the second is skipped, the rest get a quality only
    expect(page).to_have_url(re.compile(r"/annotations/[^/]+$"))
    item = page.locator("[data-test=annotate-item]")
    expect(item).to_be_visible()
    expect(page.locator("[data-test=annotate-output]")).to_contain_text("hello from up1")
    expect(page.locator("[data-test=queue-progress]")).to_contain_text(f"0 / {OK_CALLS}")
    no_raw_keys(page)
    admin.shot("annotate")
    page.fill("[data-score=quality]", "4")
    page.click("[data-score=helpful][data-choice=true] >> xpath=..")
    page.click("[data-score=tone][data-choice=warm] >> xpath=..")
    page.fill("[data-test=annotate-comment]", "good" if lang == "en" else "不错")
    first = item.get_attribute("data-trace")
    page.click("[data-test=annotate-submit]")
    expect(page.locator("[data-test=queue-progress]")).to_contain_text(f"1 / {OK_CALLS}")
    expect(item).not_to_have_attribute("data-trace", first or "")
    page.click("[data-test=annotate-skip]")
    expect(page.locator("[data-test=queue-progress]")).to_contain_text(f"2 / {OK_CALLS}")
    for n in range(3, OK_CALLS + 1):
        page.fill("[data-score=quality]", "3")
        page.click("[data-test=annotate-submit]")
        expect(page.locator("[data-test=queue-progress]")).to_contain_text(f"{n} / {OK_CALLS}")
    expect(page.locator("[data-test=queue-done]")).to_contain_text(words["done"])
    admin.shot("annotate-done")

    # Export: a JSONL file with one line per annotated item
    with page.expect_download() as dl:
        page.locator("[data-test=queue-done] [data-test=export]").click()
    path = tmp_path / "export.jsonl"
    dl.value.save_as(path)
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    assert len(lines) >= OK_CALLS - 1, lines
    assert any("quality" in json.dumps(x) and "warm" in json.dumps(x) for x in lines), lines[0]

    # The list shows the queue complete
    admin.nav("annotations")
    row = page.locator("tr", has_text=name)
    expect(row.locator("[data-test=queue-progress]")).to_contain_text(f"{OK_CALLS} / {OK_CALLS}")
    no_raw_keys(page)
    admin.shot("annotations")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_prompts(lang: str, open_console: Callable[[str], Console], console_server: Server, traffic: dict) -> None:
    words = TEXT[lang]
    admin = open_console(lang)
    page = admin.page
    admin.sign_in(console_server.admin_key)
    admin.nav("prompts")
    expect(page.locator("h1")).to_have_text(words["prompts"])
    no_raw_keys(page)

    # From the starter library, in the console's language
    name = f"support-{lang}"
    page.click("[data-test=create-prompt]")
    cards = page.locator("[data-template]")
    expect(cards.first).to_be_visible()
    assert cards.count() >= 5
    expect(page.locator("[data-test=template-lang]")).to_have_value(lang)
    cards.filter(has=page.locator("input[value=customer-service]")).click()
    page.fill("[data-test=prompt-name]", name)
    admin.shot("prompt-create")
    page.click("[data-test=create-prompt-submit]")
    expect(page).to_have_url(re.compile(f"/prompts/{name}$"))
    view = page.locator("[data-test=version-view]")
    expect(view).to_have_attribute("data-version", "1")
    expect(page.locator("[data-test=version-variables]")).to_contain_text("{{company}}")
    expect(view).to_contain_text("客服" if lang == "zh" else "customer service")

    # A new version: change the user message and move "production" onto it
    page.click("[data-test=new-version]")
    user = page.locator(".modal [data-test=message-user]")
    user.fill(user.input_value() + ("\n订单号：{{order_id}}" if lang == "zh" else "\nOrder number: {{order_id}}"))
    page.fill("[data-test=version-message]", "ask for the order number")
    admin.shot("prompt-new-version")
    page.click("[data-test=new-version-submit]")
    expect(view).to_have_attribute("data-version", "2")
    expect(page.locator("[data-test=version-variables]")).to_contain_text("{{order_id}}")

    # Labels: production on v1, then moved to v2
    page.click("[data-test=move-label]")
    page.fill("[data-test=label-name]", "production")
    page.select_option("[data-test=label-version]", "1")
    page.click("[data-test=move-label-submit]")
    expect(page.locator("[data-test=labels]")).to_contain_text("production → v1")
    page.click("[data-test=move-production]")
    page.select_option("[data-test=label-version]", "2")
    page.click("[data-test=move-label-submit]")
    expect(page.locator("[data-test=labels]")).to_contain_text("production → v2")
    r = console_server.api("GET", f"/api/v1/prompts/{name}/resolve", params={"label": "production"})
    assert r.json()["version"] == 2

    # The diff: v1 → v2 shows the added line in green
    diff = page.locator("[data-test=diff]")
    expect(diff.locator(".dl.add").filter(has_text="order_id")).to_have_count(1)
    page.select_option("[data-test=diff-from]", "2")
    page.select_option("[data-test=diff-to]", "1")
    page.click("[data-test=show-diff]")
    expect(diff.locator(".dl.del").filter(has_text="order_id")).to_have_count(1)
    no_raw_keys(page)
    admin.shot("prompt-diff")

    # Older versions stay readable; the list shows the label
    page.locator("table.tbl tr", has=page.locator("[data-version='1']")).click()
    expect(view).to_have_attribute("data-version", "1")
    expect(page.locator("[data-test=version-variables]")).not_to_contain_text("order_id")
    admin.nav("prompts")
    expect(page.locator("tr", has_text=name)).to_contain_text("production → v2")
    admin.shot("prompts")

    # A blank chat prompt written by hand
    page.click("[data-test=create-prompt]")
    page.click("[data-test=create-mode] [data-value=blank]")
    page.fill("[data-test=prompt-name]", f"blank-{lang}")
    page.click("[data-test=prompt-type] [data-value=chat]")
    page.fill(".modal [data-test=message-system]", "You summarise {{topic}}.")
    page.fill(".modal [data-test=message-user]", "{{text}}")
    page.click("[data-test=create-prompt-submit]")
    expect(page).to_have_url(re.compile(f"/prompts/blank-{lang}$"))
    expect(page.locator("[data-test=version-variables]")).to_have_text(re.compile(r"\{\{topic\}\}.*\{\{text\}\}"))

    # A member reads prompts but cannot change them
    member = open_console(lang)
    member.sign_in(traffic["member_key"])
    member.nav("prompts")
    expect(member.page.locator("[data-test=create-prompt]")).to_have_count(0)
    member.page.locator("tr", has_text=name).click()
    expect(member.page.locator("[data-test=version-view]")).to_have_attribute("data-version", "2")
    expect(member.page.locator("[data-test=new-version]")).to_have_count(0)
    expect(member.page.locator("[data-test=move-label]")).to_have_count(0)
    expect(member.page.locator("[data-test=diff] .dl.add")).not_to_have_count(0)
