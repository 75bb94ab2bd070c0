"""Knowledge-base sources beyond uploaded files: URLs from a real loopback HTTP server, tables of a real SQLite file."""
from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from temper.knowledge.ingest import ParserRegistry, builtin_parsers
from temper.knowledge.sources import FetchError, QueryError
from temper.knowledge.sources.database import DatabaseSource, read_documents
from temper.knowledge.sources.web import FetchPolicy, check_allowed, fetch_url
from tests.knowledge.test_parsers import make_pdf, pdf_bytes

# ---- web pages by URL ---------------------------------------------------------------------------------------

PAGE = ("<html><head><meta charset='utf-8'><title>部署指南</title></head><body><article>"
        "<h1>部署指南</h1><p>先安装依赖，再启动服务。Install the dependencies, then start the service with "
        "<a href='/docs/serve'>temper serve</a>; it listens on port 8600 by default.</p></article></body></html>")
REPORT = pdf_bytes(make_pdf([[("en", 14, "Annual Report"), ("zh", 11, "营业收入增长百分之十二。")]]))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up on purpose
            pass

    def _send(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _route(self) -> None:
        path = self.path
        if path in ("/article.html", "/docs/intro", "/docs/serve"):
            self._send(200, PAGE.encode(), Content_Type="text/html; charset=utf-8", ETag='"v1"')
        elif path == "/report":
            self._send(200, REPORT, Content_Type="application/pdf")
        elif path == "/download?id=7":
            self._send(200, REPORT, Content_Type="application/octet-stream",
                       Content_Disposition="attachment; filename*=UTF-8''%E5%B9%B4%E6%8A%A5.pdf")
        elif path == "/README.md":  # served the way raw file hosts do: as plain text
            self._send(200, "# 说明\n\nhello\n".encode(), Content_Type="text/plain; charset=utf-8")
        elif path == "/moved":
            self._send(301, Location="/docs/intro")
        elif path == "/away":
            self._send(302, Location="http://evil.example/steal")
        elif path.startswith("/loop"):
            self._send(302, Location=f"/loop{len(path)}")
        elif path == "/big":
            self._send(200, b"x" * 5000, Content_Type="text/plain")
        elif path == "/endless":  # no Content-Length: the body ends when the connection closes
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Connection", "close")
            self.end_headers()
            for _ in range(100_000):
                self.wfile.write(b"y" * 1024)
        elif path == "/slow":
            time.sleep(3)
            self._send(200, b"late", Content_Type="text/plain")
        elif path == "/drip":  # each byte comes quickly, the whole body never does
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):
                self.wfile.write(b"z")
                self.wfile.flush()
                time.sleep(0.1)
        else:
            self._send(404, b"not here", Content_Type="text/plain")


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def allow_local(**kw: float) -> FetchPolicy:
    return FetchPolicy(allow=["127.0.0.1"], **kw)  # type: ignore[arg-type]


def test_fetch_html_and_pdf_give_names_the_registry_parses(site: str) -> None:
    registry = ParserRegistry(builtin_parsers())
    page = fetch_url(f"{site}/docs/intro", allow_local())
    assert (page.url, page.filename, page.media_type) == (f"{site}/docs/intro", "intro.html", "text/html")
    assert page.metadata == {"url": f"{site}/docs/intro", "content_type": "text/html; charset=utf-8", "etag": '"v1"'}
    [doc] = registry.for_file(page.filename, page.media_type).parse(page.data, page.filename, {"url": page.url})
    assert doc.title == "部署指南"
    assert "先安装依赖，再启动服务。" in doc.blocks[-1].text
    assert doc.metadata["links"] == [{"text": "temper serve", "href": f"{site}/docs/serve"}]

    report = fetch_url(f"{site}/report", allow_local())
    assert (report.filename, report.media_type, report.data) == ("report.pdf", "application/pdf", REPORT)
    [doc] = registry.for_file(report.filename).parse(report.data, report.filename, {})
    assert [b.text for b in doc.blocks] == ["Annual Report", "营业收入增长百分之十二。"]


