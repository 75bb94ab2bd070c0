"""Fair turns on a shared local model: whoever asks is served round-robin, not first come, first served.

Local models do one piece of work at a time, and all of them together too: each engine already uses every
core it is given, and two at once (the e5 engine's OpenMP team and llama.cpp's threads, both spinning at
their barriers) slowed a short chat 30-fold on 2 cores while embeddings ran. So the built-in providers share
one ``FairLock``. With a FIFO lock, a key that queues many requests, or one request with many choices or
inputs, makes every other key wait for all of it. Providers split their work into turns (a slice of a
choice, a window of inputs) and take a turn for each under the caller's name (``REQUESTER``): waiters are
grouped by requester, and each waiting requester gets one turn per round, so another key waits for at most
one turn of each busy key.

The threads that compute run below the event loop's priority (``lower_priority``, an executor initializer):
on a machine with few cores, a model busy for one key must not slow the server's answers to everyone else.
"""
from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

T = TypeVar("T")

COMPUTE_NICE = 10  # added to a compute thread's nice value; threads it starts (OpenMP, ggml) inherit it

# Who a model call is made for (a key id, or "server"): set by the gateway and the model client.
REQUESTER: contextvars.ContextVar[str] = contextvars.ContextVar("temper_requester", default="server")


class FairLock:
    """An asyncio lock granted round-robin across requesters, FIFO within each one.

    ``release`` may be called from the event loop only (a thread schedules it with ``call_soon_threadsafe``).
    """

    def __init__(self) -> None:
        self._held = False
        self._holder: str | None = None
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self.contended = False  # someone other than the holder waits (read by decode threads)

    async def acquire(self, requester: str | None = None) -> None:
        """Wait for a turn as ``requester`` (default: the context's ``REQUESTER``)."""
        who = requester if requester is not None else REQUESTER.get()
        if not self._held and not self._waiting:
            self._held, self._holder = True, who
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(who, deque()).append(fut)
        self._update()
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # granted as we were cancelled: pass the turn on
                self.release()
            else:
                self._forget(who, fut)
            raise

    async def take_turn(self, executor: Executor, work: Callable[[], T], requester: str | None = None) -> T:
        """``work()`` on ``executor`` in a turn of ``requester``'s; the turn ends when the work does, also when
        the caller is cancelled meanwhile (a thread cannot be stopped from outside)."""
        loop = asyncio.get_running_loop()
        await self.acquire(requester)
        try:
            cf = executor.submit(work)
        except BaseException:
            self.release()
            raise
        cf.add_done_callback(lambda _: _release_soon(loop, self))
        return await asyncio.wrap_future(cf)

    def release(self) -> None:
        """End the current turn: the next requester in the round goes (not the one whose turn ended, if
        anyone else waits), then moves to the round's end."""
        if len(self._waiting) > 1 and next(iter(self._waiting)) == self._holder:
            self._waiting.move_to_end(self._holder)
        while self._waiting:
            who, queue = next(iter(self._waiting.items()))
            fut = queue.popleft()
            if queue:
                self._waiting.move_to_end(who)
            else:
                del self._waiting[who]
            if not fut.done():
                fut.set_result(None)
                self._holder = who
                self._update()
                return
        self._held, self._holder = False, None
        self._update()

    def _forget(self, who: str, fut: asyncio.Future[None]) -> None:
        queue = self._waiting.get(who)
        if queue is not None and fut in queue:
            queue.remove(fut)
            if not queue:
                del self._waiting[who]
        self._update()

    def _update(self) -> None:
        self.contended = any(who != self._holder for who in self._waiting)


def _release_soon(loop: asyncio.AbstractEventLoop, lock: FairLock) -> None:
    """End ``lock``'s turn from a worker thread (a future's done callback)."""
    try:
        loop.call_soon_threadsafe(lock.release)
    except RuntimeError:  # the loop is gone; nobody is waiting any more
        pass


def lower_priority() -> None:
    """Lower the calling thread's CPU priority (Linux: nice applies per thread) by ``COMPUTE_NICE``."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + COMPUTE_NICE))
    except (AttributeError, OSError):  # not Linux, or not allowed: run at the normal priority
        pass
