"""What one document or upload may cost, on a real server with small limits: uploads stream to disk and are
refused past the per-file limit without being held in memory; an Office file that would unzip past its limit
fails before it is expanded; text, titles and metadata are bounded (a database row's 1 MB title is stored once,
cut, not copied into every chunk); a cancel stops parsing promptly and leaves no half-built chunks behind."""
from __future__ import annotations

import io
import select
import socket
import sqlite3
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docx
import pytest

from tests.conftest import Server, start_server, stop_server, wait_job
from tests.knowledge.test_kb_api import create_kb, retrieve, upload
from tests.knowledge.test_kb_recovery import document

MIB = 1024 * 1024
TEXT_CHARS = 8_000  # a few chunks: embedding is the slow part


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("temper-limits"), {
        "TEMPER_MAX_FILE_MB": "2", "TEMPER_KB_MAX_UNZIPPED_MB": "8", "TEMPER_KB_MAX_TEXT_CHARS": str(TEXT_CHARS),
        "TEMPER_KB_MAX_METADATA_KB": "1", "TEMPER_JOB_CANCEL_GRACE_S": "120"})  # a cancel ignored shows as a hang
    yield s
    stop_server(s)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def staged(server: Server) -> list[Path]:
    """Uploads being received (or left behind)."""
    return list((server.home / "knowledge" / ".incoming").glob("*"))


