"""After-sales returns (退货) as a request: 申请 → 审核 → 入库 → credit.

Public use-cases (the acting `Actor` first; all raise core.errors types):
``request_return(actor, order_id, ReturnIn) -> ReturnRequestOut`` (``POST /orders/{id}/returns``),
``approve_return(actor, id, note=None)``, ``reject_return(actor, id, reason)``,
``receive_return(actor, id)`` -> ReturnRequestOut; ``get_return(actor, id)``,
``list_returns(actor, status=, order_id=, distributor_id=, page=, page_size=)``.

**Workflow.** A request (``requested``) changes no stock and no money. Staff in scope (admin,
the region's manager) approve it (``approved``, optional note) or reject it (``rejected``, a
reason is required; an approved request whose goods never came back may be rejected too).
``receive`` (staff) books the goods of an approved request back into stock (``return`` movements
into the warehouses the lines shipped from) and only then credits the distributor: an
OrderReturn with the units' value (``amount * units / (qty + free_qty)``, rounded cumulatively so
the parts add up to the line), a ``return`` receivable entry for minus that amount, the lines'
``returned_qty``, and ``order.returned`` — whose commission subscriber reverses exactly the
return's share (DESIGN §8.7). The distributor is told of approval, rejection (with the reason)
and receipt; the region's managers of each new request (申请退货). Every transition is audited.

**Who may ask.** The order's own distributor's users (a 一级 sees its 二级's orders but does not
act on them: 403), the rep in scope (on the distributor's behalf: it is only a request), staff.
**When.** Orders ``received`` or ``completed``, within ``[orders] return_days`` (default 7) of
``received_at`` (the day the goods arrived, whatever completed the order); later → 409
``invalid_state``. ``return_days = 0`` turns returns off. The window applies to staff too.
**How much.** Per order line, units already returned + units of open (requested/approved)
requests + this request <= units shipped; more is a 400 naming the line. The order row is
locked for the check, so concurrent requests never over-ask.
**Completion.** The ``order_completion`` job completes received orders once the window has
passed, open requests or not: commission accrues on what was returned by then, and a request
received later reverses its share as for any completed order.

Locks, in the order used everywhere: distributor -> order -> return request -> stock rows by id.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from pydantic import Field
from tortoise.transactions import in_transaction

from core.clock import now
from core.errors import Forbidden, InvalidState, NotFound
from core.money import ZERO, money
from core.runtime import runtime
from core.schema import In, Money, Out, Page
from handlers import stock
from handlers.actor import Actor, Role
from handlers.audit import record
from handlers.events import emit
from handlers.finance import add_receivable
from handlers.order_io import QtyOut, ReturnIn, field_error, merge_lines, parse_in

# The lifecycle's internals (lock order, spreading a sku over lines, unit values) are shared
# rather than copied, so returns and shipments value and lock units the same way.
from handlers.ordering import _line_key, _lock_order, _pick, _stock_rows_for, _unit_value
from handlers.scope import require_distributor_in_scope, scoped
from models.base import MovementReason, OrderStatus, ReceivableKind, ReturnStatus
from models.order import Order, OrderLine, OrderReturn, OrderReturnLine, ReturnRequest, ReturnRequestLine

OPEN = (ReturnStatus.REQUESTED, ReturnStatus.APPROVED)
ASKERS = (Role.distributor, Role.sales, Role.admin, Role.manager)
STAFF = (Role.admin, Role.manager)
STATUS_WORDS = {"requested": "待审核", "approved": "已通过", "rejected": "未通过", "received": "已入库"}


class ApproveIn(In):
    reason: Annotated[str, Field(max_length=500)] | None = None


class ReturnRequestOut(Out):
    id: int
    order_id: int
    order_number: str
    distributor_id: int
    status: str
    reason: str
    lines: list[QtyOut]
    amount: Money | None  # credited at receipt; null before
    requested_by_id: int | None
    created_at: datetime
    reviewed_by_id: int | None
    reviewed_at: datetime | None
    review_note: str | None
    received_by_id: int | None
    received_at: datetime | None
    order_return_id: int | None


async def _out(req: ReturnRequest, number: str | None = None) -> ReturnRequestOut:
    return (await _outs([req], {req.order_id: number} if number else None))[0]  # type: ignore[attr-defined]


async def _outs(reqs: list[ReturnRequest], numbers: dict[int, str] | None = None) -> list[ReturnRequestOut]:
    ids = [r.id for r in reqs]
    lines: dict[int, list[QtyOut]] = defaultdict(list)
    for row in (
        await ReturnRequestLine.filter(request_id__in=ids or [0])
        .order_by("id")
        .values("request_id", "qty", "order_line__sku")
    ):
        got = lines[row["request_id"]]
        same = [q for q in got if q.sku == row["order_line__sku"]]
        if same:
            same[0].qty += row["qty"]
        else:
            got.append(QtyOut(sku=row["order_line__sku"], qty=row["qty"]))
    order_ids = {r.order_id for r in reqs}  # type: ignore[attr-defined]
    numbers = dict(numbers or {})
    missing = [i for i in order_ids if i not in numbers]
    if missing:
        numbers.update(dict(await Order.filter(id__in=missing).values_list("id", "number")))
    return [
        ReturnRequestOut(
            id=r.id,
            order_id=r.order_id,  # type: ignore[attr-defined]
            order_number=numbers[r.order_id],  # type: ignore[attr-defined]
            distributor_id=r.distributor_id,  # type: ignore[attr-defined]
            status=str(r.status),
            reason=r.reason,
            lines=lines[r.id],
            amount=r.amount,
            requested_by_id=r.requested_by_id,  # type: ignore[attr-defined]
            created_at=r.created_at,
            reviewed_by_id=r.reviewed_by_id,  # type: ignore[attr-defined]
            reviewed_at=r.reviewed_at,
            review_note=r.review_note,
            received_by_id=r.received_by_id,  # type: ignore[attr-defined]
            received_at=r.received_at,
            order_return_id=r.order_return_id,  # type: ignore[attr-defined]
        )
        for r in reqs
    ]


# --- reads ----------------------------------------------------------------------------------


async def get_return(actor: Actor, request_id: int) -> ReturnRequestOut:
    req = await scoped(ReturnRequest.filter(id=request_id), actor).first()
    if req is None:
        raise NotFound("退货申请不存在")
    return await _out(req)


async def list_returns(
    actor: Actor,
    *,
    status: str | None = None,
    order_id: int | None = None,
    distributor_id: int | None = None,
    page: int = 1,
    page_size: int = 20,
) -> Page[ReturnRequestOut]:
    """Return requests in scope, newest first."""
    qs = scoped(ReturnRequest.all(), actor)
    if status:
        try:
            qs = qs.filter(status=ReturnStatus(status))
        except ValueError:
            raise field_error("status", f"应为以下之一：{'、'.join(s.value for s in ReturnStatus)}") from None
    if order_id is not None:
        qs = qs.filter(order_id=order_id)
    if distributor_id is not None:
        require_distributor_in_scope(actor, distributor_id)
        qs = qs.filter(distributor_id=distributor_id)
    total = await qs.count()
    rows = await qs.order_by("-id").offset((page - 1) * page_size).limit(page_size)
    return Page[ReturnRequestOut](items=await _outs(rows), total=total, page=page, page_size=page_size)


# --- asking ---------------------------------------------------------------------------------


def _require(actor: Actor, roles: tuple[Role, ...]) -> None:
    if actor.role not in roles:
        raise Forbidden("您的角色不能执行此操作")


def _check_window(order: Order, at: datetime) -> None:
    if order.status not in (OrderStatus.RECEIVED, OrderStatus.COMPLETED) or order.received_at is None:
        raise InvalidState(
            f"订单 {order.number} 尚未收货，只有已收货或已完成的订单可以申请退货",
            {"status": str(order.status), "expected": ["received", "completed"]},
        )
    days = runtime().config.orders.return_days
    deadline = order.received_at + timedelta(days=days)
    if at > deadline:
        raise InvalidState(
            f"订单 {order.number} 已超过退货期（收货后 {days} 天内可申请退货）",
            {
                "received_at": order.received_at.isoformat(),
                "return_days": days,
                "deadline": deadline.isoformat(),
            },
        )


async def _open_qty(order_id: int) -> dict[int, int]:
    """Units per order line asked for by the order's open (requested/approved) requests."""
    out: dict[int, int] = defaultdict(int)
    rows = await ReturnRequestLine.filter(
        request__order_id=order_id, request__status__in=list(OPEN)
    ).values_list("order_line_id", "qty")
    for line_id, qty in rows:
        out[line_id] += qty
    return out


