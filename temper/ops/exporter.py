"""The span exporter: a bounded in-memory queue drained by one background thread into the sinks.

``put`` (called from ``Span.end`` on the request path) is a deque append; it never blocks and never waits
for I/O. When the queue is full, the new span is dropped and counted (``stats()["dropped"]``) rather than
slowing requests down or growing memory without bound.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Protocol

import pluggy

from temper.config import Settings
from temper.ops.sampling import Sampler
from temper.ops.span_store import SpanStoreSink
from temper.ops.trace_masking import masker_for
from temper.ops.tracing import Finished

log = logging.getLogger("temper.tracing")


class Sink(Protocol):
    """Where batches of finished spans go (the span store, an OTLP endpoint)."""

    name: str

    def export(self, spans: Sequence[Finished]) -> None: ...

    def close(self) -> None: ...


class SpanExporter:
    def __init__(self, sinks: list[Sink], *, max_queue: int = 20_000, batch_size: int = 1000,
                 interval_s: float = 0.5, sampler: Sampler | None = None) -> None:
        self.sinks = sinks
        self.sampler = sampler
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.queue: deque[Finished] = deque()
        self.dropped = 0
        self.accepted = 0
        self.exported = 0
        self.errors = 0
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._last_drop_log = 0.0

    def put(self, span: Finished) -> None:
        q = self.queue
        if len(q) >= self.max_queue:
            self.dropped += 1
            return
        q.append(span)
        self.accepted += 1
        if len(q) == self.batch_size:
            self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="temper-span-exporter", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            self.drain()

    def drain(self) -> int:
        """Export everything queued now; returns how many spans went out."""
        n = 0
        q = self.queue
        while q:
            batch = [q.popleft() for _ in range(min(len(q), self.batch_size))]
            self._export(batch)
            n += len(batch)
        if self.dropped and time.monotonic() - self._last_drop_log > 60:
            self._last_drop_log = time.monotonic()
            log.warning("span queue full: %d spans dropped so far (raise TEMPER_TRACE_QUEUE_SIZE?)", self.dropped)
        return n

    def _export(self, batch: list[Finished]) -> None:
        spans = batch if self.sampler is None else self.sampler.keep(batch)
        for sink in self.sinks if spans else ():
            try:
                sink.export(spans)
            except Exception:  # noqa: BLE001 - a broken sink must not stop the others or the thread
                self.errors += 1
                log.exception("exporting %d spans to %s failed", len(spans), sink.name)
        self.exported += len(batch)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until the spans queued before the call are exported (so a read sees them); False on timeout."""
        if self._thread is None or not self._thread.is_alive():
            self.drain()
            return True
        target = self.accepted
        deadline = time.monotonic() + timeout_s
        while self.exported < target:
            if time.monotonic() > deadline:
                return False
            self._wake.set()
            time.sleep(0.002)
        return True

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.drain()
        for sink in self.sinks:
            sink.close()

    def stats(self) -> dict[str, int | list[str]]:
        sampler = self.sampler
        return {"queued": len(self.queue), "accepted": self.accepted, "exported": self.exported,
                "dropped": self.dropped, "errors": self.errors, "max_queue": self.max_queue,
                "sample_rate": sampler.rate if sampler else 1.0,
                "sampled_out": sampler.sampled_out if sampler else 0, "held": sampler.held if sampler else 0,
                "sinks": [s.name for s in self.sinks]}


def from_settings(settings: Settings, pm: pluggy.PluginManager | None = None) -> SpanExporter:
    """The span store (through its writer process, by default), plus an OTLP endpoint when
    ``TEMPER_OTLP_ENDPOINT`` is set. Personal data is masked in the store as each workspace chooses
    (default: TEMPER_TRACE_MASK_PII), and in OTLP payloads as the server's setting says."""
    masker = masker_for(pm)
    store: Sink
    if settings.trace_writer == "process":
        from temper.ops.span_writer import WriterProcess

        store = WriterProcess(settings.db_url, settings.trace_payload_chars, settings.trace_mask_pii)
    else:
        store = SpanStoreSink(settings.db_url, settings.trace_payload_chars, masker, settings.trace_mask_pii)
    sinks: list[Sink] = [store]
    if settings.otlp_endpoint:
        from temper.ops.otlp import OtlpSink, parse_headers  # the SDK loads only when export is on

        sinks.append(OtlpSink(settings.otlp_endpoint, parse_headers(settings.otlp_headers),
                              payloads=settings.otlp_payloads, payload_chars=settings.trace_payload_chars,
                              masker=masker if settings.trace_mask_pii else None))
    sampler = Sampler(settings.trace_sample_rate) if settings.trace_sample_rate < 1 else None
    return SpanExporter(sinks, max_queue=settings.trace_queue_size, interval_s=settings.trace_flush_s,
                        sampler=sampler)
