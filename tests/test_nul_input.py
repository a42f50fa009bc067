"""U+0000 in any input is a 400 naming the field — PostgreSQL text cannot hold it (found by
schemathesis as a 500 on GET /admin/stock-adjustments?sku=...%00), so both databases refuse it
the same way, before any query runs."""

from __future__ import annotations

from models.order import Order
from tests.factories import make_world


async def test_nul_in_query_string_is_400(client) -> None:
    w = await make_world()
    for path, field in (
        ("/api/v1/admin/stock-adjustments?sku=ab%00c", "sku"),
        ("/api/v1/stock?sku=%00", "sku"),
        ("/api/v1/products?q=%E8%9E%BA%00", "q"),
    ):
        resp = await client.get(path, headers=w.headers("", "admin"))
        body = await resp.json()
        assert resp.status == 400, (path, resp.status, body)
        assert body["error"]["code"] == "validation_error"
        assert field in body["error"]["message"], body


async def test_nul_in_body_is_400_and_writes_nothing(client) -> None:
    w = await make_world()
    headers = {**w.headers("east", "distributor"), "Idempotency-Key": "nul-1"}
    resp = await client.post(
        "/api/v1/orders",
        json={"lines": [{"sku": w.product.sku, "qty": 1}], "note": "a\u0000b"},
        headers=headers,
    )
    body = await resp.json()
    assert resp.status == 400, body
    assert "note" in body["error"]["message"]
    assert await Order.all().count() == 0
