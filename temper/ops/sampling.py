"""Trace sampling: store a share of traces, and every trace in which a span failed.

The decision is taken in the exporter thread, never on the request path: every span is still recorded, and a
trace that is not kept costs no pickling and no store write (the bulk of tracing's cost, docs/performance.md).

A trace is kept when its id falls in the sampled share, the rule of OpenTelemetry's ``TraceIdRatioBased``
sampler (the id's low 64 bits below ``rate × 2^64``), so a service that samples with the same rate keeps the
same distributed traces. Any other trace waits in the sampler until its local root ends, and is kept if the
root or any span under it failed (an upstream attempt that was retried included).
"""
from __future__ import annotations

from collections.abc import Sequence
from itertools import islice

from temper.ops.tracing import Finished

LOW_64 = (1 << 64) - 1
PENDING_LIMIT = 50_000  # undecided traces held at once; beyond it the oldest are dropped (counted)
DECIDED_LIMIT = 10_000  # recently kept traces remembered, for a child span that ends after its root


class Sampler:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.bound = round(rate * (1 << 64))
        self.sampled_out = 0  # spans not exported
        self.held = 0  # spans waiting for their trace's root to end (a count: stats are read from other threads)
        # local root span id -> that trace's spans so far, while its root runs
        self._pending: dict[int, list[Finished]] = {}
        self._kept: dict[int, None] = {}  # local root span ids of failed traces kept, newest last

    def keep(self, spans: Sequence[Finished]) -> list[Finished]:
        """The spans of ``spans`` to export now: those of sampled traces, and every span of a trace whose
        root has ended with a failure somewhere in it. Spans of a running unsampled trace are held back."""
        bound, pending, kept = self.bound, self._pending, self._kept
        out: list[Finished] = []
        for s in spans:
            if s[0] & LOW_64 < bound:
                out.append(s)
                continue
            root_id = s[3]
            if root_id is not None:  # a child span: its trace is decided when the root ends
                if root_id in kept:
                    out.append(s)
                else:
                    pending.setdefault(root_id, []).append(s)
                    self.held += 1
                continue
            held = pending.pop(s[1], None)
            if held is not None:
                self.held -= len(held)
            if s[9] == "error" or (held is not None and any(c[9] == "error" for c in held)):
                if held:
                    out.extend(held)
                out.append(s)
                kept[s[1]] = None
            else:
                self.sampled_out += 1 + (len(held) if held else 0)
        self._bound()
        return out

    def _bound(self) -> None:
        """Forget the oldest undecided traces (their root was dropped, or runs very long) and kept roots."""
        pending, kept = self._pending, self._kept
        if len(pending) > PENDING_LIMIT:
            for root_id in list(islice(pending, len(pending) - PENDING_LIMIT)):
                n = len(pending.pop(root_id))
                self.sampled_out += n
                self.held -= n
        if len(kept) > DECIDED_LIMIT:
            for root_id in list(islice(kept, len(kept) - DECIDED_LIMIT)):
                del kept[root_id]
