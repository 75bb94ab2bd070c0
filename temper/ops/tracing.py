"""The tracing API every capability calls.

    with tracing.span("retrieve docs", kind="retrieval", input=query) as s:
        hits = ...
        s.set({"temper.retrieval.hits": len(hits)}, output=[h.id for h in hits])

Spans follow OpenTelemetry's model: W3C 128-bit trace ids and 64-bit span ids, parent links, a status,
and attributes named after the GenAI semantic conventions (``gen_ai.*``) plus ours (``temper.*``). The
current span lives in a context variable, so nesting works across ``await`` and threads started with
``contextvars.copy_context``. Finished spans go to the installed sink (``exporter.SpanExporter``), which
writes them to our span store and, when configured, to any OTLP endpoint through the OpenTelemetry SDK.

Why spans are recorded here and not with the SDK's ``Tracer``: an SDK span costs 21 µs bare and ~45 µs with
attributes on this machine, against ~5 µs here; a gateway call has at least two spans and costs ~0.3 ms of
CPU in all, so SDK spans alone would cost ~25% of it (docs/performance.md). Conversion to SDK spans
happens in the exporter thread, and only when OTLP export is on.
"""
from __future__ import annotations

import functools
import inspect
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any, Protocol, TypeVar

from temper.store.tables import DEFAULT_WORKSPACE

# Attribute names used across the code base (GenAI semantic conventions, then ours).
OPERATION = "gen_ai.operation.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
PROVIDER = "gen_ai.provider.name"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
COST = "temper.cost"
TTFT_MS = "temper.ttft_ms"
KEY_ID = "temper.key_id"
APP_ID = "temper.app_id"
ERROR_CODE = "error.type"
MAX_PAYLOAD = 1024 * 1024  # of a larger input or output a span keeps this much (the store: TEMPER_TRACE_PAYLOAD_CHARS)

F = TypeVar("F", bound=Callable[..., Any])
# A span's attributes: a dict, or a pair of tuples (names, values) of the same length. A path that runs for
# every gateway call gives the pair: it builds only the tuple of values, at a fraction of a dict's cost on
# the event loop, and the names, one tuple shared by every span of its kind, are pickled once per export
# batch. ``as_dict`` turns either into a dict (a pair's None values are left out).
Attributes = dict[str, Any] | tuple[tuple[str, ...], tuple[Any, ...]]
# A finished span, as sinks get it: trace id, span id, parent id, the trace's root span id (None on a root),
# workspace, name, kind, start ns, end ns, status, error, attributes, input, output
Finished = tuple[int, int, int | None, int | None, str, str, str, int, int, str, str | None, Attributes, Any, Any]
_rand = random.Random()  # not for secrets: trace and span ids only need to be unique


