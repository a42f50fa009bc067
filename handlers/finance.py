"""Receivables and payments per distributor.

The receivables ledger (ReceivableEntry) is signed: shipments add what was shipped (kind
``shipment``, due per payment terms), returns (``return``) and payments (``payment``) subtract.
A distributor's balance is the sum of its entries.

**Credit exposure** (checked at order admission for non-prepay distributors):
``receivables_balance + open orders' unshipped value + the new order <= credit_limit``, where
open orders are those ``pending_review`` or ``approved`` (an approved order may be partially
shipped: its shipped part is already in receivables, so only ``total_amount -
shipped_amount`` counts). The sum is kept on the distributor row (``distributor.exposure``,
`add_exposure`) by every write that changes either part — admission, approval, rejection,
cancellation, shipments, returns, payments — in the same transaction, after locking the
distributor row on PostgreSQL; so the check reads one locked row, not the whole history.
`verify_exposure` (``qudao finance verify``) recomputes it from the ledger and the orders.

**款到发货** (prepay): a prepay distributor has no credit. Its order is approved only when its
prepayment — what it paid, net of what shipped, minus the unshipped value of its other approved
orders — covers the order, and each shipment again only when it is covered
(`require_prepaid`, under the distributor row lock, so concurrent approvals never spend the
same money twice); otherwise 409 ``invalid_state`` with ``{required, available, missing}``.

**Due and overdue — one definition** for the aging report, the ``receivables_overdue`` job
and the receivables statements (`due_date`, `days_overdue`, `receivables_aging`): a shipment's
``due_at`` is set from the payment terms (prepay — when shipped; monthly (月结) — 30 days
after; quarterly — 90 days after); its **due date** is the business day (Asia/Shanghai) of
``due_at`` (an entry without one: the day it was booked) plus ``alerts.receivables_grace_days``.
On business day D an amount is **current** while D <= due date and **overdue** from the day
after.

**Aging** (`receivables_aging(ids, as_of)`): the entries booked by the end of ``as_of``;
payments and returns settle the oldest debts first (FIFO); what is left open is bucketed by
days past due: ``current`` (not yet due), ``d1_30``, ``d31_60``, ``d61_90``, ``d90_plus``;
``overdue`` is everything past due.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, WithJsonSchema
from tortoise.exceptions import IntegrityError
from tortoise.functions import Sum
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from core.clock import BUSINESS_TZ, now, today
from core.errors import InvalidState, NotFound
from core.money import ZERO, money
from core.runtime import runtime
from core.schema import DATE_MAX, DATE_MIN, In, Money, Out, Page, StrictId, in_calendar
from handlers.actor import Actor
from handlers.audit import record, snapshot
from handlers.scope import require_distributor_in_scope, scoped
from handlers.sql import db_of, fetch, params
from models.base import OrderStatus, PaymentTerms, ReceivableKind
from models.distributor import Distributor
from models.finance import Payment, ReceivableEntry
from models.order import Order

OPEN_STATUSES = (OrderStatus.PENDING_REVIEW, OrderStatus.APPROVED)
TERMS_DAYS = {PaymentTerms.PREPAY: 0, PaymentTerms.MONTHLY: 30, PaymentTerms.QUARTERLY: 90}
MAX_AMOUNT = Decimal("999999999999.99")


def due_at(terms: PaymentTerms | str, at: datetime) -> datetime:
    """When an amount shipped at `at` falls due under the payment terms (stored on the entry)."""
    return at + timedelta(days=TERMS_DAYS.get(PaymentTerms(terms), 30))


def grace_days() -> int:
    return runtime().config.alerts.receivables_grace_days


def due_date(due: datetime | None, booked_at: datetime, grace: int = 0) -> date:
    """The business day an amount falls due: the day of its `due_at` (else the day it was
    booked) plus `grace` days. The one definition the report, the job and statements use."""
    return (due or booked_at).astimezone(BUSINESS_TZ).date() + timedelta(days=grace)


def days_overdue(due: date, on: date) -> int:
    """Days past due on business day `on`: > 0 is overdue; the due day itself is current."""
    return (on - due).days


def end_of_day(day: date) -> datetime:
    """The first instant after business day `day`, in UTC (SQLite compares stored text)."""
    return datetime.combine(day + timedelta(days=1), time.min, BUSINESS_TZ).astimezone(UTC)


async def _sum(qs: QuerySet, field: str) -> Decimal:
    """Exact money sum: SQL SUM on PostgreSQL (NUMERIC); in Python on SQLite, whose decimal
    columns are text and whose SUM would go through floats."""
    if qs.model._meta.db.capabilities.dialect == "postgres":
        rows = await qs.annotate(_total=Sum(field)).values_list("_total", flat=True)
        return money(rows[0] or 0) if rows else ZERO
    values = await qs.values_list(field, flat=True)
    return money(sum((Decimal(v) for v in values), Decimal(0)))


async def receivables_balance(distributor_id: int) -> Decimal:
    """What the distributor owes now (shipments - returns - payments)."""
    return await _sum(ReceivableEntry.filter(distributor_id=distributor_id), "amount")


async def open_orders_exposure(distributor_id: int) -> Decimal:
    qs = Order.filter(distributor_id=distributor_id, status__in=list(OPEN_STATUSES))
    return await _sum(qs, "total_amount") - await _sum(qs, "shipped_amount")


_EXPOSURE_SQL = (
    "SELECT (SELECT COALESCE(SUM(amount), 0) FROM receivable_entry WHERE distributor_id = $1) AS r,"
    " (SELECT COALESCE(SUM(total_amount - shipped_amount), 0) FROM sales_order"
    " WHERE distributor_id = $1 AND status IN ('pending_review', 'approved')) AS o"
)


async def recomputed_exposure(distributor_id: int) -> Decimal:
    """Receivables balance + open orders' unshipped value, summed over the whole history (one
    statement on PostgreSQL): what `distributor.exposure` must equal (`verify_exposure`)."""
    db = db_of(Order)
    if db.capabilities.dialect == "postgres":
        row = (await fetch(db, _EXPOSURE_SQL, [distributor_id]))[0]
        return money(row["r"]) + money(row["o"])
    return await receivables_balance(distributor_id) + await open_orders_exposure(distributor_id)


async def credit_exposure(distributor_id: int) -> Decimal:
    """The distributor's exposure as kept on its row (no history read)."""
    rows = await Distributor.filter(id=distributor_id).values_list("exposure", flat=True)
    return money(rows[0] or 0) if rows else ZERO


