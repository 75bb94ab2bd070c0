"""Rate-limit and budget state: token buckets per key and kind, and the tokens each key has spent.

One server keeps it in memory. Several replicas share it in Redis, where each bucket update is one Lua script
(atomic across replicas) timed by the Redis server's clock, so replicas whose clocks disagree still agree on
a bucket's level.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

from temper.errors import TemperError

log = logging.getLogger("temper.limits")
T = TypeVar("T")


class LimitsUnavailable(TemperError):
    """503: the shared rate-limit store cannot be reached, so a request cannot be admitted."""

    status = 503
    type = "api_error"
    code = "limits_unavailable"


class LimitStore(Protocol):
    """Where rate-limit and budget state lives: in memory for one process; Redis for several replicas."""

    async def take(self, bucket: str, capacity: float, per_s: float, amount: float) -> tuple[float, float]:
        """Consume ``amount`` if at least 1 is left; return (level after, seconds until 1 is available)."""
        ...

    async def charge(self, bucket: str, capacity: float, per_s: float, amount: float) -> None:
        """Consume ``amount`` unconditionally (the level may go negative)."""
        ...

    async def spent(self, key_id: str) -> int:
        """Tokens the key has used (what its budget is checked against)."""
        ...

    async def add_spent(self, key_id: str, tokens: int) -> int:
        """Count ``tokens`` against the key; returns its new total."""
        ...

    async def seed_spent(self, totals: dict[str, int]) -> None:
        """Load totals from the database at start; a key the store already knows keeps its value, so a
        replica starting later does not reset what the others have counted since."""
        ...

    async def aclose(self) -> None: ...


class MemoryLimitStore:
    """Token buckets in a dict: capacity = the per-minute limit, refilled continuously."""

    def __init__(self) -> None:
        self.buckets: dict[str, tuple[float, float]] = {}  # name -> (level, monotonic time)
        self.totals: dict[str, int] = {}

    def _level(self, bucket: str, capacity: float, per_s: float, now: float) -> float:
        level, at = self.buckets.get(bucket, (capacity, now))
        return min(capacity, level + (now - at) * per_s)

    async def take(self, bucket: str, capacity: float, per_s: float, amount: float) -> tuple[float, float]:
        now = time.monotonic()
        level = self._level(bucket, capacity, per_s, now)
        if level < 1:
            self.buckets[bucket] = (level, now)
            return level, (1 - level) / per_s
        level -= amount
        self.buckets[bucket] = (level, now)
        return level, 0.0

    async def charge(self, bucket: str, capacity: float, per_s: float, amount: float) -> None:
        now = time.monotonic()
        self.buckets[bucket] = (self._level(bucket, capacity, per_s, now) - amount, now)

    async def spent(self, key_id: str) -> int:
        return self.totals.get(key_id, 0)

    async def add_spent(self, key_id: str, tokens: int) -> int:
        total = self.totals[key_id] = self.totals.get(key_id, 0) + tokens
        return total

    async def seed_spent(self, totals: dict[str, int]) -> None:
        for key_id, tokens in totals.items():
            self.totals.setdefault(key_id, tokens)

    async def aclose(self) -> None:
        pass


# KEYS[1]: the bucket's hash; ARGV: capacity, per second, amount, 1 = take (0 = charge). Returns the level and
# the wait as strings (Redis would truncate Lua numbers to integers). A bucket expires once it would be full
# again, so a missing bucket and a full one are the same.
_BUCKET_LUA = """
local capacity, per_s, amount = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'level', 'at')
local level = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
level = math.min(capacity, level + math.max(0, now - at) * per_s)
local wait = 0
if ARGV[4] == '1' and level < 1 then
  wait = (1 - level) / per_s
else
  level = level - amount
end
redis.call('HSET', KEYS[1], 'level', string.format('%.17g', level), 'at', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - level) / per_s * 1000) + 1000)
return {string.format('%.17g', level), string.format('%.17g', wait)}
"""


def _where(url: str) -> str:
    """The Redis server a URL points at, without its credentials."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"


class RedisLimitStore:
    """Buckets and budgets in Redis, shared by every replica that points at it.

    A failure to reach Redis raises ``LimitsUnavailable`` (503) without back-off: a request waits at most
    ``timeout_s`` per attempt, and a dropped connection (e.g. after a Redis restart) is retried once, at once.
    """

    def __init__(self, url: str, prefix: str = "temper:", *, timeout_s: float = 2.0,
                 max_connections: int = 64) -> None:
        from redis.asyncio import BlockingConnectionPool, Redis  # an optional extra: `scale`
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError

        self.prefix, self.where = prefix, _where(url)
        pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=timeout_s,
                                               socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                               retry=Retry(NoBackoff(), 1))
        self.client = Redis.from_pool(pool)
        self._bucket = self.client.register_script(_BUCKET_LUA)
        self._errors = (RedisError, OSError)

    async def _call(self, op: Awaitable[T]) -> T:
        try:
            return await op
        except self._errors as e:
            log.warning("rate-limit store at %s failed: %r", self.where, e)
            raise LimitsUnavailable(f"Rate limits cannot be checked: the Redis server at {self.where} is "
                                    f"unavailable ({type(e).__name__}). Please try again shortly.",
                                    headers={"retry-after": "1"}) from e

    async def _update(self, bucket: str, capacity: float, per_s: float, amount: float, take: bool) -> list[bytes]:
        return await self._call(self._bucket(keys=[self.prefix + "bucket:" + bucket], args=[
            repr(float(capacity)), repr(float(per_s)), repr(float(amount)), "1" if take else "0"]))

    async def take(self, bucket: str, capacity: float, per_s: float, amount: float) -> tuple[float, float]:
        level, wait = await self._update(bucket, capacity, per_s, amount, True)
        return float(level), float(wait)

    async def charge(self, bucket: str, capacity: float, per_s: float, amount: float) -> None:
        await self._update(bucket, capacity, per_s, amount, False)

    async def spent(self, key_id: str) -> int:
        return int(await self._call(self.client.get(self.prefix + "spent:" + key_id)) or 0)

    async def add_spent(self, key_id: str, tokens: int) -> int:
        return int(await self._call(self.client.incrby(self.prefix + "spent:" + key_id, tokens)))

    async def seed_spent(self, totals: dict[str, int]) -> None:
        async def seed() -> None:
            async with self.client.pipeline(transaction=False) as pipe:
                for key_id, tokens in totals.items():
                    pipe.set(self.prefix + "spent:" + key_id, tokens, nx=True)
                await pipe.execute()

        if totals:
            await self._call(seed())

    async def aclose(self) -> None:
        await self.client.aclose()


def limit_store(redis_url: str | None) -> LimitStore:
    """Redis when a URL is configured (several replicas), else memory (one process)."""
    return RedisLimitStore(redis_url) if redis_url else MemoryLimitStore()
