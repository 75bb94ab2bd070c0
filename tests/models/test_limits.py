"""The rate-limit stores: the same behaviour in memory and on a real Redis, and one limit across replicas."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from temper.errors import TemperError
from temper.models.limits import LimitStore, MemoryLimitStore, RedisLimitStore, limit_store
from tests.conftest import free_port


def _prefix() -> str:
    """Keys of one test's own, on the session's Redis."""
    return f"test:{uuid.uuid4().hex}:"


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[LimitStore]:
    s: LimitStore = MemoryLimitStore() if request.param == "memory" else RedisLimitStore(
        request.getfixturevalue("redis_url"), _prefix())
    yield s
    await s.aclose()


async def test_take_until_empty_then_wait_for_one(store: LimitStore) -> None:
    for left in (2, 1, 0):
        level, wait = await store.take("requests:k", 3, 3 / 60, 1)
        assert wait == 0 and level == pytest.approx(left, abs=0.01)
    level, wait = await store.take("requests:k", 3, 3 / 60, 1)
    assert level == pytest.approx(0, abs=0.01) and wait == pytest.approx(20.0, abs=0.2)  # one back every 20 s
    assert (await store.take("requests:other", 3, 3 / 60, 1))[1] == 0  # buckets are independent


async def test_a_bucket_refills_over_time(store: LimitStore) -> None:
    assert (await store.take("requests:k", 2, 20, 2))[1] == 0
    level, wait = await store.take("requests:k", 2, 20, 1)
    assert 0 < wait <= 0.05 and level == pytest.approx(1 - 20 * wait)  # refused: 1 comes back in 50 ms
    await asyncio.sleep(0.06)
    level, wait = await store.take("requests:k", 2, 20, 1)
    assert wait == 0 and 0.15 < level < 1
    await asyncio.sleep(0.2)  # long enough to fill up, never beyond capacity
    assert (await store.take("requests:k", 2, 20, 0))[0] == pytest.approx(2)


async def test_a_charge_can_overdraw_and_blocks_later_takes(store: LimitStore) -> None:
    await store.charge("tokens:k", 100, 100 / 60, 250)  # an answer larger than the per-minute limit
    level, wait = await store.take("tokens:k", 100, 100 / 60, 0)
    assert level == pytest.approx(-150, abs=0.5) and wait == pytest.approx(151 * 60 / 100, abs=0.5)
    assert (await store.take("tokens:k", 100, 100 / 60, 0))[1] > 0  # a refused take consumes nothing


async def test_spent_tokens_are_counted_and_seeded_once(store: LimitStore) -> None:
    assert await store.spent("key_a") == 0
    await store.seed_spent({"key_a": 100, "key_b": 7})
    assert await store.add_spent("key_a", 25) == 125
    await store.seed_spent({"key_a": 100, "key_c": 1})  # a replica starting later: key_a keeps its count
    assert [await store.spent(k) for k in ("key_a", "key_b", "key_c")] == [125, 7, 1]
    await store.seed_spent({})


async def test_two_replicas_share_one_limit_exactly(redis_url: str) -> None:
    """Two stores with pools of their own (two server replicas) taking from one bucket at once."""
    prefix = _prefix()
    a, b = RedisLimitStore(redis_url, prefix), RedisLimitStore(redis_url, prefix)
    try:
        results = await asyncio.gather(*(s.take("requests:k", 10, 10 / 60, 1) for s in [a, b] * 25))
        assert sum(wait == 0 for _, wait in results) == 10
        assert await asyncio.gather(a.add_spent("key_a", 5), b.add_spent("key_a", 5)) in ([5, 10], [10, 5])
        assert await b.spent("key_a") == 10
    finally:
        await a.aclose()
        await b.aclose()


async def test_an_unreachable_redis_is_a_clean_503() -> None:
    port = free_port()  # nothing listens there
    store = RedisLimitStore(f"redis://:s3cret@127.0.0.1:{port}/0", timeout_s=1)
    try:
        for op in (store.take("requests:k", 1, 1, 1), store.charge("tokens:k", 1, 1, 1), store.spent("key_a"),
                   store.add_spent("key_a", 1), store.seed_spent({"key_a": 1})):
            with pytest.raises(TemperError) as e:
                await op
            assert (e.value.status, e.value.code) == (503, "limits_unavailable")
            assert f"127.0.0.1:{port}" in e.value.message and "s3cret" not in e.value.message
            assert e.value.body()["error"]["type"] == "api_error"
    finally:
        await store.aclose()


def test_the_store_follows_the_setting(redis_url: str) -> None:
    assert isinstance(limit_store(None), MemoryLimitStore)
    assert isinstance(limit_store(redis_url), RedisLimitStore)