def open_value(status: str, total: Decimal, shipped: Decimal) -> Decimal:
    """An order's share of its distributor's exposure: the unshipped value while open."""
    return money(Decimal(total) - Decimal(shipped)) if status in OPEN_STATUSES else ZERO


async def add_exposure(distributor_id: int, delta: Decimal) -> None:
    """Move `distributor.exposure` by `delta`, in the caller's transaction — every receivable
    entry and every change of an order's open value calls it (the distributor row is locked
    first on PostgreSQL, so the credit check reads a settled value; an atomic increment
    anyway). SQLite stores decimals as text, so it is read and written back exactly (one
    writer: no lost update)."""
    if not delta:
        return
    p = params(Distributor)
    if p.pg:
        amount, did = p(money(delta)), p(distributor_id)
        await p.fetch(f"UPDATE distributor SET exposure = exposure + {amount}::numeric WHERE id = {did}")
        return
    current = await credit_exposure(distributor_id)
    await Distributor.filter(id=distributor_id).update(exposure=money(current + delta))


async def order_value_moved(distributor_id: int, before: Decimal, after: Decimal) -> None:
    """An order's open value went from `before` to `after` (`open_value`)."""
    await add_exposure(distributor_id, after - before)


@dataclass(frozen=True)
class ExposureDrift:
    distributor_id: int
    stored: Decimal
    ledger: Decimal


async def verify_exposure() -> list[ExposureDrift]:
    """Every distributor whose stored exposure differs from the recomputation (`qudao finance
    verify`)."""
    out: list[ExposureDrift] = []
    for did, stored in await Distributor.all().order_by("id").values_list("id", "exposure"):
        ledger = await recomputed_exposure(did)
        if money(stored or 0) != ledger:
            out.append(ExposureDrift(did, money(stored or 0), ledger))
    return out


async def prepaid_available(distributor_id: int, *, exclude_order_id: int | None = None) -> Decimal:
    """What a prepay distributor has paid and not yet used or promised: payments and returns
    net of what shipped (-balance), minus the unshipped value of its approved orders (other
    than `exclude_order_id`), whose prepayment is already spoken for. Negative = it owes."""
    qs = Order.filter(distributor_id=distributor_id, status=OrderStatus.APPROVED)
    if exclude_order_id is not None:
        qs = qs.exclude(id=exclude_order_id)
    promised = await _sum(qs, "total_amount") - await _sum(qs, "shipped_amount")
    return money(-(await receivables_balance(distributor_id)) - promised)


