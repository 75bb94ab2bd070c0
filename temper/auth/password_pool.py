"""Password checks on threads of their own, with a bounded wait.

A scrypt check costs ~60 ms of CPU. Run in the thread pool that every synchronous route shares, 300 sign-ins
at once held the management API for 10 s and starved the event loop's core; here at most ``threads`` checks
run and ``queue`` wait, and any more are turned away at once (503) rather than queued without end.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from temper.errors import TemperError

T = TypeVar("T")


class PasswordPool:
    def __init__(self, threads: int, queue: int) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="temper-password")
        self._capacity = threads + queue
        self._pending = 0  # running and waiting; only touched on the event loop

    async def run(self, check: Callable[..., T], *args: object) -> T:
        """``check(*args)`` on a password thread; 503 ``server_busy`` when the threads and the queue are full."""
        if self._pending >= self._capacity:
            raise TemperError("Too many sign-ins at once. Try again in a moment.", status=503, code="server_busy",
                              etype="server_error", headers={"retry-after": "1"})
        self._pending += 1
        try:
            return await asyncio.wrap_future(self._pool.submit(check, *args))
        finally:
            self._pending -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
