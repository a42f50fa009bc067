"""Key-value store port: one interface, an in-process backend and a Redis backend.

`open_kv("memory://")` is the embedded default; `open_kv("redis://...")` is shared by every
instance (access tokens, scheduler locks, rate limits). Every key lives under
`f"{namespace}:{key}"` so several apps or test runs can share one Redis.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from core.errors import ConfigError, Unavailable
from core.outage import Outage

log = logging.getLogger(__name__)

# Sub-prefixes inside the namespace, so a lock or a rate window never collides with a plain key.
LOCK_PREFIX = "lock:"
RATE_PREFIX = "rate:"

# Polling bounds while waiting for a held lock: fast first retries, capped so a long wait
# doesn't hammer Redis.
_LOCK_POLL_MIN = 0.002
_LOCK_POLL_MAX = 0.05


# With the store down, rate limits let calls through (fail open) for this long after the
# outage started; after that, rate-limited calls answer 503 `unavailable` (kv.rate_fail_open_s).
DEFAULT_RATE_FAIL_OPEN_S = 300.0


class KVUnavailable(Unavailable):
    """The kv store did not answer (down, refused, timed out): 503, retry later."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message or "缓存服务暂时不可用，请稍后重试")


class LockNotAcquired(Exception):
    """The lock is held by someone else and we could not (or would not) wait for it."""

    def __init__(self, name: str) -> None:
        super().__init__(f"lock {name!r} is held by another owner")
        self.name = name


@dataclass(frozen=True, slots=True)
class RateResult:
    allowed: bool
    remaining: int
    retry_after: float  # seconds until the next call could be allowed; 0.0 when allowed


class LockHandle:
    """An acquired lock. `release()` deletes it only if we still own it (token compare)."""

    def __init__(self, kv: KV, name: str, token: str) -> None:
        self._kv = kv
        self.name = name
        self.token = token
        self._released = False

    async def extend(self, lease: float) -> bool:
        """Renew the lease to `lease` seconds from now; False if the lock is no longer ours."""
        if self._released:
            return False
        return await self._kv._extend_lock(self.name, self.token, lease)

    async def release(self) -> bool:
        """Release; False if the lock had already expired (and maybe been taken by another)."""
        if self._released:
            return False
        self._released = True
        return await self._kv._release_lock(self.name, self.token)

    async def __aenter__(self) -> LockHandle:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()