async def request_return(actor: Actor, order_id: int, data: ReturnIn | dict) -> ReturnRequestOut:
    """申请退货: record the request; nothing moves until it is approved and received."""
    _require(actor, ASKERS)
    data = parse_in(ReturnIn, data)
    wanted = merge_lines(data.lines)
    async with in_transaction():
        order = await _lock_order(actor, order_id)  # the order row lock serialises requests
        _check_window(order, now())
        lines = await OrderLine.filter(order_id=order.id)
        asked = await _open_qty(order.id)
        picks = _pick(lines, wanted, lambda x: x.shipped_qty - x.returned_qty - asked[x.id], "退货")
        req = await ReturnRequest.create(
            order_id=order.id,
            distributor_id=order.distributor_id,  # type: ignore[attr-defined]
            reason=data.reason,
            requested_by_id=actor.user_id or None,
        )
        await ReturnRequestLine.bulk_create(
            [ReturnRequestLine(request_id=req.id, order_line_id=x.id, qty=n) for x, n in picks]
        )
        after = {
            "status": ReturnStatus.REQUESTED.value,
            "order_id": order.id,
            "reason": data.reason,
            "lines": [{"sku": x.sku, "line_id": x.id, "qty": n} for x, n in picks],
        }
        await record(actor, "return.requested", "return_request", req.id, None, after)
        await emit("return.requested", return_request_id=req.id, order_id=order.id, actor_id=actor.user_id)
        return await _out(req, order.number)