async def require_prepaid(distributor_id: int, order_id: int, amount: Decimal) -> None:
    """款到发货: for a prepay distributor, 409 ``invalid_state`` unless its prepayment not
    promised to other orders covers `amount` (an order to approve, a shipment to send). Call
    with the distributor row locked, so two orders never spend the same money."""
    if amount <= 0:  # nothing to pay for (say, free units only)
        return
    terms = await Distributor.filter(id=distributor_id).values_list("payment_terms", flat=True)
    if not terms or terms[0] != PaymentTerms.PREPAY:
        return
    available = await prepaid_available(distributor_id, exclude_order_id=order_id)
    if amount > available:
        missing = money(amount - available)
        raise InvalidState(
            f"款到发货：预付款不足，请先付款（需 ¥{money(amount)}，可用 ¥{available}，还差 ¥{missing}）",
            {"required": str(money(amount)), "available": str(available), "missing": str(missing)},
        )


async def add_receivable(
    distributor_id: int,
    kind: ReceivableKind,
    amount: Decimal,
    ref_type: str,
    ref_id: int | str,
    *,
    occurred_at: datetime | None = None,
    due: datetime | None = None,
) -> ReceivableEntry:
    entry = await ReceivableEntry.create(
        distributor_id=distributor_id,
        kind=kind,
        amount=money(amount),
        ref_type=ref_type,
        ref_id=str(ref_id),
        occurred_at=occurred_at or now(),
        due_at=due,
    )
    await add_exposure(distributor_id, money(amount))
    return entry


# --- payments -----------------------------------------------------------------------------


def _money_in(v: object) -> Decimal:
    """Money in: a string ("1234.50") or an integer; never a float, at most 2 decimals, > 0."""
    if isinstance(v, bool) or not isinstance(v, str | int):
        raise ValueError('金额应为字符串（如 "1234.50"）或整数')
    try:
        value = Decimal(str(v).strip())
    except ArithmeticError:
        raise ValueError("不是有效的金额") from None
    if not value.is_finite() or value <= 0:
        raise ValueError("金额必须大于 0")
    if value > MAX_AMOUNT:
        raise ValueError("金额超出范围")
    if value != value.quantize(Decimal("0.01")):
        raise ValueError("金额最多两位小数")
    return money(value)


PositiveMoneyIn = Annotated[Decimal, BeforeValidator(_money_in)]


def _business_datetime(v: object) -> datetime:
    """A time a person typed: ISO 8601 with offset as is; without an offset it is read in the
    business timezone (Asia/Shanghai); a bare date ("2026-12-05") is the start of that business
    day (00:00 Asia/Shanghai), so it books on that day in statements and the aging report."""
    if not isinstance(v, str):
        raise ValueError('日期应为字符串，如 "2026-12-05" 或 "2026-12-05T10:30:00+08:00"')
    text = v.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time.min, BUSINESS_TZ)
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("不是有效的日期或时间（例如 2026-12-05 或 2026-12-05T10:30:00+08:00）") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=BUSINESS_TZ)


BusinessDatetime = Annotated[
    AwareDatetime,
    BeforeValidator(_business_datetime),
    AfterValidator(in_calendar),
    WithJsonSchema(
        {
            "type": "string",
            "description": "ISO 8601; without an offset: Asia/Shanghai; a bare date: 00:00 that day;"
            f" on a date within {DATE_MIN} .. {DATE_MAX}",
            "examples": ["2026-12-05", "2026-12-05T10:30:00+08:00"],
        }
    ),
]


class PaymentIn(In):
    distributor_id: StrictId
    amount: PositiveMoneyIn
    paid_at: BusinessDatetime
    ref: Annotated[str, Field(min_length=1, max_length=64)]


class PaymentOut(Out):
    id: int
    distributor_id: int
    amount: Money
    paid_at: datetime
    ref: str
    created_by_id: int | None
    created_at: datetime
    balance_after: Money | None = None


def _payment_out(p: Payment, balance: Decimal | None = None) -> PaymentOut:
    return PaymentOut(
        id=p.id,
        distributor_id=p.distributor_id,  # type: ignore[attr-defined]
        amount=p.amount,
        paid_at=p.paid_at,
        ref=p.ref,
        created_by_id=p.created_by_id,  # type: ignore[attr-defined]
        created_at=p.created_at,
        balance_after=balance,
    )


