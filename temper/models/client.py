"""The model client: the one way any capability calls a model.

Every call goes through the same policy, in this order: resolve the name (id or alias) in the catalogue
snapshot → check that the caller's key may use the *resolved* model (whichever name was used) and that it
has the right modality → admit (budget; requests and tokens per minute at a request's boundary) → route
(weighted deployments, retries, fallbacks) → charge (a usage row, the key's budget and token bucket) → trace
(an ``llm`` / ``embedding`` / ``rerank`` span per upstream attempt, under the caller's span).

Two faces:
- the **raw** one (``resolve``, ``admit``, ``route``, ``charge``) is what the gateway's hot path uses: it
  relays OpenAI-shaped bytes and never builds typed objects (docs/performance.md);
- the **typed** one (``chat``, ``chat_stream``, ``complete``, ``embed``, ``rerank``) is what capabilities
  use: typed results, metered on behalf of the ``Caller`` in the context (``acting_for``), so a budget or a
  model list cannot be side-stepped through a feature.

``BlockingModelClient`` offers the typed face to code that runs outside the event loop: a job in a worker
process builds its own client from the same settings (``job_model_client``), with its own providers and
usage writer; limits and budgets are shared with the server through the limit store (Redis when
``TEMPER_REDIS_URL`` is set; in memory the server catches up from the usage the job wrote).
"""
from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import orjson

from temper.errors import InvalidRequest, PermissionDenied, TemperError, UpstreamError
from temper.models.catalog import Catalog, ModelEntry
from temper.models.estimate import estimate_tokens
from temper.models.fair import REQUESTER
from temper.models.metering import Admission, Meter, usage_row
from temper.models.provider import Operation, Usage
from temper.models.router import Routed, Router
from temper.ops import tracing
from temper.store.tables import DEFAULT_WORKSPACE

if TYPE_CHECKING:
    from temper.auth.keys import KeyInfo
    from temper.config import Settings
    from temper.jobs.context import JobContext

T = TypeVar("T")
ENDPOINT_FOR = {"chat": "/v1/chat/completions", "completion": "/v1/completions", "embedding": "/v1/embeddings",
                "rerank": "/v1/rerank"}


@dataclass(frozen=True)
class Caller:
    """Whom model calls are made for: a request's key (or a job starter's), and the id their usage records
    carry (the request's or the job's). ``key`` is None when that key is gone (revoked while its job waited):
    the calls are still recorded under ``key_id``, against no limits."""

    key_id: str | None
    key: KeyInfo | None
    request_id: str
    workspace_id: str = DEFAULT_WORKSPACE
    app_id: str | None = None

    @classmethod
    def of(cls, key: KeyInfo, prefix: str) -> Caller:
        """``key``'s calls under a new request id ``<prefix>_…`` (``kbreq`` for a knowledge-base request)."""
        return cls(key.id, key, f"{prefix}_" + os.urandom(12).hex(), key.workspace_id)


_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("temper_model_caller", default=None)


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it


@dataclass
class ChatResult:
    content: str
    model: str  # the model that answered (another one after a fallback)
    usage: Usage
    finish_reason: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)


@dataclass
class ChatDelta:
    """A piece of a streamed answer; the last one carries the finish reason and, when known, the usage."""

    content: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass
class Embeddings:
    vectors: np.ndarray  # (n, dimensions), float32, L2-normalised
    model: str
    usage: Usage


def allowed(key: KeyInfo, entry: ModelEntry) -> bool:
    """Whether ``key`` may use ``entry``: its model list names the model by its id or any of its aliases,
    whichever name the call used."""
    return key.allows(entry.id, *entry.aliases)


