"""Remote models behind any OpenAI-compatible endpoint (vendor clouds, vLLM, Ollama, another Temper).

The hot path relays bytes: a pooled keep-alive HTTP/1.1 client on asyncio streams (a general-purpose
client such as httpx costs about 1 ms of CPU per request, twice this gateway's whole budget). Request
fields the gateway does not know are forwarded untouched; response bodies are relayed as received,
so vendor extensions (``reasoning_content`` and the like) reach the client.
"""
from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

from temper.config import Settings
from temper.errors import UpstreamError, UpstreamTimeout
from temper.models.provider import Deployment, Operation, Reply, Usage

PATHS: dict[str, bytes] = {"chat": b"/chat/completions", "completion": b"/completions",
                           "embedding": b"/embeddings", "rerank": b"/rerank"}
RETRYABLE = {408, 409, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class _Target:
    host: str
    port: int
    tls: bool
    prefix: bytes

    @classmethod
    def parse(cls, base_url: str) -> _Target:
        u = urlsplit(base_url.rstrip("/"))
        tls = u.scheme == "https"
        return cls(u.hostname or "127.0.0.1", u.port or (443 if tls else 80), tls, u.path.encode())


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _Pool:
    """Idle keep-alive connections to one host."""

    def __init__(self, target: _Target, connect_timeout: float) -> None:
        self.target = target
        self.connect_timeout = connect_timeout
        self.idle: list[Conn] = []

    async def get(self) -> tuple[Conn, bool]:
        """A connection and whether it was reused (a reused one may have been closed by the server)."""
        while self.idle:
            conn = self.idle.pop()
            if not conn[1].is_closing() and not conn[0].at_eof():
                return conn, True
        t = self.target
        ctx = ssl.create_default_context() if t.tls else None
        try:
            r, w = await asyncio.wait_for(
                asyncio.open_connection(t.host, t.port, ssl=ctx, limit=1 << 22), self.connect_timeout)
        except TimeoutError as e:
            raise UpstreamTimeout(f"connecting to {t.host}:{t.port} timed out") from e
        except OSError as e:
            raise UpstreamError(f"cannot connect to {t.host}:{t.port}: {e.strerror or e}",
                                code="upstream_unreachable") from e
        sock = w.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return (r, w), False

    def put(self, conn: Conn) -> None:
        if len(self.idle) < 512:
            self.idle.append(conn)
        else:
            conn[1].close()

    def close(self) -> None:
        for _, w in self.idle:
            w.close()
        self.idle.clear()


@dataclass
class _Head:
    status: int
    chunked: bool
    length: int | None
    close: bool
    content_type: bytes


async def _read_head(r: asyncio.StreamReader) -> _Head:
    line = await r.readline()
    if not line:
        raise ConnectionResetError("upstream closed the connection")
    parts = line.split(None, 2)
    status = int(parts[1])
    chunked, length, close, ctype = False, None, False, b""
    while True:
        h = await r.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.partition(b":")
        k = k.strip().lower()
        v = v.strip()
        if k == b"content-length":
            length = int(v)
        elif k == b"transfer-encoding":
            chunked = b"chunked" in v.lower()
        elif k == b"connection":
            close = v.lower() == b"close"
        elif k == b"content-type":
            ctype = v
    return _Head(status, chunked, length, close or parts[0] == b"HTTP/1.0", ctype)


async def _read_body(r: asyncio.StreamReader, head: _Head) -> tuple[bytes, bool]:
    """The whole body, and whether the connection can carry another request afterwards."""
    if head.chunked:
        dechunk = _Dechunker()
        out = bytearray()
        while not dechunk.done:
            data = await r.read(1 << 16)
            if not data:
                raise ConnectionResetError("upstream closed mid-body")
            out += dechunk.feed(data)
        return bytes(out), not (head.close or dechunk.rest)
    if head.length is not None:
        return await r.readexactly(head.length), not head.close
    return await r.read(), False  # delimited by the server closing the connection


def _usage(obj: dict | None) -> Usage | None:
    if not obj:
        return None
    return Usage(int(obj.get("prompt_tokens") or 0), int(obj.get("completion_tokens") or 0))


def _error_message(status: int, body: bytes) -> str:
    try:
        msg = orjson.loads(body)["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        msg = body[:200].decode(errors="replace")
    return f"upstream answered {status}: {msg}"


class OpenAICompatProvider:
    name = "openai_compat"

    def __init__(self, settings: Settings) -> None:
        self.connect_timeout = settings.upstream_connect_timeout_s
        self.pools: dict[str, _Pool] = {}

    def _pool(self, base_url: str) -> _Pool:
        pool = self.pools.get(base_url)
        if pool is None:
            pool = self.pools[base_url] = _Pool(_Target.parse(base_url), self.connect_timeout)
        return pool

    async def call(self, op: Operation, deployment: Deployment, req: dict, *, stream: bool) -> Reply:
        if stream:
            opts = req.get("stream_options")
            if not (isinstance(opts, dict) and opts.get("include_usage")):
                req["stream_options"] = {**(opts or {}), "include_usage": True}
        payload = orjson.dumps(req)
        pool = self._pool(deployment.base_url or "")
        t = pool.target
        key = os.environ.get(deployment.api_key_env, "") if deployment.api_key_env else ""
        head_bytes = (b"POST " + t.prefix + PATHS[op] + b" HTTP/1.1\r\nHost: " + t.host.encode()
                      + b"\r\nContent-Type: application/json\r\nAccept: "
                      + (b"text/event-stream" if stream else b"application/json")
                      + (b"\r\nAuthorization: Bearer " + key.encode() if key else b"")
                      + b"\r\nContent-Length: " + str(len(payload)).encode() + b"\r\n\r\n")
        for attempt in (0, 1):
            conn, reused = await pool.get()
            r, w = conn
            try:
                w.write(head_bytes + payload)
                async with asyncio.timeout(deployment.timeout_s):
                    head = await _read_head(r)
                break
            except TimeoutError as e:
                w.close()
                raise UpstreamTimeout(f"{t.host}:{t.port} did not answer within {deployment.timeout_s:g} s") from e
            except (ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError, OSError) as e:
                w.close()
                if reused and attempt == 0:
                    continue  # the server closed an idle keep-alive connection: one fresh try
                raise UpstreamError(f"upstream {t.host}:{t.port} failed: {e}") from e
        if head.status >= 300 or not stream or not head.content_type.startswith(b"text/event-stream"):
            return await self._whole(pool, conn, head, deployment)
        return self._stream(pool, conn, head, deployment.timeout_s)

    async def _whole(self, pool: _Pool, conn: Conn, head: _Head, d: Deployment) -> Reply:
        r, w = conn
        try:
            async with asyncio.timeout(d.timeout_s):
                body, reusable = await _read_body(r, head)
        except TimeoutError as e:
            w.close()
            raise UpstreamTimeout(f"upstream body not received within {d.timeout_s:g} s") from e
        except (ConnectionError, asyncio.IncompleteReadError, ValueError) as e:
            w.close()
            raise UpstreamError(f"upstream failed mid-response: {e}") from e
        if reusable:
            pool.put(conn)
        else:
            w.close()
        if head.status in RETRYABLE or head.status >= 500:
            raise UpstreamError(_error_message(head.status, body), status=429 if head.status == 429 else 502,
                                code="upstream_rate_limited" if head.status == 429 else None)
        if head.status >= 300:  # the upstream's own client error, relayed as is
            return Reply(body=body, status=head.status)
        try:
            usage = _usage(orjson.loads(body).get("usage"))
        except (orjson.JSONDecodeError, AttributeError) as e:
            raise UpstreamError("upstream answered with a body that is not JSON") from e
        return Reply(body=body, usage=usage or Usage())

    def _stream(self, pool: _Pool, conn: Conn, head: _Head, timeout: float) -> Reply:
        reply = Reply(usage=Usage(), framed=True)
        reply.events = self._blocks(pool, conn, head, timeout, reply)
        return reply

    async def _blocks(self, pool: _Pool, conn: Conn, head: _Head, timeout: float,
                      reply: Reply) -> AsyncIterator[bytes]:
        """Yield whole SSE events as received, as few blocks as the network delivered them in.

        Only the stream's end is parsed: ``[DONE]`` is dropped (the gateway closes the stream) and the
        usage of the final chunk is kept on the reply. Everything before is relayed byte for byte.
        """
        r, w = conn
        dechunk = _Dechunker() if head.chunked else None
        loop = asyncio.get_running_loop()
        buf = b""
        try:
            async with asyncio.timeout(timeout) as deadline:  # one timer, moved on each read
                while not (dechunk and dechunk.done):
                    data = await r.read(1 << 16)
                    if not data:
                        if dechunk:
                            raise ConnectionResetError("upstream closed mid-stream")
                        break
                    deadline.reschedule(loop.time() + timeout)
                    if dechunk:
                        data = dechunk.feed(data)
                    if b"\r" in data:
                        data = data.replace(b"\r\n", b"\n")
                    buf += data
                    cut = buf.rfind(b"\n\n")
                    if cut < 0:
                        continue
                    block, buf = buf[:cut + 2], buf[cut + 2:]
                    if b"[DONE]" in block or b'"usage"' in block:
                        block = _strip_end(block, reply)
                    if block:
                        yield block
        except TimeoutError as e:
            w.close()
            raise UpstreamTimeout(f"upstream stream stalled for {timeout:g} s") from e
        except (ConnectionError, asyncio.IncompleteReadError, ValueError) as e:
            w.close()
            raise UpstreamError(f"upstream stream broke: {e}") from e
        except BaseException:  # client went away (generator closed) or cancelled: drop the connection
            w.close()
            raise
        if dechunk and not head.close and not dechunk.rest:
            pool.put(conn)
        else:
            w.close()

    async def aclose(self) -> None:
        for pool in self.pools.values():
            pool.close()


def _strip_end(block: bytes, reply: Reply) -> bytes:
    """Drop ``[DONE]`` and the usage-only event from a block of SSE events, keeping usage on the reply."""
    keep = []
    for event in block.split(b"\n\n"):
        payload = next((ln[5:].strip() for ln in event.split(b"\n") if ln.startswith(b"data:")), None)
        if payload == b"[DONE]":
            continue
        if payload is not None and b'"usage"' in payload:
            obj = orjson.loads(payload)
            if obj.get("usage"):
                reply.usage = _usage(obj["usage"])
                if not obj.get("choices"):
                    reply.usage_event = payload
                    continue
        if event:
            keep.append(event + b"\n\n")
    return b"".join(keep)


class _Dechunker:
    """Incremental decoder of HTTP/1.1 chunked framing over raw socket reads (no per-chunk awaits)."""

    def __init__(self) -> None:
        self.rest = b""       # an incomplete size line carried to the next read
        self.data_left = 0    # payload bytes left in the current chunk
        self.crlf_left = 0    # CRLF bytes left after the current chunk
        self.last = False     # the zero-size chunk was seen
        self.done = False

    def feed(self, data: bytes) -> bytes:
        buf = self.rest + data if self.rest else data
        out = []
        i, n = 0, len(buf)
        while i < n and not self.done:
            if self.data_left:
                take = min(self.data_left, n - i)
                out.append(buf[i:i + take])
                i += take
                self.data_left -= take
            elif self.crlf_left:
                take = min(self.crlf_left, n - i)
                i += take
                self.crlf_left -= take
                self.done = self.last and not self.crlf_left
            else:
                j = buf.find(b"\r\n", i)
                if j < 0:
                    break
                size = int(buf[i:j].split(b";", 1)[0], 16)
                i = j + 2
                if size:
                    self.data_left, self.crlf_left = size, 2
                else:
                    self.last, self.crlf_left = True, 2  # no trailers: the final CRLF ends the body
        self.rest = buf[i:] if i < n else b""
        return b"".join(out)
