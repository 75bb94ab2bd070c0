"""Event-loop lag: how late a timer on the server's loop fires. Anything that blocks the loop (a synchronous
database call, a CPU-bound step) delays every request in flight by that much, so this is the number that
shows it. Sampled every ``interval_s``; recent samples give percentiles (``/metrics``, ``/health``), and
lags above ``spike_ms`` are kept with their time, so a slow request can name the lag it suffered.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque

import numpy as np

SPIKE_MS = 5.0


class LoopLag:
    def __init__(self, interval_s: float = 0.05, window: int = 1200, spike_ms: float = SPIKE_MS) -> None:
        self.interval_s = interval_s
        self.spike_ms = spike_ms
        self.samples: deque[float] = deque(maxlen=window)  # ms, the last window × interval seconds
        self.spikes: deque[tuple[float, float]] = deque(maxlen=256)  # (perf_counter at, ms)
        self._task: asyncio.Task | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            lag_ms = max(0.0, (loop.time() - due) * 1000)
            self.samples.append(lag_ms)
            if lag_ms > self.spike_ms:
                self.spikes.append((time.perf_counter(), lag_ms))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def worst_since(self, t0: float) -> float | None:
        """The largest lag above ``spike_ms`` measured since ``t0`` (a perf_counter time); None if none."""
        spikes = self.spikes
        if not spikes or spikes[-1][0] < t0:
            return None
        return round(max(ms for at, ms in spikes if at >= t0), 3)

    def stats(self, window_s: float | None = None) -> dict[str, float | int]:
        """Percentiles over the whole window, or over its last ``window_s`` seconds."""
        samples = list(self.samples)
        if window_s is not None:
            samples = samples[-max(1, int(window_s / self.interval_s)):]
        if not samples:
            return {"samples": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
        a = np.asarray(samples, dtype=np.float64)
        p50, p99 = np.percentile(a, [50, 99])
        return {"samples": len(a), "p50_ms": round(float(p50), 3), "p99_ms": round(float(p99), 3),
                "max_ms": round(float(a.max()), 3)}

    def prometheus(self) -> str:
        """The lag as Prometheus text: a summary over the recent window."""
        s = self.stats()
        return ("# HELP temper_event_loop_lag_seconds How late a timer on the server's event loop fired.\n"
                "# TYPE temper_event_loop_lag_seconds summary\n"
                f'temper_event_loop_lag_seconds{{quantile="0.5"}} {s["p50_ms"] / 1000:.6f}\n'
                f'temper_event_loop_lag_seconds{{quantile="0.99"}} {s["p99_ms"] / 1000:.6f}\n'
                f'temper_event_loop_lag_seconds{{quantile="1"}} {s["max_ms"] / 1000:.6f}\n'
                f"temper_event_loop_lag_seconds_count {s['samples']}\n")
