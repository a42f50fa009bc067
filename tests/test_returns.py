"""After-sales returns as a request (申请 → 审核 → 入库 → credit): `POST /orders/{id}/returns`
only asks; a manager approves or rejects it; the goods are received back into stock and only
then are receivables credited and commission reversed. Window: `orders.return_days` after the
order was received. A 一级 distributor sees its 二级's orders but acts only on its own."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from core.clock import now
from handlers import ordering
from handlers.fanout import fan_out_events
from models.audit import AuditLog
from models.base import Beneficiary, UserRole
from models.commission import CommissionEntry
from models.finance import ReceivableEntry
from models.notification import Notification
from models.order import Order, OrderLine
from models.user import SalesAssignment
from tests import factories
from tests.bola import cached_hash
from tests.factories import auth, make_distributor, token_for
from tests.factories_commission import make_rule
from tests.factories_orders import (
    assert_consistent,
    balance,
    make_order,
    quick_user,
    shop,
    stock_of,
    world_state,
)

API = "/api/v1"


@pytest.fixture(autouse=True)
def _fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factories, "hash_password", cached_hash)


@pytest.fixture
async def s(client) -> dict[str, Any]:
    data = await shop(on_hand=50, price="10.00")
    manager = await quick_user(UserRole.MANAGER, regions=["华东"])
    data["h"] = auth(await token_for(data["user"]))
    data["mgr"] = auth(await token_for(manager))
    data["manager"] = manager
    return data


async def post(client: Any, path: str, headers: dict, body: Any = None) -> tuple[int, Any]:
    resp = await client.post(f"{API}{path}", json={} if body is None else body, headers=headers)
    return resp.status, await resp.json()


async def get(client: Any, path: str, headers: dict) -> tuple[int, Any]:
    resp = await client.get(f"{API}{path}", headers=headers)
    return resp.status, await resp.json()


def ask(s: dict, qty: int, reason: str = "破损") -> dict:
    return {"lines": [{"sku": s["product"].sku, "qty": qty}], "reason": reason}


async def inbox(user_id: int) -> list[Notification]:
    await fan_out_events()  # what the next outbox drain pass does first
    return await Notification.filter(recipient_id=user_id).order_by("id")


async def test_a_return_is_a_request_that_changes_nothing_until_received(client, s) -> None:
    o = await make_order(s["distributor"], product=s["product"], qty=5, status="received")
    assert await balance(s["distributor"]) == Decimal("50.00")
    before = await world_state()
    status, req = await post(client, f"/orders/{o.id}/returns", s["h"], ask(s, 2))
    assert status == 201, req
    assert req["status"] == "requested" and req["order_id"] == o.id and req["reason"] == "破损"
    assert req["lines"] == [{"sku": s["product"].sku, "qty": 2}] and req["amount"] is None
    # Nothing moved: no stock back, no credit, no returned units.
    after = await world_state()
    assert (after["stock"], after["movements"], after["receivables"]) == (
        before["stock"],
        before["movements"],
        before["receivables"],
    )
    assert (await OrderLine.get(order_id=o.id)).returned_qty == 0
    # The region's manager is told (申请退货).
    notes = [n for n in await inbox(s["manager"].id) if "申请退货" in n.title]
    assert len(notes) == 1 and o.number in notes[0].title and "破损" in notes[0].body

    status, req = await post(client, f"/returns/{req['id']}/approve", s["mgr"], {"reason": "同意"})
    assert status == 200 and req["status"] == "approved" and req["review_note"] == "同意"
    assert await stock_of(s["warehouse"], s["product"]) == (45, 0)  # approval moves no goods either
    assert await balance(s["distributor"]) == Decimal("50.00")
    told = await inbox(s["user"].id)
    assert any("退货申请已通过" in n.title for n in told) and not any("已入库" in n.title for n in told)

    status, req = await post(client, f"/returns/{req['id']}/receive", s["mgr"])
    assert status == 200 and req["status"] == "received" and req["amount"] == "20.00"
    assert await stock_of(s["warehouse"], s["product"]) == (47, 0)
    assert await balance(s["distributor"]) == Decimal("30.00")
    assert any("退货已入库" in n.title and "20.00" in n.body for n in await inbox(s["user"].id))
    entry = await ReceivableEntry.get(distributor_id=s["distributor"].id, ref_type="order_return")
    assert entry.amount == Decimal("-20.00")
    status, order = await get(client, f"/orders/{o.id}", s["h"])
    assert order["lines"][0]["returned_qty"] == 2 and order["returns"][0]["amount"] == "20.00"
    actions = await AuditLog.filter(entity="return_request", entity_id=str(req["id"])).values_list(
        "action", flat=True
    )
    assert sorted(actions) == ["return.approved", "return.received", "return.requested"]
    await assert_consistent()


async def test_reject_needs_a_reason_tells_the_distributor_and_frees_the_units(client, s) -> None:
    o = await make_order(s["distributor"], product=s["product"], qty=3, status="received")
    _, req = await post(client, f"/orders/{o.id}/returns", s["h"], ask(s, 3))
    status, answer = await post(client, f"/returns/{req['id']}/reject", s["mgr"], {})
    assert status == 400 and answer["error"]["details"]["fields"][0]["field"] == "reason"
    status, answer = await post(client, f"/orders/{o.id}/returns", s["h"], ask(s, 1))
    assert status == 400  # all 3 are already asked for
    status, rej = await post(client, f"/returns/{req['id']}/reject", s["mgr"], {"reason": "已超出质保范围"})
    assert status == 200 and rej["status"] == "rejected" and rej["review_note"] == "已超出质保范围"
    told = [n for n in await inbox(s["user"].id) if "退货申请未通过" in n.title]
    assert len(told) == 1 and "已超出质保范围" in told[0].body
    status, answer = await post(client, f"/returns/{req['id']}/receive", s["mgr"])
    assert status == 409 and answer["error"]["code"] == "invalid_state"
    status, answer = await post(client, f"/returns/{req['id']}/approve", s["mgr"])
    assert status == 409
    assert await stock_of(s["warehouse"], s["product"]) == (47, 0)
    assert await balance(s["distributor"]) == Decimal("30.00")
    # A rejected request frees its units for a new one.
    status, again = await post(client, f"/orders/{o.id}/returns", s["h"], ask(s, 3))
    assert status == 201, again
    assert await AuditLog.filter(action="return.rejected", entity_id=str(req["id"])).exists()


async def test_receive_needs_approval_first(client, s) -> None:
    o = await make_order(s["distributor"], product=s["product"], qty=2, status="received")
    _, req = await post(client, f"/orders/{o.id}/returns", s["h"], ask(s, 1))
    status, answer = await post(client, f"/returns/{req['id']}/receive", s["mgr"])
    assert status == 409 and answer["error"]["code"] == "invalid_state"
    assert await stock_of(s["warehouse"], s["product"]) == (48, 0)


async def test_requests_only_within_return_days_of_receipt(client, s, config) -> None:
    days = config.orders.return_days
    o = await make_order(s["distributor"], product=s["product"], qty=4, status="received")
    await Order.filter(id=o.id).update(received_at=now() - timedelta(days=days, hours=-1))
    status, _ = await post(client, f"/orders/{o.id}/returns", s["h"], ask(s, 1))
    assert status == 201  # one hour left
    await Order.filter(id=o.id).update(received_at=now() - timedelta(days=days, hours=1))
    before = await world_state()
    status, answer = await post(client, f"/orders/{o.id}/returns", s["h"], ask(s, 1))
    assert status == 409 and answer["error"]["code"] == "invalid_state"
    assert "退货期" in answer["error"]["message"]
    assert await world_state() == before
    # Completed orders within the window still take requests; not-yet-received ones never.
    o2 = await make_order(s["distributor"], product=s["product"], qty=2, status="completed")
    assert (await post(client, f"/orders/{o2.id}/returns", s["h"], ask(s, 1)))[0] == 201
    o3 = await make_order(s["distributor"], product=s["product"], qty=2, status="shipped")
    status, answer = await post(client, f"/orders/{o3.id}/returns", s["h"], ask(s, 1))
    assert status == 409 and answer["error"]["code"] == "invalid_state"


async def test_who_may_ask_and_who_may_review(client, s) -> None:
    o = await make_order(s["distributor"], product=s["product"], qty=5, status="received")
    rep = await quick_user(UserRole.SALES)
    await SalesAssignment.create(user=rep, distributor=s["distributor"])
    rep_h = auth(await token_for(rep))
    status, req = await post(client, f"/orders/{o.id}/returns", rep_h, ask(s, 1))
    assert status == 201, req  # the rep in scope may ask on the distributor's behalf
    status, _ = await post(client, f"/orders/{o.id}/returns", s["mgr"], ask(s, 1))
    assert status == 201  # staff too
    for who in (s["h"], rep_h):  # asking is not approving
        assert (await post(client, f"/returns/{req['id']}/approve", who))[0] == 403
        assert (await post(client, f"/returns/{req['id']}/reject", who, {"reason": "x"}))[0] == 403
        assert (await post(client, f"/returns/{req['id']}/receive", who))[0] == 403
    other = auth(await token_for(await quick_user(UserRole.MANAGER, regions=["华北"])))
    assert (await post(client, f"/returns/{req['id']}/approve", other))[0] == 404
    assert (await get(client, f"/returns/{req['id']}", other))[0] == 404
    status, page = await get(client, f"/returns?order_id={o.id}", s["h"])
    assert status == 200 and page["total"] == 2 and {r["status"] for r in page["items"]} == {"requested"}
    status, page = await get(client, "/returns?status=requested", other)
    assert status == 200 and page["total"] == 0


async def test_parent_sees_its_childs_orders_but_acts_only_on_its_own(client, s) -> None:
    parent = s["distributor"]
    child = await make_distributor(region="华东", level=2, parent=parent)
    h = s["h"]  # the 一级's user
    child_h = auth(await token_for(await quick_user(UserRole.DISTRIBUTOR, distributor=child)))
    pending = await make_order(child, product=s["product"], qty=1)
    shipped = await make_order(child, product=s["product"], qty=1, status="shipped")
    received = await make_order(child, product=s["product"], qty=1, status="received")
    assert (await get(client, f"/orders/{pending.id}", h))[0] == 200  # seeing is allowed
    before = await world_state()
    for path, body in (
        (f"/orders/{pending.id}/cancel", {}),
        (f"/orders/{shipped.id}/receive", {}),
        (f"/orders/{received.id}/returns", ask(s, 1)),
    ):
        status, answer = await post(client, path, h, body)
        assert status == 403 and answer["error"]["code"] == "forbidden", (path, answer)
    assert await world_state() == before
    assert (await Order.get(id=pending.id)).status == "pending_review"
    _, req = await post(client, f"/orders/{received.id}/returns", child_h, ask(s, 1))
    assert req["status"] == "requested"
    assert (await get(client, f"/returns/{req['id']}", h))[0] == 200  # the parent sees the request
    assert (await post(client, f"/orders/{pending.id}/cancel", child_h))[0] == 200
    assert (await post(client, f"/orders/{shipped.id}/receive", child_h))[0] == 200


async def test_concurrent_requests_never_exceed_what_shipped(client, s) -> None:
    o = await make_order(s["distributor"], product=s["product"], qty=10, status="received")
    bodies = [ask(s, 3) for _ in range(8)]
    results = await asyncio.gather(
        *(
            post(client, f"/orders/{o.id}/returns", s["h"] if i % 2 else s["mgr"], b)
            for i, b in enumerate(bodies)
        )
    )
    statuses = sorted(st for st, _ in results)
    assert statuses.count(201) == 3 and all(st == 400 for st in statuses if st != 201), statuses
    # Approving and receiving them one by one stays within the 10 shipped units.
    ids = [r["id"] for st, r in results if st == 201]
    await asyncio.gather(*(post(client, f"/returns/{i}/approve", s["mgr"]) for i in ids))
    done = await asyncio.gather(*(post(client, f"/returns/{i}/receive", s["mgr"]) for i in ids))
    assert all(st == 200 for st, _ in done)
    assert (await OrderLine.get(order_id=o.id)).returned_qty == 9
    assert await balance(s["distributor"]) == Decimal("10.00")
    await assert_consistent()


async def test_commission_is_reversed_at_receipt_not_at_request(client, s) -> None:
    await make_rule(beneficiary=Beneficiary.DISTRIBUTOR, rate="0.10")
    o = await make_order(s["distributor"], product=s["product"], qty=4, status="completed")
    accrued = await CommissionEntry.filter(order_id=o.id, kind="accrual")
    assert sum(e.amount for e in accrued) == Decimal("4.00")
    _, req = await post(client, f"/orders/{o.id}/returns", s["h"], ask(s, 1))
    await post(client, f"/returns/{req['id']}/approve", s["mgr"])
    assert not await CommissionEntry.filter(order_id=o.id, kind="reversal").exists()
    await post(client, f"/returns/{req['id']}/receive", s["mgr"])
    reversed_ = await CommissionEntry.filter(order_id=o.id, kind="reversal")
    assert sum(e.amount for e in reversed_) == Decimal("-1.00")  # exactly its share


async def test_completion_goes_ahead_with_an_open_request_and_receipt_reverses_later(
    client, s, config
) -> None:
    await make_rule(beneficiary=Beneficiary.DISTRIBUTOR, rate="0.10")
    o = await make_order(s["distributor"], product=s["product"], qty=4, status="received")
    _, req = await post(client, f"/orders/{o.id}/returns", s["h"], ask(s, 2))
    await Order.filter(id=o.id).update(received_at=now() - timedelta(days=config.orders.return_days + 1))
    result = await ordering.complete_due_orders()
    assert o.id in result["order_ids"]
    accrued = await CommissionEntry.filter(order_id=o.id, kind="accrual")
    assert sum(e.amount for e in accrued) == Decimal("4.00")  # the open request is not netted
    # The window has closed for new requests, but the open one still runs its course.
    assert (await post(client, f"/orders/{o.id}/returns", s["h"], ask(s, 1)))[0] == 409
    assert (await post(client, f"/returns/{req['id']}/approve", s["mgr"]))[0] == 200
    assert (await post(client, f"/returns/{req['id']}/receive", s["mgr"]))[0] == 200
    reversed_ = await CommissionEntry.filter(order_id=o.id, kind="reversal")
    assert sum(e.amount for e in reversed_) == Decimal("-2.00")
    assert await balance(s["distributor"]) == Decimal("20.00")


async def test_return_routes_are_in_the_openapi(client) -> None:
    spec = await (await client.get(f"{API}/openapi.json")).json()
    paths = spec["paths"]
    assert "post" in paths["/api/v1/orders/{id}/returns"]
    assert "get" in paths["/api/v1/returns"] and "get" in paths["/api/v1/returns/{id}"]
    for action in ("approve", "reject", "receive"):
        assert "post" in paths[f"/api/v1/returns/{{id}}/{action}"]