class Span:
    """One timed operation. Cheap to create; everything heavy happens in the exporter thread. Changes after
    ``end`` are not recorded.

    ``kind`` is what the console groups and colours by: gateway, llm, embedding, rerank, retrieval, tool,
    agent, workflow, node, chain, ingest or custom; ``gen_ai.operation.name`` says what a model did.

    A trace's span count and its descendants' token and cost totals are summed by the span store, not
    here: every span ends on some request path, and that path should pay only for the span itself.
    """

    __slots__ = ("trace_id", "span_id", "parent_id", "root_id", "name", "kind", "workspace_id", "start_ns",
                 "end_ns", "attributes", "status", "error", "input", "output", "_token")

    def __init__(self, name: str, kind: str, parent: Span | None, attributes: Attributes | None,
                 workspace_id: str | None, trace_id: int | None = None, parent_id: int | None = None) -> None:
        self.start_ns = start = time.time_ns()
        self.end_ns = 0
        self.name = name
        self.kind = kind
        self.span_id = _rand.getrandbits(64) or 1
        if parent is not None:
            self.trace_id = parent.trace_id
            self.parent_id = parent.span_id
            self.root_id: int | None = parent.root_id or parent.span_id
            self.workspace_id = workspace_id or parent.workspace_id
        else:
            self.trace_id = trace_id or _new_trace_id(start)
            self.parent_id = parent_id  # set when the trace continues a caller's (W3C traceparent)
            self.root_id = None
            self.workspace_id = workspace_id or DEFAULT_WORKSPACE
        self.attributes: Attributes = attributes if attributes is not None else {}
        self.status = "ok"
        self.error: str | None = None
        self.input: Any = None
        self.output: Any = None
        self._token: Token | None = None

    @property
    def trace_hex(self) -> str:
        return f"{self.trace_id:032x}"

    @property
    def span_hex(self) -> str:
        return f"{self.span_id:016x}"

    def set(self, attributes: dict[str, Any] | None = None, *, input: Any = None, output: Any = None) -> Span:
        """Add attributes (str, bool, int, float or lists of them) and/or record the input or output."""
        if attributes:
            self.attributes = as_dict(self.attributes)
            self.attributes.update(attributes)
        if input is not None:
            self.input = input
        if output is not None:
            self.output = output
        return self

    def fail(self, error: BaseException | str, code: str | None = None) -> None:
        """Mark the span as failed; ``code`` becomes ``error.type`` (default: the exception's class)."""
        self.status = "error"
        self.attributes = as_dict(self.attributes)
        self.error = _failed(error, code, self.attributes)

    def end(self, end_ns: int = 0) -> None:
        """End the span now (or at ``end_ns``) and hand it to the sink as plain data: the span object is
        freed at once, and a finished span waiting for export holds no objects the garbage collector has
        to visit."""
        if self.end_ns:
            return
        self.end_ns = end = end_ns or time.time_ns()
        sink = _sink
        if sink is not None:
            sink.put((self.trace_id, self.span_id, self.parent_id, self.root_id, self.workspace_id, self.name,
                      self.kind, self.start_ns, end, self.status, self.error, self.attributes, self.input,
                      self.output))

    @property
    def duration_ms(self) -> float:
        return ((self.end_ns or time.time_ns()) - self.start_ns) / 1e6


def as_dict(attributes: Attributes) -> dict[str, Any]:
    """A span's attributes as a dict, whichever form they were given in."""
    if isinstance(attributes, dict):
        return attributes
    names, values = attributes
    return {k: v for k, v in zip(names, values) if v is not None}


def _new_trace_id(start_ns: int) -> int:
    # a millisecond timestamp, then 80 random bits: ids (the traces table's key) arrive in order, so
    # inserts stay at the right edge of the index however large the store grows
    return start_ns // 1_000_000 << 80 | _rand.getrandbits(80)


def _failed(error: BaseException | str, code: str | None, attributes: dict[str, Any]) -> str:
    """A failed span's error message; sets its ``error.type`` (default: the exception's class)."""
    attributes[ERROR_CODE] = code or getattr(error, "code", None) or (
        error.__class__.__name__ if isinstance(error, BaseException) else "error")
    return str(error) or error.__class__.__name__


class _NoSpan(Span):
    """What ``start`` returns while tracing is off: accepts every call, records nothing."""

    def set(self, attributes: dict[str, Any] | None = None, *, input: Any = None, output: Any = None) -> Span:
        return self

    def fail(self, error: BaseException | str, code: str | None = None) -> None:
        pass

    def end(self, end_ns: int = 0) -> None:
        pass


class SpanSink(Protocol):
    def put(self, span: Finished) -> None: ...


_current: ContextVar[Span | None] = ContextVar("temper_current_span", default=None)
_sink: SpanSink | None = None


NO_SPAN = _NoSpan("", "custom", None, None, None, 0, None)


def install(sink: SpanSink | None) -> None:
    """Send finished spans to ``sink`` (None: record nothing). The server installs its exporter at start."""
    global _sink
    _sink = sink


