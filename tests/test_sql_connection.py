"""handlers.sql's pinned connection and transaction (the order admission's frame): a statement
before the transaction commits on its own, the transaction's raw statements and ORM queries
share one connection, and the connection goes back to the pool whatever happens."""

from __future__ import annotations

import pytest
from tortoise.connection import get_connections

from handlers.admission import _COUNTER_SQL
from handlers.sql import insert, params, pinned, transaction
from models.audit import AuditLog
from models.order import OrderCounter


class Boom(Exception):
    pass


def _pool_free() -> int | None:
    """Idle connections in the asyncpg pool (None on SQLite: one connection, no pool)."""
    pool = getattr(get_connections().get("default"), "_pool", None)
    if pool is None:
        return None
    return sum(1 for holder in pool._holders if holder._in_use is None)  # asyncpg internals


async def _bump(day: str) -> int:
    p = params(OrderCounter)
    return int((await p.fetch(_COUNTER_SQL.format(p=p(day))))[0]["last_number"])  # the order number's


async def test_statement_before_the_transaction_survives_its_rollback(db: None) -> None:
    await AuditLog.all().count()  # the pool exists from here on
    free = _pool_free()
    with pytest.raises(Boom):
        async with pinned():
            assert await _bump("20990101") == 1
            async with transaction():
                await insert(AuditLog, {"action": "t", "entity": "e", "entity_id": "1"}, returning=None)
                # the ORM inside the transaction sees the raw insert: one connection
                assert await AuditLog.filter(action="t").count() == 1
                raise Boom
    assert await AuditLog.filter(action="t").count() == 0  # rolled back
    assert (await OrderCounter.get(day="20990101")).last_number == 1  # autocommitted
    assert _pool_free() == free  # given back after the error


async def test_pinned_transaction_commits_and_frees_the_connection(db: None) -> None:
    await AuditLog.all().count()
    free = _pool_free()
    for n in (1, 2):
        async with pinned():
            assert await _bump("20990102") == n
            async with transaction():
                await insert(AuditLog, {"action": "c", "entity": "e", "entity_id": str(n)}, returning=None)
    assert await AuditLog.filter(action="c").count() == 2
    assert _pool_free() == free


async def test_transaction_without_pin_and_nested(db: None) -> None:
    """Outside `pinned()` it is the ORM's own transaction; a nested one is a savepoint."""
    with pytest.raises(Boom):
        async with transaction():
            await insert(AuditLog, {"action": "n", "entity": "e", "entity_id": "1"}, returning=None)
            raise Boom
    async with pinned(), transaction():
        await insert(AuditLog, {"action": "n", "entity": "e", "entity_id": "2"}, returning=None)
        with pytest.raises(Boom):
            async with transaction():
                await insert(AuditLog, {"action": "n", "entity": "e", "entity_id": "3"}, returning=None)
                raise Boom
    assert [a.entity_id for a in await AuditLog.filter(action="n")] == ["2"]
