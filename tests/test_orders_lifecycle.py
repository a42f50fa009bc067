"""The order lifecycle: approve, reject, cancel, partial shipments, receive, complete,
returns — stock, ledger, receivables, events and audit at every step."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from core.clock import now, today
from core.money import money
from handlers import ordering
from handlers.actor import SYSTEM
from handlers.events import Event, subscribe
from models.audit import AuditLog
from models.base import MovementReason, OrderStatus, PaymentTerms, PromotionKind, ReceivableKind, UserRole
from models.distributor import Distributor
from models.finance import ReceivableEntry
from models.order import IdempotencyRecord, Order, OrderReturn
from models.product import Promotion
from models.stock import StockMovement
from tests.factories import auth, make_distributor, token_for
from tests.factories_orders import (
    assert_consistent,
    balance,
    make_order,
    new_key,
    quick_user,
    shop,
    stock_of,
    world_state,
)

API = "/api/v1"
SEEN: list[Event] = []


@subscribe(
    "order.placed",
    "order.approved",
    "order.rejected",
    "order.cancelled",
    "order.shipped",
    "order.received",
    "order.completed",
    "order.returned",
)
async def _seen(event: Event) -> None:
    SEEN.append(event)


@pytest.fixture
async def s(client) -> dict[str, Any]:
    SEEN.clear()
    data = await shop(on_hand=50, price="10.00")
    manager = await quick_user(UserRole.MANAGER, regions=["华东"])
    data["h"] = auth(await token_for(data["user"]))
    data["mgr"] = auth(await token_for(manager))
    data["manager"] = manager
    return data


async def post(client: Any, path: str, headers: dict, body: Any = None) -> tuple[int, Any]:
    resp = await client.post(f"{API}{path}", json={} if body is None else body, headers=headers)
    return resp.status, await resp.json()


async def place(client: Any, s: dict, qty: int = 5) -> dict:
    resp = await client.post(
        f"{API}/orders",
        json={"lines": [{"sku": s["product"].sku, "qty": qty}]},
        headers={**s["h"], "Idempotency-Key": new_key()},
    )
    assert resp.status == 201
    return await resp.json()


def ship_body(s: dict, qty: int, **kw: Any) -> dict:
    return {"lines": [{"sku": s["product"].sku, "qty": qty}], **kw}


async def test_full_lifecycle_with_a_partial_shipment(client, s) -> None:
    o = await place(client, s, 5)
    oid = o["id"]
    status, body = await post(client, f"/orders/{oid}/approve", s["mgr"])
    assert status == 200 and body["status"] == "approved" and body["approved_at"]

    status, body = await post(
        client, f"/orders/{oid}/shipments", s["mgr"], ship_body(s, 2, carrier="顺丰", tracking_no="SF1")
    )
    assert status == 201
    assert body["status"] == "approved" and body["partially_shipped"] is True
    assert body["lines"][0]["shipped_qty"] == 2 and body["shipped_amount"] == "20.00"
    assert body["shipments"][0]["carrier"] == "顺丰" and body["shipments"][0]["amount"] == "20.00"
    assert await stock_of(s["warehouse"], s["product"]) == (48, 3)
    entry = await ReceivableEntry.get(distributor=s["distributor"])
    assert entry.kind == ReceivableKind.SHIPMENT and entry.amount == Decimal("20.00")
    assert entry.due_at - entry.occurred_at == timedelta(days=30)  # monthly terms
    # Receiving needs the whole order shipped.
    assert (await post(client, f"/orders/{oid}/receive", s["h"]))[0] == 409

    status, body = await post(client, f"/orders/{oid}/shipments", s["mgr"], ship_body(s, 3))
    assert body["status"] == "shipped" and body["partially_shipped"] is False and body["shipped_at"]
    assert len(body["shipments"]) == 2 and await balance(s["distributor"]) == Decimal("50.00")
    assert await stock_of(s["warehouse"], s["product"]) == (45, 0)

    status, body = await post(client, f"/orders/{oid}/receive", s["h"])
    assert status == 200 and body["status"] == "received" and body["received_at"]
    status, body = await post(client, f"/orders/{oid}/complete", s["mgr"])
    assert status == 200 and body["status"] == "completed" and body["completed_at"]

    names = [e.name for e in SEEN if e.payload.get("order_id") == oid]
    assert names == [
        "order.placed",
        "order.approved",
        "order.shipped",
        "order.shipped",
        "order.received",
        "order.completed",
    ]
    shipped = [e for e in SEEN if e.name == "order.shipped"]
    assert all(set(e.payload) == {"order_id", "shipment_id", "actor_id"} for e in shipped)
    assert shipped[0].payload["actor_id"] == s["manager"].id
    actions = (
        await AuditLog.filter(entity="order", entity_id=str(oid))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == names
    await assert_consistent()


async def test_reject_needs_a_reason_and_releases_the_reservation(client, s) -> None:
    o = await place(client, s, 4)
    assert (await post(client, f"/orders/{o['id']}/reject", s["mgr"], {}))[0] == 400
    status, body = await post(client, f"/orders/{o['id']}/reject", s["mgr"], {"reason": "价格有误"})
    assert status == 200 and body["status"] == "rejected" and body["reject_reason"] == "价格有误"
    assert await stock_of(s["warehouse"], s["product"]) == (50, 0)
    assert await StockMovement.filter(reason=MovementReason.RELEASE, ref_id=str(o["id"])).count() == 1
    assert [e.name for e in SEEN][-1] == "order.rejected"
    await assert_consistent()


async def test_cancel_before_shipping_only(client, s) -> None:
    a = await place(client, s, 3)
    status, body = await post(client, f"/orders/{a['id']}/cancel", s["h"], {"reason": "不要了"})
    assert status == 200 and body["status"] == "cancelled" and body["cancel_reason"] == "不要了"
    assert await stock_of(s["warehouse"], s["product"]) == (50, 0)
    b = await place(client, s, 3)
    await post(client, f"/orders/{b['id']}/approve", s["mgr"])
    assert (await post(client, f"/orders/{b['id']}/cancel", s["h"]))[0] == 200  # approved, nothing shipped
    c = await place(client, s, 3)
    await post(client, f"/orders/{c['id']}/approve", s["mgr"])
    await post(client, f"/orders/{c['id']}/shipments", s["mgr"], ship_body(s, 1))
    before = await world_state()
    status, body = await post(client, f"/orders/{c['id']}/cancel", s["h"])
    assert status == 409 and body["error"]["code"] == "invalid_state"
    assert await world_state() == before
    await assert_consistent()


ILLEGAL = [
    ("pending_review", "receive", None),
    ("pending_review", "complete", None),
    ("pending_review", "shipments", "ship"),
    ("pending_review", "returns", "return"),
    ("approved", "approve", None),
    ("approved", "reject", {"reason": "x"}),
    ("approved", "complete", None),
    ("shipped", "cancel", None),
    ("shipped", "shipments", "ship"),
    ("shipped", "returns", "return"),
    ("received", "receive", None),
    ("completed", "complete", None),
    ("completed", "cancel", None),
    ("cancelled", "approve", None),
    ("rejected", "cancel", None),
]


async def test_illegal_transitions_are_409_and_change_nothing(client, s) -> None:
    for state, action, body in ILLEGAL:
        out = await make_order(s["distributor"], product=s["product"], qty=2, status=state)
        if body in ("ship", "return"):
            extra = {"reason": "r"} if body == "return" else {}
            body = {"lines": [{"sku": s["product"].sku, "qty": 1}], **extra}
        before = await world_state()
        status, answer = await post(client, f"/orders/{out.id}/{action}", s["mgr"], body)
        assert status == 409 and answer["error"]["code"] == "invalid_state", (state, action, answer)
        assert await world_state() == before


async def test_bad_shipment_lines_are_400_and_change_nothing(client, s) -> None:
    o = await make_order(s["distributor"], product=s["product"], qty=3, status="approved")
    before = await world_state()
    for body, field in [
        (ship_body(s, 4), "lines.0.qty"),
        ({"lines": [{"sku": "NOPE", "qty": 1}]}, "lines.0.sku"),
        (ship_body(s, 0), "lines.0.qty"),
        ({"lines": []}, "lines"),
        ({**ship_body(s, 1), "shipped_amount": "1"}, "shipped_amount"),
    ]:
        status, answer = await post(client, f"/orders/{o.id}/shipments", s["mgr"], body)
        assert status == 400, answer
        assert answer["error"]["details"]["fields"][0]["field"] == field
    assert await world_state() == before


async def _return(client: Any, s: dict, order_id: int, qty: int, asker: dict) -> tuple[int, Any]:
    """申请 -> 审核 -> 入库 (handlers/returns.py; tests/test_returns.py covers the workflow)."""
    body = {"lines": [{"sku": s["product"].sku, "qty": qty}], "reason": "破损"}
    status, req = await post(client, f"/orders/{order_id}/returns", asker, body)
    if status != 201:
        return status, req
    await post(client, f"/returns/{req['id']}/approve", s["mgr"])
    status, req = await post(client, f"/returns/{req['id']}/receive", s["mgr"])
    assert status == 200, req
    return status, (await (await client.get(f"{API}/orders/{order_id}", headers=s["h"])).json())


async def test_returns_bring_stock_back_and_credit_receivables(client, s) -> None:
    o = await make_order(s["distributor"], product=s["product"], qty=5, status="received")
    assert await balance(s["distributor"]) == Decimal("50.00")
    status, body = await _return(client, s, o.id, 2, s["h"])
    assert status == 200, body
    assert body["status"] == "received" and body["lines"][0]["returned_qty"] == 2
    assert body["returns"][0]["amount"] == "20.00" and body["returns"][0]["lines"] == [
        {"sku": s["product"].sku, "qty": 2}
    ]
    assert await stock_of(s["warehouse"], s["product"]) == (47, 0)
    assert await balance(s["distributor"]) == Decimal("30.00")
    entry = await ReceivableEntry.get(kind=ReceivableKind.RETURN)
    assert entry.amount == Decimal("-20.00") and entry.ref_type == "order_return"
    ret = await OrderReturn.get(order_id=o.id)
    assert [e for e in SEEN if e.name == "order.returned"][-1].payload == {
        "order_id": o.id,
        "return_id": ret.id,
        "actor_id": s["manager"].id,  # the one who received the goods
    }
    # Bounded by what shipped: 3 left.
    before = await world_state()
    status, answer = await _return(client, s, o.id, 4, s["mgr"])
    assert status == 400 and answer["error"]["details"]["fields"][0]["field"] == "lines.0.qty"
    assert await world_state() == before
    await ordering.complete_order(SYSTEM, o.id)  # completed orders still take returns
    status, body = await _return(client, s, o.id, 3, s["mgr"])
    assert (
        status == 200 and body["status"] == "completed" and await balance(s["distributor"]) == Decimal("0.00")
    )
    await assert_consistent()


async def test_due_dates_follow_payment_terms(client, s) -> None:
    for terms, days in ((PaymentTerms.QUARTERLY, 90), (PaymentTerms.PREPAY, 0)):
        d = await make_distributor(payment_terms=terms)
        if terms == PaymentTerms.PREPAY:  # 款到发货: paid before it is approved and shipped
            await ReceivableEntry.create(
                distributor=d,
                kind="payment",
                amount=money("-10"),
                ref_type="payment",
                ref_id="p",
                occurred_at=now(),
            )
        o = await make_order(d, product=s["product"], qty=1, status="shipped")
        entry = await ReceivableEntry.get(distributor=d, kind=ReceivableKind.SHIPMENT)
        assert entry.due_at - entry.occurred_at == timedelta(days=days), terms
        assert o.status == "shipped"


async def test_free_units_are_valued_so_parts_sum_to_the_line(client, s) -> None:
    await Promotion.create(
        name="买十送一",
        kind=PromotionKind.BUY_N_GET_M,
        product=s["product"],
        buy_n=10,
        get_m=1,
        valid_from=today(),
    )
    o = await make_order(s["distributor"], product=s["product"], qty=10, status="approved")
    assert (o.lines[0].qty, o.lines[0].free_qty, o.total_amount) == (10, 1, Decimal("100.00"))
    a = await ordering.ship_order(SYSTEM, o.id, {"lines": [{"sku": s["product"].sku, "qty": 5}]})
    assert a.shipped_amount == Decimal("45.45") and a.status == "approved"
    b = await ordering.ship_order(SYSTEM, o.id, {"lines": [{"sku": s["product"].sku, "qty": 6}]})
    assert b.shipped_amount == Decimal("100.00") and b.status == "shipped"
    assert await balance(s["distributor"]) == Decimal("100.00")
    await assert_consistent()


async def test_complete_due_orders_after_the_return_window(client, s) -> None:
    old = await make_order(s["distributor"], product=s["product"], qty=1, status="received")
    fresh = await make_order(s["distributor"], product=s["product"], qty=1, status="received")
    await Order.filter(id=old.id).update(received_at=now() - timedelta(days=8))
    stale = await IdempotencyRecord.create(
        user=s["user"], key="old-key", request_hash="h", expires_at=now() - timedelta(seconds=1)
    )
    live = await IdempotencyRecord.create(
        user=s["user"], key="live-key", request_hash="h", expires_at=now() + timedelta(hours=1)
    )
    result = await ordering.complete_due_orders()
    assert result == {"completed": 1, "order_ids": [old.id], "idempotency_keys_purged": 1}
    assert not await IdempotencyRecord.exists(id=stale.id)
    assert await IdempotencyRecord.exists(id=live.id)
    assert (await Order.get(id=old.id)).status == OrderStatus.COMPLETED
    assert (await Order.get(id=fresh.id)).status == OrderStatus.RECEIVED
    assert await AuditLog.filter(action="order.completed", entity_id=str(old.id), actor_id=None).exists()
    assert await ordering.complete_due_orders() == {
        "completed": 0,
        "order_ids": [],
        "idempotency_keys_purged": 0,
    }


async def test_roles_and_scope_on_transitions(client, s) -> None:
    o = await make_order(s["distributor"], product=s["product"], qty=1)
    rep = await quick_user(UserRole.SALES)
    north_mgr = await quick_user(UserRole.MANAGER, regions=["华北"])
    other = await make_distributor(region="华北")
    outsider = await quick_user(UserRole.DISTRIBUTOR, distributor=other)
    before = await world_state()
    assert (await post(client, f"/orders/{o.id}/approve", auth(await token_for(rep))))[0] == 403
    assert (await post(client, f"/orders/{o.id}/approve", s["h"]))[0] == 403
    assert (await post(client, f"/orders/{o.id}/approve", auth(await token_for(north_mgr))))[0] == 404
    assert (await post(client, f"/orders/{o.id}/cancel", auth(await token_for(outsider))))[0] == 404
    assert (await post(client, f"/orders/{o.id}/shipments", s["h"], ship_body(s, 1)))[0] == 403
    assert (await post(client, f"/orders/{o.id}/complete", s["h"]))[0] == 403
    resp = await client.get(f"{API}/orders/{o.id}", headers=auth(await token_for(outsider)))
    assert resp.status == 404
    assert await world_state() == before


async def test_parent_sees_child_orders_but_not_the_reverse(client, s) -> None:
    child = await make_distributor(level=2, parent=s["distributor"])
    child_user = await quick_user(UserRole.DISTRIBUTOR, distributor=child)
    child_h = auth(await token_for(child_user))
    child_order = await make_order(child, product=s["product"], qty=1)
    parent_order = await make_order(s["distributor"], product=s["product"], qty=1)
    assert (await client.get(f"{API}/orders/{child_order.id}", headers=s["h"])).status == 200
    assert (await client.get(f"{API}/orders/{parent_order.id}", headers=child_h)).status == 404
    listed = await (await client.get(f"{API}/orders", headers=child_h)).json()
    assert [x["id"] for x in listed["items"]] == [child_order.id]


async def test_list_orders_filters_and_pages(client, s) -> None:
    ids = [(await make_order(s["distributor"], product=s["product"], qty=1)).id for _ in range(3)]
    await ordering.approve_order(SYSTEM, ids[0])
    other = await make_distributor(region="华北")
    await make_order(other, product=s["product"], qty=1)
    page = await (await client.get(f"{API}/orders?page_size=2", headers=s["h"])).json()
    assert page["total"] == 3 and [x["id"] for x in page["items"]] == [ids[2], ids[1]]
    page2 = await (await client.get(f"{API}/orders?page_size=2&page=2", headers=s["h"])).json()
    assert [x["id"] for x in page2["items"]] == [ids[0]]
    approved = await (await client.get(f"{API}/orders?status=approved", headers=s["h"])).json()
    assert [x["id"] for x in approved["items"]] == [ids[0]]
    bad = await client.get(f"{API}/orders?status=bogus", headers=s["h"])
    assert bad.status == 400
    mgr_all = await (await client.get(f"{API}/orders", headers=s["mgr"])).json()
    assert mgr_all["total"] == 3  # the 华北 order is outside the 华东 manager's regions
    assert (await client.get(f"{API}/orders?distributor_id={other.id}", headers=s["h"])).status == 404


async def test_credit_frees_up_as_orders_ship_and_get_paid(client, s) -> None:
    await Distributor.filter(id=s["distributor"].id).update(credit_limit=money("100"))
    o = await make_order(s["distributor"], product=s["product"], qty=10, status="approved")
    from handlers.finance import credit_exposure

    assert await credit_exposure(s["distributor"].id) == Decimal("100.00")
    await ordering.ship_order(SYSTEM, o.id, {"lines": [{"sku": s["product"].sku, "qty": 4}]})
    assert await credit_exposure(s["distributor"].id) == Decimal("100.00")  # moved, not added
    await ordering.ship_order(SYSTEM, o.id, {"lines": [{"sku": s["product"].sku, "qty": 6}]})
    assert await credit_exposure(s["distributor"].id) == Decimal("100.00")
    from handlers.finance import add_receivable  # the ledger's one writer (keeps the exposure)

    await add_receivable(s["distributor"].id, "payment", money("-60"), "payment", "x", occurred_at=now())
    assert await credit_exposure(s["distributor"].id) == Decimal("40.00")
