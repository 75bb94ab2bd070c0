"""Model calls of the knowledge package (embed, rerank, generate), made through the plaza's router.

Going through the router rather than a provider directly means any plaza model works (local or remote),
with its retries and fallbacks, and every call is an ``embedding`` / ``rerank`` / ``llm`` span under the
caller's span. Providers live on the server's event loop (their connection pools belong to it), so code
running in worker threads (ingestion jobs) hands its calls to that loop with ``blocking``, carrying its
tracing context along.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

import numpy as np
import orjson

from temper.errors import InvalidRequest, UpstreamError
from temper.models.catalog import Catalog, ModelEntry
from temper.models.router import Router

T = TypeVar("T")
QUERY_CACHE_SIZE = 4096


class Inference:
    def __init__(self, router: Router, catalog: Callable[[], Catalog], loop: asyncio.AbstractEventLoop) -> None:
        self.router = router
        self.catalog = catalog
        self.loop = loop
        self._queries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._queries_lock = threading.Lock()

    def model(self, name: str, modality: str) -> ModelEntry:
        entry = self.catalog().resolve(name)
        if entry.modality != modality:
            raise InvalidRequest(f"The model {name!r} is a {entry.modality} model, not a {modality} model.",
                                 param="model", code="wrong_model_type")
        return entry

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
        entry = self.model(model, "embedding")
        req = {"model": entry.id, "input": texts, "input_type": input_type, "encoding_format": "float"}
        data = (await self.router.call("embedding", entry, req, stream=False)).reply.data or {}
        rows = sorted(data.get("data") or [], key=lambda d: d["index"])
        if len(rows) != len(texts):
            raise UpstreamError(f"{model} returned {len(rows)} embeddings for {len(texts)} texts")
        vectors = np.asarray([r["embedding"] for r in rows], dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors /= np.where(norms == 0, 1.0, norms)
        return vectors, int((data.get("usage") or {}).get("prompt_tokens") or 0)

    async def embed_query(self, model: str, text: str) -> tuple[np.ndarray, bool]:
        """One query's vector, from an LRU cache when it was asked before; (vector, cache hit)."""
        key = (model, text)
        with self._queries_lock:
            hit = self._queries.get(key)
            if hit is not None:
                self._queries.move_to_end(key)
                return hit, True
        vectors, _ = await self.embed(model, [text], "query")
        with self._queries_lock:
            self._queries[key] = vectors[0]
            if len(self._queries) > QUERY_CACHE_SIZE:
                self._queries.popitem(last=False)
        return vectors[0], False

    async def rerank(self, model: str, query: str, documents: list[str]) -> list[float]:
        """A relevance score per document, in the documents' order."""
        entry = self.model(model, "rerank")
        req = {"model": entry.id, "query": query, "documents": documents}
        data = (await self.router.call("rerank", entry, req, stream=False)).reply.data or {}
        scores = [0.0] * len(documents)
        for r in data.get("results") or []:
            scores[int(r["index"])] = float(r["relevance_score"])
        return scores

    async def chat(self, model: str, messages: list[dict[str, str]], **params: Any) -> str:
        entry = self.model(model, "chat")
        req = {"model": entry.id, "messages": messages, **params}
        reply = (await self.router.call("chat", entry, req, stream=False)).reply
        data = reply.data if reply.data is not None else _json(reply.body)
        return ((data.get("choices") or [{}])[0].get("message") or {}).get("content") or ""

    async def chat_stream(self, model: str, messages: list[dict[str, str]], **params: Any) -> AsyncIterator[str]:
        """The answer's text as it is generated."""
        entry = self.model(model, "chat")
        req = {"model": entry.id, "messages": messages, "stream": True, **params}
        reply = (await self.router.call("chat", entry, req, stream=True)).reply
        assert reply.events is not None
        async for event in reply.events:
            for payload in _payloads(event, reply.framed):
                for choice in payload.get("choices") or ():
                    if text := (choice.get("delta") or {}).get("content"):
                        yield text


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
