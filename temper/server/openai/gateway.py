"""The OpenAI-compatible surface (``/v1/...``) as a lean ASGI app.

One pipeline for every endpoint: authenticate → parse → resolve the model → validate → admit (limits,
budget) → route → respond (JSON or SSE) → meter. No framework routing or pydantic models on this path:
it is measured in microseconds of CPU per request (docs/performance.md).
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from temper.auth.keys import KeyInfo
from temper.auth.sessions import CSRF_HEADER
from temper.errors import InvalidRequest, ModelNotFound, NotFound, PermissionDenied, TemperError
from temper.models.catalog import ModelEntry
from temper.models.fair import REQUESTER
from temper.models.metering import Admission, usage_row
from temper.models.provider import Operation, Reply
from temper.models.router import GEN_AI_OPERATION
from temper.ops import tracing
from temper.ops.tracing import (APP_ID, COST, INPUT_TOKENS, KEY_ID, OPERATION, OUTPUT_TOKENS, REQUEST_MODEL,
                                RESPONSE_MODEL, TTFT_MS)
from temper.server.openai import protocol
from temper.server.runtime import Runtime

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

log = logging.getLogger("temper.gateway")
MAX_BODY = 32 * 1024 * 1024
POST_ROUTES: dict[str, Operation] = {"/v1/chat/completions": "chat", "/v1/completions": "completion",
                                     "/v1/embeddings": "embedding", "/v1/rerank": "rerank"}
JSON_CT = (b"content-type", b"application/json")
SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
               (b"x-accel-buffering", b"no")]
CLIENT_CLOSED = 499
MAX_TRACED_BODY = tracing.MAX_PAYLOAD  # of a larger request body the trace keeps this much
# The gateway span's attributes, as (names, values) (see tracing.Attributes): what metering recorded, then
# what the request asked for
SPAN_ATTRIBUTES = (OPERATION, KEY_ID, "temper.request_id", APP_ID, RESPONSE_MODEL, INPUT_TOKENS, OUTPUT_TOKENS, COST,
                   TTFT_MS, "temper.stream", "http.response.status_code", REQUEST_MODEL, "gen_ai.request.temperature",
                   "gen_ai.request.top_p", "gen_ai.request.max_tokens", "gen_ai.request.seed", "temper.loop_lag_ms")
NOT_PARSED = (None,) * 5  # what the request asked for, when it was no JSON object


def internal_error(request_id: str) -> TemperError:
    return TemperError(f"The server had an error while processing your request. Please retry; if the error "
                       f"persists, report it with the request id {request_id}.", status=500, code="internal_error",
                       etype="server_error")


class ClientGone(Exception):
    """The client disconnected before the answer was complete."""


def _header(scope: Scope, name: bytes) -> bytes | None:
    for k, v in scope["headers"]:
        if k == name:
            return v
    return None


def _app_id(scope: Scope) -> str | None:
    """The calling application's name from ``x-temper-app``: up to 64 printable ASCII characters."""
    raw = _header(scope, b"x-temper-app")
    if not raw:
        return None
    text = raw.decode("latin-1")
    if len(text) > 64 or not text.isascii() or not text.isprintable():
        raise InvalidRequest("The x-temper-app header must be at most 64 printable ASCII characters.",
                             param="x-temper-app", code="invalid_header")
    return text


async def _read_body(receive: Receive) -> bytes:
    msg = await receive()
    body = msg.get("body", b"")
    if not msg.get("more_body"):
        return body
    parts = [body]
    size = len(body)
    while msg.get("more_body"):
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise ClientGone()
        parts.append(msg.get("body", b""))
        size += len(parts[-1])
        if size > MAX_BODY:
            raise TemperError(f"Request body exceeds {MAX_BODY // (1024 * 1024)} MiB.", status=413,
                              code="request_too_large")
    return b"".join(parts)


