"""Orders: atomic admission and the lifecycle after it.

Public use-cases (every one takes the acting `Actor` first; all raise core.errors types):

- ``place_order(actor, *, idempotency_key, body, distributor_id=None) -> OrderOut`` — what the
  chat bot's 下单 calls. ``body`` is an `OrderCreate` or a plain dict of the same shape
  (``{distributor_id?, lines: [{sku, qty}], ship_to?: {contact, phone, address}, note?}``);
  the keyword ``distributor_id`` fills the body's when the caller has it separately (a sales
  rep ordering for a distributor). ``admit_order`` (same arguments) also says whether the
  response was replayed — the HTTP route uses it to replay byte for byte.
- ``approve_order``, ``reject_order(actor, id, reason)``, ``cancel_order(actor, id,
  reason=None)``, ``ship_order(actor, id, ShipmentIn)``, ``receive_order``,
  ``complete_order``, ``return_order(actor, id, ReturnIn)`` -> OrderOut;
  ``complete_due_orders() -> dict`` (the ``order_completion`` job); ``get_order(actor, id)``,
  ``list_orders(actor, status=, distributor_id=, page=, page_size=) -> Page[OrderOut]``.

**Admission** is one transaction: claim the Idempotency-Key (`handlers.idempotency`), lock
the distributor row (serialises the credit check per distributor on PostgreSQL; SQLite has one
writer), price every line from the price list and promotions (`handlers.pricing` — clients
never send prices), check credit for non-prepay distributors (`handlers.finance`), lock the
candidate stock rows in id order and reserve every line (`handlers.stock`; all shortfalls are
reported together in one 409 ``insufficient_stock``: ``details.items = [{sku, requested,
available}]``, requested counting free units), take the next ``SOyyyymmddNNNN`` number (per
business day, Asia/Shanghai), write the order, lines and ``reserve`` movements and store the
response under the key. Any failure rolls all of it back.

Input rules: 1-100 lines; ``qty`` a JSON integer 1..1,000,000; **duplicate SKUs are merged**
(their quantities added, the merged line must stay within the bound; a line split over
warehouses needs at least one paid unit per part, so free units never travel alone); unknown or inactive
SKUs, SKUs without a price, a suspended/applying distributor -> 400 naming the field
(``lines.<i>.sku``, ``distributor_id``). A distributor user orders for its own distributor
(naming another is a 400); sales reps and staff must name one in their scope (else 404).
Orders per user are rate-limited (``limits.orders_per_user_per_min``; 429 + Retry-After).

**Auto-approval**: a non-prepay order whose total is <= ``orders.auto_approve_max_amount``
(0 = never) is admitted as ``approved`` (it passed the credit check); prepay orders always
wait for review.

**Lifecycle**: ``pending_review -> approved -> shipped -> received -> completed``, plus
``rejected`` (from pending_review) and ``cancelled`` (pending_review, or approved with nothing
shipped). Rejecting and cancelling release the reservations. **Partial shipments**: an order
stays ``approved`` while some units are shipped (``partially_shipped`` is true, lines carry
``shipped_qty``); it becomes ``shipped`` when every unit (paid and free) has shipped. Each
shipment turns reservations into outbound stock, adds its value to receivables (due per
payment terms) and emits ``order.shipped``. Returns (received/completed orders) bring units
back, credit receivables and are bounded by what shipped. A line's units are valued
proportionally (``amount * units / (qty + free_qty)``, rounded cumulatively so the parts sum
exactly to the line amount). Illegal transitions -> 409 ``invalid_state``. Every transition is
audited and emits its event (`handlers.events`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, Field, StrictInt
from pydantic import ValidationError as PydanticError
from tortoise.transactions import in_transaction

from core.clock import now, today
from core.errors import (
    CreditLimitExceeded,
    Forbidden,
    InsufficientStock,
    InvalidState,
    NotFound,
    RateLimited,
    RequestInProgress,
    ValidationError,
)
from core.money import ZERO, money
from core.runtime import runtime
from core.schema import In, Money, Out, Page
from handlers import idempotency, stock
from handlers.actor import SYSTEM, Actor, Role
from handlers.audit import record
from handlers.events import emit
from handlers.finance import add_receivable, credit_exposure, due_at
from handlers.pricing import LineTerms, Quote, context_of, line_terms, quotes
from handlers.scope import require_distributor_in_scope, scoped
from models.base import (
    DistributorStatus,
    MovementReason,
    OrderStatus,
    PaymentTerms,
    ProductStatus,
    ReceivableKind,
)
from models.distributor import Distributor
from models.order import Order, OrderCounter, OrderLine, OrderReturn, OrderReturnLine, Shipment, ShipmentLine
from models.product import Product
from models.stock import Stock

MAX_QTY = 1_000_000
MAX_LINES = 100
Qty = Annotated[StrictInt, Field(ge=1, le=MAX_QTY)]


# --- inputs and outputs -------------------------------------------------------------------


class LineIn(In):
    sku: Annotated[str, Field(min_length=1, max_length=64)]
    qty: Qty


class ShipToIn(In):
    contact: Annotated[str, Field(min_length=1, max_length=64)]
    phone: Annotated[str, Field(min_length=1, max_length=32)]
    address: Annotated[str, Field(min_length=1, max_length=255)]


class OrderCreate(In):
    distributor_id: StrictInt | None = None
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=MAX_LINES)]
    ship_to: ShipToIn | None = None
    note: Annotated[str, Field(max_length=500)] | None = None


class RejectIn(In):
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class CancelIn(In):
    reason: Annotated[str, Field(max_length=500)] | None = None


class ShipmentIn(In):
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=MAX_LINES)]
    carrier: Annotated[str, Field(max_length=64)] | None = None
    tracking_no: Annotated[str, Field(max_length=64)] | None = None


class ReturnIn(In):
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=MAX_LINES)]
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class OrderLineOut(Out):
    id: int
    sku: str
    name: str
    warehouse_id: int
    qty: int
    free_qty: int
    unit_price: Money
    discount: Money
    amount: Money
    shipped_qty: int
    returned_qty: int


class QtyOut(Out):
    sku: str
    qty: int


class ShipmentOut(Out):
    id: int
    carrier: str | None
    tracking_no: str | None
    shipped_at: datetime
    amount: Money
    lines: list[QtyOut]


class ReturnOut(Out):
    id: int
    reason: str
    amount: Money
    created_at: datetime
    lines: list[QtyOut]


class OrderOut(Out):
    id: int
    number: str
    distributor_id: int
    placed_by_id: int
    status: str
    partially_shipped: bool
    lines: list[OrderLineOut]
    total_amount: Money
    discount_amount: Money
    shipped_amount: Money
    ship_to: dict[str, Any] | None
    note: str | None
    reject_reason: str | None
    cancel_reason: str | None
    created_at: datetime
    approved_at: datetime | None
    shipped_at: datetime | None
    received_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    shipments: list[ShipmentOut] | None = None  # filled by get_order and shipment/return answers
    returns: list[ReturnOut] | None = None


@dataclass(frozen=True)
class Admission:
    order: OrderOut
    status_code: int
    body: Any  # the JSON body as stored under the key
    replayed: bool


def parse_in(model: type[BaseModel], data: Any) -> Any:
    """A model from a plain dict, with errors as a 400 naming each field."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except PydanticError as exc:
        fields = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise ValidationError(f"{fields[0]['field']}: {fields[0]['message']}", {"fields": fields}) from None