def multipart_head(server: Server, kb_id: str, name: str, size: int) -> tuple[str, bytes, bytes]:
    """The request head, the part's head and the closing boundary of a one-file upload of ``size`` bytes."""
    part = (f'--b0und\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: application/pdf\r\n\r\n").encode()
    end = b"\r\n--b0und--\r\n"
    head = (f"POST /api/v1/knowledge-bases/{kb_id}/documents HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {server.admin_key}\r\nContent-Type: multipart/form-data; boundary=b0und\r\n"
            f"Content-Length: {len(part) + size + len(end)}\r\n\r\n")
    return head, part, end


def send(server: Server, head: str, body: Iterator[bytes], timeout_s: float = 60) -> tuple[int, float]:
    """Send a request, its body as fast as the server takes it, until the server answers: the status, and the
    seconds it took."""
    u = urlsplit(server.url)
    chunks = iter(body)
    pending: bytes | None = head.encode()
    reply = b""
    with socket.create_connection((u.hostname, u.port), timeout=timeout_s) as s:
        t0 = time.perf_counter()
        while b"\r\n" not in reply:
            assert time.perf_counter() - t0 < timeout_s, "no answer"
            readable, writable, _ = select.select([s], [s] if pending is not None else [], [], 1)
            if readable:
                if not (more := s.recv(65536)):
                    break
                reply += more
            elif writable and pending is not None:
                try:
                    pending = pending[s.send(pending):] or next(chunks, None)
                except (BrokenPipeError, ConnectionResetError):
                    pending = None
        return int(reply.split()[1]), time.perf_counter() - t0


def test_an_upload_past_the_file_limit_is_refused_while_it_streams_and_leaves_nothing(server: Server) -> None:
    kb = create_kb(server, "uploads")
    size = 150 * MIB  # within the request limit (512 MiB), far past the file limit (2 MiB)
    head, part, end = multipart_head(server, kb["id"], "big.pdf", size)

    def body() -> Iterator[bytes]:
        yield part
        chunk = b"%PDF" + b"x" * (MIB - 4)
        for _ in range(size // MIB):
            yield chunk
        yield end

    before = peak_rss_mib(server.proc.pid)
    status, seconds = send(server, head, body())
    assert status == 413 and seconds < 10, (status, seconds)
    assert peak_rss_mib(server.proc.pid) - before < 50  # never held in memory
    docs = server.api("GET", f"/api/v1/knowledge-bases/{kb['id']}/documents").json()["data"]
    assert docs == [] and staged(server) == []

    # a client that goes away mid-file leaves nothing either
    head, part, _ = multipart_head(server, kb["id"], "cut.pdf", MIB)
    u = urlsplit(server.url)
    with socket.create_connection((u.hostname, u.port)) as s:
        s.sendall(head.encode() + part + b"%PDF" + b"y" * (MIB // 2))
        deadline = time.monotonic() + 5
        while not staged(server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert staged(server), "the file was not being streamed to disk"
    deadline = time.monotonic() + 5
    while staged(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert staged(server) == []

    # pasted text is one file too
    r = server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/documents/text",
                   json={"title": "long", "text": "word " * (3 * MIB // 5)})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large", r.text

    # files within the limit are stored as sent, and ingested
    small = b"# Small\n\nThe vorplex small file is fine."
    got = upload(server, kb["id"], [("small.md", small), ("again.md", small)], metadata={"team": "a"})
    assert wait_job(server, got["job"]["id"])["status"] == "succeeded"
    stored = server.home / "knowledge" / kb["id"] / "sources" / got["documents"][0]["id"]
    assert stored.read_bytes() == small and staged(server) == []
    assert retrieve(server, kb["id"], "vorplex", filter={"team": "a"})[0]["source"] in ("small.md", "again.md")


def test_metadata_past_its_limit_is_refused(server: Server) -> None:
    kb = create_kb(server, "metadata")
    r = server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/documents/text",
                   json={"title": "t", "text": "some text", "metadata": {"notes": "n" * 2000}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "metadata_too_large", r.text


def _docx_with_body(xml: bytes, first: str) -> bytes:
    """A DOCX of one paragraph ``first`` with ``xml`` put at the start of its body."""
    d = docx.Document()
    d.add_paragraph(first)
    src = zipfile.ZipFile(io.BytesIO(_saved(d)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "word/document.xml":
                data = data.replace(b"<w:body>", b"<w:body>" + xml)
            z.writestr(info.filename, data)
    return out.getvalue()


def bomb_docx(xml_mib: int) -> bytes:
    """A small DOCX whose document.xml unzips to about ``xml_mib`` MiB (whitespace around one paragraph)."""
    return _docx_with_body((b" " * MIB + b"<w:p/>") * xml_mib, "The bomb paragraph.")


def slow_docx(paragraphs: int) -> bytes:
    """A DOCX of many short paragraphs: little text, but seconds of parsing."""
    return _docx_with_body(b"<w:p><w:r><w:t>p</w:t></w:r></w:p>" * paragraphs, "x")


def _saved(d: Any) -> bytes:
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def document_state(server: Server, kb_id: str) -> dict[str, dict[str, Any]]:
    docs = server.api("GET", f"/api/v1/knowledge-bases/{kb_id}/documents", params={"limit": 1000}).json()["data"]
    return {d["source"]: d for d in docs}


def test_an_office_file_that_unzips_past_the_limit_fails_before_it_is_expanded(server: Server) -> None:
    kb = create_kb(server, "bombs")
    blob = bomb_docx(64)
    assert len(blob) < MIB
    got = upload(server, kb["id"], [("bomb.docx", blob), ("fine.docx", bomb_docx(1))])
    job = wait_job(server, got["job"]["id"], timeout=30)
    docs = document_state(server, kb["id"])
    assert docs["fine.docx"]["status"] == "indexed", docs
    assert docs["bomb.docx"]["status"] == "failed" and "TEMPER_KB_MAX_UNZIPPED_MB" in docs["bomb.docx"]["error"]
    assert "expands to 6" in docs["bomb.docx"]["error"] and "1 failed" in job["message"]  # 64 MiB and a bit


def test_text_past_the_limit_is_cut_with_a_warning(server: Server) -> None:
    kb = create_kb(server, "long text")
    paragraphs = [f"Paragraph {i} tells of the plorvex number {i}." for i in range(1000)]  # ~45,000 characters
    got = upload(server, kb["id"], [("long.md", "\n\n".join(paragraphs).encode())])
    assert wait_job(server, got["job"]["id"])["status"] == "succeeded"
    doc = document_state(server, kb["id"])["long.md"]
    assert doc["metadata"]["warnings"] == [f"text cut to its first {TEXT_CHARS:,} characters"]
    with server.db() as db:
        texts = [t for (t,) in db.execute("SELECT text FROM kb_chunks WHERE document_id = ?", (doc["id"],))]
    assert TEXT_CHARS * 0.9 < sum(len(t) for t in texts) <= TEXT_CHARS
    assert any("number 10." in t for t in texts) and not any("number 500." in t for t in texts)


def chunk_bytes(server: Server, doc_id: str) -> tuple[int, int, int]:
    """(chunks, bytes of chunk metadata, bytes of chunk text) stored for a document."""
    with server.db() as db:
        return db.execute("SELECT count(*), coalesce(sum(length(metadata)), 0), coalesce(sum(length(text)), 0) "
                          "FROM kb_chunks WHERE document_id = ?", (doc_id,)).fetchone()


def test_a_database_row_with_a_1_mb_title_is_stored_once_and_cut(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "wide.db"
    title = "Quarterly report " * 62_000  # about 1 MB
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT, body TEXT)")
        db.execute("INSERT INTO notes (title, body) VALUES (?, ?)", (title, "The grelvish note says hello."))
    kb = create_kb(server, "wide rows")
    r = server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/sources", json={
        "name": "notes", "url": f"sqlite:///{path}", "query": "SELECT id, body, title FROM notes",
        "key_column": "id", "title_column": "title"})
    assert r.status_code == 202, r.text
    job = wait_job(server, r.json()["job"]["id"])
    assert job["status"] == "succeeded", job
    doc = document_state(server, kb["id"])["notes#id=1"]
    assert doc["status"] == "indexed" and len(doc["title"]) == 500 and doc["title"].startswith("Quarterly report")
    assert doc["metadata"]["warnings"] == [f"text cut to its first {TEXT_CHARS:,} characters",
                                           "title cut to 500 characters"], doc["metadata"]
    chunks, metadata, text = chunk_bytes(server, doc["id"])
    assert chunks >= 3 and metadata < 100 * chunks, (chunks, metadata)  # no copy of the title in any chunk
    assert text <= TEXT_CHARS
    hit = retrieve(server, kb["id"], "grelvish quarterly", retrieval={"mode": "keyword"})
    assert hit and hit[0]["source"] == "notes#id=1" and hit[0]["document_title"] == doc["title"]


def wait_for(server: Server, job_id: str, ready: Any, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not ready(job := server.api("GET", f"/api/v1/jobs/{job_id}").json()):
        assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
        time.sleep(0.05)
    return job


def test_a_cancel_stops_parsing_promptly(server: Server) -> None:
    kb = create_kb(server, "cancel parsing")
    got = upload(server, kb["id"], [("slow.docx", slow_docx(20_000))])
    wait_for(server, got["job"]["id"], lambda _: document_state(server, kb["id"])["slow.docx"]["status"] != "queued")
    time.sleep(1)  # well into the parse, which takes far longer than this
    asked = time.monotonic()
    assert server.api("POST", f"/api/v1/jobs/{got['job']['id']}/cancel").status_code == 200
    job = wait_job(server, got["job"]["id"], timeout=30)
    assert job["status"] == "cancelled" and job["message"] == "cancelled", job  # not stopped by force
    assert time.monotonic() - asked < 5
    doc = document_state(server, kb["id"])["slow.docx"]
    assert doc["status"] == "failed" and doc["error"] == "ingestion cancelled"


def test_a_cancelled_ingestion_leaves_no_partial_chunks_and_keeps_what_was_live(server: Server) -> None:
    kb = create_kb(server, "cancel cleanup")
    assert wait_job(server, upload(server, kb["id"], [("m0.md", document(0))])["job"]["id"])["status"] == "succeeded"
    job_id = upload(server, kb["id"], [("m0.md", document(0) + b"\n\nchanged"),
                                       *[(f"m{i}.md", document(i)) for i in range(1, 80)]])["job"]["id"]
    wait_for(server, job_id, lambda j: j["done"] > 0)
    assert server.api("POST", f"/api/v1/jobs/{job_id}/cancel").status_code == 200
    job = wait_job(server, job_id, timeout=60)
    assert job["status"] == "cancelled", job
    time.sleep(1)  # the server applies the job's last index changes
    docs = document_state(server, kb["id"])
    assert docs["m0.md"]["chunks"] > 0 and all(d["status"] in ("indexed", "failed") for d in docs.values())
    with server.db() as db:
        hidden = db.execute("SELECT count(*) FROM kb_chunks c JOIN kb_documents d ON d.id = c.document_id "
                            "WHERE d.kb_id = ? AND c.generation != d.live_generation", (kb["id"],)).fetchone()[0]
    assert hidden == 0  # no chunk of an attempt that never went live
    state = server.api("GET", f"/api/v1/knowledge-bases/{kb['id']}").json()
    assert state["indexed_chunks"] == state["chunks"]  # nor in the index
    assert retrieve(server, kb["id"], "keyword0alpha", retrieval={"mode": "keyword"})[0]["source"] == "m0.md"