def test_fetch_names_from_disposition_and_keeps_specific_extensions(site: str) -> None:
    download = fetch_url(f"{site}/download?id=7", allow_local())
    assert (download.filename, download.media_type) == ("年报.pdf", "application/octet-stream")
    readme = fetch_url(f"{site}/README.md", allow_local())
    assert readme.filename == "README.md"
    assert ParserRegistry(builtin_parsers()).for_file(readme.filename, readme.media_type).name == "markdown"
    assert fetch_url(f"{site}/article.html", allow_local()).filename == "article.html"


def test_redirects_are_followed_and_each_hop_is_checked(site: str) -> None:
    moved = fetch_url(f"{site}/moved", allow_local())
    assert (moved.url, moved.filename) == (f"{site}/docs/intro", "intro.html")
    assert moved.metadata["redirected_from"] == [f"{site}/moved"]
    with pytest.raises(FetchError, match=r"/away redirects to http://evil.example/steal: host evil.example is not "
                                         r"in the allow-list \(TEMPER_KB_URL_ALLOW\)"):
        fetch_url(f"{site}/away", allow_local())
    with pytest.raises(FetchError, match="more than 5 redirects"):
        fetch_url(f"{site}/loop", allow_local())


def test_allow_list_patterns_and_schemes(site: str) -> None:
    with pytest.raises(FetchError, match=r"fetching URLs is turned off: the allow-list \(TEMPER_KB_URL_ALLOW\) is "
                                         r"empty; add 127.0.0.1"):
        fetch_url(f"{site}/docs/intro", FetchPolicy(allow=[]))
    with pytest.raises(FetchError, match=r"host 127.0.0.1 is not in the allow-list \(TEMPER_KB_URL_ALLOW\)"):
        fetch_url(f"{site}/docs/intro", FetchPolicy(allow=["docs.example.com", "*.example.org"]))
    with pytest.raises(FetchError, match="only http and https"):
        fetch_url("ftp://127.0.0.1/file.txt", allow_local())
    prefix = FetchPolicy(allow=[f"{site}/docs/"])
    assert fetch_url(f"{site}/docs/serve", prefix).filename == "serve.html"
    for refused in (f"{site}/article.html", f"{site}/docsx", site.replace("127.0.0.1", "localhost") + "/docs/x"):
        with pytest.raises(FetchError, match="not in the allow-list"):
            fetch_url(refused, prefix)
    wildcard = FetchPolicy(allow=["*.example.org", "docs.example.com"])
    for allowed in ("https://a.example.org/", "http://b.c.EXAMPLE.org:8080/x", "https://docs.example.com/y"):
        check_allowed(allowed, wildcard)
    for refused in ("https://example.org/", "https://evil-example.org/", "https://docs.example.com.evil.net/"):
        with pytest.raises(FetchError, match="not in the allow-list"):
            check_allowed(refused, wildcard)
    check_allowed("https://anything.test/", FetchPolicy(allow=["*"]))


def test_size_limit_with_and_without_content_length(site: str) -> None:
    with pytest.raises(FetchError, match=r"/big is larger than 1000 bytes \(4.88 KB\), the most a fetched URL may be"):
        fetch_url(f"{site}/big", allow_local(max_bytes=1000))
    assert len(fetch_url(f"{site}/big", allow_local(max_bytes=5000)).data) == 5000
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"/endless is larger than 1 MB, the most"):
        fetch_url(f"{site}/endless", allow_local(max_bytes=1024 * 1024))  # the server would send 100 MB
    assert time.monotonic() - started < 5
    with pytest.raises(FetchError, match="larger than 10 MB"):
        fetch_url(f"{site}/endless", allow_local())


def test_timeouts_cover_the_whole_fetch(site: str) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"/slow: timed out after 0.5 s"):
        fetch_url(f"{site}/slow", allow_local(timeout_s=0.5))
    assert time.monotonic() - started < 1.5
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"/drip: timed out after 1 s"):
        fetch_url(f"{site}/drip", allow_local(timeout_s=1))  # every read is fast; their sum is not
    assert time.monotonic() - started < 2


