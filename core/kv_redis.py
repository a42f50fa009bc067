"""Redis KV (`redis.asyncio`), shared by every instance.

Anything that must be atomic across instances (rate limits, lock release) is one Lua script;
scripts read the Redis server clock, so instances with skewed clocks still agree.
"""

from __future__ import annotations

import asyncio
import math
import uuid

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from core.errors import ConfigError
from core.kv import KV, LOCK_PREFIX, RateResult, check_ttl, to_bytes

# Compare-and-delete: never delete a lock that expired and was taken by someone else.
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Sliding window over a sorted set of allowed calls (score = server time in microseconds).
# ARGV: limit, window_us, unique member. Returns {allowed, remaining, retry_after_us}.
# A denied call adds nothing, so it doesn't consume budget.
_RATE_LUA = """
-- Numbers go to redis.call through "%.0f": Lua's default formatting would round a
-- 16-digit microsecond timestamp to 14 significant digits.
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - window))
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil(window / 1000)))
  return {1, limit - count - 1, 0}
end
local oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
return {0, 0, math.max(1, oldest + window - now)}
"""

_SCAN_BATCH = 500
# A burst beyond the pool size waits for a free connection instead of failing with
# "Too many connections" (the default pool's behaviour); `?max_connections=` in kv.url wins.
_POOL_SIZE = 50
_POOL_WAIT = 10.0
_PING_TIMEOUT = 2.0


def _ms(seconds: float) -> int:
    # Redis rejects PX 0; round up so a tiny ttl still expires rather than erroring.
    return max(1, math.ceil(seconds * 1000))


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisKV(KV):
    def __init__(self, client: aioredis.Redis, namespace: str = "qudao") -> None:
        """Wrap a client that returns bytes (decode_responses=False); `close()` closes it."""
        super().__init__(namespace)
        self.client = client
        self._release_script = client.register_script(_RELEASE_LUA)
        self._rate_script = client.register_script(_RATE_LUA)

    @classmethod
    def from_url(cls, url: str, namespace: str = "qudao") -> RedisKV:
        try:
            pool = aioredis.BlockingConnectionPool.from_url(
                url, max_connections=_POOL_SIZE, timeout=_POOL_WAIT, decode_responses=False
            )
        except ValueError as exc:
            # redis-py's message names the bad option, not the password.
            raise ConfigError(f"kv.url: invalid redis URL ({exc})") from None
        return cls(aioredis.Redis.from_pool(pool), namespace)  # the client owns the pool

    # --- basic operations -------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        return await self.client.get(self.full_key(key))

    async def set(self, key: str, value: bytes | str, ttl: float | None = None, *, nx: bool = False) -> bool:
        check_ttl(ttl)
        px = None if ttl is None else _ms(ttl)
        return bool(await self.client.set(self.full_key(key), to_bytes(value), px=px, nx=nx))

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0  # DEL with no arguments is a Redis error
        return int(await self.client.delete(*(self.full_key(k) for k in keys)))

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        check_ttl(ttl)
        fk = self.full_key(key)
        try:
            if ttl is None:
                return int(await self.client.incrby(fk, amount))
            # MULTI/EXEC: create at 0 with the ttl only if absent, then add; INCRBY keeps it.
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.set(fk, 0, px=_ms(ttl), nx=True)
                pipe.incrby(fk, amount)
                _, value = await pipe.execute()
            return int(value)
        except ResponseError as exc:
            raise ValueError(f"kv value at {key!r} is not an integer") from exc

    async def ttl(self, key: str) -> float | None:
        ms = await self.client.pttl(self.full_key(key))
        return None if ms < 0 else ms / 1000  # -2 missing, -1 no expiry

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(_PING_TIMEOUT):
                return bool(await self.client.ping())
        except (RedisError, OSError, TimeoutError):
            return False

    async def close(self) -> None:
        await self.client.aclose()

    async def flush_namespace(self) -> int:
        # SCAN + UNLINK: never FLUSHDB, other namespaces may share this database.
        deleted = 0
        batch: list[bytes] = []
        async for k in self.client.scan_iter(match=_glob_escape(self.namespace) + ":*", count=_SCAN_BATCH):
            batch.append(k)
            if len(batch) >= _SCAN_BATCH:
                deleted += await self.client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += await self.client.unlink(*batch)
        return deleted

    # --- rate limiting and locks ------------------------------------------------------

    async def _rate_limit(self, full_key: str, limit: int, window: float) -> RateResult:
        window_us = max(1, math.ceil(window * 1_000_000))
        allowed, remaining, retry_us = await self._rate_script(
            keys=[full_key], args=[limit, window_us, uuid.uuid4().hex]
        )
        return RateResult(bool(allowed), int(remaining), int(retry_us) / 1_000_000)

    async def _acquire_lock(self, name: str, token: str, lease: float) -> bool:
        return await self.set(LOCK_PREFIX + name, token, lease, nx=True)

    async def _release_lock(self, name: str, token: str) -> bool:
        return bool(await self._release_script(keys=[self.full_key(LOCK_PREFIX + name)], args=[token]))
