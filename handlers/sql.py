"""Raw SQL for the hot paths (order admission, stock changes, notifications), on either dialect.

Building a query through the ORM costs more CPU than running it (pypika renders the SQL anew
every time), so the statements an order admission runs are written here by hand. They use the
model's own connection — inside the caller's transaction when there is one (on PostgreSQL
straight through asyncpg, see `fetch`) — and the model fields' own `to_db_value`, so what
lands in the database is exactly what the ORM would have written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from functools import cache, lru_cache
from typing import Any

import asyncpg
from tortoise import timezone
from tortoise.backends.asyncpg.client import TransactionWrapper as _PG_TRANSACTION
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.connection import get_connections
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.fields import DatetimeField
from tortoise.models import Model
from tortoise.transactions import in_transaction

from core.pg_client import FairAsyncpgClient as _PG_CLIENT  # the client core.db configures

_SQL_LOG = logging.getLogger("tortoise.db_client")
CHUNK = 500  # rows per multi-row INSERT (both dialects allow 32k parameters)


class SqlParams:
    """Placeholders for raw SQL on either dialect ($n on PostgreSQL, ? on SQLite): `p(value)`
    appends a value and returns its placeholder; `p.values` is the argument list."""

    def __init__(self, dialect: str, db: BaseDBAsyncClient | None = None) -> None:
        self.pg = dialect == "postgres"
        self.values: list[object] = []
        self.db = db

    def __call__(self, value: object) -> str:
        self.values.append(value)
        return f"${len(self.values)}" if self.pg else "?"

    def any_int(self, column: str, values: Sequence[int]) -> str:
        return self._any(column, values, "int")

    def any_str(self, column: str, values: Sequence[str]) -> str:
        return self._any(column, values, "text")

    def _any(self, column: str, values: Sequence, sql_type: str) -> str:
        if self.pg:
            return f"{column} = ANY({self(list(values))}::{sql_type}[])"
        if not values:
            return "1 = 0"
        return f"{column} IN ({', '.join(self(v) for v in values)})"

    async def fetch(self, sql: str) -> list[dict[str, Any]]:
        """Run `sql` with the collected values on the connection `params()` bound."""
        assert self.db is not None, "SqlParams(dialect) has no connection: use params(model)"
        return await fetch(self.db, sql, self.values)


async def fetch(db: BaseDBAsyncClient, sql: str, values: list[object]) -> list[dict[str, Any]]:
    """Rows as dicts. On PostgreSQL the statement goes straight to asyncpg (the transaction's
    connection, else the pool): the ORM's path (a lock, a connection wrapper and two exception
    translators per statement; more to borrow a pooled connection) was ~15 % of an order
    admission's CPU. Errors are translated as the ORM would."""
    conn = _pg_target(db)
    if conn is None:
        return list(await db.execute_query_dict(sql, values))
    _SQL_LOG.debug("%s: %s", sql, values)  # the ORM's SQL log, so DEBUG still shows every statement
    with _translated():
        return [dict(r) for r in await conn.fetch(sql, *values)]


async def execute(db: BaseDBAsyncClient, sql: str, values: list[object]) -> None:
    conn = _pg_target(db)
    if conn is None:
        await db.execute_query(sql, values)
        return
    _SQL_LOG.debug("%s: %s", sql, values)
    with _translated():
        await conn.execute(sql, *values)


def _pg_target(db: BaseDBAsyncClient) -> Any:
    """Where a raw PostgreSQL statement goes: the transaction's asyncpg connection, or outside
    a transaction the client's asyncpg pool once it exists; None = the ORM's own path (SQLite,
    or no pool yet). These are tortoise 1.1.x internals (pinned); every PostgreSQL test runs
    through here. Unlike the ORM, no lock guards the transaction's connection: statements of
    one transaction must not run concurrently (asyncpg refuses it loudly, nothing is lost)."""
    if type(db) is _PG_TRANSACTION:
        return db._connection  # type: ignore[attr-defined]
    if type(db) is _PG_CLIENT:
        return db._pool  # type: ignore[attr-defined]
    return None


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(exc) from exc
    except asyncpg.PostgresError as exc:
        raise OperationalError(exc) from exc


# The connection this task has pinned (`pinned()`) or the innermost `transaction()` runs on
# (one database holds every model).
_BOUND: ContextVar[BaseDBAsyncClient | None] = ContextVar("qudao_sql_connection", default=None)


@asynccontextmanager
async def pinned() -> AsyncIterator[None]:
    """Hold one pooled PostgreSQL connection for the statements below, in autocommit until a
    `transaction()` inside begins on it: a short statement before a transaction (the order
    number) then costs no extra pool round (~3 % of an admission). SQLite has one connection:
    nothing to pin."""
    client = get_connections().get("default")
    if type(client) is not _PG_CLIENT or client._pool is None:  # type: ignore[attr-defined]
        yield
        return
    pool = client._pool  # type: ignore[attr-defined]
    conn = _PG_TRANSACTION(client)  # the ORM's wrapper of one connection, not begun yet
    conn._connection = await pool.acquire()
    token = _BOUND.set(conn)
    try:
        yield
    finally:
        _BOUND.reset(token)
        await pool.release(conn._connection)


