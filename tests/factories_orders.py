"""Order builders that go through the real use-cases (admission, shipment, ...), so the
stock, the ledger and the receivables stay consistent; plus checks used by many tests."""

from __future__ import annotations

import itertools
import uuid
from decimal import Decimal
from typing import Any

from core.money import money
from handlers import ordering
from handlers.actor import SYSTEM
from handlers.auth import build_actor
from handlers.finance import receivables_balance
from handlers.stock import verify_ledger
from models.base import UserRole
from models.distributor import Distributor
from models.order import Order
from models.product import Product
from models.stock import Stock, Warehouse
from models.user import User
from tests.factories import make_distributor, make_price_list, make_product, make_stock, make_warehouse

_keys = itertools.count(1)


def new_key() -> str:
    return f"k-{uuid.uuid4().hex}"


async def quick_user(role: UserRole | str, **kw: Any) -> User:
    """A user without a password (no argon2 hashing: ~0.5 s saved per user)."""
    i = next(_keys)
    return await User.create(
        username=f"q{role}_{i}_{uuid.uuid4().hex[:6]}", display_name=f"{role} {i}", role=role, **kw
    )


async def placer(distributor: Distributor | None = None) -> Any:
    """A fresh admin Actor (its own rate-limit bucket) to place orders for `distributor`."""
    return await build_actor(await quick_user(UserRole.ADMIN))


async def actor_of(user: User) -> Any:
    return await build_actor(user)


async def make_order(
    distributor: Distributor,
    lines: dict[Product, int] | None = None,
    *,
    product: Product | None = None,
    qty: int = 1,
    by: User | None = None,
    status: str = "pending_review",
) -> ordering.OrderOut:
    """Place an order through admission, then move it to `status` with the lifecycle
    use-cases (approved, shipped, received, completed, cancelled, rejected)."""
    if lines is None:
        assert product is not None, "give lines or product"
        lines = {product: qty}
    actor = await build_actor(by) if by is not None else await placer(distributor)
    body = {"distributor_id": distributor.id, "lines": [{"sku": p.sku, "qty": q} for p, q in lines.items()]}
    out = await ordering.place_order(actor, idempotency_key=new_key(), body=body)
    return await advance(out, status)


async def advance(out: ordering.OrderOut, status: str) -> ordering.OrderOut:
    steps = {
        "pending_review": [],
        "approved": ["approve"],
        "shipped": ["approve", "ship"],
        "received": ["approve", "ship", "receive"],
        "completed": ["approve", "ship", "receive", "complete"],
        "cancelled": ["cancel"],
        "rejected": ["reject"],
    }[status]
    for step in steps:
        if step == "approve" and out.status != "pending_review":
            continue
        if step == "approve":
            out = await ordering.approve_order(SYSTEM, out.id)
        elif step == "ship":
            remaining: dict[str, int] = {}
            for line in out.lines:
                remaining[line.sku] = remaining.get(line.sku, 0) + line.qty + line.free_qty - line.shipped_qty
            out = await ordering.ship_order(
                SYSTEM, out.id, {"lines": [{"sku": s, "qty": q} for s, q in remaining.items() if q]}
            )
        elif step == "receive":
            out = await ordering.receive_order(SYSTEM, out.id)
        elif step == "complete":
            out = await ordering.complete_order(SYSTEM, out.id)
        elif step == "cancel":
            out = await ordering.cancel_order(SYSTEM, out.id)
        elif step == "reject":
            out = await ordering.reject_order(SYSTEM, out.id, "测试驳回")
    return out


async def stocked_product(
    warehouse: Warehouse, on_hand: int, price: Decimal | str = "10.00", **kw: Any
) -> Product:
    """A product with a base price list (any level/region) and `on_hand` units in `warehouse`."""
    product = await make_product(**kw)
    await make_price_list({product: Decimal(price)})
    await make_stock(warehouse, product, on_hand=on_hand)
    return product


async def shop(on_hand: int = 50, price: str = "10.00", credit_limit: str = "1000000") -> dict[str, Any]:
    """A small isolated setup: one company warehouse, one product, one distributor + user."""
    wh = await make_warehouse(region="华东")
    product = await stocked_product(wh, on_hand, price)
    dist = await make_distributor(region="华东", credit_limit=money(credit_limit))
    user = await quick_user(UserRole.DISTRIBUTOR, distributor=dist)
    return {"warehouse": wh, "product": product, "distributor": dist, "user": user}


async def stock_of(warehouse: Warehouse, product: Product) -> tuple[int, int]:
    row = await Stock.get(warehouse=warehouse, product=product)
    return row.on_hand, row.reserved


async def assert_consistent() -> None:
    """The ledger reproduces every balance and no row breaks 0 <= reserved <= on_hand."""
    drift = await verify_ledger()
    assert drift == [], drift
    for row in await Stock.all():
        assert 0 <= row.reserved <= row.on_hand, row


async def balance(distributor: Distributor) -> Decimal:
    return await receivables_balance(distributor.id)


async def order_count(distributor: Distributor) -> int:
    return await Order.filter(distributor=distributor).count()


async def world_state() -> dict[str, Any]:
    """Everything an order admission may touch, for "nothing changed" assertions."""
    from models.audit import AuditLog
    from models.finance import ReceivableEntry
    from models.order import IdempotencyRecord, OrderLine
    from models.stock import StockMovement

    return {
        "orders": await Order.all().count(),
        "lines": await OrderLine.all().count(),
        "movements": await StockMovement.all().count(),
        "keys": await IdempotencyRecord.all().count(),
        "audit": await AuditLog.all().count(),
        "receivables": await ReceivableEntry.all().count(),
        "stock": sorted(await Stock.all().values_list("id", "on_hand", "reserved")),
    }
