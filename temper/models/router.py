"""Routing: pick a deployment (weighted), retry with back-off, fall back to other models.

Retries and fallbacks happen only before the first byte reaches the client: a provider raises
UpstreamError before yielding anything when it cannot serve.

Each upstream attempt is a span (``llm``, ``embedding`` or ``rerank``) under the caller's, lasting until the
answer's last byte: a streamed reply's events are wrapped so that its span ends when they end, fail or are
closed. It carries the model asked for and the one that answered, the request's parameters, the usage and
its cost, the time to the first token, and the input and output (capped here, masked and capped again by the
span store).
"""
from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from temper.errors import ModelNotFound, UpstreamError
from temper.models.catalog import Catalog, ModelEntry
from temper.models.provider import Deployment, Operation, Provider, Reply
from temper.ops import tracing

log = logging.getLogger("temper.router")
SPAN_KIND = {"chat": "llm", "completion": "llm", "embedding": "embedding", "rerank": "rerank"}
GEN_AI_OPERATION = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings", "rerank": "rerank"}
# an upstream attempt's span attributes, as (names, values) (see tracing.Attributes): the attempt, what it asked
# for, then what it answered
ATTEMPT_ATTRIBUTES = (tracing.OPERATION, tracing.REQUEST_MODEL, tracing.PROVIDER, "temper.model", "temper.deployment",
                      "temper.attempt", "temper.fallback", "gen_ai.request.temperature", "gen_ai.request.top_p",
                      "gen_ai.request.max_tokens", "gen_ai.request.seed", "gen_ai.request.choice.count",
                      "temper.stream", tracing.RESPONSE_MODEL, tracing.INPUT_TOKENS, tracing.OUTPUT_TOKENS,
                      tracing.COST, tracing.TTFT_MS)
NO_USAGE = (None, None, None)
MAX_CAPTURED_EVENTS = 4096  # a streamed answer's events kept for its trace
_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]*)"')  # the answering model in a streamed answer's first event


class StreamClosed(Exception):
    """A streamed answer's reader stopped before its end (the client went away, the call was cancelled)."""

    code = "stream_closed"


@dataclass
class RetryPolicy:
    retries: int = 2          # extra attempts per model after the first
    backoff_s: float = 0.05   # first back-off; doubles, with jitter
    max_backoff_s: float = 2.0


@dataclass
class Routed:
    reply: Reply
    entry: ModelEntry  # the model that answered (differs from the requested one after a fallback)


def _order(deployments: list[Deployment], rng: random.Random) -> list[Deployment]:
    """Deployments in weighted-random order: the first is the weighted pick, the rest are retry targets."""
    if len(deployments) == 1:
        return deployments
    pool = list(deployments)
    out = []
    while pool:
        d = rng.choices(pool, weights=[x.weight for x in pool])[0]
        pool.remove(d)
        out.append(d)
    return out


class Router:
    def __init__(self, providers: dict[str, Provider], catalog: Callable[[], Catalog],
                 policy: RetryPolicy | None = None, rng: random.Random | None = None) -> None:
        self.providers = providers
        self.catalog = catalog
        self.policy = policy or RetryPolicy()
        self.rng = rng or random.Random()

    def provider(self, d: Deployment) -> Provider:
        p = self.providers.get(d.provider)
        if p is None:
            raise UpstreamError(f"no provider named {d.provider!r} is installed",
                                code="provider_not_installed", params={"provider": d.provider})
        return p

    async def call(self, op: Operation, entry: ModelEntry, req: dict, *, stream: bool) -> Routed:
        chain = [entry]
        for name in entry.fallbacks:
            try:
                fb = self.catalog().resolve(name)
            except ModelNotFound:
                continue
            if fb.modality == entry.modality:
                chain.append(fb)
        last: UpstreamError | None = None
        for n, model in enumerate(chain):
            try:
                return Routed(await self._call_model(op, model, req, stream, n), model)
            except UpstreamError as e:
                last = e
                if model is not chain[-1]:
                    log.warning("model %s failed (%s); falling back", model.id, e.message)
        assert last is not None
        raise last

    async def _call_model(self, op: Operation, model: ModelEntry, req: dict, stream: bool, fallback: int) -> Reply:
        """Try the model's deployments; each attempt is a span (until its answer's last byte, or its failure)."""
        order = _order(model.deployments, self.rng)
        delay = self.policy.backoff_s
        last: UpstreamError | None = None
        for attempt in range(self.policy.retries + 1):
            d = order[attempt % len(order)]
            body = dict(req)
            body["model"] = d.upstream_model or model.id
            trace = _Attempt(op, model, d, body, attempt, fallback) if tracing.active() else None
            try:
                reply = await self.provider(d).call(op, d, body, stream=stream)
            except BaseException as e:
                if trace is not None:
                    trace.end(None, e)
                if not isinstance(e, UpstreamError):
                    raise
                last = e
                log.warning("%s via %s failed (attempt %d): %s", model.id, d.describe(), attempt + 1, e.message)
            else:
                if trace is not None:
                    if reply.events is None:
                        trace.answered(reply)
                    else:
                        reply.events = _traced(reply.events, reply, trace)
                return reply
            if attempt < self.policy.retries:
                await asyncio.sleep(min(delay, self.policy.max_backoff_s) * (0.5 + self.rng.random()))
                delay *= 2
        assert last is not None
        raise last