def test_http_and_connection_errors(site: str) -> None:
    with pytest.raises(FetchError, match=r"/nothing: HTTP 404 Not Found"):
        fetch_url(f"{site}/nothing", allow_local())
    closed = site.rsplit(":", 1)[0] + ":9"  # the discard port: nothing listens on loopback
    with pytest.raises(FetchError, match="could not be fetched"):
        fetch_url(f"{closed}/x", allow_local())
    with pytest.raises(FetchError, match="not a valid URL"):
        fetch_url("http://[::1", allow_local())


# ---- database tables ----------------------------------------------------------------------------------------

TICKETS = [
    (1, "ACME", "登录失败", "用户反馈无法登录，提示密码错误。", "2024-05-01 09:00:00", 12.5, b"\x89PNG"),
    (2, "Globex", "Invoice missing", "The March invoice never arrived.", "2024-05-02 10:30:00", None, None),
    (3, "ACME", "Export to CSV", "Exports stop at 1,000 rows.", "2024-05-03 11:00:00", 0.0, None),
]


@pytest.fixture
def crm(tmp_path: Path) -> Path:
    path = tmp_path / "客户库.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE tickets (id INTEGER PRIMARY KEY, customer TEXT, subject TEXT, body TEXT, "
                     "created TEXT, amount REAL, attachment BLOB)")
        conn.executemany("INSERT INTO tickets VALUES (?, ?, ?, ?, ?, ?, ?)", TICKETS)
    conn.close()
    return path


def add_ticket(path: Path, *row: object) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO tickets VALUES (?, ?, ?, ?, ?, ?, NULL)", row)
    conn.close()


def source(path: Path, query: str = "SELECT id, customer, subject, body, amount, attachment FROM tickets",
           **kw: str) -> DatabaseSource:
    return DatabaseSource(url=f"sqlite:///{path}", query=query, **{"key_column": "id", **kw})


def test_rows_become_record_documents(crm: Path) -> None:
    docs = list(read_documents(source(crm, title_column="subject")))
    assert [(d.key, d.max_key, d.title) for d in docs] == [
        ("#id=1", 1, "登录失败"), ("#id=2", 2, "Invoice missing"), ("#id=3", 3, "Export to CSV")]
    first = docs[0].document
    assert (first.title, first.source_suffix) == ("登录失败", "#id=1")
    assert [(b.kind, b.text, b.metadata) for b in first.blocks] == [
        ("record", "id: 1\ncustomer: ACME\nsubject: 登录失败\nbody: 用户反馈无法登录，提示密码错误。\namount: 12.5",
         {"id": 1})]  # the BLOB is left out
    assert first.metadata == {"columns": ["id", "customer", "subject", "body", "amount", "attachment"], "id": "1"}
    assert docs[1].document.blocks[0].text == "id: 2\ncustomer: Globex\nsubject: Invoice missing\n" \
                                              "body: The March invoice never arrived."
    assert docs[2].document.blocks[0].text.endswith("amount: 0")
    assert docs[0].checksum == hashlib.sha256(first.blocks[0].text.encode()).hexdigest()
    assert [d.checksum for d in read_documents(source(crm, title_column="subject"))] == [d.checksum for d in docs]
    assert next(read_documents(source(crm))).title == "id 1"  # no title column


def test_incremental_sync_reads_only_new_rows(crm: Path) -> None:
    src = source(crm, title_column="subject")
    since = max(d.max_key for d in read_documents(src))
    assert list(read_documents(src, since)) == []
    add_ticket(crm, 4, "Initech", "打印机卡纸", "三楼打印机经常卡纸。", "2024-05-04 08:00:00", 3.0)
    add_ticket(crm, 5, "ACME", "SSO", "Single sign-on with the company directory.", "2024-05-05 08:00:00", 1.0)
    assert [(d.key, d.title) for d in read_documents(src, since)] == [("#id=4", "打印机卡纸"), ("#id=5", "SSO")]
    # A text key (an ISO timestamp) works the same way, compared as the database compares it.
    by_time = DatabaseSource(url=f"sqlite:///{crm}", query="SELECT created, subject FROM tickets",
                             key_column="created")
    assert [d.key for d in read_documents(by_time, "2024-05-03 11:00:00")] == [
        "#created=2024-05-04 08:00:00", "#created=2024-05-05 08:00:00"]


