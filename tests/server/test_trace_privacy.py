"""Personal data in traces, end to end through a real server and the official SDK: stored masked by default;
in a workspace that opts out, stored verbatim, which admins read as it is and members only masked."""
from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import Server, start_server, stop_server
from tests.upstream import Upstream

SECRETS = ("zhang.san@example.com", "+86 138 1234 5678", "4111 1111 1111 1111", "11010519491231002X")
TEXT = ("请帮我记下：邮箱 zhang.san@example.com，手机 +86 138 1234 5678，卡号 4111 1111 1111 1111，"
        "身份证 11010519491231002X。")


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Server:
    s = start_server(tmp_path_factory.mktemp("privacy"), {"TEMPER_TRACE_FLUSH_S": "0.05"})
    r = s.api("POST", "/api/v1/models", json={"id": "embed", "modality": "embedding", "base_url": upstream.base_url})
    assert r.status_code == 201, r.text
    yield s
    stop_server(s)


def embed(server: Server, key: str | None = None) -> str:
    """An embeddings request with personal data in its input; its trace id, once the trace is stored."""
    r = server.client(key).embeddings.with_raw_response.create(model="embed", input=[TEXT, "second input"])
    assert len(r.parse().data) == 2
    trace_id = r.headers["x-trace-id"]
    deadline = time.monotonic() + 30  # the first batch starts the span writer process
    while server.api("GET", f"/api/v1/traces/{trace_id}").status_code == 404 and time.monotonic() < deadline:
        time.sleep(0.1)
    return trace_id


def stored(server: Server, trace_id: str) -> str:
    """The trace's row as the database holds it."""
    with server.db() as conn:
        row = conn.execute("SELECT raw_input, raw_output, input, output, error, spans FROM traces WHERE trace_id = ?",
                           (trace_id,)).fetchone()
    assert row is not None
    return " ".join(str(v) for v in row)


def read(server: Server, key: str, path: str, **params: object) -> str:
    r = httpx.get(server.url + path, headers={"Authorization": f"Bearer {key}"}, params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r.text


def views(server: Server, key: str, trace_id: str) -> list[str]:
    """Every way the API shows the trace: one trace, a list, a search, an export."""
    return [read(server, key, f"/api/v1/traces/{trace_id}"), read(server, key, "/api/v1/traces"),
            read(server, key, "/api/v1/traces", q="zhang"), read(server, key, "/api/v1/traces/export")]


def test_personal_data_is_stored_masked_by_default(studio: Server) -> None:
    trace_id = embed(studio)
    shown = views(studio, studio.admin_key, trace_id)
    assert trace_id in shown[0] and trace_id in shown[1] and trace_id in shown[3]
    for text in (stored(studio, trace_id), *shown):
        for secret in SECRETS:
            assert secret not in text
    assert "邮箱 <email>，手机 <phone>，卡号 <card-number>，身份证 <id-number>" in shown[0]
    settings = studio.api("GET", "/api/v1/traces/settings").json()
    assert settings["mask_pii"] is True and settings["mask_pii_workspace"] is None


def test_opted_out_traces_are_verbatim_for_admins_and_masked_for_members(studio: Server) -> None:
    member = studio.key(name="privacy-member")
    h = {"Authorization": f"Bearer {member}"}
    refused = httpx.put(studio.url + "/api/v1/traces/settings", headers=h, json={"mask_pii": False})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_required"
    bad = studio.api("PUT", "/api/v1/traces/settings", json={"mask_pii": "sometimes"})
    assert bad.status_code == 400 and "error" in bad.json()
    r = studio.api("PUT", "/api/v1/traces/settings", json={"mask_pii": False})
    assert r.status_code == 200 and r.json()["mask_pii"] is False and r.json()["mask_pii_workspace"] is False
    try:
        theirs, mine = embed(studio, member), embed(studio)
        admin_views = views(studio, studio.admin_key, theirs)
        for trace_id in (theirs, mine):
            text = stored(studio, trace_id)
            assert all(secret in text for secret in SECRETS)
        for text in (admin_views[0], admin_views[3]):
            assert all(secret in text for secret in SECRETS)
        member_views = views(studio, member, theirs)
        assert theirs in member_views[0] and theirs in member_views[1] and theirs in member_views[3]
        for text in member_views:
            for secret in SECRETS:
                assert secret not in text
        assert "<email>" in member_views[0] and "<id-number>" in member_views[3]
    finally:
        reset = studio.api("PUT", "/api/v1/traces/settings", json={"mask_pii": None})
        assert reset.status_code == 200 and reset.json()["mask_pii"] is True
    assert all(secret not in stored(studio, embed(studio)) for secret in SECRETS)