def _field_error(field: str, message: str) -> ValidationError:
    return ValidationError(f"{field}: {message}", {"fields": [{"field": field, "message": message}]})


# --- admission ----------------------------------------------------------------------------


async def place_order(
    actor: Actor, *, idempotency_key: str | None, body: OrderCreate | dict, distributor_id: int | None = None
) -> OrderOut:
    admission = await admit_order(
        actor, idempotency_key=idempotency_key, body=body, distributor_id=distributor_id
    )
    return admission.order


async def admit_order(
    actor: Actor, *, idempotency_key: str | None, body: OrderCreate | dict, distributor_id: int | None = None
) -> Admission:
    data: OrderCreate = parse_in(OrderCreate, body)
    if distributor_id is not None:
        if data.distributor_id not in (None, distributor_id):
            raise _field_error("distributor_id", "differs from the distributor named by the caller")
        data = data.model_copy(update={"distributor_id": distributor_id})
    key = idempotency.check_key(idempotency_key)
    fingerprint = idempotency.request_hash(data.model_dump(mode="json"))
    target = _target_distributor(actor, data.distributor_id)
    lines = _merge_lines(data.lines)
    await _rate_limit(actor)
    for _ in range(3):
        try:
            return await _admit(actor, key, fingerprint, target, lines, data)
        except idempotency.KeyTaken:
            stored = await idempotency.resolve(actor.user_id, key, fingerprint)
        if stored is not None:
            return Admission(OrderOut.model_validate(stored.body), stored.status_code, stored.body, True)
    raise RequestInProgress("a request with this Idempotency-Key is still running")


