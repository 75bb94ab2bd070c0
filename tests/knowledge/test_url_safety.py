"""Web sources are fetched safely: wildcards reach public addresses only (checked after resolution, the
connection pinned to the checked address, every redirect hop checked), prefix rules read paths as a lenient
server would, and a URL's credentials are used for fetching but never shown, stored in documents or indexed."""
from __future__ import annotations

import base64
import http.server
import re
import socket
import sqlite3
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from temper.knowledge.sources import FetchError
from temper.knowledge.sources.urls import normal_path, redact_url, strip_credentials
from temper.knowledge.sources.web import FetchPolicy, check_allowed, fetch_url
from tests.conftest import Server, start_server, stop_server, wait_job
from tests.knowledge.test_kb_api import create_kb, retrieve
from tests.knowledge.test_sources import Handler

SECRET = "S3cret"
PAGE = (b"<html><head><title>Internal handbook</title></head><body><article><h1>Internal handbook</h1>"
        b"<p>Badges for the north entrance are collected from the front desk on the second floor.</p>"
        b"<p>See <a href='/private/next'>the next page</a>.</p></article></body></html>")
AUTH = "Basic " + base64.b64encode(f"svc:{SECRET}".encode()).decode()


class Site(Handler):  # its _send, HTTP/1.1 and quiet log
    seen: ClassVar[list[tuple[str, str]]] = []  # (path, Host header) of every request
    redirect_to = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        Site.seen.append((self.path, self.headers.get("host", "")))
        if self.path.startswith("/private") and self.headers.get("authorization") != AUTH:
            self._send(401, b"who are you?", WWW_Authenticate='Basic realm="handbook"')
        elif self.path in ("/page", "/private"):
            self._send(200, PAGE, Content_Type="text/html; charset=utf-8")
        elif self.path == "/hop":
            self._send(302, Location=Site.redirect_to)
        else:
            self._send(404, b"not here")


def serve(context: ssl.SSLContext | None = None) -> tuple[http.server.ThreadingHTTPServer, int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Site)
    httpd.daemon_threads = True
    if context is not None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, httpd.server_address[1]


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    httpd, port = serve()
    yield port
    httpd.shutdown()


@pytest.fixture(autouse=True)
def fresh_log() -> None:
    Site.seen = []


def resolver(answers: dict[str, list[str]], calls: list[tuple[str, int]] | None = None
             ) -> Callable[[str, int], list[str]]:
    """A resolver that knows only ``answers`` (the names do not exist in DNS) and addresses, recording each
    lookup of a name."""
    def resolve(host: str, port: int) -> list[str]:
        if host.replace(".", "").isdigit():
            return [host]
        if calls is not None:
            calls.append((host, port))
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]
    return resolve


# ---- addresses ----------------------------------------------------------------------------------------------

SPECIAL = {"http://169.254.169.254/latest/meta-data/": "link-local", "http://127.0.0.1:8600/": "loopback",
           "http://[::1]/": "loopback", "http://10.0.0.1/": "private", "http://192.168.1.1/": "private",
           "http://172.16.0.1/": "private", "http://0.0.0.0:8600/": "unspecified", "http://224.0.0.1/": "multicast",
           "http://100.64.0.1/": "shared (CGNAT)", "http://[::ffff:127.0.0.1]/": "mapped IPv4",
           "http://[fe80::1]/": "link-local", "http://[fd00::1]/": "private", "http://240.0.0.1/": "private",
           "http://localhost:8600/": "loopback", "http://api.localhost/": "loopback"}


def test_a_wildcard_admits_no_special_address() -> None:
    anything = FetchPolicy(allow=["*"])
    for url, kind in SPECIAL.items():
        with pytest.raises(FetchError, match=rf"is an? {re.escape(kind)} address, which is not fetched unless listed; "
                                             r"list the host by its exact name or address in TEMPER_KB_URL_ALLOW"):
            check_allowed(url, anything)
    check_allowed("http://93.184.216.34/", anything)
    check_allowed("https://[2606:4700::1111]/", anything)


def test_addresses_networks_and_exact_names_list_internal_hosts() -> None:
    listed = FetchPolicy(allow=["127.0.0.1", "[::1]", "10.0.0.0/8", "http://192.168.1.5:8080/docs/", "wiki.corp"])
    for url in ("http://127.0.0.1:8600/x", "http://[::1]:8600/", "http://10.20.30.40/", "http://wiki.corp/",
                "http://192.168.1.5:8080/docs/a"):
        check_allowed(url, listed)
    with pytest.raises(FetchError, match="not in the allow-list"):
        check_allowed("http://192.168.1.5:8080/admin", listed)
    # a prefix lists its host for its own paths only, even beside a wildcard
    with pytest.raises(FetchError, match="192.168.1.5 is a private address"):
        check_allowed("http://192.168.1.5:8080/admin", FetchPolicy(allow=["*", "http://192.168.1.5:8080/docs/"]))


