"""The server: ``/v1/...`` goes to the lean OpenAI gateway, everything else to the FastAPI management app."""
from __future__ import annotations

import gc
import logging
import os
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException

from temper import __version__
from temper.config import Settings, get_settings
from temper.errors import TemperError, validation_params
from temper.server.api import annotations, auth, jobs, keys, knowledge, models, prompts, traces, usage, users
from temper.server.body_guard import BodyGuard
from temper.server.console import routes as console_routes
from temper.server.openai.gateway import Gateway, Receive, Scope, Send
from temper.server.runtime import Runtime

log = logging.getLogger("temper.server")
GC_YOUNG_THRESHOLD = 10_000  # net container allocations between young collections (CPython's default: 700)


def _error(status: int, message: str, *, param: str | None = None, code: str | None = None,
           etype: str = "invalid_request_error", headers: dict[str, str] | None = None,
           params: dict[str, Any] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": etype, "param": param, "code": code,
                                   "params": params or {}}}, status_code=status, headers=headers)


def management_app(rt: Runtime) -> FastAPI:
    app = FastAPI(title="Temper", version=__version__, description=(
        "Management API of Temper. The OpenAI-compatible API lives under /v1 (see docs/api.md)."),
        docs_url=None, redoc_url=None)  # FastAPI's pages load scripts from a CDN: /docs is the console's
    app.state.runtime = rt
    app.add_middleware(GZipMiddleware, minimum_size=2048)  # console assets and large lists; /v1 never passes here

    @app.exception_handler(TemperError)
    async def temper_error(_: Request, e: TemperError) -> JSONResponse:
        return JSONResponse(e.body(), status_code=e.status, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        loc = [str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path")]
        param = ".".join(loc) or None
        return _error(400, f"Invalid '{param}': {first.get('msg', 'invalid request')}." if param
                      else str(first.get("msg", "invalid request")), param=param, code="invalid_value",
                      params=validation_params(first, param))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, e: HTTPException) -> JSONResponse:
        code = {404: "unknown_url", 405: "method_not_allowed"}.get(e.status_code)
        return _error(e.status_code, str(e.detail), code=code)

    @app.exception_handler(Exception)
    async def crash(_: Request, e: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return _error(500, "The server had an error while processing your request.", etype="server_error",
                      code="internal_error")

    @app.get("/health", tags=["health"])
    async def health(lag_window_s: float | None = Query(
            None, gt=0, le=60, description="Event-loop lag over the last N seconds (default: the last minute).")
            ) -> dict[str, Any]:
        # async, and touching no thread pool or database: it answers while those are busy
        return {"status": "ok", "version": __version__, "models": len(rt.catalog.entries),
                "event_loop_lag": rt.loop_lag.stats(lag_window_s)}

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    async def metrics() -> str:
        """Prometheus text: the event loop's lag."""
        return rt.loop_lag.prometheus()

    app.include_router(models.router)
    app.include_router(keys.router)
    app.include_router(usage.router)
    app.include_router(users.router)
    app.include_router(prompts.router)
    app.include_router(traces.router)
    app.include_router(annotations.router)
    app.include_router(knowledge.router)
    app.include_router(jobs.router)
    app.include_router(auth.router)
    console_routes.mount(app)
    return app


def _with_request_id(send: Send) -> Send:
    rid = ("req_" + os.urandom(12).hex()).encode()

    async def wrapped(msg: dict) -> None:
        if msg["type"] == "http.response.start":
            msg["headers"] = [*msg.get("headers", ()), (b"x-request-id", rid)]
        await send(msg)

    return wrapped


class TemperApp:
    """The ASGI entry point; owns the lifespan (start/stop of the runtime)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.runtime = Runtime(settings or get_settings())
        self.gateway = Gateway(self.runtime)
        s = self.runtime.settings
        self.management = BodyGuard(management_app(self.runtime), self.runtime.auth,
                                    json_limit=s.max_body_kb * 1024, upload_limit=s.max_upload_mb * 1024 * 1024,
                                    text_limit=min(s.max_file_mb, s.max_upload_mb) * 1024 * 1024)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" and scope["path"].startswith("/v1/"):
            await self.gateway(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "http":
            await self.management(scope, receive, _with_request_id(send))
        else:
            await self.management(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.runtime.start()
                except Exception as e:  # noqa: BLE001 - reported to the server, which exits cleanly
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                # what startup made (modules, the app, the catalogue) lives as long as the process: out of
                # the collector's way, so full collections under load walk only what requests made
                gc.freeze()
                # at the default threshold a young collection walked the objects of every request in flight
                # about every 70 requests: 3 µs per request (6–9 µs with tracing on, whose finished spans
                # wait for export). Nearly all a request allocates is freed by reference counting, so a
                # higher threshold collects rarely, and cycles wait a little longer (docs/performance.md)
                gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self.runtime.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(settings: Settings | None = None) -> TemperApp:
    return TemperApp(settings)

