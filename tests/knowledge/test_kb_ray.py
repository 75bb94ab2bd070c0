"""Knowledge ingestion on a real local Ray cluster (``TEMPER_JOBS_BACKEND=ray``): the job runs as a Ray task,
records its index changes, and the server that owns the embedded index applies them; cancel works there too."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Server, start_server, stop_server, wait_job
from tests.knowledge.test_kb_api import create_kb, ingest_trace, retrieve, upload
from tests.knowledge.test_kb_recovery import document

pytest.importorskip("ray")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home: Path = tmp_path_factory.mktemp("temper-ray")
    s = start_server(home, {"TEMPER_JOBS_BACKEND": "ray", "TEMPER_JOB_CPUS": "2"}, ready_s=120)
    try:
        yield s
    finally:
        stop_server(s)


def test_ingestion_runs_as_a_ray_task_and_is_searchable(server: Server) -> None:
    kb = create_kb(server, "on ray")
    job = wait_job(server, upload(server, kb["id"], [(f"m{i}.md", document(i)) for i in range(3)])["job"]["id"],
                   timeout=180)
    assert job["status"] == "succeeded" and job["message"].startswith("3 of 3 documents indexed"), job
    assert ":ray:" in job["worker"]
    state = server.api("GET", f"/api/v1/knowledge-bases/{kb['id']}").json()
    assert state["documents"]["indexed"] == 3 and state["indexed_chunks"] == state["chunks"] > 0
    assert retrieve(server, kb["id"], "keyword1alpha", retrieval={"mode": "keyword"})[0]["source"] == "m1.md"
    root = ingest_trace(server, job["id"])["spans"][0]
    assert root["attributes"]["process.pid"] != server.proc.pid


def test_cancelling_an_ingestion_on_ray_keeps_what_was_live(server: Server) -> None:
    kb = create_kb(server, "cancel on ray")
    first = upload(server, kb["id"], [("m0.md", document(0))])["job"]["id"]
    assert wait_job(server, first, timeout=180)["status"] == "succeeded"
    job_id = upload(server, kb["id"], [("m0.md", document(0) + b"\n\nchanged"),
                                       *[(f"m{i}.md", document(i)) for i in range(1, 40)]])["job"]["id"]
    deadline = time.monotonic() + 120
    while (running := server.api("GET", f"/api/v1/jobs/{job_id}").json())["done"] == 0:
        assert running["status"] in ("queued", "running") and time.monotonic() < deadline, running
        time.sleep(0.05)
    assert server.api("POST", f"/api/v1/jobs/{job_id}/cancel").status_code == 200
    job = wait_job(server, job_id, timeout=180)
    assert job["status"] == "cancelled", job
    docs = {d["source"]: d for d in server.api("GET", f"/api/v1/knowledge-bases/{kb['id']}/documents",
                                                params={"limit": 100}).json()["data"]}
    assert docs["m0.md"]["chunks"] > 0  # the live version stayed searchable
    assert retrieve(server, kb["id"], "keyword0alpha", retrieval={"mode": "keyword"})[0]["source"] == "m0.md"
    assert all(d["status"] in ("indexed", "failed") for d in docs.values())  # none left half-done