def test_names_are_checked_after_resolution_and_the_connection_pinned(port: int) -> None:
    answers = {"evil.example.com": ["127.0.0.1"], "wiki.corp.test": ["127.0.0.1"],
               "mixed.example.com": ["93.184.216.34", "10.0.0.7"]}
    for allow, url in ((["*"], "evil.example.com"), (["*.corp.test"], "wiki.corp.test"),
                       (["*"], "mixed.example.com")):
        with pytest.raises(FetchError, match=r"resolves to (127.0.0.1, a loopback|10.0.0.7, a private) address, "
                                             "which is not fetched unless listed"):
            fetch_url(f"http://{url}:{port}/page", FetchPolicy(allow=allow, resolve=resolver(answers)))
    assert Site.seen == []  # refused before connecting

    # listed by exact name: fetched from the one address the single lookup gave, as that name
    calls: list[tuple[str, int]] = []
    got = fetch_url(f"http://wiki.corp.test:{port}/page", FetchPolicy(allow=["wiki.corp.test"],
                                                                      resolve=resolver(answers, calls)))
    assert got.data == PAGE and calls == [("wiki.corp.test", port)]
    assert Site.seen == [("/page", f"wiki.corp.test:{port}")]
    # a listed address admits the names a wildcard admits that resolve to it
    assert fetch_url(f"http://evil.example.com:{port}/page",
                     FetchPolicy(allow=["*", "127.0.0.1"], resolve=resolver(answers))).data == PAGE


def test_every_redirect_hop_is_checked_the_same_way(port: int) -> None:
    answers = {"internal.example.com": ["10.0.0.7"]}
    policy = FetchPolicy(allow=["127.0.0.1", "*"], resolve=resolver(answers))
    Site.redirect_to = "http://169.254.169.254/latest/meta-data/"
    with pytest.raises(FetchError, match=r"/hop redirects to http://169.254.169.254/latest/meta-data/: "
                                         r".*169.254.169.254 is a link-local address"):
        fetch_url(f"http://127.0.0.1:{port}/hop", policy)
    Site.redirect_to = f"http://internal.example.com:{port}/page"
    with pytest.raises(FetchError, match=r"internal.example.com resolves to 10.0.0.7, a private address"):
        fetch_url(f"http://127.0.0.1:{port}/hop", policy)
    assert [path for path, _ in Site.seen] == ["/hop", "/hop"]


def test_tls_verifies_the_name_while_connecting_to_the_pinned_address(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=wiki.corp.test", "-addext",
                    "subjectAltName=DNS:wiki.corp.test", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd, tls_port = serve(context)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust the test's own certificate
    answers = {"wiki.corp.test": ["127.0.0.1"], "other.corp.test": ["127.0.0.1"]}
    policy = FetchPolicy(allow=["wiki.corp.test", "other.corp.test"], resolve=resolver(answers))
    try:
        assert fetch_url(f"https://wiki.corp.test:{tls_port}/page", policy).data == PAGE
        with pytest.raises(FetchError, match="certificate verify failed"):  # the certificate names wiki only
            fetch_url(f"https://other.corp.test:{tls_port}/page", policy)
    finally:
        httpd.shutdown()


# ---- paths --------------------------------------------------------------------------------------------------

def test_prefix_rules_match_normalised_paths() -> None:
    docs = FetchPolicy(allow=["http://h.test/docs/"])
    for path in ("/docs/%2e%2e/secret", "/docs/%2E%2E/secret", "/docs/..%2fsecret", "/docs/%252e%252e/secret",
                 "/docs/..%5csecret", "/docs/..;/secret", "/docs/.%2e/secret", "/docs/%2e%2e%2f%2e%2e/etc"):
        with pytest.raises(FetchError, match="not in the allow-list"):
            check_allowed("http://h.test" + path, docs)
    for path in ("/docs/", "/docs", "/docs/a/../b", "/docs//..//..//b", "/docs/a%20b.html",
                 "/docs/x?next=../../secret"):
        check_allowed("http://h.test" + path, docs)
    assert normal_path("/a//b/./c/..;x/%2e%2e/d") == "/a/d"


# ---- credentials --------------------------------------------------------------------------------------------

def test_credentials_are_masked_or_stripped() -> None:
    assert redact_url(f"http://svc:{SECRET}@host/a?b=c") == "http://svc:***@host/a?b=c"
    assert redact_url("https://ghp_token@host:8443/x") == "https://***@host:8443/x"
    assert redact_url("http://host/a@b") == "http://host/a@b"
    assert strip_credentials(f"http://svc:{SECRET}@host:81/a") == "http://host:81/a"
    assert strip_credentials("report.pdf") == "report.pdf"


def test_a_fetch_uses_credentials_but_never_shows_them(port: int) -> None:
    policy = FetchPolicy(allow=["127.0.0.1"])
    got = fetch_url(f"http://svc:{SECRET}@127.0.0.1:{port}/private", policy)
    assert got.data == PAGE
    assert got.url == got.metadata["url"] == f"http://127.0.0.1:{port}/private"
    with pytest.raises(FetchError) as refused:
        fetch_url(f"http://svc:{SECRET}@127.0.0.1:{port}/missing", policy)
    assert str(refused.value) == f"http://svc:***@127.0.0.1:{port}/missing: HTTP 404 Not Found"


# ---- through the server -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose allow-list is only a wildcard: loopback test sites are not listed."""
    s = start_server(tmp_path_factory.mktemp("temper-any-host"), {"TEMPER_KB_URL_ALLOW": "*"})
    yield s
    stop_server(s)


def test_the_api_refuses_private_and_loopback_sources(open_server: Server, port: int) -> None:
    kb = create_kb(open_server, "anywhere")
    for url, kind in {**SPECIAL, f"http://127.0.0.1:{port}/page": "loopback"}.items():
        r = open_server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/documents/urls", json={"urls": [url]})
        assert r.status_code == 400, (url, r.text)
        error = r.json()["error"]
        assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "url_not_allowed", "urls")
        assert f" {kind} address" in error["message"] and "TEMPER_KB_URL_ALLOW" in error["message"]
    # a name is checked when it is fetched: 2130706433 is 127.0.0.1 to the resolver
    r = open_server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/documents/urls",
                        json={"urls": [f"http://2130706433:{port}/page"]})
    assert r.status_code == 202, r.text
    wait_job(open_server, r.json()["job"]["id"])
    [doc] = open_server.api("GET", f"/api/v1/knowledge-bases/{kb['id']}/documents").json()["data"]
    assert doc["status"] == "failed" and "resolves to 127.0.0.1, a loopback address" in doc["error"], doc
    assert Site.seen == []


