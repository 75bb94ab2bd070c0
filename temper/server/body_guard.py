"""Management requests with a body: the caller is checked before a byte of the body is read, and the body's
size is bounded, by its ``Content-Length`` (refused at once) and by counting what arrives (chunked bodies).

Without this, FastAPI reads and parses a whole body before any dependency runs: a keyless 1 GB sign-in
request grew the server by 2.8 GB, and 100 MB to a knowledge-base route was read for 9 s before its 401.
"""
from __future__ import annotations

import re

from starlette.exceptions import HTTPException

from temper.auth.authenticator import Authenticator
from temper.auth.sessions import CSRF_HEADER
from temper.errors import TemperError
from temper.server.openai.gateway import Receive, Scope, Send, send_error

BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_ROUTES = frozenset({"/api/v1/auth/session"})  # signing in is how a caller gets a session
UPLOADS = re.compile(r"^/api/v1/knowledge-bases/[^/]+/documents/?$")  # files, streamed to disk one by one
PASTED = re.compile(r"^/api/v1/knowledge-bases/[^/]+/documents/text/?$")  # pasted text: one file, in JSON


class BodyTooLarge(TemperError, HTTPException):
    """Raised while the body is read; the management app answers it like any ``TemperError`` (a 413). It is
    an ``HTTPException`` too because FastAPI turns any other error raised while it reads a body into a 400."""

    code = "request_too_large"

    def __init__(self, limit: int) -> None:
        message = f"The request body is larger than {limit // 1024:,} KiB, the most this route accepts."
        HTTPException.__init__(self, status_code=413, detail=message)
        TemperError.__init__(self, message, status=413, params={"max_kib": limit // 1024})


class BodyGuard:
    def __init__(self, app: object, auth: Authenticator, *, json_limit: int, upload_limit: int,
                 text_limit: int) -> None:
        self.app = app
        self.auth = auth
        self.json_limit = json_limit
        self.upload_limit = upload_limit
        self.text_limit = text_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in BODILESS:
            await self.app(scope, receive, send)  # type: ignore[operator]
            return
        path = scope["path"]
        limit = (self.upload_limit if UPLOADS.match(path) else self.text_limit if PASTED.match(path)
                 else self.json_limit)
        headers = dict(scope["headers"])
        try:
            length = int(headers.get(b"content-length", b"0"))
        except ValueError:
            length = 0
        try:
            if length > limit:
                raise BodyTooLarge(limit)
            if path.startswith("/api/") and path.rstrip("/") not in OPEN_ROUTES:
                await self.auth.identify_headers(headers.get(b"authorization"), headers.get(b"cookie"),
                                                 headers.get(CSRF_HEADER.encode()), scope["method"])
        except TemperError as e:
            await send_error(send, e, [(b"connection", b"close")])
            return
        await self._bounded(scope, receive, send, limit)

    async def _bounded(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        seen = 0
        started = False

        async def counted() -> dict:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return msg

        async def tracked(msg: dict) -> None:
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, counted, tracked)  # type: ignore[operator]
        except BodyTooLarge as e:  # read outside the app's error handlers (a streaming route)
            if not started:
                await send_error(send, e, [(b"connection", b"close")])