def _target_distributor(actor: Actor, distributor_id: int | None) -> int:
    if actor.role == Role.distributor:
        if distributor_id is not None and distributor_id != actor.distributor_id:
            raise _field_error("distributor_id", "a distributor user orders for its own distributor only")
        if actor.distributor_id is None:
            raise NotFound("distributor not found")
        return actor.distributor_id
    if distributor_id is None:
        raise _field_error("distributor_id", "required: name the distributor the order is for")
    require_distributor_in_scope(actor, distributor_id)
    return distributor_id


@dataclass
class _Wanted:
    sku: str
    qty: int
    index: int  # first position in the request, for error field names


def _merge_lines(lines: list[LineIn]) -> list[_Wanted]:
    merged: OrderedDict[str, _Wanted] = OrderedDict()
    for i, line in enumerate(lines):
        sku = line.sku.strip()
        if sku in merged:
            merged[sku].qty += line.qty
            if merged[sku].qty > MAX_QTY:
                raise _field_error(f"lines.{i}.qty", f"sku {sku} adds up to more than {MAX_QTY}")
        else:
            merged[sku] = _Wanted(sku, line.qty, i)
    return list(merged.values())


async def _rate_limit(actor: Actor) -> None:
    rt = runtime()
    limit = rt.config.limits.orders_per_user_per_min
    result = await rt.kv.rate_limit(f"orders:u{actor.user_id}", limit, 60.0)
    if not result.allowed:
        raise RateLimited("too many orders, slow down", retry_after=result.retry_after)


@dataclass
class _Product:
    id: int
    sku: str
    name: str
    category: str
    status: str


@dataclass
class _Distributor:
    id: int
    level: int
    region: str
    status: str
    credit_limit: Decimal
    payment_terms: str
    contact: str | None
    phone: str | None
    address: str | None


@dataclass
class _Priced:
    want: _Wanted
    product: _Product
    terms: LineTerms


# Raw SQL for the admission hot path (the ORM's per-query cost would dominate it).
_DISTRIBUTOR_SQL = (
    "SELECT id, level, region, status, credit_limit, payment_terms, contact, phone, address"
    " FROM distributor WHERE id = {id}{lock}"
)
_PRODUCTS_SQL = "SELECT id, sku, name, category, status FROM product WHERE {skus}"


