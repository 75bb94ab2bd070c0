"""Serves the console: static assets under ``/assets``, the API docs page and the page shell for every console
path."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from temper.errors import NotFound

STATIC = Path(__file__).parent / "static"
# First path segments that are not console pages: the API and docs keep their own 404s.
RESERVED = frozenset({"api", "v1", "assets", "docs", "redoc", "openapi.json", "health"})
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


class Assets(StaticFiles):
    """Static files that browsers revalidate (ETag) so an upgrade never runs stale modules."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                msg["headers"] = [*msg.get("headers", ()), (b"cache-control", b"no-cache"),
                                  *((k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items())]
            await send(msg)

        await super().__call__(scope, receive, with_headers)


router = APIRouter(include_in_schema=False)


def _unknown(request: Request) -> NotFound:
    return NotFound(f"Unknown request URL: {request.method} {request.url.path}.", code="unknown_url")


@router.get("/docs")
def api_docs() -> Response:
    """Swagger UI for the management API, from vendored files (``make vendor``) under the console's CSP."""
    return HTMLResponse((STATIC / "docs.html").read_bytes(), headers={"cache-control": "no-cache", **SECURITY_HEADERS})


@router.get("/{path:path}")
def shell(path: str, request: Request) -> Response:
    """The page shell for any console URL; the client-side router renders the page."""
    if path.split("/", 1)[0] in RESERVED:
        raise _unknown(request)
    return HTMLResponse((STATIC / "index.html").read_bytes(),
                        headers={"cache-control": "no-cache", **SECURITY_HEADERS})


@router.api_route("/{path:path}", methods=["POST", "PUT", "PATCH", "DELETE"])
def unknown(request: Request) -> Response:
    """Other methods on paths no route claims: 404, as before the shell route matched every path."""
    raise _unknown(request)


def mount(app: FastAPI) -> None:
    """Add the console to the management app; call last, since the shell route matches every path."""
    app.mount("/assets", Assets(directory=STATIC), name="assets")
    app.include_router(router)