class KV(ABC):
    """Async key-value store. Keys are plain strings; values come back as bytes."""

    def __init__(self, namespace: str) -> None:
        if not namespace:
            raise ValueError("kv namespace must not be empty")
        self.namespace = namespace
        self.outage = Outage("kv")
        self.rate_fail_open_s = DEFAULT_RATE_FAIL_OPEN_S
        self._local: KV | None = None

    @property
    def local(self) -> KV:
        """An in-process store for best-effort fallbacks while this one is down (chat dedupe
        and sender locks then hold within this instance only)."""
        if self._local is None:
            from core.kv_memory import MemoryKV

            self._local = MemoryKV(self.namespace)
        return self._local

    def full_key(self, key: str) -> str:
        return f"{self.namespace}:{key}"

    # --- basic operations -------------------------------------------------------------

    @abstractmethod
    async def get(self, key: str) -> bytes | None: ...

    @abstractmethod
    async def set(self, key: str, value: bytes | str, ttl: float | None = None, *, nx: bool = False) -> bool:
        """Store `value` (clearing any previous ttl, like Redis SET); with `nx` only if absent.

        Returns whether the value was written.
        """

    @abstractmethod
    async def delete(self, *keys: str) -> int:
        """Delete keys; returns how many existed."""

    @abstractmethod
    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Atomically add `amount` (a missing key counts as 0). `ttl` is set only on creation."""

    @abstractmethod
    async def ttl(self, key: str) -> float | None:
        """Seconds left before `key` expires; None if it is missing or never expires."""

    @abstractmethod
    async def ping(self) -> bool:
        """True when the store answers (for /readyz); never raises."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def flush_namespace(self) -> int:
        """Delete every key under our namespace (tests); returns how many were deleted."""

    # --- rate limiting ----------------------------------------------------------------

    async def rate_limit(self, key: str, limit: int, window: float) -> RateResult:
        """Sliding window: at most `limit` allowed calls in any `window` seconds.

        A denied call is not recorded, so hammering while throttled doesn't extend the wait.
        """
        if limit < 1 or window <= 0:
            raise ValueError("rate_limit needs limit >= 1 and window > 0")
        try:
            return await self._rate_limit(self.full_key(RATE_PREFIX + key), limit, window)
        except KVUnavailable:
            if not self.may_fail_open():
                raise
            return RateResult(True, limit - 1, 0.0)

    def may_fail_open(self) -> bool:
        """During a kv outage: may a limit (rate, login failures) let calls through? Only for
        `rate_fail_open_s` after the outage started — a bounded gap, not a permanent one."""
        return self.outage.down and self.outage.seconds() <= self.rate_fail_open_s

    @abstractmethod
    async def _rate_limit(self, full_key: str, limit: int, window: float) -> RateResult: ...

    # --- locks ------------------------------------------------------------------------
    # `timeout` below is the lock's lease (how long until it expires by itself), not a
    # deadline for the call, hence the ASYNC109 exemptions; it mirrors redis-py's Lock.

    @abstractmethod
    async def _acquire_lock(self, name: str, token: str, lease: float) -> bool:
        """One non-blocking attempt to take lock `name` for `lease` seconds."""

    @abstractmethod
    async def _release_lock(self, name: str, token: str) -> bool:
        """Delete lock `name` only if it still holds `token`."""

    @abstractmethod
    async def _extend_lock(self, name: str, token: str, lease: float) -> bool:
        """Set lock `name`'s expiry to `lease` seconds from now, only if it still holds `token`."""

    async def acquire_lock(
        self,
        name: str,
        timeout: float,  # noqa: ASYNC109
        *,
        blocking: bool = True,
        blocking_timeout: float | None = None,
    ) -> LockHandle | None:
        """Take lock `name`, which expires by itself after `timeout` seconds (crash safety).

        Waits up to `blocking_timeout` seconds (forever if None) unless `blocking` is False.
        Returns None if the lock could not be taken.
        """
        if timeout <= 0:
            raise ValueError("lock timeout must be > 0")
        token = secrets.token_hex(16)
        loop = asyncio.get_running_loop()
        deadline = None if blocking_timeout is None else loop.time() + blocking_timeout
        delay = _LOCK_POLL_MIN
        while True:
            if await self._acquire_lock(name, token, timeout):
                return LockHandle(self, name, token)
            if not blocking:
                return None
            now = loop.time()
            if deadline is not None and now >= deadline:
                return None
            # Jitter so many waiters don't retry in lockstep.
            pause = delay * random.uniform(0.5, 1.5)
            if deadline is not None:
                pause = min(pause, deadline - now)
            await asyncio.sleep(pause)
            delay = min(delay * 2, _LOCK_POLL_MAX)

    async def try_lock(self, name: str, timeout: float) -> LockHandle | None:  # noqa: ASYNC109
        """For scheduler jobs: the lock if free right now, else None (skip this run)."""
        return await self.acquire_lock(name, timeout, blocking=False)

    @asynccontextmanager
    async def lock(
        self,
        name: str,
        timeout: float,  # noqa: ASYNC109
        *,
        blocking: bool = True,
        blocking_timeout: float | None = None,
    ) -> AsyncIterator[LockHandle]:
        """`async with kv.lock("job:x", 60): ...`; raises LockNotAcquired if not taken."""
        handle = await self.acquire_lock(name, timeout, blocking=blocking, blocking_timeout=blocking_timeout)
        if handle is None:
            raise LockNotAcquired(name)
        try:
            yield handle
        finally:
            if not await handle.release():
                # The body outlived the lease: another owner may have run concurrently.
                log.warning("kv lock %r expired before release (timeout=%ss)", name, timeout)

    # --- JSON helpers -----------------------------------------------------------------

    async def get_json(self, key: str) -> Any:
        raw = await self.get(key)
        return None if raw is None else json.loads(raw)

    async def set_json(self, key: str, obj: Any, ttl: float | None = None, *, nx: bool = False) -> bool:
        # ensure_ascii=False keeps Chinese readable in redis-cli and about half the size.
        data = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        return await self.set(key, data, ttl, nx=nx)


def to_bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def check_ttl(ttl: float | None) -> None:
    if ttl is not None and ttl <= 0:
        raise ValueError("ttl must be > 0 seconds (or None for no expiry)")


def open_kv(url: str, namespace: str = "qudao", *, rate_fail_open_s: float | None = None) -> KV:
    """`memory://` -> MemoryKV, `redis://` / `rediss://` -> RedisKV. Does not connect yet."""
    scheme = urlsplit(url).scheme.lower()
    kv: KV
    if scheme == "memory":
        from core.kv_memory import MemoryKV

        kv = MemoryKV(namespace)
    elif scheme in ("redis", "rediss"):
        from core.kv_redis import RedisKV

        kv = RedisKV.from_url(url, namespace)
    else:
        kv = None  # type: ignore[assignment]
    if kv is not None:
        if rate_fail_open_s is not None:
            kv.rate_fail_open_s = rate_fail_open_s
        return kv
    # Name only the scheme: the URL may carry a password.
    shown = f"{scheme}://" if scheme else "(none)"
    raise ConfigError(f"kv.url: unsupported scheme {shown}; expected memory:// or redis://")
