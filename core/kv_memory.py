"""In-process KV for the embedded mode and tests.

Asyncio-safe because no method awaits between reading and writing its state: each call runs
to completion on the event loop before any other task touches the dicts. Not thread-safe and
not shared between processes (use Redis for several instances).
"""

from __future__ import annotations

import time
from collections import deque

from core.kv import KV, LOCK_PREFIX, RateResult, check_ttl, to_bytes

# Expired keys are dropped when touched; a full sweep at most this often bounds memory for
# keys nobody reads again.
_SWEEP_EVERY = 30.0


class MemoryKV(KV):
    def __init__(self, namespace: str = "qudao") -> None:
        super().__init__(namespace)
        # full key -> (value, expires_at on the monotonic clock or None)
        self._data: dict[str, tuple[bytes, float | None]] = {}
        # full key -> (window, timestamps of allowed calls, oldest first)
        self._windows: dict[str, tuple[float, deque[float]]] = {}
        self._next_sweep = time.monotonic() + _SWEEP_EVERY
        self._closed = False

    # --- internals --------------------------------------------------------------------

    def _live(self, full_key: str, now: float) -> tuple[bytes, float | None] | None:
        item = self._data.get(full_key)
        if item is not None and item[1] is not None and item[1] <= now:
            del self._data[full_key]
            return None
        return item

    def _maybe_sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + _SWEEP_EVERY
        for k in [k for k, (_, exp) in self._data.items() if exp is not None and exp <= now]:
            del self._data[k]
        for k in [k for k, (w, ts) in self._windows.items() if not ts or ts[-1] <= now - w]:
            del self._windows[k]

    @staticmethod
    def _expiry(now: float, ttl: float | None) -> float | None:
        return None if ttl is None else now + ttl

    # --- basic operations -------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        item = self._live(self.full_key(key), time.monotonic())
        return None if item is None else item[0]

    async def set(self, key: str, value: bytes | str, ttl: float | None = None, *, nx: bool = False) -> bool:
        check_ttl(ttl)
        now = time.monotonic()
        self._maybe_sweep(now)
        fk = self.full_key(key)
        if nx and self._live(fk, now) is not None:
            return False
        self._data[fk] = (to_bytes(value), self._expiry(now, ttl))
        return True

    async def delete(self, *keys: str) -> int:
        now = time.monotonic()
        count = 0
        for key in keys:
            fk = self.full_key(key)
            if self._live(fk, now) is not None:
                del self._data[fk]
                count += 1
        return count

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        check_ttl(ttl)
        now = time.monotonic()
        self._maybe_sweep(now)
        fk = self.full_key(key)
        item = self._live(fk, now)
        if item is None:
            value, expires = amount, self._expiry(now, ttl)
        else:
            try:
                value = int(item[0]) + amount
            except ValueError:
                raise ValueError(f"kv value at {key!r} is not an integer") from None
            expires = item[1]  # an existing key keeps its expiry, like Redis INCRBY
        self._data[fk] = (str(value).encode(), expires)
        return value

    async def ttl(self, key: str) -> float | None:
        now = time.monotonic()
        item = self._live(self.full_key(key), now)
        if item is None or item[1] is None:
            return None
        return item[1] - now

    async def ping(self) -> bool:
        return not self._closed

    async def close(self) -> None:
        self._closed = True

    async def flush_namespace(self) -> int:
        prefix = self.full_key("")
        doomed = [k for k in self._data if k.startswith(prefix)]
        for k in doomed:
            del self._data[k]
        windows = [k for k in self._windows if k.startswith(prefix)]
        for k in windows:
            del self._windows[k]
        return len(doomed) + len(windows)

    # --- rate limiting and locks ------------------------------------------------------

    async def _rate_limit(self, full_key: str, limit: int, window: float) -> RateResult:
        now = time.monotonic()
        self._maybe_sweep(now)
        _, stamps = self._windows.get(full_key, (window, deque()))
        self._windows[full_key] = (window, stamps)  # the latest window decides when it's stale
        while stamps and stamps[0] <= now - window:
            stamps.popleft()
        if len(stamps) >= limit:
            return RateResult(False, 0, stamps[0] + window - now)
        stamps.append(now)
        return RateResult(True, limit - len(stamps), 0.0)

    async def _acquire_lock(self, name: str, token: str, lease: float) -> bool:
        return await self.set(LOCK_PREFIX + name, token, lease, nx=True)

    async def _release_lock(self, name: str, token: str) -> bool:
        fk = self.full_key(LOCK_PREFIX + name)
        item = self._live(fk, time.monotonic())
        if item is None or item[0] != token.encode():
            return False
        del self._data[fk]
        return True

    async def _extend_lock(self, name: str, token: str, lease: float) -> bool:
        check_ttl(lease)
        now = time.monotonic()
        fk = self.full_key(LOCK_PREFIX + name)
        item = self._live(fk, now)
        if item is None or item[0] != token.encode():
            return False
        self._data[fk] = (item[0], now + lease)
        return True
