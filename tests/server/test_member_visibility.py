"""What a member key may read of the studio's configuration and other people's work (until roles arrive):
no upstream URLs or key variables of deployments, only its own jobs, not where traces are exported."""
from __future__ import annotations

import httpx

from tests.conftest import start_server, stop_server
from tests.upstream import Upstream


def test_members_see_no_deployment_details_other_jobs_or_the_otlp_endpoint(tmp_path, upstream: Upstream) -> None:  # noqa: ANN001
    server = start_server(tmp_path, {"TEMPER_OTLP_ENDPOINT": "http://collector.internal:4318/v1/traces"})
    try:
        r = server.api("POST", "/api/v1/models", json={"id": "vendor", "base_url": upstream.base_url,
                                                       "api_key_env": "VENDOR_SECRET_KEY"})
        assert r.status_code == 201, r.text
        admin_job = server.api("POST", "/api/v1/jobs", json={"kind": "diag.cpu", "spec": {"steps": 0}}).json()
        kb = server.api("POST", "/api/v1/knowledge-bases", json={"name": "vis"}).json()
        server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/documents/text",
                   json={"title": "t", "text": "some text"})
        member = {"Authorization": f"Bearer {server.key(name='member')}"}

        def get(path: str) -> httpx.Response:
            return httpx.get(server.url + path, headers=member)

        shown = get("/api/v1/models/vendor").json()
        assert shown["deployments"] == [{"provider": "openai_compat"}]
        listed = next(m for m in get("/api/v1/models").json()["data"] if m["id"] == "vendor")
        assert "VENDOR_SECRET_KEY" not in str(listed) and upstream.base_url not in str(listed)
        assert server.api("GET", "/api/v1/models/vendor").json()["deployments"][0]["api_key_env"] == "VENDOR_SECRET_KEY"

        assert get("/api/v1/jobs").json()["data"] == []
        assert get(f"/api/v1/jobs/{admin_job['id']}").status_code == 404
        assert get(f"/api/v1/jobs/{admin_job['id']}/events").status_code == 404
        assert [j["id"] for j in server.api("GET", "/api/v1/jobs").json()["data"]]  # admins see them all
        kb_jobs = get(f"/api/v1/knowledge-bases/{kb['id']}").json()["jobs"]
        assert kb_jobs and all(j["payload"] == {} and j["worker"] is None for j in kb_jobs)

        assert get("/api/v1/traces/exporter").json()["otlp_endpoint"] is None
        assert server.api("GET", "/api/v1/traces/exporter").json()["otlp_endpoint"].startswith("http://collector")
    finally:
        stop_server(server)