async def _lock_distributor(distributor_id: int) -> _Distributor | None:
    """The distributor row, locked (FOR NO KEY UPDATE) on PostgreSQL: serialises the credit
    check of concurrent orders of one distributor; SQLite has one writer anyway."""
    db = Distributor._meta.db
    p = stock.SqlParams(db.capabilities.dialect)
    sql = _DISTRIBUTOR_SQL.format(id=p(distributor_id), lock=" FOR NO KEY UPDATE" if p.pg else "")
    rows = await db.execute_query_dict(sql, p.values)
    if not rows:
        return None
    row = dict(rows[0])
    row["credit_limit"] = money(Decimal(str(row["credit_limit"] or 0)))
    return _Distributor(**row)


async def _admit(
    actor: Actor, key: str, fingerprint: str, dist_id: int, lines: list[_Wanted], data: OrderCreate
) -> Admission:
    # The number is drawn in its own short statement, outside the transaction, so the per-day
    # counter row is never locked for a whole admission (every order would queue on it).
    # The price: a request that then fails (or replays) leaves a gap; numbers are never reused.
    number = await _next_number()
    async with in_transaction():
        rec = await idempotency.claim(actor.user_id, key, fingerprint)
        dist = await _lock_distributor(dist_id)
        if dist is None:
            raise NotFound("distributor not found")
        if dist.status != DistributorStatus.ACTIVE:
            raise _field_error("distributor_id", f"distributor is {dist.status}, not active")
        priced = await _price_lines(dist, lines)
        total = money(sum((p.terms.amount for p in priced), ZERO))
        if dist.payment_terms != PaymentTerms.PREPAY:
            exposure = await credit_exposure(dist.id)
            if exposure + total > dist.credit_limit:
                raise CreditLimitExceeded(
                    "the order would exceed the credit limit",
                    {
                        "credit_limit": str(money(dist.credit_limit)),
                        "exposure": str(exposure),
                        "order_total": str(total),
                        "available": str(money(max(dist.credit_limit - exposure, ZERO))),
                    },
                )
        limit = runtime().config.orders.auto_approve_max_amount
        auto = dist.payment_terms != PaymentTerms.PREPAY and limit > 0 and total <= limit
        at = now()
        order = await Order.create(
            number=number,
            distributor_id=dist.id,
            placed_by_id=actor.user_id,
            status=OrderStatus.APPROVED if auto else OrderStatus.PENDING_REVIEW,
            total_amount=total,
            discount_amount=money(sum((p.terms.discount for p in priced), ZERO)),
            shipped_amount=ZERO,
            ship_to=data.ship_to.model_dump() if data.ship_to else _default_ship_to(dist),
            note=data.note,
            approved_at=at if auto else None,
        )
        await record(actor, "order.placed", "order", order.id, None, {"number": number, "total": total})
        await emit("order.placed", order_id=order.id, actor_id=actor.user_id)
        if auto:
            await record(
                SYSTEM, "order.approved", "order", order.id, None, {"status": "approved", "auto": True}
            )
            await emit("order.approved", order_id=order.id, actor_id=actor.user_id, auto=True)
        # Stock rows are locked from here to the commit: keep this tail short (which is why
        # the events above go out before the lines exist; they roll back with a refusal).
        allocation = await _allocate(dist, priced)
        order_lines, movements = await _write_lines(order, allocation, actor)
        await stock.save_movements(movements)
        out = order_out(order, order_lines)
        body = out.model_dump(mode="json")
        await idempotency.complete(rec, 201, body)
    return Admission(out, 201, body, False)


def _default_ship_to(dist: _Distributor) -> dict[str, Any] | None:
    if not (dist.contact or dist.phone or dist.address):
        return None
    return {"contact": dist.contact, "phone": dist.phone, "address": dist.address}


