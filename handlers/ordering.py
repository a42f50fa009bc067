"""Orders after admission: reads and the lifecycle.

Admission (``place_order`` / ``admit_order``) lives in `handlers.admission`, the inputs and
outputs in `handlers.order_io`; both are re-exported here, so ``handlers.ordering`` is the one
place callers import order use-cases from.

Public use-cases (every one takes the acting `Actor` first; all raise core.errors types):
``approve_order``, ``reject_order(actor, id, reason)``, ``cancel_order(actor, id,
reason=None)``, ``ship_order(actor, id, ShipmentIn)``, ``receive_order``,
``receive_shipment(actor, id, shipment_id)``, ``complete_order``
-> OrderOut; ``complete_due_orders() -> dict`` (the ``order_completion`` job);
``get_order(actor, id)``, ``list_orders(actor, status=, distributor_id=, number=, page=,
page_size=) -> Page[OrderOut]`` (orders carry ``distributor_name`` next to ``distributor_id``).

**Lifecycle**: ``pending_review -> approved -> shipped -> received -> completed``, plus
``rejected`` (from pending_review) and ``cancelled`` (pending_review, or approved with nothing
shipped). Rejecting and cancelling release the reservations. **Partial shipments**: an order
stays ``approved`` while some units are shipped (``partially_shipped`` is true, lines carry
``shipped_qty``); it becomes ``shipped`` when every unit (paid and free) has shipped. Each
shipment turns reservations into outbound stock, adds its value to receivables (due per
payment terms) and emits ``order.shipped``. **Receipt** (签收) is per shipment
(``receive_shipment``) or for the whole order (``receive_order``, which also marks the
shipments not yet received); the order becomes ``received`` once it is fully shipped and every
shipment is received. Returns are requests reviewed by staff and credited
at receipt (`handlers.returns`, which shares this module's locking and valuing). A line's units are valued
proportionally (``amount * units / (qty + free_qty)``, rounded cumulatively so the parts sum
exactly to the line amount). Illegal transitions -> 409 ``invalid_state``. Every transition is
audited and emits its event (`handlers.events`). Locks are taken in one order everywhere:
distributor -> order -> stock rows by id. **A distributor user acts only on its own
distributor's orders**: a 一级 sees its 二级's orders but may not cancel, receive or return them
(403; `_lock_order`).
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from tortoise.transactions import in_transaction

from core.clock import day_start, now
from core.errors import Forbidden, InvalidState, NotFound
from core.money import ZERO, money
from core.runtime import runtime
from core.schema import Page
from handlers import admission, idempotency, stock
from handlers.actor import SYSTEM, Actor, Role
from handlers.admission import Admission, admit_order, place_order
from handlers.audit import record
from handlers.events import emit
from handlers.finance import add_receivable, due_at, open_value, order_value_moved, require_prepaid
from handlers.order_io import (
    MAX_LINES,
    MAX_QTY,
    CancelIn,
    LineIn,
    OrderCreate,
    OrderLineOut,
    OrderOut,
    QtyOut,
    RejectIn,
    ReturnIn,
    ReturnOut,
    ShipmentIn,
    ShipmentOut,
    ShipToIn,
    Wanted,
    field_error,
    merge_lines,
    order_out,
    parse_in,
    status_zh,
)
from handlers.scope import require_distributor_in_scope, scoped
from models.base import MovementReason, OrderStatus, ReceivableKind
from models.distributor import Distributor
from models.order import Order, OrderLine, OrderReturn, Shipment, ShipmentLine
from models.stock import Stock

__all__ = [
    "MAX_LINES",
    "MAX_QTY",
    "Admission",
    "CancelIn",
    "LineIn",
    "OrderCreate",
    "OrderLineOut",
    "OrderOut",
    "QtyOut",
    "RejectIn",
    "ReturnIn",
    "ReturnOut",
    "ShipToIn",
    "ShipmentIn",
    "ShipmentOut",
    "admit_order",
    "approve_order",
    "cancel_order",
    "complete_due_orders",
    "complete_order",
    "get_order",
    "list_orders",
    "parse_in",
    "place_order",
    "receive_order",
    "receive_shipment",
    "reject_order",
    "ship_order",
]


async def _full_out(order: Order) -> OrderOut:
    lines = await OrderLine.filter(order_id=order.id)
    by_line = {x.id: x.sku for x in lines}
    shipments = []
    for sh in await Shipment.filter(order_id=order.id).order_by("id").prefetch_related("lines"):
        sh_lines = _qty_by_sku((by_line[sl.order_line_id], sl.qty) for sl in sh.lines)  # type: ignore[attr-defined]
        amount = await _shipment_amount(sh.id)
        shipments.append(
            ShipmentOut(
                id=sh.id,
                carrier=sh.carrier,
                tracking_no=sh.tracking_no,
                shipped_at=sh.shipped_at,
                received_at=sh.received_at,
                amount=amount,
                lines=sh_lines,
            )
        )
    returns = []
    for r in await OrderReturn.filter(order_id=order.id).order_by("id").prefetch_related("lines"):
        r_lines = _qty_by_sku((by_line[rl.order_line_id], rl.qty) for rl in r.lines)  # type: ignore[attr-defined]
        returns.append(
            ReturnOut(id=r.id, reason=r.reason, amount=r.amount, created_at=r.created_at, lines=r_lines)
        )
    name = await Distributor.filter(id=order.distributor_id).values_list("name", flat=True)  # type: ignore[attr-defined]
    return order_out(order, lines, shipments, returns, distributor_name=name[0] if name else "")


async def _shipment_amount(shipment_id: int) -> Decimal:
    from models.finance import ReceivableEntry

    entry = await ReceivableEntry.filter(ref_type="shipment", ref_id=str(shipment_id)).first()
    return entry.amount if entry is not None else ZERO


def _qty_by_sku(pairs: Any) -> list[QtyOut]:
    totals: OrderedDict[str, int] = OrderedDict()
    for sku, qty in pairs:
        totals[sku] = totals.get(sku, 0) + qty
    return [QtyOut(sku=s, qty=q) for s, q in totals.items()]


# --- reads --------------------------------------------------------------------------------


async def _distributor_names(ids: set[int]) -> dict[int, str]:
    """One query for a page's distributor names (not one per order)."""
    if not ids:
        return {}
    return dict(await Distributor.filter(id__in=sorted(ids)).values_list("id", "name"))  # type: ignore[arg-type]


