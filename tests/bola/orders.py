"""BOLA cases for catalog, stock, orders and the admin stock/payment routes (issue 5).

Every probe builds fresh objects owned by `world.east.distributor` (or in east's warehouse),
so a write route acts on a new order/stock row per role."""

from __future__ import annotations

import uuid
from typing import Any

from handlers import stock
from handlers.actor import SYSTEM
from models.finance import Payment
from models.order import Order, ReturnRequest
from models.stock import StockMovement
from tests.bola import ALL_ROLES, STAFF_SEES, Case, Probe
from tests.factories import make_price_list, make_product, make_stock
from tests.factories_orders import make_order


async def _product(world: Any, on_hand: int = 20) -> Any:
    """A fresh priced product stocked in the company warehouse and in east's own."""
    p = await make_product()
    await make_price_list({p: "10"})
    await make_stock(world.company_warehouse, p, on_hand=on_hand)
    await make_stock(world.east.warehouse, p, on_hand=on_hand)
    return p


async def _order(world: Any, status: str = "pending_review") -> Any:
    p = await _product(world)
    out = await make_order(world.east.distributor, product=p, qty=2, status=status)
    return out, p


async def _state(world: Any, probe: Probe) -> Any:
    """What a refused call must not change."""
    order_id = probe.extra.get("order_id")
    status = await Order.filter(id=order_id).values_list("status", flat=True) if order_id else None
    return (
        await Order.all().count(),
        await StockMovement.all().count(),
        await Payment.all().count(),
        await ReturnRequest.all().count(),
        status,
    )


# --- catalog and stock ------------------------------------------------------------------------


async def _products(world: Any, client: Any) -> Probe:
    p = await _product(world)
    return Probe(f"/products?q={p.sku}", marker=p.id)


async def _one_product(world: Any, client: Any) -> Probe:
    p = await _product(world)
    return Probe(f"/products/{p.id}")


async def _stock(world: Any, client: Any) -> Probe:
    p = await _product(world)
    wh = world.east.warehouse.id

    def visible(answer: Any) -> bool:
        return any(r["warehouse_id"] == wh for r in answer.get("items", []))

    return Probe(f"/stock?sku={p.sku}&page_size=100", visible=visible)


# --- orders -------------------------------------------------------------------------------


async def _place(world: Any, client: Any) -> Probe:
    p = await _product(world)
    body = {"distributor_id": world.east.distributor.id, "lines": [{"sku": p.sku, "qty": 1}]}
    return Probe("/orders", body=body, headers={"Idempotency-Key": uuid.uuid4().hex})


async def _list_orders(world: Any, client: Any) -> Probe:
    out, _ = await _order(world)
    return Probe("/orders?page_size=100", marker=out.id)


def _on(status: str, action: str, body: Any = None) -> Any:
    async def probe(world: Any, client: Any) -> Probe:
        out, p = await _order(world, status)
        payload = body(p) if callable(body) else ({} if body is None else body)
        return Probe(f"/orders/{out.id}{action}", body=payload, extra={"order_id": out.id})

    return probe


async def _receive_shipment(world: Any, client: Any) -> Probe:
    out, _ = await _order(world, "shipped")
    sid = out.shipments[0].id
    return Probe(f"/orders/{out.id}/shipments/{sid}/receive", body={}, extra={"order_id": out.id})


async def _get_order(world: Any, client: Any) -> Probe:
    out, _ = await _order(world)
    return Probe(f"/orders/{out.id}")


def _lines(p: Any) -> dict:
    return {"lines": [{"sku": p.sku, "qty": 1}]}


def _return(p: Any) -> dict:
    return {"lines": [{"sku": p.sku, "qty": 1}], "reason": "破损"}


# --- admin stock and payments -------------------------------------------------------------


async def _adjust(world: Any, client: Any) -> Probe:
    p = await _product(world)
    body = {"warehouse_id": world.east.warehouse.id, "sku": p.sku, "delta": 3, "reason": "inbound"}
    return Probe("/admin/stock-adjustments", body=body)


async def _list_adjustments(world: Any, client: Any) -> Probe:
    p = await _product(world)
    mv = await stock.adjust_stock(
        SYSTEM, stock.AdjustmentIn(warehouse_id=world.east.warehouse.id, sku=p.sku, delta=2, reason="inbound")
    )
    return Probe("/admin/stock-adjustments?page_size=100", marker=mv.id)