async def send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [JSON_CT, (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, e: TemperError, headers: list[tuple[bytes, bytes]]) -> None:
    extra = [(k.encode(), v.encode()) for k, v in e.headers.items()]
    await send_json(send, e.status, orjson.dumps(e.body()), headers + extra)


class Gateway:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = "req_" + os.urandom(12).hex()
        headers = [(b"x-request-id", rid.encode())]
        path = scope["path"].rstrip("/")
        op = POST_ROUTES.get(path)
        try:
            if op is not None:
                if scope["method"] != "POST":
                    raise TemperError(f"Method {scope['method']} is not allowed on {path}; use POST.", status=405,
                                      code="method_not_allowed")
                await self.handle(op, scope, receive, send, rid, headers)
            elif path == "/v1/models" or path.startswith("/v1/models/"):
                key = await self.key(scope)
                await send_json(send, 200, self.models(path[len("/v1/models/"):], key), headers)
            else:
                raise NotFound(f"Unknown request URL: {scope['method']} {scope['path']}.", code="unknown_url")
        except TemperError as e:
            await send_error(send, e, headers)
        except Exception:  # noqa: BLE001 - a bug: an OpenAI-shaped 500 rather than the server's plain text
            log.exception("request %s failed", rid)
            await send_error(send, internal_error(rid), headers)

    async def key(self, scope: Scope) -> KeyInfo:
        """A Bearer key, else the console session in the cookie (the playground calls /v1 directly)."""
        authorization = _header(scope, b"authorization")
        if authorization:  # the hot path: an in-memory key ring, no cookie parsing
            return self.rt.auth.authenticate(authorization)
        return await self.rt.auth.identify_headers(None, _header(scope, b"cookie"),
                                                   _header(scope, CSRF_HEADER.encode()), scope["method"])

    def models(self, model_id: str, key: KeyInfo) -> bytes:
        """The models this key may use (all of them for a key without a model list)."""
        if model_id:
            try:
                entry = self.rt.models.resolve(model_id, key)
            except PermissionDenied:
                raise ModelNotFound(f"The model `{model_id}` does not exist or you do not have access to it.",
                                    param="model", params={"model": model_id}) from None
            return orjson.dumps(entry.openai_object())
        return orjson.dumps({"object": "list", "data": [e.openai_object() for e in self.rt.models.visible(key)]})

    def _resolve(self, key: KeyInfo, req: Any, op: Operation) -> ModelEntry:
        if not isinstance(req, dict):
            raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
        name = req.get("model")
        if not isinstance(name, str) or not name:
            raise InvalidRequest("Missing required parameter: 'model'.", param="model",
                                 code="missing_required_parameter")
        return self.rt.models.resolve(name, key, op)

    async def handle(self, op: Operation, scope: Scope, receive: Receive, send: Send, rid: str,
                     headers: list[tuple[bytes, bytes]]) -> None:
        t0 = time.perf_counter()
        models = self.rt.models
        key = await self.key(scope)
        span = tracing.start(GEN_AI_OPERATION[op], "gateway", workspace_id=key.workspace_id,
                             traceparent=_header(scope, b"traceparent"))
        if span is not tracing.NO_SPAN:
            headers.append((b"x-trace-id", b"%032x" % span.trace_id))
        body = b""
        output: bytes | list | None = None
        error: TemperError | None = None
        req: Any = None
        record = usage_row(rid, key.workspace_id, key.id, op, app_id=None)
        entry: ModelEntry | None = None
        reply: Reply | None = None
        admission: Admission | None = None
        task = asyncio.current_task()
        watcher: asyncio.Task | None = None
        try:
            record["app_id"] = _app_id(scope)
            body = await _read_body(receive)
            try:
                req = orjson.loads(body)
            except orjson.JSONDecodeError as e:
                raise InvalidRequest(f"We could not parse the JSON body of your request: {e.msg} "
                                     f"(line {e.lineno}, column {e.colno}).", code="invalid_json") from None
            entry = self._resolve(key, req, op)
            record["model"] = entry.id
            stream = include_usage = False
            if op == "chat":
                stream, include_usage = protocol.check_chat(req, entry.context_length)
            elif op == "completion":
                stream, include_usage = protocol.check_completion(req, entry.context_length)
            elif op == "embedding":
                protocol.check_embedding(req)
                if isinstance(req["input"], str):
                    req["input"] = [req["input"]]
            else:
                protocol.check_rerank(req)
            record["stream"] = stream
            admission = await models.admit(key, op, req)
            headers += admission.headers
            REQUESTER.set(key.id)  # whose turn it is on a shared local model
            watcher = asyncio.ensure_future(receive())  # completes on client disconnect
            watcher.add_done_callback(lambda w: None if w.cancelled() or task.done() else task.cancel())
            routed = await models.route(op, entry, req, stream=stream)
            reply, entry = routed.reply, routed.entry
            record["model"] = entry.id
            headers.append((b"x-temper-model", entry.id.encode()))
            if reply.events is None:
                watcher.cancel()
                record["status"] = reply.status
                output = reply.body if reply.body is not None else orjson.dumps(reply.data)
                await send_json(send, reply.status, output, headers)
            else:
                ttft = await self._stream(send, reply, headers, include_usage, watcher)
                record["ttft_ms"] = (ttft - t0) * 1000 if ttft else None
        except TemperError as e:
            error = e
            if watcher is not None:
                watcher.cancel()
            record["status"], record["error_code"] = e.status, e.code
            if not record["stream"] or reply is None:
                await send_error(send, e, headers)
        except (asyncio.CancelledError, ClientGone):
            if task is not None and watcher is not None and watcher.done() and not watcher.cancelled():
                task.uncancel()  # our own cancellation on disconnect: finish metering, then return
                record["status"], record["error_code"] = CLIENT_CLOSED, "client_closed"
            else:
                raise
        except Exception as e:  # noqa: BLE001 - a bug (ours or a plugin's): an OpenAI-shaped 500, metered
            log.exception("request %s failed", rid)
            answer = internal_error(rid)
            error = TemperError(f"{e.__class__.__name__}: {e}", status=500, code=answer.code, etype=answer.type)
            if watcher is not None:
                watcher.cancel()
            record["status"], record["error_code"] = answer.status, answer.code
            if reply is None or reply.events is None:
                await send_error(send, answer, headers)
            else:  # the stream has started: report it in the stream
                await send({"type": "http.response.body", "body": b"data: " + orjson.dumps(answer.body()) + b"\n\n",
                            "more_body": False})
        finally:
            try:
                await models.charge(record, key, entry, reply.usage if reply is not None else None, t0, admission)
            finally:
                if span is not tracing.NO_SPAN:
                    if reply is not None and reply.events is not None:
                        output = reply.traced_events  # the router's trace kept the streamed answer's events
                    _trace(span, record, req, body, output, error, self.rt.loop_lag.worst_since(t0))

    async def _stream(self, send: Send, reply: Reply, headers: list[tuple[bytes, bytes]], include_usage: bool,
                      watcher: asyncio.Task) -> float | None:
        """Relay events as SSE; returns perf_counter() of the first event (time to first token).

        Left early (the client went away), the events are closed at once: the upstream stops, and the model
        call's span ends then.
        """
        assert reply.events is not None
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + headers})
        first: float | None = None
        last: dict | None = None
        dumps = orjson.dumps
        framed = reply.framed
        try:
            async for ev in reply.events:
                if first is None:
                    first = time.perf_counter()
                if not framed:
                    if isinstance(ev, dict):
                        last = ev
                        ev = dumps(ev)
                    ev = b"data: " + ev + b"\n\n"
                await send({"type": "http.response.body", "body": ev, "more_body": True})
        except TemperError as e:  # failed after the first byte: report it in the stream
            watcher.cancel()
            await send({"type": "http.response.body", "body": b"data: " + dumps(e.body()) + b"\n\n",
                        "more_body": False})
            raise
        except BaseException:
            close = getattr(reply.events, "aclose", None)
            if close is not None:
                await close()
            raise
        watcher.cancel()
        tail = b""
        if include_usage:
            usage_event = reply.usage_event
            if usage_event is None and last is not None:
                usage_event = dumps({"id": last.get("id"), "object": last.get("object"), "created": last.get("created"),
                                     "model": last.get("model"), "system_fingerprint": last.get("system_fingerprint"),
                                     "choices": [], "usage": (reply.usage.as_dict() if reply.usage else None)})
            if usage_event is not None:
                tail = b"data: " + usage_event + b"\n\n"
        await send({"type": "http.response.body", "body": tail + b"data: [DONE]\n\n", "more_body": False})
        return reply.first_token_at or first


