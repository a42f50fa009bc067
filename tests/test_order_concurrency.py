"""DESIGN.md §8 invariants 1-3 under real concurrency (asyncio.gather against the running
server, on SQLite and on PostgreSQL): no overselling, one order per Idempotency-Key, no credit
overrun; plus hypothesis-driven sequences of order/cancel/ship/return/adjust that must keep
on_hand, reserved and the ledger consistent."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import runtime as rt
from core.errors import DomainError
from core.money import money
from handlers import ordering, returns, stock
from handlers.actor import SYSTEM
from handlers.finance import credit_exposure
from models.base import OrderStatus, UserRole
from models.order import Order, OrderLine
from tests.factories import auth, token_for
from tests.factories_orders import assert_consistent, new_key, placer, quick_user, shop, stock_of

API = "/api/v1"


@pytest.fixture
def config(config):  # type: ignore[no-untyped-def]
    """Many orders from few users in a second: lift the per-user rate limit."""
    return config.with_overrides({"limits": {"orders_per_user_per_min": 100_000}})


async def _tokens(distributor: Any, n: int) -> list[dict[str, str]]:
    users = [await quick_user(UserRole.DISTRIBUTOR, distributor=distributor) for _ in range(n)]
    return [auth(await token_for(u)) for u in users]


async def _post(client: Any, headers: dict, body: dict, key: str) -> tuple[int, Any, bytes]:
    resp = await client.post(f"{API}/orders", json=body, headers={**headers, "Idempotency-Key": key})
    raw = await resp.read()
    return resp.status, await resp.json(), raw


async def test_200_concurrent_orders_never_oversell_50_units(client) -> None:
    s = await shop(on_hand=50, price="1.00")
    heads = await _tokens(s["distributor"], 8)
    rng = random.Random(2026)
    qtys = [rng.choice([1, 1, 2, 3]) for _ in range(200)]
    results = await asyncio.gather(
        *(
            _post(client, heads[i % len(heads)], {"lines": [{"sku": s["product"].sku, "qty": q}]}, new_key())
            for i, q in enumerate(qtys)
        )
    )
    codes = Counter((st_, b.get("error", {}).get("code")) for st_, b, _ in results)
    assert set(codes) <= {(201, None), (409, "insufficient_stock")}, codes
    accepted = [q for q, (code, _, _) in zip(qtys, results, strict=True) if code == 201]
    rejected = [q for q, (code, _, _) in zip(qtys, results, strict=True) if code == 409]
    on_hand, reserved = await stock_of(s["warehouse"], s["product"])
    assert on_hand == 50 and reserved == sum(accepted) <= 50
    # Exactly the orders that fit: availability only fell, so every refusal still does not fit.
    assert all(q > on_hand - reserved for q in rejected)
    assert await Order.all().count() == len(accepted)
    assert sum(await OrderLine.all().values_list("qty", flat=True)) == sum(accepted)
    await assert_consistent()


async def test_fifty_concurrent_requests_with_one_key_make_one_order(client) -> None:
    s = await shop(on_hand=500, price="3.00")
    [h] = await _tokens(s["distributor"], 1)
    key = new_key()
    body = {"lines": [{"sku": s["product"].sku, "qty": 7}], "note": "同一个键"}
    results = await asyncio.gather(*(_post(client, h, body, key) for _ in range(50)))
    statuses = Counter(code for code, _, _ in results)
    assert set(statuses) <= {201, 409}, statuses
    assert all(b["error"]["code"] == "request_in_progress" for code, b, _ in results if code == 409)
    bodies = {raw for code, _, raw in results if code == 201}
    assert len(bodies) == 1  # every success is the same answer, byte for byte
    assert await Order.all().count() == 1
    assert await stock_of(s["warehouse"], s["product"]) == (500, 7)
    await assert_consistent()


async def test_concurrent_orders_never_exceed_the_credit_limit(client) -> None:
    s = await shop(on_hand=10_000, price="10.00", credit_limit="500")
    heads = await _tokens(s["distributor"], 6)
    rng = random.Random(7)
    qtys = [rng.choice([1, 2, 3, 5, 8]) for _ in range(60)]
    results = await asyncio.gather(
        *(
            _post(client, heads[i % len(heads)], {"lines": [{"sku": s["product"].sku, "qty": q}]}, new_key())
            for i, q in enumerate(qtys)
        )
    )
    codes = Counter((code, b.get("error", {}).get("code")) for code, b, _ in results)
    assert set(codes) <= {(201, None), (409, "credit_limit_exceeded")}, codes
    accepted = sum(q for q, (code, _, _) in zip(qtys, results, strict=True) if code == 201)
    exposure = await credit_exposure(s["distributor"].id)
    assert exposure == money(accepted * 10) <= Decimal("500")
    left = Decimal("500") - exposure
    assert all(q * 10 > left for q, (code, _, _) in zip(qtys, results, strict=True) if code == 409)
    await assert_consistent()


async def test_concurrent_shipments_and_cancels_keep_stock_consistent(client) -> None:
    """Ship, cancel and place at once on one SKU: the ledger and the balances still agree."""
    s = await shop(on_hand=100, price="1.00")
    admin_h = auth(await token_for(await quick_user(UserRole.ADMIN)))
    orders = []
    for _ in range(10):
        out = await ordering.place_order(
            await placer(),
            idempotency_key=new_key(),
            body={"distributor_id": s["distributor"].id, "lines": [{"sku": s["product"].sku, "qty": 5}]},
        )
        orders.append(await ordering.approve_order(SYSTEM, out.id))
    [h] = await _tokens(s["distributor"], 1)
    sku = s["product"].sku
    calls = []
    for i, o in enumerate(orders):
        if i % 2:
            calls.append(
                client.post(
                    f"{API}/orders/{o.id}/shipments",
                    json={"lines": [{"sku": sku, "qty": 5}]},
                    headers=admin_h,
                )
            )
        else:
            calls.append(client.post(f"{API}/orders/{o.id}/cancel", json={}, headers=h))
        calls.append(
            client.post(
                f"{API}/orders",
                json={"lines": [{"sku": sku, "qty": 3}]},
                headers={**h, "Idempotency-Key": new_key()},
            )
        )
    responses = await asyncio.gather(*calls)
    assert all(r.status in (200, 201) for r in responses), [r.status for r in responses]
    on_hand, reserved = await stock_of(s["warehouse"], s["product"])
    assert on_hand == 100 - 5 * 5 and reserved == 10 * 3
    await assert_consistent()


# --- hypothesis: sequences of operations -----------------------------------------------------

OPS = st.one_of(
    st.tuples(st.just("place"), st.integers(1, 6)),
    st.tuples(st.just("approve"), st.integers(0, 7)),
    st.tuples(st.just("cancel"), st.integers(0, 7)),
    st.tuples(st.just("ship"), st.integers(0, 7), st.integers(1, 4)),
    st.tuples(st.just("receive"), st.integers(0, 7)),
    st.tuples(st.just("return"), st.integers(0, 7), st.integers(1, 3)),
    st.tuples(st.just("adjust"), st.integers(-5, 8)),
)


@settings(max_examples=12, deadline=None)
@given(batches=st.lists(st.lists(OPS, min_size=1, max_size=3), min_size=3, max_size=10))
async def test_operation_sequences_keep_stock_and_ledger_consistent(db, batches) -> None:
    runtime = rt.runtime()
    runtime.config = runtime.config.with_overrides({"limits": {"orders_per_user_per_min": 100_000}})
    s = await shop(on_hand=12, price="2.00")
    product, wh = s["product"], s["warehouse"]
    actor = await placer()
    admin = SYSTEM
    orders: list[int] = []
    expected_on_hand = 12

    async def run(op: tuple) -> int:
        """Apply one op; returns the on_hand change it made (0 if refused)."""
        kind = op[0]

        def pick(i: int) -> int | None:
            return orders[i % len(orders)] if orders else None

        try:
            if kind == "place":
                out = await ordering.place_order(
                    actor,
                    idempotency_key=new_key(),
                    body={
                        "distributor_id": s["distributor"].id,
                        "lines": [{"sku": product.sku, "qty": op[1]}],
                    },
                )
                orders.append(out.id)
            elif kind == "adjust" and op[1]:
                reason = "inbound" if op[1] > 0 else "outbound"
                await stock.adjust_stock(
                    admin, stock.AdjustmentIn(warehouse_id=wh.id, sku=product.sku, delta=op[1], reason=reason)
                )
                return op[1]
            elif (oid := pick(op[1] if len(op) > 1 else 0)) is None:
                return 0
            elif kind == "approve":
                await ordering.approve_order(admin, oid)
            elif kind == "cancel":
                await ordering.cancel_order(admin, oid)
            elif kind == "ship":
                await ordering.ship_order(admin, oid, {"lines": [{"sku": product.sku, "qty": op[2]}]})
                return -op[2]
            elif kind == "receive":
                await ordering.receive_order(admin, oid)
            elif kind == "return":  # 申请 -> 审核 -> 入库: units come back only at receipt
                req = await returns.request_return(
                    admin, oid, {"lines": [{"sku": product.sku, "qty": op[2]}], "reason": "r"}
                )
                await returns.approve_return(admin, req.id)
                await returns.receive_return(admin, req.id)
                return op[2]
        except DomainError:
            return 0
        return 0

    for batch in batches:
        deltas = await asyncio.gather(*(run(op) for op in batch))
        expected_on_hand += sum(deltas)
        on_hand, reserved = await stock_of(wh, product)
        assert on_hand == expected_on_hand and 0 <= reserved <= on_hand
        # Reserved is exactly what open orders still have to ship.
        open_ids = await Order.filter(
            id__in=orders or [0], status__in=[OrderStatus.PENDING_REVIEW, OrderStatus.APPROVED]
        ).values_list("id", flat=True)
        lines = await OrderLine.filter(order_id__in=list(open_ids) or [0])
        assert reserved == sum(x.qty + x.free_qty - x.shipped_qty for x in lines)
        await assert_consistent()
