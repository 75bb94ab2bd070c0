"""The Provider protocol: how the gateway talks to a model backend.

Requests and responses are OpenAI-shaped. A provider receives the validated
request body (a dict, already carrying the upstream model name in ``model``)
and returns a :class:`Reply`:

* non-stream: ``data`` (a dict) or ``body`` (raw JSON bytes, relayed as is);
* stream: ``events``, an async iterator of SSE payloads, each either a dict
  (a ``chat.completion.chunk`` / ``text_completion`` object) or the raw bytes of
  one ``data:`` payload; the gateway frames them and appends ``data: [DONE]``.
  With ``framed`` set, each item is already SSE bytes (one or more whole events),
  relayed untouched: the cheapest path for remote upstreams.

``usage`` must be set once known (for a stream: by the time the iterator ends).
A provider raises :class:`temper.errors.UpstreamError` *before* the first event
when it cannot serve, so the router can fall back or retry.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Operation = Literal["chat", "completion", "embedding", "rerank"]


@dataclass(frozen=True)
class Deployment:
    """One place a catalogue model can be served from."""

    provider: str
    upstream_model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    weight: float = 1.0
    timeout_s: float = 600.0
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def describe(self) -> str:
        return self.base_url or self.provider


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens}


@dataclass
class Reply:
    data: dict | None = None
    body: bytes | None = None
    events: AsyncIterator[dict | bytes] | None = None
    usage: Usage | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    first_token_at: float | None = None  # perf_counter() of the first generated token, if known
    usage_event: bytes | None = None  # an upstream's own usage-only stream event, relayed when asked for
    framed: bool = False  # events are ready-made SSE bytes ("data: ...\n\n", possibly several) to relay as is
    traced_events: list | None = None  # a streamed answer's events (capped), kept by the router's trace for spans


@runtime_checkable
class Provider(Protocol):
    """A model backend. ``name`` is what catalogue entries put in ``provider``."""

    name: str

    async def call(self, op: Operation, deployment: Deployment, req: dict, *, stream: bool) -> Reply:
        """Serve one request; raise UpstreamError before the first event on failure."""
        ...

    async def aclose(self) -> None:
        """Release connections, threads and loaded models."""
        ...