def test_group_by_gives_one_document_per_value_and_resyncs_changed_groups_whole(crm: Path) -> None:
    src = source(crm, "SELECT id, customer, subject FROM tickets", group_by="customer")
    docs = list(read_documents(src))
    assert [(d.key, d.max_key, d.title, len(d.document.blocks)) for d in docs] == [
        ("#customer=ACME", 3, "customer ACME", 2), ("#customer=Globex", 2, "customer Globex", 1)]
    assert [b.text for b in docs[0].document.blocks] == ["id: 1\ncustomer: ACME\nsubject: 登录失败",
                                                         "id: 3\ncustomer: ACME\nsubject: Export to CSV"]
    assert docs[0].document.metadata == {"columns": ["id", "customer", "subject"], "customer": "ACME", "rows": 2}
    add_ticket(crm, 4, "ACME", "SSO", "", "2024-05-05 08:00:00", 1.0)
    [acme] = read_documents(src, since=3)
    assert (acme.key, acme.max_key) == ("#customer=ACME", 4)
    assert [b.metadata["id"] for b in acme.document.blocks] == [1, 3, 4]
    assert acme.checksum != docs[0].checksum


def test_only_a_single_select_is_run(crm: Path) -> None:
    for query, message in [("DELETE FROM tickets", "only SELECT queries can be synced .* not DELETE"),
                           ("  update tickets set subject = 'x'", "not UPDATE"),
                           ("SELECT id FROM tickets; DROP TABLE tickets", "a single SELECT statement"),
                           ("", "the query is empty")]:
        with pytest.raises(QueryError, match=message):
            list(read_documents(source(crm, query)))
    # Data-changing statements behind a WITH are refused by the database itself (inside a subquery).
    with pytest.raises(QueryError, match=r"^database sqlite:///.*客户库.db: .*syntax error"):
        list(read_documents(source(crm, "WITH gone AS (SELECT 1) DELETE FROM tickets")))
    # Comments, a trailing semicolon and text that looks like a bind parameter are fine.
    query = "-- all tickets\nSELECT id, subject FROM tickets WHERE subject <> ' :x; --' /* c */ ; -- end"
    assert [d.key for d in read_documents(source(crm, query))] == ["#id=1", "#id=2", "#id=3"]
    with sqlite3.connect(crm) as conn:
        assert conn.execute("SELECT count(*) FROM tickets").fetchone() == (3,)
    conn.close()


def test_errors_are_one_clear_line(crm: Path, tmp_path: Path) -> None:
    cases = [
        (source(crm, key_column="ticket_id"), r"key_column 'ticket_id' is not a column of the query's result; "
                                              r"its columns are id, customer, subject, body, amount, attachment"),
        (source(crm, group_by="region"), "group_by 'region' is not a column"),
        (source(crm, "SELECT * FROM nope"), r"database sqlite:///.*: no such table: nope"),
        (source(tmp_path / "missing.db"), "unable to open database file"),
        (DatabaseSource(url="not a url", query="SELECT 1", key_column="id"), "cannot be parsed"),
        (DatabaseSource(url="sqlite://", query="SELECT 1", key_column="id"), "needs a database file"),
        (DatabaseSource(url="nosuchdb://u:secret@h/db", query="SELECT 1", key_column="id"),
         r"nosuchdb://u:\*\*\*@h/db: no SQLAlchemy dialect or driver is named 'nosuchdb'"),
    ]
    for src, message in cases:
        with pytest.raises(QueryError, match=message) as raised:
            list(read_documents(src))
        assert "\n" not in str(raised.value) and "secret" not in str(raised.value)
    assert not (tmp_path / "missing.db").exists()  # read-only: a missing file is not created