@asynccontextmanager
async def transaction() -> AsyncIterator[BaseDBAsyncClient]:
    """The ORM's `in_transaction()`, its connection also kept here: the hot paths find it with
    one ContextVar read, where the ORM's lookup (context, connection handler, event-loop
    check) ran for every statement. ORM queries inside use the same connection as usual.
    Inside `pinned()` it begins on the pinned connection (what `in_transaction()` does after
    taking one from the pool)."""
    conn = _BOUND.get()
    if type(conn) is not _PG_TRANSACTION or conn.transaction is not None:  # type: ignore[attr-defined]
        async with in_transaction() as tx:
            token = _BOUND.set(tx)
            try:
                yield tx
            finally:
                _BOUND.reset(token)
        return
    handler = get_connections()
    orm_token = handler.set(conn.connection_name, conn)
    try:
        await conn.begin()  # type: ignore[attr-defined]
        try:
            yield conn
        except BaseException:
            await conn.rollback()  # type: ignore[attr-defined]
            raise
        await conn.commit()  # type: ignore[attr-defined]
    finally:
        handler.reset(orm_token)
        conn.transaction = None  # type: ignore[attr-defined]
        conn._finalized = False  # type: ignore[attr-defined]


def db_of(model: type[Model]) -> BaseDBAsyncClient:
    """The model's connection: the current transaction's, if the caller is inside one."""
    return _BOUND.get() or model._meta.db


def params(model: type[Model]) -> SqlParams:
    """Placeholders bound to the model's connection (`await p.fetch(sql)`)."""
    db = db_of(model)
    return SqlParams(db.capabilities.dialect, db)


def json_value(value: Any) -> Any:
    """A JSON column as the drivers hand it back (text on both), decoded."""
    return json.loads(value) if isinstance(value, str | bytes) else value


@cache
def _plan(model: type[Model]) -> tuple[str, dict[str, str], tuple[str, ...], dict[str, Any]]:
    """(table, field -> column, auto timestamp fields, field -> python default)."""
    meta = model._meta
    columns: dict[str, str] = {}
    stamps: list[str] = []
    defaults: dict[str, Any] = {}
    for name in meta.fields_db_projection:
        field = meta.fields_map[name]
        if field.pk and field.generated:
            continue
        columns[name] = meta.fields_db_projection[name]
        if isinstance(field, DatetimeField) and (field.auto_now or field.auto_now_add):
            stamps.append(name)
        elif field.default is not None:
            defaults[name] = field.default
    return meta.db_table, columns, tuple(stamps), defaults


def _row(model: type[Model], values: dict[str, Any], at: Any) -> dict[str, Any]:
    """The values as the ORM would write them: auto timestamps and Python defaults filled in
    (db_default columns left to the database), each through its field's `to_db_value`."""
    _, columns, stamps, defaults = _plan(model)
    row = dict(values)
    for name in stamps:
        row.setdefault(name, at)
    for name, default in defaults.items():
        if name not in row:
            row[name] = default() if callable(default) else default
    fields_map = model._meta.fields_map
    out: dict[str, Any] = {}
    for name, value in row.items():
        if name not in columns:
            raise KeyError(f"{model.__name__} has no column for {name!r}")
        out[name] = fields_map[name].to_db_value(value, model)
    return out


async def insert(
    model: type[Model], values: dict[str, Any], *, returning: str | None = "id"
) -> dict[str, Any] | None:
    """INSERT one row; the RETURNING columns as a dict (None without `returning`)."""
    rows = await insert_many(model, [values], returning=returning)
    return rows[0] if rows else None


async def insert_many(
    model: type[Model],
    rows: Iterable[dict[str, Any]],
    *,
    returning: str | None = None,
    ignore_conflict_on: str | None = None,
) -> list[dict[str, Any]]:
    """Multi-row INSERT (in chunks). All rows must name the same fields. With
    `ignore_conflict_on` (a unique column list) rows that collide are skipped by the database
    (PostgreSQL waits for a concurrent inserter of the same key to finish first); RETURNING
    then lists only the rows written."""
    db = db_of(model)
    dialect = db.capabilities.dialect
    at = timezone.now()
    prepared = [_row(model, r, at) for r in rows]
    out: list[dict[str, Any]] = []
    for start in range(0, len(prepared), CHUNK):
        chunk = prepared[start : start + CHUNK]
        names = tuple(chunk[0])
        sql = _insert_sql(model, names, len(chunk), dialect, returning, ignore_conflict_on)
        values = [r[n] for r in chunk for n in names]
        if returning:
            out.extend(await fetch(db, sql, values))
        else:
            await execute(db, sql, values)
    return out


@lru_cache(maxsize=512)
def _insert_sql(
    model: type[Model],
    names: tuple[str, ...],
    rows: int,
    dialect: str,
    returning: str | None,
    conflict: str | None,
) -> str:
    """The INSERT text for `rows` rows of these fields (built once: the hot paths repeat it)."""
    table, columns, _, _ = _plan(model)
    p = SqlParams(dialect)
    values = ", ".join("(" + ", ".join(p(None) for _ in names) + ")" for _ in range(rows))
    cols = ", ".join(f'"{columns[n]}"' for n in names)
    sql = f'INSERT INTO "{table}" ({cols}) VALUES {values}'
    if conflict:
        sql += f" ON CONFLICT ({conflict}) DO NOTHING"
    if returning:
        sql += f" RETURNING {returning}"
    return sql


async def insert_models(
    instances: Sequence[Model], *, returning: str | None = None, ignore_conflict_on: str | None = None
) -> list[dict[str, Any]]:
    """Write unsaved instances of one model in one statement per chunk (ids are not set on
    them; ask for `returning` to read them back)."""
    if not instances:
        return []
    model = type(instances[0])
    _, columns, _, _ = _plan(model)
    given = [name for name in columns if any(getattr(i, name, None) is not None for i in instances)]
    return await insert_many(
        model,
        [{n: getattr(i, n) for n in given} for i in instances],
        returning=returning,
        ignore_conflict_on=ignore_conflict_on,
    )