def _trace(span: tracing.Span, record: dict, req: Any, body: bytes, output: bytes | list | None,
           error: TemperError | None, loop_lag_ms: float | None) -> None:
    """Finish the gateway's span from what metering recorded (the heavy lifting happens in the exporter).

    Its attributes are set here in one go, as a tuple of values: this runs on the event loop for every call.
    """
    if isinstance(req, dict):
        get = req.get
        asked = (get("model"), get("temperature"), get("top_p"), get("max_completion_tokens") or get("max_tokens"),
                 get("seed"))
    else:
        asked = NOT_PARSED
    span.attributes = (SPAN_ATTRIBUTES, (
        GEN_AI_OPERATION[record["operation"]], record["key_id"], record["request_id"], record["app_id"],
        record["model"] or None, record["prompt_tokens"], record["completion_tokens"], record["cost"],
        record["ttft_ms"], record["stream"], record["status"], *asked, loop_lag_ms))
    span.input, span.output = body[:MAX_TRACED_BODY], output
    if error is not None:
        span.fail(error.message, error.code or error.type)
    elif record["status"] == CLIENT_CLOSED:
        span.fail("The client closed the connection before the answer was complete.", "client_closed")
    span.name = f"{span.name} {record['model'] or asked[0] or ''}".rstrip()
    tracing.finish(span)
