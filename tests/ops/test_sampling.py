"""Trace sampling in the exporter: a share of traces by id, and every trace with a failed span."""
from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased

from temper.ops import sampling, tracing
from temper.ops.exporter import SpanExporter
from temper.ops.sampling import Sampler


class Capture:
    name = "capture"

    def __init__(self) -> None:
        self.spans: list[tracing.Finished] = []

    def export(self, spans: Sequence[tracing.Finished]) -> None:
        self.spans.extend(spans)

    def close(self) -> None:
        pass


@pytest.fixture
def capture() -> Iterator[tuple[SpanExporter, Capture]]:
    sink = Capture()
    ex = SpanExporter([sink], sampler=Sampler(0.0))
    tracing.install(ex)
    yield ex, sink
    tracing.install(None)
    ex.close()


def names(spans: list[tracing.Finished]) -> list[str]:
    return [s[5] for s in spans]


def test_unsampled_traces_are_kept_only_when_a_span_failed(capture: tuple[SpanExporter, Capture]) -> None:
    ex, sink = capture
    with tracing.span("fine", "gateway"):
        tracing.emit("attempt", "llm", time.time_ns(), {})
    with tracing.span("retried", "gateway"):  # the root succeeds after a failed attempt
        tracing.emit("attempt 1", "llm", time.time_ns(), {}, error=TimeoutError("upstream timed out"))
        tracing.emit("attempt 2", "llm", time.time_ns(), {})
    with pytest.raises(ValueError), tracing.span("broken", "chain"):
        with tracing.span("step", "node"):
            pass
        raise ValueError("bad input")
    ex.drain()
    assert names(sink.spans) == ["attempt 1", "attempt 2", "retried", "step", "broken"]
    assert [s[9] for s in sink.spans] == ["error", "ok", "ok", "ok", "error"]
    stats = ex.stats()
    assert stats["sample_rate"] == 0.0 and stats["sampled_out"] == 2 and stats["held"] == 0
    assert stats["exported"] == stats["accepted"] == 7  # handled: written or sampled out


def test_children_wait_for_their_root_across_batches(capture: tuple[SpanExporter, Capture]) -> None:
    ex, sink = capture
    with tracing.span("agent run", "agent") as root:
        with tracing.span("llm", "llm"):
            pass
        ex.drain()  # the child goes out before its root has ended: held, not yet decided
        assert sink.spans == [] and ex.stats()["held"] == 1
        root.fail("the agent gave up")
    ex.drain()
    assert names(sink.spans) == ["llm", "agent run"] and ex.stats()["held"] == 0


def test_the_sampled_share_follows_opentelemetry_trace_id_ratio() -> None:
    sink = Capture()
    ex = SpanExporter([sink], sampler=Sampler(0.25))
    tracing.install(ex)
    try:
        trace_ids = []
        for _ in range(4000):
            with tracing.span("call", "gateway") as s:
                trace_ids.append(s.trace_id)
        ex.drain()
    finally:
        tracing.install(None)
    otel = TraceIdRatioBased(0.25)
    expected = {t for t in trace_ids if otel.should_sample(None, t, "call").decision == Decision.RECORD_AND_SAMPLE}
    assert {s[0] for s in sink.spans} == expected
    assert 0.22 < len(expected) / len(trace_ids) < 0.28
    assert ex.stats()["sampled_out"] == len(trace_ids) - len(expected)


def test_undecided_traces_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Children whose root never ends (it was dropped from a full queue) are forgotten, oldest first."""
    monkeypatch.setattr(sampling, "PENDING_LIMIT", 3)
    sampler = Sampler(0.0)
    orphans = [(1 << 64 | i, 100 + i, i, i, "default", f"child {i}", "llm", 0, 1, "ok", None, {}, None, None)
               for i in range(1, 6)]
    assert sampler.keep(orphans) == []
    assert sampler.held == 3 and sampler.sampled_out == 2
    assert list(sampler._pending) == [3, 4, 5]