async def get_order(actor: Actor, order_id: int) -> OrderOut:
    order = await scoped(Order.filter(id=order_id), actor).first()
    if order is None:
        raise NotFound("未找到该订单")
    return await _full_out(order)


async def list_orders(
    actor: Actor,
    *,
    status: str | None = None,
    distributor_id: int | None = None,
    number: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    page: int = 1,
    page_size: int = 20,
) -> Page[OrderOut]:
    """`number` matches a prefix (case-insensitive): a full number finds that order,
    "SO20261205" that day's orders; `date_from`/`date_to` are the business days the order
    was placed (inclusive); within the caller's scope like everything else."""
    qs = scoped(Order.all(), actor)
    if number:
        qs = qs.filter(number__startswith=number.strip().upper())
    if status:
        try:
            qs = qs.filter(status=OrderStatus(status))
        except ValueError:
            raise field_error("status", f"应为以下之一：{'、'.join(s.value for s in OrderStatus)}") from None
    if distributor_id is not None:
        require_distributor_in_scope(actor, distributor_id)
        qs = qs.filter(distributor_id=distributor_id)
    if date_from and date_to and date_from > date_to:
        raise field_error("date_from", "开始日期不能晚于结束日期")
    if date_from:
        qs = qs.filter(created_at__gte=day_start(date_from))
    if date_to:
        qs = qs.filter(created_at__lt=day_start(date_to + timedelta(days=1)))
    total = await qs.count()
    orders = (
        await qs.order_by("-id").offset((page - 1) * page_size).limit(page_size).prefetch_related("lines")
    )
    names = await _distributor_names({o.distributor_id for o in orders})  # type: ignore[attr-defined]
    items = [order_out(o, list(o.lines), distributor_name=names.get(o.distributor_id, "")) for o in orders]  # type: ignore[attr-defined]
    return Page[OrderOut](items=items, total=total, page=page, page_size=page_size)


# --- lifecycle ----------------------------------------------------------------------------


def _require(actor: Actor, *roles: Role) -> None:
    if actor.role not in roles:
        raise Forbidden("您的角色不能进行这个操作")


