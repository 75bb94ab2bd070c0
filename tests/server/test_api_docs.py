"""The API docs page (/docs): Swagger UI served from the package's own vendored files, under the console's CSP."""
from __future__ import annotations

import re

import httpx

from tests.conftest import Server


def test_docs_use_only_vendored_assets_under_a_strict_csp(server: Server) -> None:
    r = httpx.get(server.url + "/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    refs = re.findall(r'(?:src|href)="([^"]*)"', r.text)
    assert refs and all(ref.startswith("/") and not ref.startswith("//") for ref in refs), refs
    assert "http://" not in r.text and "https://" not in r.text
    scripts = r.text.split("<script")[1:]
    assert scripts and all(" src=" in s.split(">", 1)[0] and s.split(">", 1)[1].startswith("</script")
                           for s in scripts)  # nothing inline for the CSP to block
    csp = {d.split()[0]: d.split()[1:] for d in r.headers["content-security-policy"].split(";") if d.strip()}
    assert csp["script-src"] == ["'self'"] and csp["default-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"] and r.headers["x-frame-options"] == "DENY"
    for ref in refs:
        asset = httpx.get(server.url + ref)
        assert asset.status_code == 200 and "content-security-policy" in asset.headers, ref
    bundle = httpx.get(server.url + "/assets/vendor/swagger-ui-bundle.js")
    assert "javascript" in bundle.headers["content-type"] and "SwaggerUIBundle" in bundle.text
    assert httpx.get(server.url + "/openapi.json").json()["info"]["title"] == "Temper"


def test_no_page_loads_scripts_from_a_cdn(server: Server) -> None:
    r = httpx.get(server.url + "/redoc")  # FastAPI's ReDoc page loaded its script from a CDN: not served
    assert r.status_code == 404 and "https://" not in r.text