async def _price_lines(dist: _Distributor, lines: list[_Wanted]) -> list[_Priced]:
    db = Product._meta.db
    p = stock.SqlParams(db.capabilities.dialect)
    sql = _PRODUCTS_SQL.format(skus=p.any_str("sku", [w.sku for w in lines]))
    products = {r["sku"]: _Product(**r) for r in await db.execute_query_dict(sql, p.values)}
    errors: list[dict[str, str]] = []
    for w in lines:
        p = products.get(w.sku)
        if p is None:
            errors.append({"field": f"lines.{w.index}.sku", "message": f"unknown SKU {w.sku}"})
        elif p.status != ProductStatus.ACTIVE:
            errors.append({"field": f"lines.{w.index}.sku", "message": f"SKU {w.sku} is not for sale"})
    if errors:
        raise ValidationError(f"{errors[0]['field']}: {errors[0]['message']}", {"fields": errors})
    quoted: dict[int, Quote] = await quotes(list(products.values()), context_of(dist))  # type: ignore[arg-type]
    out: list[_Priced] = []
    for w in lines:
        p = products[w.sku]
        if p.id not in quoted:
            errors.append({"field": f"lines.{w.index}.sku", "message": f"SKU {w.sku} has no price for you"})
            continue
        out.append(_Priced(w, p, line_terms(quoted[p.id], w.qty)))
    if errors:
        raise ValidationError(f"{errors[0]['field']}: {errors[0]['message']}", {"fields": errors})
    return out


@dataclass
class _Chunk:
    stock: stock.Row
    units: int


async def _allocate(dist: _Distributor, priced: list[_Priced]) -> list[tuple[_Priced, list[_Chunk]]]:
    """Lock the candidate stock rows (one statement, id order) and choose where each line's
    units come from (`handlers.stock` docstring: region's company warehouse, own, others)."""
    rows = await stock.lock_for_order(dist, [p.product.id for p in priced])
    by_product: dict[int, list[stock.Row]] = {}
    for s in rows:
        by_product.setdefault(s.product_id, []).append(s)
    shortfalls: list[dict[str, Any]] = []
    plan: list[tuple[_Priced, list[_Chunk]]] = []
    for p in priced:
        need = p.terms.qty + p.terms.free_qty
        free = [
            (s, s.on_hand - s.reserved) for s in by_product.get(p.product.id, []) if s.on_hand > s.reserved
        ]
        available = sum(a for _, a in free)
        whole = next((s for s, a in free if a >= need), None)
        if whole is not None:
            plan.append((p, [_Chunk(whole, need)]))
            continue
        chunks: list[_Chunk] = []
        left = need
        for s, a in free:
            if left == 0:
                break
            take = min(a, left)
            chunks.append(_Chunk(s, take))
            left -= take
        if left > 0 or len(chunks) > p.terms.qty:  # each split part needs >= 1 paid unit
            shortfalls.append({"sku": p.product.sku, "requested": need, "available": available})
            continue
        plan.append((p, chunks))
    if shortfalls:
        raise InsufficientStock("not enough stock for some lines", {"items": shortfalls})
    return plan


def _split(terms: LineTerms, sizes: list[int]) -> list[tuple[int, int, Decimal, Decimal]]:
    """(qty, free_qty, discount, amount) per warehouse part: free units go to the first parts,
    each part keeping at least one paid unit; the discount is split by paid units."""
    parts: list[tuple[int, int]] = []
    free_left = terms.free_qty
    for size in sizes:
        free = min(free_left, size - 1)
        free_left -= free
        parts.append((size - free, free))
    out: list[tuple[int, int, Decimal, Decimal]] = []
    discount_left = terms.discount
    for i, (qty, free) in enumerate(parts):
        if i == len(parts) - 1:
            discount = discount_left
        else:
            discount = money(terms.discount * qty / terms.qty)
            discount_left -= discount
        out.append((qty, free, discount, money(terms.unit_price * qty) - discount))
    return out