async def _lock_order(actor: Actor, order_id: int, *, lock_distributor: bool = False) -> Order:
    """The order in scope, locked (after its distributor's row when asked: the lock order is
    distributor -> order -> stock everywhere)."""
    if lock_distributor:
        row = await scoped(Order.filter(id=order_id), actor).values_list("distributor_id", flat=True)
        if not row:
            raise NotFound("未找到该订单")
        await admission.lock_distributor(row[0])
    order = await scoped(Order.filter(id=order_id), actor).select_for_update(no_key=True).first()
    if order is None:
        raise NotFound("未找到该订单")
    if actor.role == Role.distributor and order.distributor_id != actor.distributor_id:  # type: ignore[attr-defined]
        raise Forbidden("只能操作本经销商自己的订单（下级经销商的订单只可查看）")
    return order


def _expect(order: Order, *statuses: OrderStatus) -> None:
    if order.status not in statuses:
        allowed = "或".join(status_zh(s) for s in statuses)
        raise InvalidState(
            f"订单 {order.number} 当前{status_zh(order.status)}，只有{allowed}的订单可以这样操作",
            {"status": str(order.status), "expected": [s.value for s in statuses]},
        )


async def _transition(
    actor: Actor, order: Order, status: OrderStatus, event: str, **changes: Any
) -> OrderOut:
    before = {"status": str(order.status)}
    was = open_value(order.status, order.total_amount, order.shipped_amount)
    order.status = status
    for k, v in changes.items():
        setattr(order, k, v)
    await order.save(update_fields=["status", "updated_at", *changes])
    await order_value_moved(
        order.distributor_id,  # type: ignore[attr-defined]
        was,
        open_value(status, order.total_amount, order.shipped_amount),
    )
    after = {"status": status.value, **changes}
    await record(actor, event, "order", order.id, before, after)
    await emit(event, order_id=order.id, actor_id=actor.user_id)
    return await _full_out(order)


async def approve_order(actor: Actor, order_id: int) -> OrderOut:
    _require(actor, Role.admin, Role.manager)
    async with in_transaction():
        order = await _lock_order(actor, order_id, lock_distributor=True)
        _expect(order, OrderStatus.PENDING_REVIEW)
        # 款到发货: a prepay order needs its prepayment first (the distributor lock serialises it)
        await require_prepaid(order.distributor_id, order.id, order.total_amount - order.shipped_amount)  # type: ignore[attr-defined]
        return await _transition(actor, order, OrderStatus.APPROVED, "order.approved", approved_at=now())


async def reject_order(actor: Actor, order_id: int, reason: str) -> OrderOut:
    _require(actor, Role.admin, Role.manager)
    async with in_transaction():
        order = await _lock_order(actor, order_id, lock_distributor=True)
        _expect(order, OrderStatus.PENDING_REVIEW)
        await _release(order, actor, "order_rejected")
        return await _transition(actor, order, OrderStatus.REJECTED, "order.rejected", reject_reason=reason)


async def cancel_order(actor: Actor, order_id: int, reason: str | None = None) -> OrderOut:
    """The ordering distributor (or its 一级 parent), its rep or staff; only before anything
    has shipped."""
    async with in_transaction():
        order = await _lock_order(actor, order_id, lock_distributor=True)
        _expect(order, OrderStatus.PENDING_REVIEW, OrderStatus.APPROVED)
        lines = await OrderLine.filter(order_id=order.id)
        if any(x.shipped_qty for x in lines):
            raise InvalidState("订单已部分发货，不能再取消", {"status": "approved"})
        await _release(order, actor, None, lines)
        return await _transition(
            actor, order, OrderStatus.CANCELLED, "order.cancelled", cancelled_at=now(), cancel_reason=reason
        )


async def _release(
    order: Order, actor: Actor, note: str | None, lines: list[OrderLine] | None = None
) -> None:
    lines = lines if lines is not None else await OrderLine.filter(order_id=order.id)
    todo = [(x, x.qty + x.free_qty - x.shipped_qty) for x in lines]
    todo = [(x, n) for x, n in todo if n > 0]
    rows = await _stock_rows_for(x for x, _ in todo)
    ref = stock.Ref("order", order.id, actor.user_id, note)
    movements = []
    for x, n in sorted(todo, key=lambda t: rows[_line_key(t[0])].id):
        movements.append(await stock.change(rows[_line_key(x)], 0, -n, MovementReason.RELEASE, ref))
    await stock.save_movements(movements)


