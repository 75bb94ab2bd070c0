"""``kill -9`` in the middle of ingestion: nothing half-indexed is visible, and a restart finishes the job."""
from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

from tests.conftest import start_server, stop_server, wait_job
from tests.knowledge.test_kb_api import create_kb, retrieve, upload


def document(i: int) -> bytes:
    sections = [f"## Topic {i}-{s}\n\n" + " ".join(f"Fact {j} about subject {i}-{s} is number {i * 100 + s * 10 + j}."
                                                   for j in range(25)) for s in range(3)]
    return (f"# Manual {i}\n\nkeyword{i}alpha appears only here.\n\n" + "\n\n".join(sections)).encode()


def visible_state(home: Path) -> list[tuple[str, str, int, int]]:
    """(status, live generation, chunk_count, live chunk rows) per document."""
    with sqlite3.connect(home / "temper.db") as db:
        return db.execute("""SELECT d.status, d.live_generation, d.chunk_count,
                                    (SELECT count(*) FROM kb_chunks c WHERE c.document_id = d.id
                                     AND c.generation = d.live_generation AND c.role = 'chunk')
                             FROM kb_documents d""").fetchall()


def test_kill_9_mid_ingestion_leaves_nothing_half_visible_and_a_restart_finishes(tmp_path: Path) -> None:
    env = {"TEMPER_JOB_STALE_AFTER_S": "2"}
    server = start_server(tmp_path, env)
    try:
        kb = create_kb(server, "crash")
        job_id = upload(server, kb["id"], [(f"m{i}.md", document(i)) for i in range(8)])["job"]["id"]
        deadline = time.time() + 120
        while time.time() < deadline:
            job = server.api("GET", f"/api/v1/jobs/{job_id}").json()
            if job["status"] == "running" and 0 < job["done"] and job["total"] - job["done"] > 8:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"never caught the job mid-way: {job}")
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
    except BaseException:
        stop_server(server)
        raise

    state = visible_state(tmp_path)
    assert any(live == 0 for _, live, _, _ in state), state  # it really died mid-way
    for status, live, count, rows in state:
        assert (rows == count > 0) if live else (rows == count == 0), state  # all of a document, or none of it

    server = start_server(tmp_path, env)  # the stale job is requeued and runs again
    try:
        job = wait_job(server, job_id, timeout=180)
        assert job["status"] == "succeeded" and job["attempts"] == 2, job
        state = server.api("GET", f"/api/v1/knowledge-bases/{kb['id']}").json()
        assert state["documents"]["indexed"] == 8
        assert state["indexed_chunks"] == state["chunks"]  # the killed attempt's points were cleared
        for i in (0, 7):
            hits = retrieve(server, kb["id"], f"keyword{i}alpha", retrieval={"mode": "keyword"})
            assert hits[0]["source"] == f"m{i}.md"
    finally:
        stop_server(server)