async def _write_lines(
    order: Order, allocation: list[tuple[_Priced, list[_Chunk]]], actor: Actor
) -> tuple[list[OrderLine], list]:
    ref = stock.Ref("order", order.id, actor.user_id)
    order_lines: list[OrderLine] = []
    reservations: list[tuple[stock.Row, int]] = []
    for p, chunks in allocation:
        for chunk, (qty, free, discount, amount) in zip(
            chunks, _split(p.terms, [c.units for c in chunks]), strict=True
        ):
            line = await OrderLine.create(
                order_id=order.id,
                product_id=p.product.id,
                sku=p.product.sku,
                name=p.product.name,
                warehouse_id=chunk.stock.warehouse_id,
                qty=qty,
                free_qty=free,
                unit_price=p.terms.unit_price,
                discount=discount,
                amount=amount,
                shipped_qty=0,
                returned_qty=0,
            )
            order_lines.append(line)
            reservations.append((chunk.stock, chunk.units))
    movements = []
    for s, units in sorted(reservations, key=lambda r: r[0].id):
        movements.append(await stock.change(s, 0, units, MovementReason.RESERVE, ref))
    return order_lines, movements


_COUNTER_SQL = (
    "INSERT INTO order_counter (day, last_number) VALUES ({p}, 1) ON CONFLICT (day) "
    "DO UPDATE SET last_number = order_counter.last_number + 1 RETURNING last_number"
)


async def _next_number() -> str:
    """SO + business day + the day's next number (at least 4 digits), in its own statement."""
    day = today().strftime("%Y%m%d")
    db = OrderCounter._meta.db
    placeholder = "$1" if db.capabilities.dialect == "postgres" else "?"
    rows = await db.execute_query_dict(_COUNTER_SQL.format(p=placeholder), [day])
    return f"SO{day}{int(rows[0]['last_number']):04d}"


# --- output -------------------------------------------------------------------------------


def order_out(
    order: Order,
    lines: list[OrderLine],
    shipments: list[ShipmentOut] | None = None,
    returns: list[ReturnOut] | None = None,
) -> OrderOut:
    lines = sorted(lines, key=lambda x: x.id)
    shipped_any = any(x.shipped_qty for x in lines)
    return OrderOut(
        id=order.id,
        number=order.number,
        distributor_id=order.distributor_id,  # type: ignore[attr-defined]
        placed_by_id=order.placed_by_id,  # type: ignore[attr-defined]
        status=str(order.status),
        partially_shipped=order.status == OrderStatus.APPROVED and shipped_any,
        lines=[
            OrderLineOut(
                id=x.id,
                sku=x.sku,
                name=x.name,
                warehouse_id=x.warehouse_id,  # type: ignore[attr-defined]
                qty=x.qty,
                free_qty=x.free_qty,
                unit_price=x.unit_price,
                discount=x.discount,
                amount=x.amount,
                shipped_qty=x.shipped_qty,
                returned_qty=x.returned_qty,
            )
            for x in lines
        ],
        total_amount=order.total_amount,
        discount_amount=order.discount_amount,
        shipped_amount=order.shipped_amount,
        ship_to=order.ship_to,
        note=order.note,
        reject_reason=order.reject_reason,
        cancel_reason=order.cancel_reason,
        created_at=order.created_at,
        approved_at=order.approved_at,
        shipped_at=order.shipped_at,
        received_at=order.received_at,
        completed_at=order.completed_at,
        cancelled_at=order.cancelled_at,
        shipments=shipments,
        returns=returns,
    )


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
    return order_out(order, lines, shipments, returns)


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


async def get_order(actor: Actor, order_id: int) -> OrderOut:
    order = await scoped(Order.filter(id=order_id), actor).first()
    if order is None:
        raise NotFound("order not found")
    return await _full_out(order)


