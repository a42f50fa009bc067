"""API frictions a buyer's app hit, each in the reporter's own words:

- "`paid_at` "2026-12-05" refused for lacking a timezone (assume Asia/Shanghai for dates)"
- "`/orders?number=` ignored (search by number)"
- "order lists carry only `distributor_id`"
- "statement lines cite shipment ids, not order numbers"
- "receipt cannot be confirmed per shipment"
- "promotions lack name and end date"
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from core.clock import BUSINESS_TZ, now, today
from handlers.statements import close_period
from models.base import PromotionKind, UserRole
from models.commission import Statement
from models.finance import Payment
from models.product import Promotion
from tests.factories import auth, make_distributor, token_for
from tests.factories_orders import make_order, new_key, quick_user, shop, world_state

API = "/api/v1"


@pytest.fixture
async def s(client) -> dict[str, Any]:
    data = await shop(on_hand=50, price="10.00")
    manager = await quick_user(UserRole.MANAGER, regions=["华东"])
    data["h"] = auth(await token_for(data["user"]))
    data["mgr"] = auth(await token_for(manager))
    return data


async def post(client: Any, path: str, headers: dict, body: Any = None) -> tuple[int, Any]:
    resp = await client.post(f"{API}{path}", json={} if body is None else body, headers=headers)
    return resp.status, await resp.json()


async def get(client: Any, path: str, headers: dict) -> tuple[int, Any]:
    resp = await client.get(f"{API}{path}", headers=headers)
    return resp.status, await resp.json()


def ship_body(s: dict, qty: int) -> dict:
    return {"lines": [{"sku": s["product"].sku, "qty": qty}]}


# --- paid_at ----------------------------------------------------------------------------------


async def test_paid_at_a_bare_date_means_that_day_in_asia_shanghai(client, s) -> None:
    d = s["distributor"]
    body = {"distributor_id": d.id, "amount": "10", "paid_at": "2026-12-05", "ref": "D1"}
    status, out = await post(client, "/admin/payments", s["mgr"], body)
    assert status == 201, out
    # the start of 5 December in Shanghai, not UTC midnight
    assert datetime.fromisoformat(out["paid_at"]) == datetime(2026, 12, 5, tzinfo=BUSINESS_TZ)
    # a datetime without an offset is read in Asia/Shanghai too
    body = {**body, "paid_at": "2026-12-05T10:30:00", "ref": "D2"}
    status, out = await post(client, "/admin/payments", s["mgr"], body)
    assert status == 201, out
    assert datetime.fromisoformat(out["paid_at"]) == datetime(2026, 12, 5, 10, 30, tzinfo=BUSINESS_TZ)
    before = await world_state()
    for bad in ("2026-13-05", "05/12/2026", "2026-12-05T25:00:00", "", 20261205):
        status, out = await post(client, "/admin/payments", s["mgr"], {**body, "paid_at": bad, "ref": "D3"})
        assert status == 400, (bad, out)
        assert out["error"]["details"]["fields"][0]["field"] == "paid_at"
    assert await world_state() == before and await Payment.all().count() == 2


# --- order lists ------------------------------------------------------------------------------


async def test_orders_search_by_number_and_carry_the_distributor_name(client, s) -> None:
    orders = [await make_order(s["distributor"], product=s["product"], qty=1) for _ in range(3)]
    other = await make_distributor(region="华北")
    foreign = await make_order(other, product=s["product"], qty=1)
    target = orders[1].number
    status, page = await get(client, f"/orders?number={target}", s["h"])
    assert status == 200 and [x["number"] for x in page["items"]] == [target] and page["total"] == 1
    # a prefix finds the day's orders; lower case is fine; scope still applies
    status, page = await get(client, f"/orders?number={target[:10].lower()}", s["mgr"])
    assert status == 200 and page["total"] == 3
    status, page = await get(client, f"/orders?number={foreign.number}", s["h"])
    assert status == 200 and page["total"] == 0
    for bad in ("SO%25", "SO_1", "x" * 21):
        assert (await get(client, f"/orders?number={bad}", s["h"]))[0] == 400
    # the distributor's name, on the list and on one order
    status, page = await get(client, "/orders", s["mgr"])
    assert {(x["distributor_id"], x["distributor_name"]) for x in page["items"]} == {
        (s["distributor"].id, s["distributor"].name)
    }
    status, one = await get(client, f"/orders/{orders[0].id}", s["h"])
    assert status == 200 and one["distributor_name"] == s["distributor"].name


async def test_order_list_reads_distributor_names_in_one_batch(client, s) -> None:
    from tortoise import connections

    for _ in range(2):
        await make_order(s["distributor"], product=s["product"], qty=1)
    for _ in range(3):
        d = await make_distributor(region="华东")
        await make_order(d, product=s["product"], qty=1)
    conn = connections.get("default")
    original = conn.execute_query

    async def queries_for(path: str) -> tuple[list[str], Any]:
        calls: list[str] = []

        async def counting(sql: str, values: Any = None) -> Any:
            calls.append(sql)
            return await original(sql, values)

        conn.execute_query = counting  # type: ignore[method-assign]
        try:
            status, page = await get(client, path, s["mgr"])
        finally:
            conn.execute_query = original  # type: ignore[method-assign]
        assert status == 200, page
        return calls, page

    await queries_for("/orders?page_size=1")  # warm the token cache
    one, _ = await queries_for("/orders?page_size=1")
    five, page = await queries_for("/orders")
    assert page["total"] == 5 and len({x["distributor_name"] for x in page["items"]}) == 4
    assert len(five) == len(one), five  # no query per order


# --- statements -------------------------------------------------------------------------------


async def test_receivables_statement_lines_name_the_order(client, s) -> None:
    order = await make_order(s["distributor"], product=s["product"], qty=3, status="shipped")
    month = now().astimezone(BUSINESS_TZ).strftime("%Y-%m")
    await close_period(month)
    st = await Statement.get(kind="receivables", distributor_id=s["distributor"].id, period=month)
    status, out = await get(client, f"/statements/{st.id}", s["h"])
    assert status == 200, out
    (line,) = [x for x in out["lines"] if x["ref_type"] == "shipment"]
    assert line["order_id"] == order.id and line["order_number"] == order.number
    assert line["ref_id"] == str(order.shipments[0].id)  # type: ignore[index]


# --- receipt per shipment ---------------------------------------------------------------------


async def test_receipt_can_be_confirmed_per_shipment(client, s) -> None:
    o = await make_order(s["distributor"], product=s["product"], qty=5, status="approved")
    oid = o.id
    _, body = await post(client, f"/orders/{oid}/shipments", s["mgr"], ship_body(s, 2))
    first = body["shipments"][0]["id"]
    assert body["shipments"][0]["received_at"] is None
    # the first truck arrives while the rest is still in the warehouse
    status, body = await post(client, f"/orders/{oid}/shipments/{first}/receive", s["h"])
    assert status == 200, body
    assert body["shipments"][0]["received_at"] and body["status"] == "approved"
    # twice is 409, and a shipment of another order is 404
    assert (await post(client, f"/orders/{oid}/shipments/{first}/receive", s["h"]))[0] == 409
    other = await make_order(s["distributor"], product=s["product"], qty=1, status="shipped")
    other_shipment = other.shipments[0].id  # type: ignore[index]
    assert (await post(client, f"/orders/{oid}/shipments/{other_shipment}/receive", s["h"]))[0] == 404
    assert (await post(client, f"/orders/{oid}/shipments/{first}/receive", s["h"], {"x": 1}))[0] == 400
    # the last shipment received: the whole order is received
    _, body = await post(client, f"/orders/{oid}/shipments", s["mgr"], ship_body(s, 3))
    assert body["status"] == "shipped"
    second = body["shipments"][1]["id"]
    status, body = await post(client, f"/orders/{oid}/shipments/{second}/receive", s["h"])
    assert status == 200 and body["status"] == "received" and body["received_at"]
    assert all(x["received_at"] for x in body["shipments"])


async def test_receive_with_an_empty_body_still_receives_the_whole_order(client, s) -> None:
    o = await make_order(s["distributor"], product=s["product"], qty=2, status="shipped")
    status, body = await post(client, f"/orders/{o.id}/receive", s["h"])
    assert status == 200 and body["status"] == "received"
    assert all(x["received_at"] for x in body["shipments"])
    # another distributor's user cannot receive a shipment of this order
    stranger = auth(
        await token_for(await quick_user(UserRole.DISTRIBUTOR, distributor=await make_distributor()))
    )
    o2 = await make_order(s["distributor"], product=s["product"], qty=1, status="shipped")
    sid = o2.shipments[0].id  # type: ignore[index]
    assert (await post(client, f"/orders/{o2.id}/shipments/{sid}/receive", stranger))[0] == 404


# --- promotions -------------------------------------------------------------------------------


async def test_products_show_the_promotion_name_and_end_date(client, s) -> None:
    ends = today() + timedelta(days=20)
    await Promotion.create(
        name="年末九折",
        kind=PromotionKind.DISCOUNT,
        product=s["product"],
        discount_rate=Decimal("0.90"),
        valid_from=today() - timedelta(days=1),
        valid_to=ends,
    )
    status, page = await get(client, f"/products?q={s['product'].sku}", s["h"])
    assert status == 200, page
    (item,) = page["items"]
    assert item["price"] == "9.00"
    assert item["promotion"]["name"] == "年末九折" and item["promotion"]["valid_to"] == ends.isoformat()
    status, one = await get(client, f"/products/{s['product'].id}", s["h"])
    assert one["promotion"]["name"] == "年末九折"


async def test_order_create_needs_no_key_change(client, s) -> None:
    """Placing still works as before (the new fields are additions only)."""
    resp = await client.post(
        f"{API}/orders",
        json={"lines": [{"sku": s["product"].sku, "qty": 1}]},
        headers={**s["h"], "Idempotency-Key": new_key()},
    )
    body = await resp.json()
    assert resp.status == 201 and body["distributor_name"] == s["distributor"].name
