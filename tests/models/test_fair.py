"""FairLock: turns on a shared local model go round-robin across requesters."""
from __future__ import annotations

import asyncio

from temper.models.fair import FairLock


async def test_turns_alternate_between_requesters_not_first_come_first_served() -> None:
    lock = FairLock()
    order: list[str] = []

    async def turns(who: str, n: int) -> None:
        for _ in range(n):
            await lock.acquire(who)
            order.append(who)
            await asyncio.sleep(0)
            lock.release()

    await lock.acquire("a")  # a holds the model while both queue up
    greedy = asyncio.create_task(turns("a", 4))
    await asyncio.sleep(0)
    polite = asyncio.create_task(turns("b", 2))
    await asyncio.sleep(0)
    lock.release()
    await asyncio.gather(greedy, polite)
    # FIFO would give a, a, a, a, b, b: b arrived after a's queued turn
    assert order == ["b", "a", "b", "a", "a", "a"]


async def test_a_cancelled_waiter_gives_up_its_place_and_a_granted_one_passes_its_turn_on() -> None:
    lock = FairLock()
    await lock.acquire("a")
    gone = asyncio.create_task(lock.acquire("b"))
    waiting = asyncio.create_task(lock.acquire("c"))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    lock.release()
    await asyncio.wait_for(waiting, 1)  # c's turn, though b queued first
    granted = asyncio.create_task(lock.acquire("d"))
    await asyncio.sleep(0)
    lock.release()  # d is granted ...
    granted.cancel()  # ... but cancelled before it runs: the lock must not stay held
    await asyncio.sleep(0)
    await asyncio.wait_for(lock.acquire("e"), 1)