async def list_orders(
    actor: Actor,
    *,
    status: str | None = None,
    distributor_id: int | None = None,
    page: int = 1,
    page_size: int = 20,
) -> Page[OrderOut]:
    qs = scoped(Order.all(), actor)
    if status:
        try:
            qs = qs.filter(status=OrderStatus(status))
        except ValueError:
            raise _field_error("status", f"one of {', '.join(s.value for s in OrderStatus)}") from None
    if distributor_id is not None:
        require_distributor_in_scope(actor, distributor_id)
        qs = qs.filter(distributor_id=distributor_id)
    total = await qs.count()
    orders = (
        await qs.order_by("-id").offset((page - 1) * page_size).limit(page_size).prefetch_related("lines")
    )
    items = [order_out(o, list(o.lines)) for o in orders]
    return Page[OrderOut](items=items, total=total, page=page, page_size=page_size)


# --- lifecycle ----------------------------------------------------------------------------


def _require(actor: Actor, *roles: Role) -> None:
    if actor.role not in roles:
        raise Forbidden("your role may not do this")


async def _lock_order(actor: Actor, order_id: int, *, lock_distributor: bool = False) -> Order:
    """The order in scope, locked (after its distributor's row when asked: the lock order is
    distributor -> order -> stock everywhere)."""
    if lock_distributor:
        row = await scoped(Order.filter(id=order_id), actor).values_list("distributor_id", flat=True)
        if not row:
            raise NotFound("order not found")
        await _lock_distributor(row[0])
    order = await scoped(Order.filter(id=order_id), actor).select_for_update(no_key=True).first()
    if order is None:
        raise NotFound("order not found")
    return order


def _expect(order: Order, *statuses: OrderStatus) -> None:
    if order.status not in statuses:
        allowed = " or ".join(s.value for s in statuses)
        raise InvalidState(
            f"order {order.number} is {order.status}, expected {allowed}",
            {"status": str(order.status), "expected": [s.value for s in statuses]},
        )


async def _transition(
    actor: Actor, order: Order, status: OrderStatus, event: str, **changes: Any
) -> OrderOut:
    before = {"status": str(order.status)}
    order.status = status
    for k, v in changes.items():
        setattr(order, k, v)
    await order.save(update_fields=["status", "updated_at", *changes])
    after = {"status": status.value, **changes}
    await record(actor, event, "order", order.id, before, after)
    await emit(event, order_id=order.id, actor_id=actor.user_id)
    return await _full_out(order)


async def approve_order(actor: Actor, order_id: int) -> OrderOut:
    _require(actor, Role.admin, Role.manager)
    async with in_transaction():
        order = await _lock_order(actor, order_id)
        _expect(order, OrderStatus.PENDING_REVIEW)
        return await _transition(actor, order, OrderStatus.APPROVED, "order.approved", approved_at=now())


async def reject_order(actor: Actor, order_id: int, reason: str) -> OrderOut:
    _require(actor, Role.admin, Role.manager)
    async with in_transaction():
        order = await _lock_order(actor, order_id)
        _expect(order, OrderStatus.PENDING_REVIEW)
        await _release(order, actor, "order_rejected")
        return await _transition(actor, order, OrderStatus.REJECTED, "order.rejected", reject_reason=reason)


async def cancel_order(actor: Actor, order_id: int, reason: str | None = None) -> OrderOut:
    """The ordering distributor (or its 一级 parent), its rep or staff; only before anything
    has shipped."""
    async with in_transaction():
        order = await _lock_order(actor, order_id)
        _expect(order, OrderStatus.PENDING_REVIEW, OrderStatus.APPROVED)
        lines = await OrderLine.filter(order_id=order.id)
        if any(x.shipped_qty for x in lines):
            raise InvalidState(
                "part of the order has shipped: it can no longer be cancelled", {"status": "approved"}
            )
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


