"""Redis KV (`redis.asyncio`), shared by every instance.

Anything that must be atomic across instances (rate limits, lock release) is one Lua script;
scripts read the Redis server clock, so instances with skewed clocks still agree.
"""

from __future__ import annotations

import asyncio
import functools
import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.errors import ConfigError
from core.kv import KV, LOCK_PREFIX, KVUnavailable, RateResult, check_ttl, to_bytes

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

# Renew a lock's lease only if we still hold it.
_EXTEND_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_SCAN_BATCH = 500
# A burst beyond the pool size waits for a free connection instead of failing with
# "Too many connections" (the default pool's behaviour); `?max_connections=` in kv.url wins.
_POOL_SIZE = 50
_POOL_WAIT = 10.0
_PING_TIMEOUT = 2.0
# Bounds on one call: a frozen Redis must not hang a request (the pool wait above is the
# third bound). `?socket_timeout=` / `?socket_connect_timeout=` in kv.url win.
_SOCKET_TIMEOUT = 3.0
_CONNECT_TIMEOUT = 2.0
# "Redis is down" as opposed to a bad command (ResponseError: a bug, stays a 500).
_OUTAGE_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)

# While Redis is down, calls fail at once, except one try every this many seconds.
_RETRY_DOWN_S = 1.0

T = TypeVar("T")


def _guarded(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Turn connection failures into KVUnavailable (503) and track the outage: one log line
    when it starts, one when the next call succeeds."""

    @functools.wraps(fn)
    async def call(self: RedisKV, *args: Any, **kw: Any) -> T:
        if self.outage.fail_fast(_RETRY_DOWN_S):
            raise KVUnavailable()
        try:
            result = await fn(self, *args, **kw)
        except _OUTAGE_ERRORS as exc:
            self.outage.failed(exc)
            raise KVUnavailable() from exc
        if self.outage.down:
            self.outage.recovered()
        return result

    return call


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
        self._extend_script = client.register_script(_EXTEND_LUA)

    @classmethod
    def from_url(cls, url: str, namespace: str = "qudao") -> RedisKV:
        try:
            pool = aioredis.BlockingConnectionPool.from_url(
                url,
                max_connections=_POOL_SIZE,
                timeout=_POOL_WAIT,
                decode_responses=False,
                **_default_timeouts(url),
            )
        except ValueError as exc:
            # redis-py's message names the bad option, not the password.
            raise ConfigError(f"kv.url: invalid redis URL ({exc})") from None
        return cls(aioredis.Redis.from_pool(pool), namespace)  # the client owns the pool

    # --- basic operations -------------------------------------------------------------

    @_guarded
    async def get(self, key: str) -> bytes | None:
        return await self.client.get(self.full_key(key))

    @_guarded
    async def set(self, key: str, value: bytes | str, ttl: float | None = None, *, nx: bool = False) -> bool:
        check_ttl(ttl)
        px = None if ttl is None else _ms(ttl)
        return bool(await self.client.set(self.full_key(key), to_bytes(value), px=px, nx=nx))

    @_guarded
    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0  # DEL with no arguments is a Redis error
        return int(await self.client.delete(*(self.full_key(k) for k in keys)))

    @_guarded
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

    @_guarded
    async def ttl(self, key: str) -> float | None:
        ms = await self.client.pttl(self.full_key(key))
        return None if ms < 0 else ms / 1000  # -2 missing, -1 no expiry

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(_PING_TIMEOUT):
                ok = bool(await self.client.ping())
        except (RedisError, OSError, TimeoutError) as exc:
            self.outage.failed(exc)
            return False
        if ok:
            self.outage.recovered()
        return ok

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

    @_guarded
    async def _rate_limit(self, full_key: str, limit: int, window: float) -> RateResult:
        window_us = max(1, math.ceil(window * 1_000_000))
        allowed, remaining, retry_us = await self._rate_script(
            keys=[full_key], args=[limit, window_us, uuid.uuid4().hex]
        )
        return RateResult(bool(allowed), int(remaining), int(retry_us) / 1_000_000)

    @_guarded
    async def _acquire_lock(self, name: str, token: str, lease: float) -> bool:
        return await self.set(LOCK_PREFIX + name, token, lease, nx=True)

    @_guarded
    async def _release_lock(self, name: str, token: str) -> bool:
        return bool(await self._release_script(keys=[self.full_key(LOCK_PREFIX + name)], args=[token]))

    @_guarded
    async def _extend_lock(self, name: str, token: str, lease: float) -> bool:
        check_ttl(lease)
        fk = self.full_key(LOCK_PREFIX + name)
        return bool(await self._extend_script(keys=[fk], args=[token, _ms(lease)]))


def _default_timeouts(url: str) -> dict[str, float]:
    """Socket timeouts unless the URL names its own (redis-py reads them from the query)."""
    from urllib.parse import parse_qs, urlsplit

    given = parse_qs(urlsplit(url).query)
    out: dict[str, float] = {}
    if "socket_timeout" not in given:
        out["socket_timeout"] = _SOCKET_TIMEOUT
    if "socket_connect_timeout" not in given:
        out["socket_connect_timeout"] = _CONNECT_TIMEOUT
    return out
