"""Fair turns on a shared local model: whoever asks is served round-robin, not first come, first served.

A local model (a llama.cpp context, the e5 engine) does one piece of work at a time. With a FIFO lock, a
key that queues many requests, or one request with many choices or inputs, makes every other key wait for
all of it. Providers split their work into turns (one choice, one window of inputs) and take a ``FairLock``
turn for each under the caller's name (``REQUESTER``): waiters are grouped by requester, and each waiting
requester gets one turn per round, so another key waits for at most one turn of each busy key.
"""
from __future__ import annotations

import asyncio
import contextvars
from collections import OrderedDict, deque

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