def _line_key(line: OrderLine) -> tuple[int, int]:
    return (line.warehouse_id, line.product_id)  # type: ignore[attr-defined]


async def _stock_rows_for(lines: Any) -> dict[tuple[int, int], stock.Row]:
    keys = {_line_key(x) for x in lines}
    if not keys:
        return {}
    ids = await Stock.filter(
        warehouse_id__in=[k[0] for k in keys], product_id__in=[k[1] for k in keys]
    ).values_list("id", "warehouse_id", "product_id")
    locked = await stock.lock([i for i, w, p in ids if (w, p) in keys])
    return {(s.warehouse_id, s.product_id): s for s in locked.values()}


def _unit_value(line: OrderLine, units: int) -> Decimal:
    return money(line.amount * units / (line.qty + line.free_qty))


def _pick(lines: list[OrderLine], wanted: list[Wanted], room: Any, what: str) -> list[tuple[OrderLine, int]]:
    """Spread each requested sku's qty over the order's lines of that sku (by id), within
    `room(line)`; anything unknown or too much is a 400 naming the line."""
    by_sku: dict[str, list[OrderLine]] = {}
    for x in sorted(lines, key=lambda x: x.id):
        by_sku.setdefault(x.sku, []).append(x)
    picks: list[tuple[OrderLine, int]] = []
    for w in wanted:
        candidates = by_sku.get(w.sku)
        if not candidates:
            raise field_error(f"lines.{w.index}.sku", f"订单中没有商品 {w.sku}")
        left_total = sum(room(x) for x in candidates)
        if w.qty > left_total:
            raise field_error(f"lines.{w.index}.qty", f"商品 {w.sku} 最多还能{what} {left_total}")
        left = w.qty
        for x in candidates:
            take = min(room(x), left)
            if take > 0:
                picks.append((x, take))
                left -= take
    return picks


async def ship_order(actor: Actor, order_id: int, data: ShipmentIn | dict) -> OrderOut:
    """Staff ship some or all of an approved order's remaining units."""
    _require(actor, Role.admin, Role.manager)
    data = parse_in(ShipmentIn, data)
    wanted = merge_lines(data.lines)
    async with in_transaction():
        order = await _lock_order(actor, order_id, lock_distributor=True)
        _expect(order, OrderStatus.APPROVED)
        lines = await OrderLine.filter(order_id=order.id)
        picks = _pick(lines, wanted, lambda x: x.qty + x.free_qty - x.shipped_qty, "发货")
        at = now()
        shipment = await Shipment.create(
            order_id=order.id,
            carrier=data.carrier,
            tracking_no=data.tracking_no,
            shipped_at=at,
            created_by_id=actor.user_id or None,
        )
        rows = await _stock_rows_for(x for x, _ in picks)
        ref = stock.Ref("shipment", shipment.id, actor.user_id)
        value = ZERO
        movements = []
        for x, n in sorted(picks, key=lambda t: rows[_line_key(t[0])].id):
            movements.append(await stock.change(rows[_line_key(x)], -n, -n, MovementReason.SHIP, ref))
            value += _unit_value(x, x.shipped_qty + n) - _unit_value(x, x.shipped_qty)
            x.shipped_qty += n
            await OrderLine.filter(id=x.id).update(shipped_qty=x.shipped_qty)
            await ShipmentLine.create(shipment_id=shipment.id, order_line_id=x.id, qty=n)
        await stock.save_movements(movements)
        dist = await Distributor.get(id=order.distributor_id)  # type: ignore[attr-defined]
        await require_prepaid(dist.id, order.id, value)  # 款到发货: the shipped value is paid for
        if value > 0:
            await add_receivable(
                dist.id,
                ReceivableKind.SHIPMENT,
                value,
                "shipment",
                shipment.id,
                occurred_at=at,
                due=due_at(dist.payment_terms, at),
            )
        was = open_value(order.status, order.total_amount, order.shipped_amount)
        order.shipped_amount = money(order.shipped_amount + value)
        done = all(x.shipped_qty == x.qty + x.free_qty for x in lines)
        before = {"status": str(order.status), "shipped_amount": str(order.shipped_amount - value)}
        fields = ["shipped_amount", "updated_at"]
        if done:
            order.status, order.shipped_at = OrderStatus.SHIPPED, at
            fields += ["status", "shipped_at"]
        await order.save(update_fields=fields)
        await order_value_moved(
            dist.id, was, open_value(order.status, order.total_amount, order.shipped_amount)
        )
        await record(
            actor,
            "order.shipped",
            "order",
            order.id,
            before,
            {
                "status": str(order.status),
                "shipment_id": shipment.id,
                "value": value,
                "lines": [{"sku": x.sku, "line_id": x.id, "qty": n} for x, n in picks],
            },
        )
        await emit("order.shipped", order_id=order.id, shipment_id=shipment.id, actor_id=actor.user_id)
        return await _full_out(order)


