"""The managers of a region are found through an index on app_user(role, status) — on every
order awaiting review — not by scanning every user (20k users, 10 ms a lookup, issue 16)."""

from __future__ import annotations

from handlers.notify import managers_of_region
from handlers.sql import params, transaction
from models.base import UserRole
from models.user import User
from tests.factories import make_user


async def _index_columns() -> list[list[str]]:
    """Column lists of the indexes on app_user, as the migrated database has them."""
    p = params(User)
    if p.pg:
        rows = await p.fetch(
            "SELECT i.relname AS name, array_agg(a.attname ORDER BY k.n) AS cols"
            " FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid"
            " CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)"
            " JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum"
            " WHERE t.relname = 'app_user' GROUP BY i.relname"
        )
        return [list(r["cols"]) for r in rows]
    names = [r["name"] for r in await p.fetch("SELECT name FROM pragma_index_list('app_user')")]
    return [
        [c["name"] for c in await params(User).fetch(f"SELECT name FROM pragma_index_info('{n}')")]
        for n in names
    ]


async def test_app_user_when_migrated_has_role_status_index(db) -> None:
    assert ["role", "status"] in await _index_columns()


async def test_managers_of_region_when_planned_uses_the_index(db) -> None:
    await make_user(UserRole.MANAGER, regions=["华东"])
    p = params(User)
    sql = "SELECT id, regions FROM app_user WHERE role = 'manager' AND status = 'active'"
    if p.pg:
        async with transaction():  # one connection for both statements
            await params(User).fetch("SET LOCAL enable_seqscan = off")  # a tiny table is scanned anyway
            plan = " ".join(r["QUERY PLAN"] for r in await params(User).fetch(f"EXPLAIN {sql}"))
        assert "Index" in plan and "Seq Scan" not in plan
    else:
        plan = " ".join(str(r["detail"]) for r in await p.fetch(f"EXPLAIN QUERY PLAN {sql}"))
        assert "USING INDEX" in plan
    assert len(await managers_of_region("华东")) == 1