async def record_payment(actor: Actor, data: PaymentIn) -> PaymentOut:
    """A payment received from a distributor: lowers its receivables. A `ref` already
    recorded for that distributor is 409 ``invalid_state`` (never counted twice)."""
    require_distributor_in_scope(actor, data.distributor_id)
    try:
        async with in_transaction():
            dist = await Distributor.filter(id=data.distributor_id).select_for_update(no_key=True).first()
            if dist is None:
                raise NotFound("未找到该经销商")
            if await Payment.exists(distributor_id=dist.id, ref=data.ref):
                raise _Duplicate()
            payment = await Payment.create(
                distributor_id=dist.id,
                amount=money(data.amount),
                paid_at=data.paid_at,
                ref=data.ref,
                created_by_id=actor.user_id or None,
            )
            await add_receivable(
                dist.id,
                ReceivableKind.PAYMENT,
                -payment.amount,
                "payment",
                payment.id,
                occurred_at=data.paid_at,
            )
            await record(actor, "payment.create", "payment", payment.id, None, snapshot(payment))
            balance = await receivables_balance(dist.id)
    except (_Duplicate, IntegrityError):
        raise InvalidState("该经销商已登记过这个流水号（ref）的回款", {"field": "ref"}) from None
    return _payment_out(payment, balance)


class _Duplicate(Exception):
    pass


async def list_payments(
    actor: Actor, *, distributor_id: int | None = None, page: int = 1, page_size: int = 20
) -> Page[PaymentOut]:
    qs = scoped(Payment.all(), actor)
    if distributor_id is not None:
        require_distributor_in_scope(actor, distributor_id)
        qs = qs.filter(distributor_id=distributor_id)
    total = await qs.count()
    rows = await qs.order_by("-paid_at", "-id").offset((page - 1) * page_size).limit(page_size)
    return Page[PaymentOut](
        items=[_payment_out(p) for p in rows], total=total, page=page, page_size=page_size
    )


# --- aging --------------------------------------------------------------------------------

BUCKETS = ("current", "d1_30", "d31_60", "d61_90", "d90_plus")


class AgingRow(Out):
    distributor_id: int
    balance: Money
    current: Money
    d1_30: Money
    d31_60: Money
    d61_90: Money
    d90_plus: Money
    overdue: Money
    oldest_due: date | None


def _bucket(days: int) -> str:
    if days <= 0:
        return "current"
    if days <= 30:
        return "d1_30"
    if days <= 60:
        return "d31_60"
    if days <= 90:
        return "d61_90"
    return "d90_plus"


async def receivables_aging(
    distributor_ids: list[int] | None = None, as_of: date | None = None
) -> list[AgingRow]:
    """One row per distributor with a non-zero balance (all, or those ids), as of the end of
    business day `as_of` (default today): entries booked later do not count."""
    as_of = as_of or today()
    qs = ReceivableEntry.filter(occurred_at__lt=end_of_day(as_of))
    if distributor_ids is not None:
        qs = qs.filter(distributor_id__in=distributor_ids)
    entries = await qs.order_by("distributor_id", "occurred_at", "id").values(
        "distributor_id", "kind", "amount", "due_at", "occurred_at"
    )
    by_dist: dict[int, list[dict]] = {}
    for e in entries:
        by_dist.setdefault(e["distributor_id"], []).append(e)
    grace = grace_days()
    rows: list[AgingRow] = []
    for dist_id, items in sorted(by_dist.items()):
        row = _age(dist_id, items, as_of, grace)
        if row.balance != ZERO:
            rows.append(row)
    return rows


def _age(dist_id: int, items: list[dict], as_of: date, grace: int) -> AgingRow:
    open_items: list[list] = []  # [due_date, remaining]
    credit = Decimal(0)
    for e in items:
        amount = Decimal(e["amount"])
        if amount > 0:
            open_items.append([due_date(e["due_at"], e["occurred_at"], grace), amount])
        else:
            credit += -amount
    open_items.sort(key=lambda x: x[0])
    for item in open_items:  # credits settle the oldest debts first
        used = min(item[1], credit)
        item[1] -= used
        credit -= used
    buckets = dict.fromkeys(BUCKETS, Decimal(0))
    for due, remaining in open_items:
        if remaining > 0:
            buckets[_bucket(days_overdue(due, as_of))] += remaining
    balance = sum(buckets.values(), Decimal(0)) - credit
    due_dates = [due for due, remaining in open_items if remaining > 0]
    return AgingRow(
        distributor_id=dist_id,
        balance=money(balance),
        overdue=money(sum((buckets[b] for b in BUCKETS[1:]), Decimal(0))),
        oldest_due=min(due_dates) if due_dates else None,
        **{b: money(v) for b, v in buckets.items()},
    )