async def receive_order(actor: Actor, order_id: int) -> OrderOut:
    """The distributor confirms a fully shipped order arrived (staff may record it too); its
    shipments not yet confirmed one by one are received with it."""
    _require(actor, Role.distributor, Role.admin, Role.manager)
    async with in_transaction():
        order = await _lock_order(actor, order_id)
        _expect(order, OrderStatus.SHIPPED)
        at = now()
        await Shipment.filter(order_id=order.id, received_at__isnull=True).update(received_at=at)
        return await _transition(actor, order, OrderStatus.RECEIVED, "order.received", received_at=at)


async def receive_shipment(actor: Actor, order_id: int, shipment_id: int) -> OrderOut:
    """The distributor confirms one shipment arrived (签收, one truck of a partial delivery);
    when the order is fully shipped and every shipment is received, the order is received
    (as by `receive_order`). Again: 409; a shipment not of this order: 404."""
    _require(actor, Role.distributor, Role.admin, Role.manager)
    async with in_transaction():
        order = await _lock_order(actor, order_id)
        _expect(order, OrderStatus.APPROVED, OrderStatus.SHIPPED)
        shipment = await Shipment.filter(id=shipment_id, order_id=order.id).first()
        if shipment is None:
            raise NotFound("发货单不存在")
        if shipment.received_at is not None:
            raise InvalidState(
                f"发货单 {shipment.id} 已于 {shipment.received_at.isoformat()} 签收",
                {"shipment_id": shipment.id, "received_at": shipment.received_at.isoformat()},
            )
        at = now()
        await Shipment.filter(id=shipment.id).update(received_at=at)
        await record(actor, "shipment.received", "order", order.id, None, {"shipment_id": shipment.id})
        pending = await Shipment.filter(order_id=order.id, received_at__isnull=True).exists()
        if order.status == OrderStatus.SHIPPED and not pending:
            return await _transition(actor, order, OrderStatus.RECEIVED, "order.received", received_at=at)
        return await _full_out(order)


async def complete_order(actor: Actor, order_id: int) -> OrderOut:
    _require(actor, Role.admin, Role.manager)
    async with in_transaction():
        order = await _lock_order(actor, order_id)
        _expect(order, OrderStatus.RECEIVED)
        return await _transition(actor, order, OrderStatus.COMPLETED, "order.completed", completed_at=now())


async def complete_due_orders() -> dict[str, Any]:
    """Complete received orders whose return window (`orders.return_days`) has passed; each
    in its own transaction, so one failure does not hold back the others. Also deletes
    idempotency records past their expiry."""
    cutoff = now() - timedelta(days=runtime().config.orders.return_days)
    ids = (
        await Order.filter(status=OrderStatus.RECEIVED, received_at__lte=cutoff)
        .order_by("id")
        .values_list("id", flat=True)
    )
    done: list[int] = []
    for order_id in ids:
        async with in_transaction():
            order = await Order.filter(id=order_id).select_for_update(no_key=True).first()
            if order is None or order.status != OrderStatus.RECEIVED:
                continue
            await _transition(SYSTEM, order, OrderStatus.COMPLETED, "order.completed", completed_at=now())
            done.append(order_id)
    # Housekeeping rides on this daily job: keys are kept orders.idempotency_ttl_s (>= 24 h).
    purged = await idempotency.purge_expired()
    return {"completed": len(done), "order_ids": done, "idempotency_keys_purged": purged}
