"""Ids in query strings beyond 32 bits are a 400, never a database error (PostgreSQL int4)."""

from __future__ import annotations

from tests.factories import make_world


async def test_huge_ids_in_query_are_400(client) -> None:
    w = await make_world()
    for path in (
        "/api/v1/products?distributor_id=52812213722705",
        "/api/v1/stock?warehouse_id=52812213722705",
        "/api/v1/orders?distributor_id=52812213722705",
        "/api/v1/admin/payments?distributor_id=52812213722705",
    ):
        resp = await client.get(path, headers=w.headers("", "admin"))
        assert resp.status == 400, (path, resp.status, await resp.text())
