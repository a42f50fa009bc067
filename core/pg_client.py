"""tortoise's asyncpg client with a fair, time-bounded pool and no slot leak.

- **Fair and bounded:** asyncpg's pool hands a returned connection to whoever asks next — a
  newcomer can take it before a caller that has waited for a while, so under load some
  requests wait far longer than others, and `acquire()` (as tortoise calls it) waits
  forever. Here every acquire passes a FIFO gate sized to the pool: a returned slot goes to
  the longest waiter, and nobody waits longer than `database.pool_acquire_timeout_s`: then
  `PoolTimeout` (a `TimeoutError`, so a 503 `unavailable` with Retry-After, core.outage).
- **No leak:** tortoise takes a connection for a transaction, then sends BEGIN; when BEGIN
  fails (the connection died with its server) the connection was never given back, so after
  an outage the pool ran dry one dead connection at a time. Here it is released.

Used as the tortoise "engine" of `postgres://` URLs (core.db); the gate wraps the pool, so
handlers.sql's direct `pool.acquire()` goes through it too."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import asyncpg
from tortoise.backends.asyncpg.client import AsyncpgDBClient, TransactionWrapper
from tortoise.backends.base.client import TransactionalDBClient, TransactionContextPooled
from tortoise.connection import get_connections

DEFAULT_ACQUIRE_TIMEOUT_S = 3.0


class PoolTimeout(TimeoutError):
    """No pooled database connection became free within `pool_acquire_timeout_s`."""


class FairPool:
    """An asyncpg pool behind a FIFO gate of `size` slots (the pool's max size): at most
    `size` callers hold a connection; the others queue in arrival order."""

    def __init__(self, pool: asyncpg.Pool, size: int, timeout: float) -> None:
        self._pool = pool
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.timeout = timeout

    def __getattr__(self, name: str) -> Any:  # close, terminate, expire_connections, get_size...
        return getattr(self._pool, name)

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._waiters if not f.done())

    async def _enter(self, wait_s: float) -> None:
        if self._free > 0 and not self.waiting:
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            async with asyncio.timeout(wait_s):
                await fut
        except BaseException as exc:
            if fut.done() and not fut.cancelled():
                self._leave()  # the slot was handed to us as we gave up: pass it on
            else:
                fut.cancel()
            if isinstance(exc, TimeoutError):
                raise PoolTimeout(f"no database connection free within {wait_s:g}s") from None
            raise

    def _leave(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # straight to the longest waiter: no newcomer barges in
                return
        self._free += 1

    async def acquire(self, *, timeout: float | None = None) -> Any:  # noqa: ASYNC109 (asyncpg's API)
        await self._enter(self.timeout if timeout is None else timeout)
        try:
            return await self._pool.acquire()
        except BaseException:
            self._leave()
            raise

    async def release(self, connection: Any, *, timeout: float | None = None) -> None:  # noqa: ASYNC109
        try:
            await self._pool.release(connection, timeout=timeout)
        finally:
            self._leave()


class _ReleasingTransaction(TransactionContextPooled):
    async def __aenter__(self) -> TransactionalDBClient:
        await self.ensure_connection()
        pool = self.client._parent._pool  # type: ignore[attr-defined]
        self.client._connection = await pool.acquire()  # type: ignore[attr-defined]
        self.token = get_connections().set(self.connection_name, self.client)
        try:
            await self.client.begin()
        except BaseException:
            # BEGIN failed (a dead connection): __aexit__ will not run, give the slot back
            get_connections().reset(self.token)
            await pool.release(self.client._connection)  # type: ignore[attr-defined]
            raise
        return self.client


class FairAsyncpgClient(AsyncpgDBClient):
    def __init__(self, **kwargs: Any) -> None:
        self.pool_acquire_timeout_s = float(kwargs.pop("pool_acquire_timeout", DEFAULT_ACQUIRE_TIMEOUT_S))
        super().__init__(**kwargs)

    async def create_pool(self, **kwargs: Any) -> Any:
        pool = await super().create_pool(**kwargs)
        return FairPool(pool, self.pool_maxsize, self.pool_acquire_timeout_s)

    def _in_transaction(self) -> Any:
        return _ReleasingTransaction(TransactionWrapper(self), self._pool_init_lock)


# tortoise loads a backend module and reads `client_class` (or `get_client_class`).
client_class = FairAsyncpgClient


def get_client_class(db_info: dict[str, Any]) -> type[AsyncpgDBClient]:
    return FairAsyncpgClient