def test_source_credentials_never_reach_documents_chunks_or_the_index(server: Server, port: int) -> None:
    kb = create_kb(server, "handbook")
    base = f"http://127.0.0.1:{port}"
    r = server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/documents/urls",
                   json={"urls": [f"http://svc:{SECRET}@127.0.0.1:{port}/private",
                                  f"http://svc:{SECRET}@127.0.0.1:{port}/missing"]})
    assert r.status_code == 202, r.text
    job = wait_job(server, r.json()["job"]["id"])
    shown = [r.text]
    docs = server.api("GET", f"/api/v1/knowledge-bases/{kb['id']}/documents")
    shown.append(docs.text)
    private, missing = sorted(docs.json()["data"], key=lambda d: d["source"], reverse=True)
    assert private["status"] == "indexed", private  # fetched with the credentials: the site wants them
    assert private["source"] == f"http://svc:***@127.0.0.1:{port}/private"
    assert private["title"] == "Internal handbook" and private["metadata"]["url"] == f"{base}/private"
    assert missing["status"] == "failed"
    assert missing["error"] == f"http://svc:***@127.0.0.1:{port}/missing: HTTP 404 Not Found"
    assert missing["title"] == f"{base}/missing"

    hits = retrieve(server, kb["id"], "where are badges for the north entrance collected")
    assert "front desk" in hits[0]["text"] and hits[0]["source"] == private["source"]
    for path in (f"/api/v1/knowledge-bases/{kb['id']}/documents/{private['id']}",
                 f"/api/v1/knowledge-bases/{kb['id']}/documents/{private['id']}/chunks",
                 f"/api/v1/knowledge-bases/{kb['id']}/jobs", f"/api/v1/jobs/{job['id']}", "/api/v1/traces/export"):
        shown.append(server.api("GET", path).text)
    shown.append(str(hits))
    assert not [text for text in shown if SECRET in text]

    # stored: only the source's own row keeps the URL it is fetched with
    with sqlite3.connect(server.home / "temper.db") as conn:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        leaks = []
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM "{table}"')  # names from sqlite_master
            columns = [c[0] for c in cursor.description]
            for row in cursor:
                leaks += [(table, column) for column, value in zip(columns, row) if SECRET in str(value)
                          and (table, column) != ("kb_documents", "source")]
        stored = conn.execute("SELECT source FROM kb_documents WHERE id = ?", (private["id"],)).fetchone()[0]
    conn.close()
    assert leaks == [] and SECRET in stored
    index = server.home / "knowledge" / kb["id"]
    assert not [f for f in index.rglob("*") if f.is_file() and SECRET.encode() in f.read_bytes()]
