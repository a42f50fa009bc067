"""Order admission: `POST /api/v1/orders` and the chat bot's 下单, as one transaction.

- ``place_order(actor, *, idempotency_key, body, distributor_id=None) -> OrderOut`` — what the
  chat bot calls. ``body`` is an `OrderCreate` or a plain dict of the same shape
  (``{distributor_id?, lines: [{sku, qty}], ship_to?: {contact, phone, address}, note?}``);
  the keyword ``distributor_id`` fills the body's when the caller has it separately (a sales
  rep ordering for a distributor). ``admit_order`` (same arguments) also says whether the
  response was replayed — the HTTP route uses it to replay byte for byte.

**The transaction**: lock the distributor row (serialises the credit check per distributor on
PostgreSQL; SQLite has one writer), price every line from the price list and promotions
(`handlers.pricing` — clients never send prices), check credit for non-prepay distributors
against the exposure kept on the locked row and add the order to it (`handlers.finance`),
write the order, lock the candidate stock rows in id order and reserve
every line (`handlers.stock`; all shortfalls are reported together in one 409
``insufficient_stock``: ``details.items = [{sku, requested, available}]``, requested counting
free units), write the lines and ``reserve`` movements, number the order (``SOyyyymmddNNNN``
per business day, Asia/Shanghai; drawn last, so a refusal leaves no gap and the day's counter
row is locked only for the tail), record the events, and store the response under the Idempotency-Key
(`handlers.idempotency`: the key is written last, insert-or-ignore, so a concurrent duplicate
waits and then replays). Any failure rolls all of it back.

Input rules (`handlers.order_io`): 1-100 lines, qty 1..1,000,000, duplicate SKUs merged; a
line split over warehouses needs at least one paid unit per part, so free units never travel
alone; unknown or inactive SKUs, SKUs without a price, a suspended/applying distributor ->
400 naming the field (``lines.<i>.sku``, ``distributor_id``). A distributor user orders for
its own distributor (naming another is a 400); sales reps and staff must name one in their
scope (else 404). Orders per user are rate-limited (``limits.orders_per_user_per_min``; 429 +
Retry-After).

**Auto-approval**: a non-prepay order whose total is <= ``orders.auto_approve_max_amount``
(0 = never) is admitted as ``approved`` (it passed the credit check); prepay orders always
wait for review.

**Speed**: this is the hottest write in the product (bench/order_admission), so every
statement is hand-written SQL (`handlers.sql`) and the response is built from what was
written instead of being read back.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from tortoise import timezone

from core.clock import now, today
from core.errors import (
    CreditLimitExceeded,
    DomainError,
    InsufficientStock,
    NotFound,
    RateLimited,
    RequestInProgress,
    ValidationError,
)
from core.money import ZERO, money
from core.runtime import runtime
from handlers import idempotency, stock
from handlers.actor import SYSTEM, Actor, Role
from handlers.audit import record
from handlers.events import emit
from handlers.finance import add_exposure
from handlers.order_io import (
    OrderCreate,
    OrderOut,
    Wanted,
    field_error,
    merge_lines,
    order_out,
    parse_in,
)
from handlers.pricing import LineTerms, ProductRow, context_of, line_terms, quotes_by_sku
from handlers.scope import require_distributor_in_scope
from handlers.sql import insert, insert_many, params, transaction
from models.base import DistributorStatus, MovementReason, OrderStatus, PaymentTerms, ProductStatus
from models.distributor import Distributor
from models.order import Order, OrderCounter, OrderLine

DISTRIBUTOR_STATUS_ZH = {"applying": "尚在申请中", "active": "已启用", "suspended": "已停用"}


@dataclass(frozen=True)
class Admission:
    order: OrderOut
    status_code: int
    text: str  # the JSON body, as stored under the key (a replay sends these very bytes)
    replayed: bool


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
            raise field_error("distributor_id", "与所选经销商不一致")
        data = data.model_copy(update={"distributor_id": distributor_id})
    key = idempotency.check_key(idempotency_key)
    fingerprint = idempotency.request_hash(data.model_dump(mode="json"))
    target = _target_distributor(actor, data.distributor_id)
    lines = merge_lines(data.lines)
    await _rate_limit(actor)
    if await idempotency.completed(actor.user_id, key):  # a retry: replay without redoing it
        stored = await idempotency.resolve(actor.user_id, key, fingerprint)
        if stored is not None:
            return _replay(stored)
    for _ in range(3):
        try:
            admission = await _admit(actor, key, fingerprint, target, lines, data)
        except idempotency.KeyTaken:
            stored = await idempotency.resolve(actor.user_id, key, fingerprint)
        else:
            await idempotency.remember(actor.user_id, key)  # committed by now
            return admission
        if stored is not None:
            return _replay(stored)
    raise RequestInProgress("同一笔订单还在提交中，请稍后再试")


def _replay(stored: idempotency.Stored) -> Admission:
    return Admission(OrderOut.model_validate_json(stored.text), stored.status_code, stored.text, True)


def _target_distributor(actor: Actor, distributor_id: int | None) -> int:
    if actor.role == Role.distributor:
        if distributor_id is not None and distributor_id != actor.distributor_id:
            raise field_error("distributor_id", "经销商账号只能为本经销商下单")
        if actor.distributor_id is None:
            raise NotFound("未找到该经销商")
        return actor.distributor_id
    if distributor_id is None:
        raise field_error("distributor_id", "必填：请指定为哪个经销商下单")
    require_distributor_in_scope(actor, distributor_id)
    return distributor_id


async def _rate_limit(actor: Actor) -> None:
    rt = runtime()
    limit = rt.config.limits.orders_per_user_per_min
    result = await rt.kv.rate_limit(f"orders:u{actor.user_id}", limit, 60.0)
    if not result.allowed:
        raise RateLimited("下单太频繁，请稍后再试", retry_after=result.retry_after)


@dataclass
class _Distributor:
    id: int
    name: str
    level: int
    region: str
    status: str
    credit_limit: Decimal
    payment_terms: str
    contact: str | None
    phone: str | None
    address: str | None
    exposure: Decimal  # receivables + open orders (handlers.finance), read with the lock


@dataclass
class _Priced:
    want: Wanted
    product: ProductRow
    terms: LineTerms


# Raw SQL for the admission hot path (the ORM's per-query cost would dominate it).
_DISTRIBUTOR_SQL = (
    "SELECT id, name, level, region, status, credit_limit, payment_terms, contact, phone, address,"
    " exposure FROM distributor WHERE id = {id}{lock}"
)


async def lock_distributor(distributor_id: int) -> _Distributor | None:
    """The distributor row, locked (FOR NO KEY UPDATE) on PostgreSQL: serialises the credit
    check of concurrent orders of one distributor; SQLite has one writer anyway."""
    p = params(Distributor)
    lock = " FOR NO KEY UPDATE" if p.pg else ""
    rows = await p.fetch(_DISTRIBUTOR_SQL.format(id=p(distributor_id), lock=lock))
    if not rows:
        return None
    row = rows[0]
    row["credit_limit"] = money(Decimal(str(row["credit_limit"] or 0)))
    row["exposure"] = money(Decimal(str(row["exposure"] or 0)))
    return _Distributor(**row)


async def _admit(
    actor: Actor, key: str, fingerprint: str, dist_id: int, lines: list[Wanted], data: OrderCreate
) -> Admission:
    # One transaction, one commit: the number is drawn inside it, last (`_number_order`), so
    # the per-day counter row is locked only for the tail of the admission, never while the
    # distributor, the prices or the stock are read; a refused request draws no number.
    async with transaction():
        try:
            order, order_lines, distributor_name = await _write_order(actor, dist_id, lines, data)
        except DomainError:
            # Refused — unless a concurrent request with this key got there first (it may be
            # why the stock or credit ran out): then its response is ours (KeyTaken).
            await idempotency.claim(actor.user_id, key, fingerprint)
            raise
        out = _order_out(order, order_lines, distributor_name)
        text = out.model_dump_json()
        await idempotency.store(actor.user_id, key, fingerprint, 201, text)
    return Admission(out, 201, text, False)


async def _write_order(
    actor: Actor, dist_id: int, lines: list[Wanted], data: OrderCreate
) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """Everything the admission writes but the key; the order row and its lines, as written,
    and the distributor's name (for the answer). The order row is written under a provisional
    unique number and numbered last (`_number_order`)."""
    dist = await lock_distributor(dist_id)
    if dist is None:
        raise NotFound("未找到该经销商")
    if dist.status != DistributorStatus.ACTIVE:
        raise field_error(
            "distributor_id", f"该经销商{DISTRIBUTOR_STATUS_ZH.get(dist.status, dist.status)}，不能下单"
        )
    priced = await _price_lines(dist, lines)
    total = money(sum((p.terms.amount for p in priced), ZERO))
    if dist.payment_terms != PaymentTerms.PREPAY:
        exposure = dist.exposure  # kept on the locked row: no SUM over the history
        if exposure + total > dist.credit_limit:
            raise CreditLimitExceeded(
                "超出信用额度，订单未提交",
                {
                    "credit_limit": str(money(dist.credit_limit)),
                    "exposure": str(exposure),
                    "order_total": str(total),
                    "available": str(money(max(dist.credit_limit - exposure, ZERO))),
                },
            )
    await add_exposure(dist.id, total)  # the new order is open: its whole value counts
    limit = runtime().config.orders.auto_approve_max_amount
    auto = dist.payment_terms != PaymentTerms.PREPAY and limit > 0 and total <= limit
    stamp = timezone.now()  # created_at as the ORM would set it
    order: dict[str, Any] = {
        "number": "~" + secrets.token_hex(10)[:19],  # provisional (20 chars max), unique
        "distributor_id": dist.id,
        "placed_by_id": actor.user_id,
        "status": OrderStatus.APPROVED if auto else OrderStatus.PENDING_REVIEW,
        "total_amount": total,
        "discount_amount": money(sum((p.terms.discount for p in priced), ZERO)),
        "shipped_amount": ZERO,
        "ship_to": data.ship_to.model_dump() if data.ship_to else _default_ship_to(dist),
        "note": data.note,
        "approved_at": now() if auto else None,
        "created_at": stamp,
        "updated_at": stamp,
    }
    written = await insert(Order, order)
    assert written is not None
    order["id"] = order_id = written["id"]
    # Stock rows are locked from here to the commit: keep this tail short.
    allocation = await _allocate(dist, priced)
    order_lines = await _write_lines(order_id, allocation, actor)
    order["number"] = number = await _number_order(order_id)
    await record(actor, "order.placed", "order", order_id, None, {"number": number, "total": total})
    facts = {  # what subscribers would otherwise read back (handlers.events)
        "id": order_id,
        "number": number,
        "status": str(order["status"]),
        "total_amount": total,
        "distributor_id": dist.id,
        "distributor_name": dist.name,
        "region": dist.region,
    }
    # Event subscribers here only record the event (the fan-out is deferred to the outbox
    # drain, handlers.events): one insert each.
    await emit("order.placed", order_id=order_id, actor_id=actor.user_id, order=facts)
    if auto:
        await record(SYSTEM, "order.approved", "order", order_id, None, {"status": "approved", "auto": True})
        await emit("order.approved", order_id=order_id, actor_id=actor.user_id, auto=True, order=facts)
    return order, order_lines, dist.name


def _default_ship_to(dist: _Distributor) -> dict[str, Any] | None:
    if not (dist.contact or dist.phone or dist.address):
        return None
    return {"contact": dist.contact, "phone": dist.phone, "address": dist.address}


async def _price_lines(dist: _Distributor, lines: list[Wanted]) -> list[_Priced]:
    products, quoted = await quotes_by_sku([w.sku for w in lines], context_of(dist))  # type: ignore[arg-type]
    errors: list[dict[str, str]] = []
    for w in lines:
        p = products.get(w.sku)
        if p is None:
            errors.append({"field": f"lines.{w.index}.sku", "message": f"商品编码不存在：{w.sku}"})
        elif p.status != ProductStatus.ACTIVE:
            errors.append({"field": f"lines.{w.index}.sku", "message": f"商品 {w.sku} 已停售"})
        elif p.id not in quoted:
            errors.append({"field": f"lines.{w.index}.sku", "message": f"商品 {w.sku} 暂无您的价格"})
    if errors:
        raise ValidationError(f"{errors[0]['field']}: {errors[0]['message']}", {"fields": errors})
    return [_Priced(w, products[w.sku], line_terms(quoted[products[w.sku].id], w.qty)) for w in lines]


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
        raise InsufficientStock("部分商品库存不足", {"items": shortfalls})
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
    order_id: int, allocation: list[tuple[_Priced, list[_Chunk]]], actor: Actor
) -> list[dict[str, Any]]:
    """The lines (one statement), the reservations (one conditional UPDATE per stock row, in
    id order) and their movements (one statement)."""
    lines: list[dict[str, Any]] = []
    reservations: list[tuple[stock.Row, int]] = []
    for p, chunks in allocation:
        for chunk, (qty, free, discount, amount) in zip(
            chunks, _split(p.terms, [c.units for c in chunks]), strict=True
        ):
            lines.append(
                {
                    "order_id": order_id,
                    "product_id": p.product.id,
                    "sku": p.product.sku,
                    "name": p.product.name,
                    "warehouse_id": chunk.stock.warehouse_id,
                    "qty": qty,
                    "free_qty": free,
                    "unit_price": p.terms.unit_price,
                    "discount": discount,
                    "amount": amount,
                    "shipped_qty": 0,
                    "returned_qty": 0,
                }
            )
            reservations.append((chunk.stock, chunk.units))
    # (product, warehouse) is unique within an order: it maps the returned ids to the lines.
    ids = {
        (r["product_id"], r["warehouse_id"]): r["id"]
        for r in await insert_many(OrderLine, lines, returning="id, product_id, warehouse_id")
    }
    for line in lines:
        line["id"] = ids[(line["product_id"], line["warehouse_id"])]
    ref = stock.Ref("order", order_id, actor.user_id)
    movements = []
    for s, units in sorted(reservations, key=lambda r: r[0].id):
        movements.append(await stock.change(s, 0, units, MovementReason.RESERVE, ref))
    await stock.save_movements(movements)
    return lines


# What a new order has not got yet (order_io.order_out reads them all).
_UNSET = dict.fromkeys(
    ("reject_reason", "cancel_reason", "shipped_at", "received_at", "completed_at", "cancelled_at")
)


def _order_out(order: dict[str, Any], lines: list[dict[str, Any]], distributor_name: str) -> OrderOut:
    """The new order as every order answer shows it (`order_io.order_out`), from the values
    written rather than read back."""
    return order_out(
        SimpleNamespace(**_UNSET, **order),  # type: ignore[arg-type]
        [SimpleNamespace(**x) for x in lines],  # type: ignore[misc]
        distributor_name=distributor_name,
    )


_COUNTER_SQL = (
    "INSERT INTO order_counter (day, last_number) VALUES ({p}, 1) ON CONFLICT (day) "
    "DO UPDATE SET last_number = order_counter.last_number + 1 RETURNING last_number"
)
# PostgreSQL: the draw and the numbering in one round trip.
_NUMBER_PG_SQL = (
    "WITH c AS (" + _COUNTER_SQL.format(p="$1") + ")"
    " UPDATE sales_order SET number = 'SO' || $1"
    " || lpad(c.last_number::text, greatest(4, length(c.last_number::text)), '0')"
    " FROM c WHERE sales_order.id = $2 RETURNING sales_order.number AS number"
)


async def _number_order(order_id: int) -> str:
    """Draw SO + business day + the day's next number (at least 4 digits) and give it to the
    order — inside the admission's transaction, so the draw commits (or rolls back) with it."""
    day = today().strftime("%Y%m%d")
    p = params(OrderCounter)
    if p.pg:
        p.values.extend([day, order_id])
        return str((await p.fetch(_NUMBER_PG_SQL))[0]["number"])
    rows = await p.fetch(_COUNTER_SQL.format(p=p(day)))
    number = f"SO{day}{int(rows[0]['last_number']):04d}"
    q = params(Order)
    await q.fetch(f"UPDATE sales_order SET number = {q(number)} WHERE id = {q(order_id)}")
    return number
