"""tortoise's SQLite client, fixed so that a failed open releases what it took.

tortoise 1.1.9 takes the client's single asyncio lock, then opens the file lazily; when the
open fails (read-only mount, missing folder, a path that is a directory) the lock is never
released, so every later query and `/readyz` wait forever, even after the cause is gone
(and a graceful shutdown waits on them). Here the lock is released on any failure of the
open (or of BEGIN), and a half-opened connection (a PRAGMA failed) is closed, so the next
call simply tries again. Used as the tortoise "engine" of `sqlite://` URLs (core.db)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from typing import Any

import aiosqlite
from tortoise.backends.base.client import ConnectionWrapper, TransactionalDBClient
from tortoise.backends.sqlite.client import (
    SqliteClient,
    SqliteTransactionContext,
    SqliteTransactionWrapper,
)
from tortoise.connection import get_connections


class _ReleasingWrapper(ConnectionWrapper):
    async def __aenter__(self) -> Any:
        await self._lock.acquire()
        try:
            await self.ensure_connection()
        except BaseException:
            self._lock.release()
            raise
        return self.connection


class _ReleasingTransaction(SqliteTransactionContext):
    async def __aenter__(self) -> TransactionalDBClient:
        await self._trxlock.acquire()
        try:
            await self.ensure_connection()
            self.token = get_connections().set(self.connection_name, self.connection)
            try:
                await self.connection.begin()
            except BaseException:
                get_connections().reset(self.token)
                raise
        except BaseException:
            self._trxlock.release()
            raise
        return self.connection


class SafeSqliteClient(SqliteClient):
    async def create_connection(self, with_db: bool) -> None:
        if self._connection:
            return
        pending = aiosqlite.connect(self.filename, isolation_level=None)
        try:
            conn = await pending
        except BaseException:
            # aiosqlite stops its worker thread on a failed open; wait for it, or it calls
            # back into a loop that may be closed by then (a traceback at exit).
            await asyncio.to_thread(pending._thread.join, 5)
            raise
        try:
            conn._conn.row_factory = sqlite3.Row
            for pragma, val in self.pragmas.items():
                cursor = await conn.execute(f"PRAGMA {pragma}={val}")
                await cursor.close()
            self._connection = conn
            await self._post_connect()
        except BaseException:
            self._connection = None
            with contextlib.suppress(Exception):  # half set up (a PRAGMA failed): never reuse it
                await conn.close()
            raise

    def acquire_connection(self) -> ConnectionWrapper:
        return _ReleasingWrapper(self._lock, self)

    def _in_transaction(self) -> Any:
        return _ReleasingTransaction(SqliteTransactionWrapper(self), self._lock)


# tortoise loads a backend module and reads `client_class` (or `get_client_class`).
client_class = SafeSqliteClient


def get_client_class(db_info: dict[str, Any]) -> type[SqliteClient]:
    return SafeSqliteClient
