"""Ids beyond 32 bits in query strings and bodies are a 400, never a database error (PostgreSQL int4)."""

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


async def test_huge_ids_in_bodies_are_400_naming_the_field(client) -> None:
    w = await make_world()
    huge = 52812213722705
    sku = w.product.sku
    for method, path, body, field in (
        (
            "POST",
            "/api/v1/admin/stock-adjustments",
            {"warehouse_id": huge, "sku": sku, "delta": 1, "reason": "inbound"},
            "warehouse_id",
        ),
        (
            "PUT",
            "/api/v1/admin/stock-thresholds",
            {"warehouse_id": huge, "sku": sku, "min_qty": 1},
            "warehouse_id",
        ),
        (
            "POST",
            "/api/v1/admin/payments",
            {"distributor_id": huge, "amount": "1.00", "paid_at": "2026-01-01T00:00:00+08:00", "ref": "r1"},
            "distributor_id",
        ),
        (
            "POST",
            "/api/v1/orders",
            {"distributor_id": huge, "lines": [{"sku": sku, "qty": 1}]},
            "distributor_id",
        ),
    ):
        headers = {**w.headers("", "admin"), "Idempotency-Key": "huge-1"}
        resp = await client.request(method, path, json=body, headers=headers)
        data = await resp.json()
        assert resp.status == 400, (path, resp.status, data)
        assert field in data["error"]["message"], (path, data)