def _pick(lines: list[OrderLine], wanted: list[_Wanted], room: Any, what: str) -> list[tuple[OrderLine, int]]:
    """Spread each requested sku's qty over the order's lines of that sku (by id), within
    `room(line)`; anything unknown or too much is a 400 naming the line."""
    by_sku: dict[str, list[OrderLine]] = {}
    for x in sorted(lines, key=lambda x: x.id):
        by_sku.setdefault(x.sku, []).append(x)
    picks: list[tuple[OrderLine, int]] = []
    for w in wanted:
        candidates = by_sku.get(w.sku)
        if not candidates:
            raise _field_error(f"lines.{w.index}.sku", f"SKU {w.sku} is not on this order")
        left_total = sum(room(x) for x in candidates)
        if w.qty > left_total:
            raise _field_error(f"lines.{w.index}.qty", f"only {left_total} of {w.sku} can be {what}")
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
    wanted = _merge_lines(data.lines)
    async with in_transaction():
        order = await _lock_order(actor, order_id, lock_distributor=True)
        _expect(order, OrderStatus.APPROVED)
        lines = await OrderLine.filter(order_id=order.id)
        picks = _pick(lines, wanted, lambda x: x.qty + x.free_qty - x.shipped_qty, "shipped")
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
        order.shipped_amount = money(order.shipped_amount + value)
        done = all(x.shipped_qty == x.qty + x.free_qty for x in lines)
        before = {"status": str(order.status), "shipped_amount": str(order.shipped_amount - value)}
        fields = ["shipped_amount", "updated_at"]
        if done:
            order.status, order.shipped_at = OrderStatus.SHIPPED, at
            fields += ["status", "shipped_at"]
        await order.save(update_fields=fields)
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
    """The distributor confirms a fully shipped order arrived (staff may record it too)."""
    _require(actor, Role.distributor, Role.admin, Role.manager)
    async with in_transaction():
        order = await _lock_order(actor, order_id)
        _expect(order, OrderStatus.SHIPPED)
        return await _transition(actor, order, OrderStatus.RECEIVED, "order.received", received_at=now())


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


async def return_order(actor: Actor, order_id: int, data: ReturnIn | dict) -> OrderOut:
    """After-sales return of shipped units on a received or completed order."""
    _require(actor, Role.distributor, Role.admin, Role.manager)
    data = parse_in(ReturnIn, data)
    wanted = _merge_lines(data.lines)
    async with in_transaction():
        order = await _lock_order(actor, order_id, lock_distributor=True)
        _expect(order, OrderStatus.RECEIVED, OrderStatus.COMPLETED)
        lines = await OrderLine.filter(order_id=order.id)
        picks = _pick(lines, wanted, lambda x: x.shipped_qty - x.returned_qty, "returned")
        values = []
        for x, n in picks:
            values.append(_unit_value(x, x.returned_qty + n) - _unit_value(x, x.returned_qty))
        amount = money(sum(values, ZERO))
        ret = await OrderReturn.create(
            order_id=order.id, reason=data.reason, amount=amount, created_by_id=actor.user_id or None
        )
        rows = await _stock_rows_for(x for x, _ in picks)
        ref = stock.Ref("order_return", ret.id, actor.user_id, data.reason[:255])
        movements = []
        for (x, n), v in sorted(zip(picks, values, strict=True), key=lambda t: rows[_line_key(t[0][0])].id):
            movements.append(await stock.change(rows[_line_key(x)], n, 0, MovementReason.RETURN, ref))
            x.returned_qty += n
            await OrderLine.filter(id=x.id).update(returned_qty=x.returned_qty)
            await OrderReturnLine.create(order_return_id=ret.id, order_line_id=x.id, qty=n, amount=v)
        await stock.save_movements(movements)
        if amount > 0:
            await add_receivable(
                order.distributor_id,
                ReceivableKind.RETURN,
                -amount,
                "order_return",
                ret.id,  # type: ignore[attr-defined]
            )
        await record(
            actor,
            "order.returned",
            "order",
            order.id,
            None,
            {
                "return_id": ret.id,
                "amount": amount,
                "lines": [{"sku": x.sku, "line_id": x.id, "qty": n} for x, n in picks],
            },
        )
        await emit("order.returned", order_id=order.id, return_id=ret.id, actor_id=actor.user_id)
        return await _full_out(order)
