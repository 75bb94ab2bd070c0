"""Jobs through a real server: submit a plugin kind, follow it, read its events, list and download its
artifacts over the management API and with the CLI, cancel; scoped to the caller's workspace."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx

from tests.conftest import Server, wait_job


def test_a_job_with_events_and_artifacts_through_the_api(server: Server) -> None:
    kinds = server.api("GET", "/api/v1/jobs/kinds").json()["data"]
    assert {"name": "diag.cpu", "cpus": 1.0, "gpus": 0.0, "unit": "steps"}.items() <= \
        next(k for k in kinds if k["name"] == "diag.cpu").items()
    r = server.api("POST", "/api/v1/jobs", json={"kind": "diag.cpu", "spec": {"steps": 10, "ms_per_step": 10}})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    assert r.json()["payload"]["key_id"] == "key_admin" and r.json()["unit"] == "steps"
    job = wait_job(server, job_id, timeout=30)
    assert (job["status"], job["percent"], job["artifacts"]) == ("succeeded", 100.0, 1)

    events = server.api("GET", f"/api/v1/jobs/{job_id}/events").json()
    started = events["data"][0]
    assert started["message"] == "started" and started["data"]["pid"] != server.proc.pid  # a worker process
    assert server.api("GET", f"/api/v1/jobs/{job_id}/events", params={"after": started["id"]}).json()["data"] == []

    [art] = server.api("GET", f"/api/v1/jobs/{job_id}/artifacts").json()["data"]
    assert (art["name"], art["media_type"]) == ("report.json", "application/json")
    got = server.api("GET", f"/api/v1/jobs/{job_id}/artifacts/report.json")
    assert got.headers["content-type"] == "application/json"
    assert hashlib.sha256(got.content).hexdigest() == art["sha256"] == got.headers["x-content-sha256"]
    assert json.loads(got.content)["pid"] == started["data"]["pid"]

    missing = server.api("GET", f"/api/v1/jobs/{job_id}/artifacts/model/weights.bin")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "artifact_not_found"
    unknown = server.api("POST", "/api/v1/jobs", json={"kind": "train.llm", "spec": {}})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "job_kind_not_found"

    db = server.db()
    with db:
        db.execute("insert or ignore into workspaces (id, name, created_at) values ('ws_jobs', 'other', "
                   "'2026-01-01 00:00:00')")
    db.close()
    other = {"Authorization": f"Bearer {server.key(name='elsewhere', workspace_id='ws_jobs')}"}
    for path in (f"/api/v1/jobs/{job_id}/artifacts", f"/api/v1/jobs/{job_id}/artifacts/report.json",
                 f"/api/v1/jobs/{job_id}/events"):
        assert httpx.get(server.url + path, headers=other).status_code == 404
    denied = httpx.post(server.url + "/api/v1/jobs", headers=other, json={"kind": "diag.cpu", "spec": {}})
    assert denied.status_code == 403


def test_jobs_from_the_cli(server: Server, tmp_path: Path) -> None:
    out = server.cli("jobs", "submit", "diag.cpu", "--spec", '{"steps": 5, "ms_per_step": 10}', "--follow").stdout
    job_id = out.split()[1]
    assert "succeeded" in out and "report.json" in out
    assert job_id in server.cli("jobs", "list", "--kind", "diag.cpu").stdout
    server.cli("jobs", "download", job_id, "-o", str(tmp_path / "all"))
    assert json.loads((tmp_path / "all" / "report.json").read_text())["steps"] == 5

    long = server.api("POST", "/api/v1/jobs", json={"kind": "diag.cpu", "spec": {"steps": 100_000}}).json()
    server.cli("jobs", "cancel", long["id"])
    followed = server.cli("jobs", "show", long["id"], "--follow", check=False)
    assert followed.returncode == 1 and "cancelled" in followed.stderr