class _Attempt:
    """One upstream attempt, recorded as a span once its answer has ended (``end``) under the span that was
    current when it began."""

    __slots__ = ("op", "model", "deployment", "body", "attempt", "fallback", "started", "t0", "parent")

    def __init__(self, op: Operation, model: ModelEntry, d: Deployment, body: dict, attempt: int,
                 fallback: int) -> None:
        self.op, self.model, self.deployment, self.body = op, model, d, body
        self.attempt, self.fallback = attempt, fallback
        self.parent = tracing.current()
        self.started = time.time_ns()
        self.t0 = time.perf_counter()

    def answered(self, reply: Reply) -> None:
        """A whole (non-streamed) answer: a generation's first token came with it unless the provider knows
        better (embeddings and rankings have no first token). The body goes to the span as it is: the span
        writer turns it into the answer's text, off the event loop."""
        error = _status_error(reply) if reply.status >= 400 else None
        output, response_model = (None, None) if error is not None else _answer(self.op, self.body, reply)
        self.end(reply, error, output, response_model, time.perf_counter() if SPAN_KIND[self.op] == "llm" else None)

    def end(self, reply: Reply | None, error: BaseException | None, output: str | bytes | list | None = None,
            response_model: str | None = None, first: float | None = None) -> None:
        op, model, get = self.op, self.model, self.body.get
        usage = reply.usage if reply is not None else None
        tokens = (usage.prompt_tokens, usage.completion_tokens, model.cost(usage.prompt_tokens,
                                                                           usage.completion_tokens)) \
            if usage is not None else NO_USAGE
        if reply is not None and reply.first_token_at is not None:
            first = reply.first_token_at
        upstream_model = get("model")
        tracing.emit(f"{GEN_AI_OPERATION[op]} {upstream_model}", SPAN_KIND[op], self.started, (ATTEMPT_ATTRIBUTES, (
            GEN_AI_OPERATION[op], upstream_model, self.deployment.provider, model.id, self.deployment.describe(),
            self.attempt + 1, self.fallback, get("temperature"), get("top_p"),
            get("max_completion_tokens") or get("max_tokens"), get("seed"), get("n"), bool(get("stream")),
            response_model, *tokens, (first - self.t0) * 1000 if first is not None else None)),
            error, parent=self.parent, input=_input(op, self.body), output=output)


async def _traced(events: AsyncIterator[dict | bytes], reply: Reply, trace: _Attempt) -> AsyncIterator[dict | bytes]:
    """A streamed reply's events, relayed as they are; the attempt's span ends with the last of them (or the
    failure, or the reader closing the stream) and gets the events, up to a cap, which ``reply.traced_events``
    also keeps for the caller's span (the span writer turns them into the answer's text)."""
    captured: list = []
    reply.traced_events = captured
    first: float | None = None
    error: BaseException | None = None
    try:
        async for ev in events:
            if first is None:
                first = time.perf_counter()
            if len(captured) < MAX_CAPTURED_EVENTS:
                captured.append(ev)
            yield ev
    except (GeneratorExit, asyncio.CancelledError):
        error = StreamClosed("The stream was closed before its end.")
        raise
    except BaseException as e:
        error = e
        raise
    finally:
        if error is not None:  # stop the upstream at once (a finished or failed iterator ignores this)
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()
        trace.end(reply, error, captured, _model_in(captured[0]) if captured else None, first)


def _input(op: Operation, body: dict) -> str | bytes | None:
    """What a span shows as a model call's input: the messages, the prompt, the texts, the query and documents."""
    value: Any = (body.get("messages") if op == "chat" else body.get("prompt") if op == "completion"
                  else body.get("input") if op == "embedding"
                  else {"query": body.get("query"), "documents": body.get("documents")})
    if isinstance(value, str):
        return value[:tracing.MAX_PAYLOAD]
    try:  # serialised now: cheaper to hand to the span writer than the objects, and a snapshot of them
        return orjson.dumps(value)[:tracing.MAX_PAYLOAD]
    except TypeError:
        return None


def _answer(op: Operation, body: dict, reply: Reply) -> tuple[str | bytes | dict | None, str | None]:
    """What a whole answer's span keeps (its body; for embeddings a count, so vectors are never stored or
    parsed) and the model named in it."""
    if op == "embedding":
        texts = body.get("input")
        return f"{len(texts) if isinstance(texts, list) else 1} embedding(s)", None
    if reply.data is not None:
        return reply.data, _model_in(reply.data)
    return reply.body, _model_in(reply.body) if reply.body else None


def _model_in(answer: dict | bytes) -> str | None:
    """The model an answer (or a streamed answer's first event) names: a look-up, or a search near the bytes'
    start, never a parse."""
    if isinstance(answer, dict):
        model = answer.get("model")
        return model if isinstance(model, str) else None
    found = _MODEL.search(answer, 0, 4096)
    return found.group(1).decode("utf-8", "replace") if found else None


def _status_error(reply: Reply) -> UpstreamError:
    """An upstream's own client error (relayed to the caller as is) as the attempt's failure."""
    try:
        message = orjson.loads(reply.body or b"")["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = (reply.body or b"")[:200].decode("utf-8", "replace")
    return UpstreamError(f"upstream answered {reply.status}: {message}", status=reply.status)