# --- review and receipt ---------------------------------------------------------------------


async def _lock_request(
    actor: Actor, request_id: int, *, lock_distributor: bool = False
) -> tuple[Order, ReturnRequest]:
    """The request in scope and its order, locked in the usual order (distributor -> order ->
    request)."""
    row = await scoped(ReturnRequest.filter(id=request_id), actor).values_list("order_id", flat=True)
    if not row:
        raise NotFound("退货申请不存在")
    order = await _lock_order(actor, row[0], lock_distributor=lock_distributor)
    req = await ReturnRequest.filter(id=request_id).select_for_update(no_key=True).first()
    assert req is not None  # requests are never deleted
    return order, req


def _expect(req: ReturnRequest, doing: str, *statuses: ReturnStatus) -> None:
    if req.status not in statuses:
        raise InvalidState(
            f"退货申请 {req.id} {STATUS_WORDS.get(str(req.status), str(req.status))}，不能{doing}",
            {"status": str(req.status), "expected": [s.value for s in statuses]},
        )


async def _review(
    actor: Actor, request_id: int, status: ReturnStatus, note: str | None, *allowed: ReturnStatus
) -> ReturnRequestOut:
    _require(actor, STAFF)
    doing = "审核通过" if status == ReturnStatus.APPROVED else "驳回"
    async with in_transaction():
        order, req = await _lock_request(actor, request_id)
        _expect(req, doing, *allowed)
        before = {"status": str(req.status)}
        req.status, req.review_note = status, note
        req.reviewed_by_id, req.reviewed_at = actor.user_id or None, now()  # type: ignore[attr-defined]
        await req.save(update_fields=["status", "review_note", "reviewed_by_id", "reviewed_at", "updated_at"])
        event = f"return.{status.value}"
        await record(actor, event, "return_request", req.id, before, {"status": status.value, "note": note})
        await emit(event, return_request_id=req.id, order_id=order.id, actor_id=actor.user_id)
        return await _out(req, order.number)