async def _thresholds(world: Any, client: Any) -> Probe:
    p = await _product(world)
    return Probe(
        "/admin/stock-thresholds", body={"warehouse_id": world.east.warehouse.id, "sku": p.sku, "min_qty": 5}
    )


async def _list_thresholds(world: Any, client: Any) -> Probe:
    p = await _product(world)
    out = await stock.set_thresholds(
        SYSTEM, stock.ThresholdIn(warehouse_id=world.east.warehouse.id, sku=p.sku, min_qty=5)
    )
    return Probe(
        "/admin/stock-thresholds?page_size=100",
        visible=lambda a: any(r["stock_id"] == out.stock_id for r in a.get("items", [])),
    )


async def _pay(world: Any, client: Any) -> Probe:
    body = {
        "distributor_id": world.east.distributor.id,
        "amount": "100.00",
        "paid_at": "2026-11-20T10:00:00+08:00",
        "ref": uuid.uuid4().hex[:20],
    }
    return Probe("/admin/payments", body=body)


async def _list_payments(world: Any, client: Any) -> Probe:
    from handlers.finance import PaymentIn, record_payment

    out = await record_payment(
        SYSTEM,
        PaymentIn(
            distributor_id=world.east.distributor.id,
            amount="5",
            paid_at="2026-11-20T10:00:00+08:00",
            ref=uuid.uuid4().hex[:20],
        ),
    )
    return Probe("/admin/payments?page_size=100", marker=out.id)


# A distributor user naming another distributor (even its own child or parent) is a 400.
DISTRIBUTORS_NAMING_OTHERS = {"east.child": 400, "north.distributor": 400, "north.child": 400}

CASES: dict[tuple[str, str], Case] = {
    ("GET", "/products"): Case(_products, kind="list", sees=ALL_ROLES),
    ("GET", r"/products/{id:\d+}"): Case(_one_product, sees=ALL_ROLES),
    ("GET", "/stock"): Case(_stock, kind="list"),
    ("POST", "/orders"): Case(_place, kind="object", expect=DISTRIBUTORS_NAMING_OTHERS, snapshot=_state),
    ("GET", "/orders"): Case(_list_orders, kind="list"),
    ("GET", r"/orders/{id:\d+}"): Case(_get_order),
    ("POST", r"/orders/{id:\d+}/approve"): Case(
        _on("pending_review", "/approve"), sees=STAFF_SEES, snapshot=_state
    ),
    ("POST", r"/orders/{id:\d+}/reject"): Case(
        _on("pending_review", "/reject", {"reason": "不符合"}), sees=STAFF_SEES, snapshot=_state
    ),
    ("POST", r"/orders/{id:\d+}/cancel"): Case(_on("pending_review", "/cancel"), snapshot=_state),
    ("POST", r"/orders/{id:\d+}/shipments"): Case(
        _on("approved", "/shipments", _lines), sees=STAFF_SEES, snapshot=_state
    ),
    ("POST", r"/orders/{id:\d+}/receive"): Case(_on("shipped", "/receive"), snapshot=_state),
    ("POST", r"/orders/{id:\d+}/shipments/{shipment_id:\d+}/receive"): Case(
        _receive_shipment, snapshot=_state
    ),
    ("POST", r"/orders/{id:\d+}/complete"): Case(
        _on("received", "/complete"), sees=STAFF_SEES, snapshot=_state
    ),
    ("POST", r"/orders/{id:\d+}/returns"): Case(_on("received", "/returns", _return), snapshot=_state),
    ("POST", "/admin/stock-adjustments"): Case(_adjust, kind="object", sees=STAFF_SEES, snapshot=_state),
    ("GET", "/admin/stock-adjustments"): Case(_list_adjustments, kind="list", sees=STAFF_SEES),
    ("PUT", "/admin/stock-thresholds"): Case(_thresholds, kind="object", sees=STAFF_SEES),
    ("GET", "/admin/stock-thresholds"): Case(_list_thresholds, kind="list", sees=STAFF_SEES),
    ("POST", "/admin/payments"): Case(_pay, kind="object", sees=STAFF_SEES, snapshot=_state),
    ("GET", "/admin/payments"): Case(_list_payments, kind="list", sees=STAFF_SEES),
}
