"""The HTTP protocol the server runs: uvicorn's httptools protocol plus the limits it lacks.

- Headers must be complete within ``header_timeout_s`` of a connection opening or a request starting, and
  are at most ``MAX_HEADER_BYTES``; a body may not stall (no bytes while the server is reading it) for
  ``body_timeout_s``. Offenders get a ``408`` (``431`` for huge headers) and are disconnected.
- Past ``max_connections`` open connections, a new connection's request is answered ``503`` and closed.

Without these, 3,000 keyless connections sending a byte a second stayed open indefinitely. One timer per
server sweeps the connections (a few times a second), so a request pays no timer of its own: a clock read
and a few attribute loads per chunk received, under a microsecond.
"""
from __future__ import annotations

import asyncio
import json
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from temper.server.openai.gateway import Receive, Scope, Send

MAX_HEADER_BYTES = 64 * 1024  # the request line and headers together (nginx allows 4 × 8 KiB by default)


def _error(status: int, reason: str, message: str, code: str) -> bytes:
    """A whole response, written straight to the connection before it is closed."""
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                 "code": code, "params": {}}}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n").encode() + body


HEADER_TIMEOUT = _error(408, "Request Timeout", "The request headers did not arrive in time.", "request_timeout")
BODY_TIMEOUT = _error(408, "Request Timeout", "The request body stopped arriving.", "request_timeout")
HEADERS_TOO_LARGE = _error(431, "Request Header Fields Too Large",
                           f"The request line and headers are larger than {MAX_HEADER_BYTES // 1024} KiB.",
                           "headers_too_large")
_BUSY = json.dumps({"error": {"message": "The server has too many open connections. Try again shortly.",
                              "type": "server_error", "param": None, "code": "too_many_connections",
                              "params": {}}}).encode()


async def too_many_connections(scope: Scope, receive: Receive, send: Send) -> None:
    """The app a connection past the cap gets: 503, and the connection is closed."""
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(_BUSY)).encode()),
        (b"retry-after", b"1"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": _BUSY})


class GuardedProtocol(HttpToolsProtocol):
    """Configure with ``guarded_protocol``; uvicorn makes one per connection.

    A request is "arriving" from its first byte until uvicorn has its headers and makes its request cycle:
    while ``self.cycle`` is none yet, or the last request's, answered and read to its end. ``_header_cycle``
    is that cycle once bytes have come after it, and ``_header_start`` when they first did."""

    header_timeout_s: ClassVar[float] = 10.0
    body_timeout_s: ClassVar[float] = 30.0
    max_connections: ClassVar[int] = 1000
    _sweeping: ClassVar[bool] = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_cycle = None  # a new connection must send its first request's headers in time too
        self._header_start = self._last_read = self.loop.time()
        self._header_bytes = 0
        if len(self.connections) > self.max_connections:
            self.app = too_many_connections
        cls = type(self)
        if not cls._sweeping:
            cls._sweeping = True
            self.loop.call_later(cls._interval(), cls._sweep, self.loop, self.connections)

    def data_received(self, data: bytes) -> None:
        self._last_read = self.loop.time()
        cycle = self.cycle
        arriving = cycle is None or (cycle.response_complete and not cycle.more_body)
        if arriving and self._header_cycle is not cycle:  # the first bytes of the next request
            self._header_cycle, self._header_start, self._header_bytes = cycle, self._last_read, 0
        HttpToolsProtocol.data_received(self, data)
        if arriving and self.cycle is cycle:  # its headers are still incomplete: all of this was headers
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
                self._drop(HEADERS_TOO_LARGE)

    def on_message_complete(self) -> None:
        if self.cycle is not None:  # uvicorn leaves it set when the answer went before the body had come
            self.cycle.more_body = False
        HttpToolsProtocol.on_message_complete(self)

    def _check(self, now: float) -> None:
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or (cycle.response_complete and not cycle.more_body):
            if self._header_cycle is cycle and now - self._header_start > self.header_timeout_s:
                self._drop(HEADER_TIMEOUT)
        elif (cycle.more_body and not self.flow.read_paused and not cycle.waiting_for_100_continue
              and now - self._last_read > self.body_timeout_s):
            self._drop(None if cycle.response_started else BODY_TIMEOUT)

    def _drop(self, reply: bytes | None) -> None:
        """Answer ``reply`` (if any) and close; a request being served sees a disconnect."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:  # its sends now go nowhere
            cycle.disconnected = True
            cycle.message_event.set()
        if reply:
            self.transport.write(reply)
        self.transport.close()

    @classmethod
    def _interval(cls) -> float:
        return max(0.05, min(1.0, cls.header_timeout_s / 4, cls.body_timeout_s / 4))

    @classmethod
    def _sweep(cls, loop: asyncio.AbstractEventLoop, connections: set[asyncio.Protocol]) -> None:
        now = loop.time()
        for conn in list(connections):
            if isinstance(conn, GuardedProtocol):
                conn._check(now)
        if connections:
            loop.call_later(cls._interval(), cls._sweep, loop, connections)
        else:
            cls._sweeping = False


def guarded_protocol(header_timeout_s: float, body_timeout_s: float, max_connections: int) -> type[GuardedProtocol]:
    """The protocol class to give uvicorn (``http=``), with these limits."""
    return type("TemperHttpProtocol", (GuardedProtocol,), {
        "header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s, "max_connections": max_connections})
