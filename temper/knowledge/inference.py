"""Model calls of the knowledge package (embed, rerank, generate), made through the plaza's router.

Going through the router rather than a provider directly means any plaza model works (local or remote),
with its retries and fallbacks, and every call is an ``embedding`` / ``rerank`` / ``llm`` span under the
caller's span. Providers live on the server's event loop (their connection pools belong to it), so code
running in worker threads (ingestion jobs) hands its calls to that loop with ``blocking``, carrying its
tracing context along.

Every call is also metered like a gateway call: on behalf of the ``Caller`` in the context (the key of
the request, or of whoever started the job), whose model list, budget and tokens-per-minute it obeys.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import os
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import orjson

from temper.auth.keys import KeyInfo
from temper.errors import InvalidRequest, PermissionDenied, TemperError, UpstreamError
from temper.models.catalog import Catalog, ModelEntry
from temper.models.metering import Meter, usage_row
from temper.models.provider import Operation, Usage
from temper.models.router import Routed, Router
from temper.ops import tracing
from temper.store.tables import DEFAULT_WORKSPACE

T = TypeVar("T")
QUERY_CACHE_SIZE = 4096


@dataclass(frozen=True)
class Caller:
    """Whom knowledge-base model calls are made for: the request's key (or the job starter's), and the id
    their usage records carry (the request's or the job's). ``key`` is None when that key is gone (revoked
    while its job waited): the calls are still recorded under ``key_id``, against no limits."""

    key_id: str | None
    key: KeyInfo | None
    request_id: str
    workspace_id: str = DEFAULT_WORKSPACE

    @classmethod
    def of(cls, key: KeyInfo) -> Caller:
        return cls(key.id, key, "kbreq_" + os.urandom(12).hex(), key.workspace_id)


_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("temper_kb_caller", default=None)


class Inference:
    def __init__(self, router: Router, catalog: Callable[[], Catalog], loop: asyncio.AbstractEventLoop,
                 meter: Meter | None = None) -> None:
        self.router = router
        self.catalog = catalog
        self.loop = loop
        self.meter = meter
        self._queries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._queries_lock = threading.Lock()

    @staticmethod
    def act_for(caller: Caller | None) -> None:
        """Meter this request's model calls (the rest of the current task) on behalf of ``caller``."""
        _caller.set(caller)

    @staticmethod
    @contextmanager
    def acting_for(caller: Caller | None) -> Iterator[None]:
        """Meter the model calls made inside the block (a job's) on behalf of ``caller``."""
        token = _caller.set(caller)
        try:
            yield
        finally:
            _caller.reset(token)

    @staticmethod
    def caller_attributes() -> dict[str, str]:
        """The span attribute naming the caller's key, so its traces list under that key."""
        caller = _caller.get()
        return {tracing.KEY_ID: caller.key_id} if caller is not None and caller.key_id else {}

    def model(self, name: str, modality: str) -> ModelEntry:
        entry = self.catalog().resolve(name)
        if entry.modality != modality:
            raise InvalidRequest(f"The model {name!r} is a {entry.modality} model, not a {modality} model.",
                                 param="model", code="wrong_model_type")
        caller = _caller.get()
        if caller is not None and caller.key is not None and not caller.key.allows(entry.id, name, *entry.aliases):
            raise PermissionDenied(f"This API key is not allowed to use the model `{name}`, which this knowledge "
                                   f"base uses.", param="model")
        return entry

    async def _call(self, op: Operation, entry: ModelEntry, req: dict[str, Any], *, stream: bool = False) -> Routed:
        """The routed call, metered (unless streamed: then ``_charge`` once the stream ends)."""
        caller = _caller.get()
        if caller is not None and caller.key is not None and self.meter is not None:
            self.meter.check_budget(caller.key)
        t0 = time.perf_counter()
        try:
            routed = await self.router.call(op, entry, req, stream=stream)
        except TemperError as e:
            self._charge(op, entry, None, t0, e)
            raise
        if not stream:
            self._charge(op, routed.entry, routed.reply.usage, t0)
        return routed

    def _charge(self, op: Operation, entry: ModelEntry, usage: Usage | None, t0: float,
                error: TemperError | None = None, stream: bool = False) -> None:
        if self.meter is None:
            return
        caller = _caller.get() or Caller(None, None, "kbreq_" + os.urandom(12).hex())
        record = usage_row(caller.request_id, caller.workspace_id, caller.key_id, op, entry.id, stream=stream)
        if error is not None:
            record["status"], record["error_code"] = error.status, error.code
        self.meter.charge(record, caller.key, entry, usage, t0)

    def blocking(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the model loop from a worker thread, in this thread's context (current span)."""
        ctx = contextvars.copy_context()
        result: concurrent.futures.Future[T] = concurrent.futures.Future()

        def settle(task: asyncio.Task[T]) -> None:
            if task.cancelled():
                result.cancel()
            elif (error := task.exception()) is not None:
                result.set_exception(error)
            else:
                result.set_result(task.result())

        def start() -> None:
            self.loop.create_task(coro, context=ctx).add_done_callback(settle)

        self.loop.call_soon_threadsafe(start)
        return result.result()

    async def embed(self, model: str, texts: list[str], input_type: str) -> tuple[np.ndarray, int]:
        """L2-normalised vectors of ``texts`` as ``"query"`` or ``"passage"`` (e5's prefixes; remote models
        ignore the field), and the tokens used."""
        return await self._embed(self.model(model, "embedding"), texts, input_type)

    async def _embed(self, entry: ModelEntry, texts: list[str], input_type: str) -> tuple[np.ndarray, int]:
        req = {"model": entry.id, "input": texts, "input_type": input_type, "encoding_format": "float"}
        data = (await self._call("embedding", entry, req)).reply.data or {}
        rows = sorted(data.get("data") or [], key=lambda d: d["index"])
        if len(rows) != len(texts):
            raise UpstreamError(f"{entry.id} returned {len(rows)} embeddings for {len(texts)} texts")
        vectors = np.asarray([r["embedding"] for r in rows], dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors /= np.where(norms == 0, 1.0, norms)
        return vectors, int((data.get("usage") or {}).get("prompt_tokens") or 0)

    async def embed_query(self, model: str, text: str) -> tuple[np.ndarray, bool]:
        """One query's vector, from an LRU cache when it was asked before; (vector, cache hit)."""
        entry = self.model(model, "embedding")  # a cached vector is still only for callers allowed the model
        key = (model, text)
        with self._queries_lock:
            hit = self._queries.get(key)
            if hit is not None:
                self._queries.move_to_end(key)
                return hit, True
        vectors, _ = await self._embed(entry, [text], "query")
        with self._queries_lock:
            self._queries[key] = vectors[0]
            if len(self._queries) > QUERY_CACHE_SIZE:
                self._queries.popitem(last=False)
        return vectors[0], False

    async def rerank(self, model: str, query: str, documents: list[str]) -> list[float]:
        """A relevance score per document, in the documents' order."""
        entry = self.model(model, "rerank")
        req = {"model": entry.id, "query": query, "documents": documents}
        data = (await self._call("rerank", entry, req)).reply.data or {}
        scores = [0.0] * len(documents)
        for r in data.get("results") or []:
            scores[int(r["index"])] = float(r["relevance_score"])
        return scores

    async def chat(self, model: str, messages: list[dict[str, str]], **params: Any) -> str:
        entry = self.model(model, "chat")
        req = {"model": entry.id, "messages": messages, **params}
        reply = (await self._call("chat", entry, req)).reply
        data = reply.data if reply.data is not None else _json(reply.body)
        return ((data.get("choices") or [{}])[0].get("message") or {}).get("content") or ""

    async def chat_stream(self, model: str, messages: list[dict[str, str]], **params: Any) -> AsyncIterator[str]:
        """The answer's text as it is generated."""
        entry = self.model(model, "chat")
        req = {"model": entry.id, "messages": messages, "stream": True, **params}
        t0 = time.perf_counter()
        routed = await self._call("chat", entry, req, stream=True)
        reply = routed.reply
        assert reply.events is not None
        error: TemperError | None = None
        try:
            async for event in reply.events:
                for payload in _payloads(event, reply.framed):
                    for choice in payload.get("choices") or ():
                        if text := (choice.get("delta") or {}).get("content"):
                            yield text
        except TemperError as e:
            error = e
            raise
        finally:
            self._charge("chat", routed.entry, reply.usage, t0, error, stream=True)


def _json(body: bytes | None) -> dict[str, Any]:
    return orjson.loads(body) if body else {}


def _payloads(event: dict | bytes, framed: bool) -> list[dict[str, Any]]:
    """The JSON payloads in one provider event: a dict, one ``data:`` payload, or (framed) whole SSE text."""
    if isinstance(event, dict):
        return [event]
    if not framed:
        return [orjson.loads(event)]
    out = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:") and line[5:].strip() not in (b"", b"[DONE]"):
            out.append(orjson.loads(line[5:].strip()))
    return out
