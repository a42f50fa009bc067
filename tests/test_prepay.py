"""款到发货: a prepay distributor's order is approved (and shipped) only against money it has
paid and not yet promised to its other approved orders; under concurrency too."""

from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal
from typing import Any

import pytest

from core import runtime as rt
from core.money import money
from handlers.finance import prepaid_available
from models.base import OrderStatus, PaymentTerms, UserRole
from models.distributor import Distributor
from models.finance import ReceivableEntry
from models.order import Order
from tests.factories import auth, token_for
from tests.factories_orders import assert_consistent, balance, new_key, quick_user, shop, stock_of

API = "/api/v1"
_refs = itertools.count(1)


@pytest.fixture
def config(config):  # type: ignore[no-untyped-def]
    return config.with_overrides({"limits": {"orders_per_user_per_min": 100_000}})


@pytest.fixture
async def s(client) -> dict[str, Any]:
    data = await shop(on_hand=1000, price="10.00", credit_limit="0")
    await Distributor.filter(id=data["distributor"].id).update(payment_terms=PaymentTerms.PREPAY)
    data["h"] = auth(await token_for(data["user"]))
    data["mgr"] = auth(await token_for(await quick_user(UserRole.MANAGER, regions=["华东"])))
    return data


async def post(client: Any, path: str, headers: dict, body: Any = None) -> tuple[int, Any]:
    resp = await client.post(f"{API}{path}", json={} if body is None else body, headers=headers)
    return resp.status, await resp.json()


async def place(client: Any, s: dict, qty: int) -> dict:
    body = {"lines": [{"sku": s["product"].sku, "qty": qty}]}
    status, out = await post(client, "/orders", {**s["h"], "Idempotency-Key": new_key()}, body)
    assert status == 201 and out["status"] == "pending_review", out
    return out


async def pay(client: Any, s: dict, amount: str) -> None:
    body = {
        "distributor_id": s["distributor"].id,
        "amount": amount,
        "paid_at": "2026-11-20T10:00:00+08:00",
        "ref": f"PRE-{next(_refs)}",
    }
    status, out = await post(client, "/admin/payments", s["mgr"], body)
    assert status == 201, out


def ship(s: dict, qty: int) -> dict:
    return {"lines": [{"sku": s["product"].sku, "qty": qty}]}


async def test_prepay_order_is_approved_only_once_paid(client, s) -> None:
    o = await place(client, s, 5)  # 50.00, no payment yet, credit limit 0
    status, body = await post(client, f"/orders/{o['id']}/approve", s["mgr"])
    assert status == 409 and body["error"]["code"] == "invalid_state", body
    assert "款到发货" in body["error"]["message"]
    assert body["error"]["details"] == {"required": "50.00", "available": "0.00", "missing": "50.00"}
    assert (await Order.get(id=o["id"])).status == OrderStatus.PENDING_REVIEW
    # shipping an unapproved order stays refused too
    assert (await post(client, f"/orders/{o['id']}/shipments", s["mgr"], ship(s, 5)))[0] == 409

    await pay(client, s, "30.00")
    status, body = await post(client, f"/orders/{o['id']}/approve", s["mgr"])
    assert status == 409 and body["error"]["details"]["missing"] == "20.00", body
    await pay(client, s, "20.00")
    status, body = await post(client, f"/orders/{o['id']}/approve", s["mgr"])
    assert status == 200 and body["status"] == "approved", body
    status, body = await post(client, f"/orders/{o['id']}/shipments", s["mgr"], ship(s, 5))
    assert status == 201 and body["status"] == "shipped", body
    assert await balance(s["distributor"]) == Decimal("0.00")
    await assert_consistent()