class ModelClient:
    def __init__(self, router: Router, catalog: Callable[[], Catalog], meter: Meter) -> None:
        self.router = router
        self.catalog = catalog
        self.meter = meter

    # --- the raw face (the gateway) ----------------------------------------------------------------------

    def resolve(self, name: str, key: KeyInfo | None, op: Operation | None = None) -> ModelEntry:
        """The catalogue entry for ``name``, if ``key`` may use it and it serves ``op``."""
        entry = self.catalog().resolve(name)
        if key is not None and not allowed(key, entry):
            raise PermissionDenied(f"This API key is not allowed to use the model `{name}`.", param="model",
                                   params={"model": name})
        if op is not None and entry.modality != op:
            raise InvalidRequest(f"`{entry.id}` is a {entry.modality} model and is not supported on "
                                 f"{ENDPOINT_FOR[op]}; use {ENDPOINT_FOR.get(entry.modality, 'another endpoint')}.",
                                 param="model", code="model_not_supported")
        return entry

    def visible(self, key: KeyInfo) -> list[ModelEntry]:
        """The active models ``key`` may use."""
        return [e for e in self.catalog().list() if e.status == "active" and allowed(key, e)]

    async def admit(self, key: KeyInfo, op: Operation | None = None, req: dict[str, Any] | None = None) -> Admission:
        """Budget and rate limits at a request's boundary, reserving the tokens ``req`` may use until the
        charge (estimated only for a key with a token limit or budget)."""
        return await self.meter.admit(key, self._estimate(key, op, req))

    def _estimate(self, key: KeyInfo, op: Operation | None, req: dict[str, Any] | None) -> int:
        return estimate_tokens(op, req) if op is not None and req is not None and self.meter.reserves(key) else 0

    async def route(self, op: Operation, entry: ModelEntry, req: dict, *, stream: bool) -> Routed:
        return await self.router.call(op, entry, req, stream=stream)

    async def charge(self, record: dict, key: KeyInfo | None, entry: ModelEntry | None, usage: Usage | None,
                     t0: float, admission: Admission | None = None) -> None:
        await self.meter.charge(record, key, entry, usage, t0, admission)

    # --- whom the typed face acts for ----------------------------------------------------------------------

    @staticmethod
    def act_for(caller: Caller | None) -> None:
        """Meter the model calls of the rest of the current task on behalf of ``caller``."""
        _caller.set(caller)

    @staticmethod
    @contextmanager
    def acting_for(caller: Caller | None) -> Iterator[None]:
        """Meter the model calls made inside the block on behalf of ``caller`` (None: the server's own)."""
        token = _caller.set(caller)
        try:
            yield
        finally:
            _caller.reset(token)

    @staticmethod
    def caller_attributes() -> dict[str, str]:
        """The span attribute naming the caller's key, so a capability's traces list under that key."""
        caller = _caller.get()
        return {tracing.KEY_ID: caller.key_id} if caller is not None and caller.key_id else {}

    def model(self, name: str, modality: Operation) -> ModelEntry:
        """The entry a capability will call, checked for the current caller (fails before any work)."""
        caller = _caller.get()
        try:
            return self.resolve(name, caller.key if caller is not None else None, modality)
        except InvalidRequest as e:
            if e.code != "model_not_supported":
                raise
            entry = self.catalog().resolve(name)
            raise InvalidRequest(f"The model {name!r} is a {entry.modality} model, not a {modality} model.",
                                 param="model", code="wrong_model_type") from None

    # --- the typed face (capabilities) ---------------------------------------------------------------------

    async def _call(self, op: Operation, entry: ModelEntry, req: dict[str, Any], *, stream: bool = False
                    ) -> tuple[Routed, Admission | None]:
        """The routed call under the caller's budget (its estimated tokens reserved), taking its fair turns
        on local models as the caller's key; charged here unless streamed (then when it ends)."""
        caller = _caller.get()
        admission = None
        if caller is not None and caller.key is not None:
            admission = await self.meter.reserve(caller.key, self._estimate(caller.key, op, req))
        REQUESTER.set(caller.key_id if caller is not None and caller.key_id else "server")
        t0 = time.perf_counter()
        try:
            routed = await self.router.call(op, entry, req, stream=stream)
        except TemperError as e:
            await self._charge(op, entry, None, t0, admission, e)
            raise
        except BaseException:  # cancelled: nothing was used, give the reservation back
            await self.meter.settle(caller.key if caller is not None else None, 0, admission)
            raise
        if not stream:
            await self._charge(op, routed.entry, routed.reply.usage, t0, admission)
        return routed, admission

    async def _charge(self, op: Operation, entry: ModelEntry, usage: Usage | None, t0: float,
                      admission: Admission | None, error: TemperError | None = None, stream: bool = False) -> None:
        caller = _caller.get() or Caller(None, None, "req_" + os.urandom(12).hex())
        record = usage_row(caller.request_id, caller.workspace_id, caller.key_id, op, entry.id,
                           app_id=caller.app_id, stream=stream)
        if error is not None:
            record["status"], record["error_code"] = error.status, error.code
        await self.meter.charge(record, caller.key, entry, usage, t0, admission)

    async def chat(self, model: str, messages: list[dict[str, Any]], **params: Any) -> ChatResult:
        entry = self.model(model, "chat")
        routed, _ = await self._call("chat", entry, {"model": entry.id, "messages": messages, **params})
        data = _data(routed)
        choice = (data.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        calls = [ToolCall(c.get("id") or "", (c.get("function") or {}).get("name") or "",
                          (c.get("function") or {}).get("arguments") or "") for c in message.get("tool_calls") or ()]
        return ChatResult(message.get("content") or "", routed.entry.id, _usage(routed, data),
                          choice.get("finish_reason"), calls)

    async def chat_stream(self, model: str, messages: list[dict[str, Any]], **params: Any
                          ) -> AsyncIterator[ChatDelta]:
        """The answer as it is generated; the last delta has the finish reason and the usage."""
        entry = self.model(model, "chat")
        t0 = time.perf_counter()
        routed, admission = await self._call("chat", entry, {"model": entry.id, "messages": messages, "stream": True,
                                                             "stream_options": {"include_usage": True}, **params},
                                             stream=True)
        reply = routed.reply
        assert reply.events is not None
        error: TemperError | None = None
        finish: str | None = None
        try:
            async for event in reply.events:
                for payload in _payloads(event, reply.framed):
                    if payload.get("usage") and reply.usage is None:
                        u = payload["usage"]
                        reply.usage = Usage(u.get("prompt_tokens") or 0, u.get("completion_tokens") or 0)
                    for choice in payload.get("choices") or ():
                        finish = choice.get("finish_reason") or finish
                        if text := (choice.get("delta") or {}).get("content"):
                            yield ChatDelta(text)
            yield ChatDelta("", finish, reply.usage)
        except TemperError as e:
            error = e
            raise
        finally:
            close = getattr(reply.events, "aclose", None)
            if close is not None:  # read to its end, or failed: nothing to do; left early: the upstream stops now
                await close()
            await self._charge("chat", routed.entry, reply.usage, t0, admission, error, stream=True)

    async def complete(self, model: str, prompt: str, **params: Any) -> ChatResult:
        """A base model's continuation of ``prompt`` (``/v1/completions``)."""
        entry = self.model(model, "completion")
        routed, _ = await self._call("completion", entry, {"model": entry.id, "prompt": prompt, **params})
        data = _data(routed)
        choice = (data.get("choices") or [{}])[0]
        return ChatResult(choice.get("text") or "", routed.entry.id, _usage(routed, data), choice.get("finish_reason"))

    async def embed(self, model: str, texts: list[str], input_type: str = "passage") -> Embeddings:
        """L2-normalised vectors of ``texts`` as ``"query"`` or ``"passage"`` (e5's prefixes; remote models
        ignore the field)."""
        entry = self.model(model, "embedding")
        routed, _ = await self._call("embedding", entry, {"model": entry.id, "input": texts,
                                                          "input_type": input_type, "encoding_format": "float"})
        data = _data(routed)
        rows = sorted(data.get("data") or [], key=lambda d: d["index"])
        if len(rows) != len(texts):
            raise UpstreamError(f"{entry.id} returned {len(rows)} embeddings for {len(texts)} texts")
        vectors = np.asarray([r["embedding"] for r in rows], dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors /= np.where(norms == 0, 1.0, norms)
        return Embeddings(vectors, routed.entry.id, _usage(routed, data))

    async def rerank(self, model: str, query: str, documents: list[str]) -> list[float]:
        """A relevance score per document, in the documents' order."""
        entry = self.model(model, "rerank")
        routed, _ = await self._call("rerank", entry, {"model": entry.id, "query": query, "documents": documents})
        data = _data(routed)
        scores = [0.0] * len(documents)
        for r in data.get("results") or []:
            scores[int(r["index"])] = float(r["relevance_score"])
        return scores


def _data(routed: Routed) -> dict[str, Any]:
    reply = routed.reply
    if reply.data is not None:
        return reply.data
    return orjson.loads(reply.body) if reply.body else {}


def _usage(routed: Routed, data: dict[str, Any]) -> Usage:
    if routed.reply.usage is not None:
        return routed.reply.usage
    u = data.get("usage") or {}
    return Usage(u.get("prompt_tokens") or 0, u.get("completion_tokens") or 0)


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


class BlockingModelClient:
    """The typed face for code outside the event loop (a job's thread): each call runs on ``loop``, in the
    calling thread's context (its current span and caller)."""

    def __init__(self, client: ModelClient, loop: asyncio.AbstractEventLoop,
                 on_close: Callable[[], None] | None = None) -> None:
        self.client = client
        self.loop = loop
        self._on_close = on_close

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        ctx = contextvars.copy_context()

        async def in_context() -> T:
            return await asyncio.get_running_loop().create_task(coro, context=ctx)

        return asyncio.run_coroutine_threadsafe(in_context(), self.loop).result()

    def chat(self, model: str, messages: list[dict[str, Any]], **params: Any) -> ChatResult:
        return self.run(self.client.chat(model, messages, **params))

    def complete(self, model: str, prompt: str, **params: Any) -> ChatResult:
        return self.run(self.client.complete(model, prompt, **params))

    def embed(self, model: str, texts: list[str], input_type: str = "passage") -> Embeddings:
        return self.run(self.client.embed(model, texts, input_type))

    def rerank(self, model: str, query: str, documents: list[str]) -> list[float]:
        return self.run(self.client.rerank(model, query, documents))

    def model(self, name: str, modality: Operation) -> ModelEntry:
        return self.client.model(name, modality)

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()


class LoopThread:
    """An event loop in a thread of its own: where a job process's providers and usage writer live."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="temper-model-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def standalone_client(settings: Settings, loop: LoopThread) -> tuple[ModelClient, Callable[[], None]]:
    """A client of its own, built from the same settings as the server's (catalogue, providers, usage and
    limit stores): for a job's worker process. Returns the client and a function that releases it."""
    from temper.models.limits import limit_store
    from temper.models.metering import UsageWriter
    from temper.models.plaza import build_catalog
    from temper.plugins import plugin_manager, providers

    pm = plugin_manager()
    provs = providers(pm, settings)
    catalog = build_catalog(settings, pm)
    store = limit_store(settings.redis_url)
    meter = Meter(UsageWriter(settings.db_url, settings.usage_flush_s), store)

    async def start() -> None:
        meter.usage.start()
        await meter.load_spent(settings.db_url)

    async def close() -> None:
        await meter.usage.close()
        for p in provs.values():
            await p.aclose()
        await store.aclose()

    loop.run(start())
    return ModelClient(Router(provs, lambda: catalog), lambda: catalog, meter), lambda: loop.run(close())


def job_model_client(ctx: JobContext) -> BlockingModelClient:
    """The model client of a job: acting for whoever started it (``key_id`` in its spec), its usage recorded
    under the job's id."""
    from temper.auth.keys import active_key

    loop = LoopThread()
    client, release = standalone_client(ctx.settings, loop)
    key_id = ctx.spec.get("key_id")
    caller = Caller(key_id, active_key(ctx.settings.db_url, key_id) if key_id else None, ctx.job_id,
                    ctx.workspace_id)
    ModelClient.act_for(caller)  # this thread's context: the job's calls run in a copy of it

    def close() -> None:
        release()
        loop.stop()

    return BlockingModelClient(client, loop.loop, close)
