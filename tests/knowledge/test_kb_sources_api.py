"""Knowledge-base sources that are not uploads: web pages by URL (allow-listed, retried after a failure) and
a database query synced incrementally — on a real server, a real loopback web server and a real SQLite file."""
from __future__ import annotations

import http.server
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Server, wait_job
from tests.knowledge.test_kb_api import create_kb, retrieve

PAGE = b"""<html><head><title>Shipping guide</title></head><body><nav>Home | About</nav><article>
<h1>Shipping guide</h1><p>Parcels to the Faroe Islands travel by ferry and take nine working days.</p>
<p>Express delivery is not available for islands. See <a href="/rates">our rates</a>.</p></article>
<footer>Copyright</footer></body></html>"""


class Site(http.server.BaseHTTPRequestHandler):
    flaky_failures = 1  # /flaky answers 503 this many times, then the page

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        if self.path == "/flaky" and Site.flaky_failures > 0:
            Site.flaky_failures -= 1
            self.send_response(503)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_a_web_page_is_fetched_extracted_and_a_failed_fetch_retried(server: Server, site: str) -> None:
    kb = create_kb(server, "web pages")
    r = server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/documents/urls",
                   json={"urls": [f"{site}/guide", f"{site}/flaky"]})
    assert r.status_code == 202, r.text
    job = wait_job(server, r.json()["job"]["id"])
    assert "1 failed" in job["message"]
    docs = {d["source"]: d for d in server.api("GET", f"/api/v1/knowledge-bases/{kb['id']}/documents").json()["data"]}
    guide, flaky = docs[f"{site}/guide"], docs[f"{site}/flaky"]
    assert guide["status"] == "indexed" and guide["title"] == "Shipping guide"
    assert guide["metadata"]["url"] == f"{site}/guide"
    assert flaky["status"] == "failed" and "503" in flaky["error"]

    hits = retrieve(server, kb["id"], "how long do parcels to the Faroe Islands take")
    assert "nine working days" in hits[0]["text"] and "Copyright" not in hits[0]["text"]  # main content only

    retried = server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/documents/retry", json={}).json()
    assert wait_job(server, retried["job"]["id"])["status"] == "succeeded"
    assert server.api("GET", f"/api/v1/knowledge-bases/{kb['id']}/documents/{flaky['id']}").json()["status"] == "indexed"

    # fetching again finds the same content: nothing is re-indexed
    again = server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/documents/urls", json={"urls": [f"{site}/guide"]})
    assert wait_job(server, again.json()["job"]["id"])["status"] == "succeeded"
    assert server.api("GET", f"/api/v1/knowledge-bases/{kb['id']}").json()["chunks"] == guide["chunks"] * 2

    refused = server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/documents/urls",
                         json={"urls": ["http://example.com/page"]})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "url_not_allowed"
    assert "allow" in refused.json()["error"]["message"]


def test_a_database_table_syncs_rows_as_documents_incrementally(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "crm.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE faq (id INTEGER PRIMARY KEY, question TEXT, answer TEXT, category TEXT)")
        db.executemany("INSERT INTO faq (question, answer, category) VALUES (?, ?, ?)", [
            ("How do I change my delivery address?", "Edit it under Orders until the parcel ships.", "orders"),
            ("发票可以重开吗？", "可以，在订单页面申请重开发票，三个工作日内处理。", "billing"),
        ])
    kb = create_kb(server, "crm faq")
    body = {"name": "faq", "url": f"sqlite:///{path}", "query": "SELECT id, question, answer, category FROM faq",
            "key_column": "id", "title_column": "question", "metadata": {"origin": "crm"}}
    r = server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/sources", json=body)
    assert r.status_code == 202, r.text
    source = r.json()
    assert source["config"]["url"] == f"sqlite:///{path}" and source["kind"] == "database"
    job = wait_job(server, source["job"]["id"])
    assert job["status"] == "succeeded" and job["message"].startswith("read 2 documents; 2 of 2"), job
    docs = server.api("GET", f"/api/v1/knowledge-bases/{kb['id']}/documents").json()["data"]
    assert sorted(d["source"] for d in docs) == ["faq#id=1", "faq#id=2"]
    assert {d["title"] for d in docs} == {"How do I change my delivery address?", "发票可以重开吗？"}
    hit = retrieve(server, kb["id"], "怎么重开发票", filter={"origin": "crm"})[0]
    assert hit["source"] == "faq#id=2" and "三个工作日" in hit["text"]

    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO faq (question, answer, category) VALUES (?, ?, ?)",
                   ("Can I pay by bank transfer?", "Yes, bank transfers are accepted for orders over 500 euros.",
                    "billing"))
    r = server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/sources/{source['id']}/sync")
    job = wait_job(server, r.json()["job"]["id"])
    assert job["message"].startswith("read 1 documents; 1 of 1"), job  # only the new row was read
    listed = server.api("GET", f"/api/v1/knowledge-bases/{kb['id']}/sources").json()["data"]
    assert listed[0]["cursor"] == 3 and listed[0]["documents"] == 3
    assert retrieve(server, kb["id"], "bank transfer")[0]["source"] == "faq#id=3"

    bad = server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/sources",
                     json={**body, "name": "bad", "query": "DELETE FROM faq"})
    assert bad.status_code == 400 and "only SELECT" in bad.json()["error"]["message"]
    bad = server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/sources", json={**body, "name": "bad",
                                                                                "key_column": "nope"})
    assert bad.status_code == 400 and "is not a column" in bad.json()["error"]["message"]


def test_temper_s_own_database_cannot_be_a_source(server: Server, tmp_path: Path) -> None:
    kb = create_kb(server, "own db")
    own = server.home / "temper.db"
    link = tmp_path / "innocent.db"
    link.symlink_to(own)  # a path outside the data directory that is the same file
    hardlink = tmp_path / "copy-that-is-not.db"
    os.link(own, hardlink)
    for url in (f"sqlite:///{own}", f"sqlite:///{link}", f"sqlite:///{hardlink}",
                f"sqlite:///{server.home}/knowledge/../temper.db"):
        r = server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/sources", json={
            "name": "users", "url": url, "query": "SELECT id, username, password_hash FROM users", "key_column": "id"})
        assert r.status_code == 400, (url, r.text)
        assert "own database" in r.json()["error"]["message"]