def active() -> bool:
    """Whether spans are being recorded (skip building a span's attributes when not)."""
    return _sink is not None


def current() -> Span | None:
    return _current.get()


def start(name: str, kind: str = "custom", attributes: dict[str, Any] | None = None, *,
          workspace_id: str | None = None, input: Any = None, activate: bool = True,
          traceparent: str | bytes | None = None) -> Span:
    """Start a span under the current one (a new trace if there is none, or the caller's W3C ``traceparent``).

    With ``activate`` it becomes the current span until ``finish``; call ``finish`` (not ``end``) then.
    """
    if _sink is None:
        return NO_SPAN
    parent = _current.get()
    trace_id = parent_id = None
    if parent is None and traceparent:
        trace_id, parent_id = parse_traceparent(traceparent)
    s = Span(name, kind, parent, attributes, workspace_id, trace_id, parent_id)
    if input is not None:
        s.input = input
    if activate:
        s._token = _current.set(s)
    return s


def emit(name: str, kind: str, start_ns: int, attributes: Attributes, error: BaseException | None = None, *,
         parent: Span | None = None, input: Any = None, output: Any = None) -> None:
    """Record a span that began at ``start_ns`` and ends now, under ``parent`` (default: the current span), in
    one call.

    For an operation on a hot path that opens no spans of its own (an upstream model call): it costs about
    half of ``start`` and ``finish``, with no span object and no change of the current span. ``parent`` is for
    a span that ends in another context than it began in (a streamed answer, ended by whoever reads it).
    """
    sink = _sink
    if sink is None:
        return
    end = time.time_ns()
    if parent is None:
        parent = _current.get()
    message = None
    if error is not None:  # a copy: the caller's dict may be shared by every call
        attributes = dict(as_dict(attributes))
        message = _failed(error, None, attributes)
    trace_id, parent_id, root_id, workspace_id = (
        (parent.trace_id, parent.span_id, parent.root_id or parent.span_id, parent.workspace_id) if parent is not None
        else (_new_trace_id(start_ns), None, None, DEFAULT_WORKSPACE))
    sink.put((trace_id, _rand.getrandbits(64) or 1, parent_id, root_id, workspace_id, name, kind, start_ns, end,
              "ok" if message is None else "error", message, attributes, input, output))


def finish(s: Span, error: BaseException | None = None) -> None:
    """End a span started with ``start``, restoring the previous current span."""
    if error is not None and s.status == "ok":
        s.fail(error)
    if s._token is not None:
        try:
            _current.reset(s._token)
        except ValueError:  # ended in another context (a task other than the one that started it)
            pass
        s._token = None
    s.end()


@contextmanager
def span(name: str, kind: str = "custom", attributes: dict[str, Any] | None = None, *,
         workspace_id: str | None = None, input: Any = None) -> Iterator[Span]:
    """A span around a block; an exception marks it failed (and propagates)."""
    s = start(name, kind, attributes, workspace_id=workspace_id, input=input)
    try:
        yield s
    except BaseException as e:
        finish(s, e)
        raise
    finish(s)


def traced(name: str | None = None, kind: str = "custom") -> Callable[[F], F]:
    """Decorate a function (sync or async) so every call is a span named after it."""

    def wrap(fn: F) -> F:
        label = name or fn.__qualname__
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with span(label, kind):
                    return await fn(*args, **kwargs)
            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with span(label, kind):
                return fn(*args, **kwargs)
        return run  # type: ignore[return-value]

    return wrap


def parse_traceparent(value: str | bytes) -> tuple[int | None, int | None]:
    """``00-<32 hex trace id>-<16 hex parent id>-<flags>`` → (trace id, parent id); (None, None) if invalid."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None, None
    try:
        trace_id, parent_id = int(parts[1], 16), int(parts[2], 16)
    except ValueError:
        return None, None
    return (trace_id, parent_id) if trace_id and parent_id else (None, None)