async def test_prepaid_money_is_promised_to_one_order_only(client, s) -> None:
    await pay(client, s, "60.00")
    first, second = await place(client, s, 5), await place(client, s, 5)
    assert (await post(client, f"/orders/{first['id']}/approve", s["mgr"]))[0] == 200
    assert await prepaid_available(s["distributor"].id) == Decimal("10.00")
    status, body = await post(client, f"/orders/{second['id']}/approve", s["mgr"])
    assert status == 409 and body["error"]["details"] == {
        "required": "50.00",
        "available": "10.00",
        "missing": "40.00",
    }
    # shipping the first spends its own share only
    assert (await post(client, f"/orders/{first['id']}/shipments", s["mgr"], ship(s, 2)))[0] == 201
    assert (await post(client, f"/orders/{second['id']}/approve", s["mgr"]))[0] == 409
    # once the first has fully shipped, the 10.00 left still covers a 10.00 order
    assert (await post(client, f"/orders/{first['id']}/shipments", s["mgr"], ship(s, 3)))[0] == 201
    third = await place(client, s, 1)
    assert (await post(client, f"/orders/{third['id']}/approve", s["mgr"]))[0] == 200
    assert await prepaid_available(s["distributor"].id) == Decimal("0.00")
    await pay(client, s, "50.00")
    assert (await post(client, f"/orders/{second['id']}/approve", s["mgr"]))[0] == 200


async def test_cancelled_approved_order_frees_its_prepayment(client, s) -> None:
    await pay(client, s, "50.00")
    first, second = await place(client, s, 5), await place(client, s, 5)
    assert (await post(client, f"/orders/{first['id']}/approve", s["mgr"]))[0] == 200
    assert (await post(client, f"/orders/{second['id']}/approve", s["mgr"]))[0] == 409
    assert (await post(client, f"/orders/{first['id']}/cancel", s["h"]))[0] == 200
    assert (await post(client, f"/orders/{second['id']}/approve", s["mgr"]))[0] == 200


async def test_an_approved_but_unpaid_prepay_order_does_not_ship(client, s) -> None:
    """An order approved before the rule (or whose prepayment was adjusted away) is still
    refused at the warehouse: the shipped value must be paid for."""
    o = await place(client, s, 5)
    await Order.filter(id=o["id"]).update(status=OrderStatus.APPROVED)
    await pay(client, s, "20.00")
    status, body = await post(client, f"/orders/{o['id']}/shipments", s["mgr"], ship(s, 3))
    assert status == 409 and body["error"]["code"] == "invalid_state", body
    assert body["error"]["details"] == {"required": "30.00", "available": "20.00", "missing": "10.00"}
    assert await stock_of(s["warehouse"], s["product"]) == (1000, 5)
    assert not await ReceivableEntry.filter(kind="shipment").exists()
    status, body = await post(client, f"/orders/{o['id']}/shipments", s["mgr"], ship(s, 2))
    assert status == 201 and body["shipped_amount"] == "20.00", body
    await assert_consistent()


async def test_prepay_orders_are_never_auto_approved(client, s) -> None:
    r = rt.runtime()
    r.config = r.config.with_overrides({"orders": {"auto_approve_max_amount": "1000"}})
    await pay(client, s, "500.00")
    await place(client, s, 5)  # asserts pending_review


async def test_concurrent_approvals_never_spend_the_prepayment_twice(client, s) -> None:
    """Twelve 50.00 orders approved at once against 200.00 paid: exactly four are approved.
    Then the other eight at once while 100.00 more arrives: never more than the money covers."""
    await pay(client, s, "200.00")
    orders = [await place(client, s, 5) for _ in range(12)]
    admins = [auth(await token_for(await quick_user(UserRole.ADMIN))) for _ in range(4)]

    async def approve_all(todo: list[dict]) -> list[tuple[int, Any]]:
        return await asyncio.gather(
            *(post(client, f"/orders/{o['id']}/approve", admins[i % 4]) for i, o in enumerate(todo))
        )

    results = await approve_all(orders)
    assert sorted(code for code, _ in results) == [200] * 4 + [409] * 8, results
    assert all(b["error"]["code"] == "invalid_state" for code, b in results if code == 409)
    assert await prepaid_available(s["distributor"].id) == Decimal("0.00")

    rest = [o for o, (code, _) in zip(orders, results, strict=True) if code == 409]
    more, _ = await asyncio.gather(approve_all(rest), pay(client, s, "100.00"))
    assert set(code for code, _ in more) <= {200, 409}, more
    approved = await Order.filter(distributor_id=s["distributor"].id, status=OrderStatus.APPROVED).count()
    assert approved == 4 + [code for code, _ in more].count(200) <= 6
    assert await prepaid_available(s["distributor"].id) == money(300 - approved * 50) >= 0