async def approve_return(actor: Actor, request_id: int, note: str | None = None) -> ReturnRequestOut:
    return await _review(actor, request_id, ReturnStatus.APPROVED, note, ReturnStatus.REQUESTED)


async def reject_return(actor: Actor, request_id: int, reason: str) -> ReturnRequestOut:
    """Before receipt: a requested request, or an approved one whose goods never came back."""
    return await _review(actor, request_id, ReturnStatus.REJECTED, reason, *OPEN)


async def receive_return(actor: Actor, request_id: int) -> ReturnRequestOut:
    """入库: the approved request's units back into stock, then the credit (see the docstring)."""
    _require(actor, STAFF)
    async with in_transaction():
        order, req = await _lock_request(actor, request_id, lock_distributor=True)
        _expect(req, "入库", ReturnStatus.APPROVED)
        asked = (
            await ReturnRequestLine.filter(request_id=req.id)
            .order_by("id")
            .values_list("order_line_id", "qty")
        )
        by_id = {x.id: x for x in await OrderLine.filter(order_id=order.id)}
        picks = [(by_id[line_id], n) for line_id, n in asked]
        ret = await _credit(actor, order, picks, req.reason)
        before = {"status": str(req.status)}
        req.status, req.amount, req.order_return_id = ReturnStatus.RECEIVED, ret.amount, ret.id  # type: ignore[attr-defined]
        req.received_by_id, req.received_at = actor.user_id or None, now()  # type: ignore[attr-defined]
        await req.save(
            update_fields=[
                "status",
                "amount",
                "order_return_id",
                "received_by_id",
                "received_at",
                "updated_at",
            ]
        )
        after = {"status": "received", "order_return_id": ret.id, "amount": ret.amount}
        await record(actor, "return.received", "return_request", req.id, before, after)
        await emit("return.received", return_request_id=req.id, order_id=order.id, actor_id=actor.user_id)
        return await _out(req, order.number)


async def _credit(actor: Actor, order: Order, picks: list[tuple[OrderLine, int]], reason: str) -> OrderReturn:
    """Units back into stock and their value credited; emits order.returned (commission
    reversal). Runs inside the caller's transaction with distributor and order locked."""
    values: list[Decimal] = []
    counted: dict[int, int] = {}
    for x, n in picks:  # a line may appear twice in one request: value cumulatively
        done = counted.get(x.id, x.returned_qty)
        values.append(_unit_value(x, done + n) - _unit_value(x, done))
        counted[x.id] = done + n
    amount = money(sum(values, ZERO))
    ret = await OrderReturn.create(
        order_id=order.id, reason=reason, amount=amount, created_by_id=actor.user_id or None
    )
    rows = await _stock_rows_for(x for x, _ in picks)
    ref = stock.Ref("order_return", ret.id, actor.user_id, reason[:255])
    movements = []
    for (x, n), v in sorted(zip(picks, values, strict=True), key=lambda t: rows[_line_key(t[0][0])].id):
        movements.append(await stock.change(rows[_line_key(x)], n, 0, MovementReason.RETURN, ref))
        x.returned_qty += n
        await OrderLine.filter(id=x.id).update(returned_qty=x.returned_qty)
        await OrderReturnLine.create(order_return_id=ret.id, order_line_id=x.id, qty=n, amount=v)
    await stock.save_movements(movements)
    if amount > 0:
        await add_receivable(
            order.distributor_id,  # type: ignore[attr-defined]
            ReceivableKind.RETURN,
            -amount,
            "order_return",
            ret.id,
        )
    after: dict[str, Any] = {
        "return_id": ret.id,
        "amount": amount,
        "lines": [{"sku": x.sku, "line_id": x.id, "qty": n} for x, n in picks],
    }
    await record(actor, "order.returned", "order", order.id, None, after)
    await emit("order.returned", order_id=order.id, return_id=ret.id, actor_id=actor.user_id)
    return ret
