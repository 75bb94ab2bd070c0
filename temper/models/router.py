"""Routing: pick a deployment (weighted), retry with back-off, fall back to other models.

Retries and fallbacks happen only before the first byte reaches the client: a provider raises
UpstreamError before yielding anything when it cannot serve.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from temper.errors import ModelNotFound, UpstreamError
from temper.models.catalog import Catalog, ModelEntry
from temper.models.provider import Deployment, Operation, Provider, Reply, Usage
from temper.ops import tracing

log = logging.getLogger("temper.router")
SPAN_KIND = {"chat": "llm", "completion": "llm", "embedding": "embedding", "rerank": "rerank"}
GEN_AI_OPERATION = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings", "rerank": "rerank"}
# an upstream attempt's span attributes, as (names, values) (see tracing.Attributes)
ATTEMPT_ATTRIBUTES = (tracing.OPERATION, tracing.REQUEST_MODEL, tracing.PROVIDER, "temper.model", "temper.deployment",
                      "temper.attempt", "temper.fallback", tracing.INPUT_TOKENS, tracing.OUTPUT_TOKENS, tracing.COST)
NO_USAGE = (None, None, None)


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
            raise UpstreamError(f"no provider named {d.provider!r} is installed")
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
        """Try the model's deployments; each attempt is a span (until the upstream answers or fails)."""
        order = _order(model.deployments, self.rng)
        delay = self.policy.backoff_s
        last: UpstreamError | None = None
        for attempt in range(self.policy.retries + 1):
            d = order[attempt % len(order)]
            body = dict(req)
            body["model"] = d.upstream_model or model.id
            started = time.time_ns() if tracing.active() else 0
            try:
                reply = await self.provider(d).call(op, d, body, stream=stream)
            except BaseException as e:
                if started:
                    _trace_attempt(op, model, d, body["model"], attempt, fallback, started, None, e)
                if not isinstance(e, UpstreamError):
                    raise
                last = e
                log.warning("%s via %s failed (attempt %d): %s", model.id, d.describe(), attempt + 1, e.message)
            else:
                if started:
                    _trace_attempt(op, model, d, body["model"], attempt, fallback, started,
                                   reply.usage if reply.events is None else None, None)
                return reply
            if attempt < self.policy.retries:
                await asyncio.sleep(min(delay, self.policy.max_backoff_s) * (0.5 + self.rng.random()))
                delay *= 2
        assert last is not None
        raise last


def _trace_attempt(op: Operation, model: ModelEntry, d: Deployment, upstream_model: str, attempt: int,
                   fallback: int, started: int, usage: Usage | None, error: BaseException | None) -> None:
    """One upstream attempt as a span under the caller's (the gateway call, an app's model call)."""
    tokens = (usage.prompt_tokens, usage.completion_tokens, model.cost(usage.prompt_tokens, usage.completion_tokens)) \
        if usage is not None else NO_USAGE
    tracing.emit(f"{GEN_AI_OPERATION[op]} {upstream_model}", SPAN_KIND[op], started, (ATTEMPT_ATTRIBUTES, (
        GEN_AI_OPERATION[op], upstream_model, d.provider, model.id, d.describe(), attempt + 1, fallback, *tokens)),
        error)
