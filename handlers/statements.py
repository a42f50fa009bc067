"""Monthly statements (对账单) that both sides can check: commission and receivables.

`close_period(month)` (the scheduler's `commission_statements` job; default: the month that
just ended, Asia/Shanghai; the job refuses a month that has not ended —
`handlers.periods.require_ended` — so a running month is never closed) builds, for that month:

- one **commission statement** per beneficiary ("user:<id>" for reps, "distributor:<id>" for
  rebates): it first recomputes the tiers of every tier period ending with the month (the
  month itself, and the quarter at quarter end) and books the differences as `adjustment`
  entries, then links every entry of the month to the statement. total = the sum of the
  linked entries; lines = one per entry.
- one **receivables statement** per distributor with a receivables ledger: opening balance,
  shipped, payments, returns, adjustments (signed, payments and returns negative) and the
  closing balance = total, plus what was overdue on the month's last day (``as_of``,
  ``overdue``); lines = the month's ledger entries, each amount owed with its ``due_date`` —
  due and overdue as the aging report and the overdue job define them (`handlers.finance`);
  shipment and return lines name their order (``order_id``, ``order_number``; null for
  payments and adjustments).

Rerunning changes nothing unless the data changed: an open or disputed statement is rebuilt
(a disputed one whose content changed is reissued as `open`), a confirmed one is never
touched. Once a beneficiary confirms a month, that month is locked for it: a later accrual or
reversal for it goes to the next month it has not confirmed, as an adjustment (see
handlers/commission.py). A new entry in a month whose statement is still open rebuilds that
statement at once, so entries always sum to their statement.

Only the statement's subject acts on it: the rep for its own commission statement, the
distributor's users for its rebate and receivables statements; anyone else gets 404. Staff
read the statements of their scope (a manager: its regions' distributors and the reps serving
them). Events: statement.ready (built or changed), statement.confirmed, statement.disputed
(the notifications feature tells the manager).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import Field
from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from core.clock import BUSINESS_TZ, now
from core.errors import InvalidState, NotFound
from core.money import money
from core.schema import MAX_ID, In, Money, Out, Page, PageQuery
from handlers.actor import SYSTEM, Actor, Role
from handlers.audit import record
from handlers.commission import lock, statement_lock, tier_adjustments
from handlers.commission_reads import BeneficiaryOut, reps_in_scope, rule_names
from handlers.commission_rules import rate_str
from handlers.events import emit
from handlers.finance import due_date, grace_days, receivables_aging
from handlers.periods import current_month, month_bounds, parse_month, previous_month, tier_periods_ending
from handlers.words import statement_title
from models.base import ReceivableKind, StatementKind, StatementStatus
from models.commission import CommissionEntry, Statement
from models.distributor import Distributor
from models.finance import ReceivableEntry
from models.order import Order, OrderReturn, Shipment
from models.user import User

# --- building ---------------------------------------------------------------------------------


_ENTRY_WORDS = {"accrual": "计提", "reversal": "冲回", "adjustment": "调整"}


def _note(e: CommissionEntry) -> str:
    """What a statement line's reader needs to know about an entry, in their words."""
    d = e.detail or {}
    if d.get("reason") == "tier_recompute":
        tier = d.get("tier", {})
        return (
            f"{d.get('tier_period')} 阶梯重算：业绩 {d.get('volume')} 达到第{tier.get('index', 0) + 1}档"
            f"（比例 {tier.get('rate')}），应计 {d.get('due')}，此前已计 {d.get('booked_before')}"
        )
    parts = []
    if "late" in d:
        late = d["late"]
        word = _ENTRY_WORDS.get(str(late.get("kind")), str(late.get("kind")))
        parts.append(f"{late['period']} 的{word}（该月对账单已确认，计入本期）")
    if d.get("return_id") is not None:
        parts.append(f"退货 #{d['return_id']}")
    if "split" in d:
        parts.append(f"{d['split']['among']} 位业务员平分")
    return "；".join(parts)


def _commission_line(e: CommissionEntry, names: dict[int, str]) -> dict[str, Any]:
    return {
        "entry_id": e.id,
        "kind": str(e.kind),
        "order_id": e.order_id,  # type: ignore[attr-defined]
        "order_number": (e.detail or {}).get("order_number"),
        "rule_id": e.rule_id,  # type: ignore[attr-defined]
        "rule_name": names.get(e.rule_id, ""),  # type: ignore[attr-defined]
        "tier_period": e.tier_period,
        "base": str(money(e.base)),
        "rate": rate_str(Decimal(e.rate)),
        "amount": str(money(e.amount)),
        "note": _note(e),
    }


async def _issue(st: Statement, total: Decimal, lines: list[Any], summary: Any, outcome: str) -> str:
    """Save a statement whose content changed; a disputed one is reissued as open."""
    if outcome != "created" and st.total == total and st.lines == lines and st.summary == summary:
        return "unchanged"
    st.total, st.lines, st.summary = total, lines, summary
    if st.status == StatementStatus.DISPUTED:
        st.status = StatementStatus.OPEN
    await st.save()
    await emit("statement.ready", statement_id=st.id, actor_id=SYSTEM.user_id)
    return outcome if outcome == "created" else "updated"


async def refresh_commission_statement(
    subject_key: str, month: str, *, create: bool
) -> tuple[Statement | None, str]:
    """Recompute tiers, link the month's entries and refresh the total. Run inside a
    transaction holding `statement_lock("commission", subject_key, month)`.
    Outcome: created | updated | unchanged | locked (confirmed) | none | empty."""
    st = await Statement.get_or_none(kind=StatementKind.COMMISSION, subject_key=subject_key, period=month)
    if st is not None and st.status == StatementStatus.CONFIRMED:
        return st, "locked"
    if st is None and not create:
        return None, "none"
    for draft in await tier_adjustments(subject_key, month):
        await CommissionEntry.create(**draft.fields())
    entries = await CommissionEntry.filter(subject_key=subject_key, period=month).order_by("id")
    outcome = "unchanged"
    if st is None:
        if not entries:
            return None, "empty"
        first = entries[0]
        st = await Statement.create(
            kind=StatementKind.COMMISSION,
            subject_key=subject_key,
            period=month,
            beneficiary_id=first.beneficiary_id,  # type: ignore[attr-defined]
            distributor_id=first.beneficiary_distributor_id,  # type: ignore[attr-defined]
            total=Decimal(0),
            lines=[],
        )
        outcome = "created"
    unlinked = [e.id for e in entries if e.statement_id != st.id]  # type: ignore[attr-defined]
    if unlinked:
        await CommissionEntry.filter(id__in=unlinked).update(statement_id=st.id)
    names = await rule_names({e.rule_id for e in entries})  # type: ignore[attr-defined]
    lines = [_commission_line(e, names) for e in entries]
    total = money(sum((Decimal(e.amount) for e in entries), Decimal(0)))
    return st, await _issue(st, total, lines, None, outcome)


STATEMENT_STATUS_ZH = {"open": "待确认", "confirmed": "已确认", "disputed": "有异议"}
_KIND_SUMS = {
    ReceivableKind.SHIPMENT: "shipped",
    ReceivableKind.PAYMENT: "payments",
    ReceivableKind.RETURN: "returns",
    ReceivableKind.ADJUSTMENT: "adjustments",
}


async def refresh_receivables_statement(distributor_id: int, month: str) -> str:
    """The distributor's receivables for the month: opening + movements = closing (= total)."""
    subject_key = f"distributor:{distributor_id}"
    st = await Statement.get_or_none(kind=StatementKind.RECEIVABLES, subject_key=subject_key, period=month)
    if st is not None and st.status == StatementStatus.CONFIRMED:
        return "locked"
    start, end = month_bounds(month)
    before = await ReceivableEntry.filter(distributor_id=distributor_id, occurred_at__lt=start).values_list(
        "amount", flat=True
    )
    opening = money(sum((Decimal(a) for a in before), Decimal(0)))  # type: ignore[arg-type]
    rows = await ReceivableEntry.filter(
        distributor_id=distributor_id, occurred_at__gte=start, occurred_at__lt=end
    ).order_by("occurred_at", "id")
    if st is None and not rows and opening == 0:
        return "empty"
    sums = {name: Decimal(0) for name in _KIND_SUMS.values()}
    for r in rows:
        sums[_KIND_SUMS[ReceivableKind(r.kind)]] += Decimal(r.amount)
    closing = money(opening + sum(sums.values(), Decimal(0)))
    last_day = (end - timedelta(days=1)).astimezone(BUSINESS_TZ).date()
    aged = await receivables_aging([distributor_id], last_day)  # one definition of overdue
    summary = {
        "opening": str(opening),
        **{k: str(money(v)) for k, v in sums.items()},
        "closing": str(closing),
        "as_of": last_day.isoformat(),
        "overdue": str(aged[0].overdue if aged else money(0)),
    }
    grace = grace_days()
    orders = await _orders_of(rows)
    lines = [
        {
            "entry_id": r.id,
            "date": r.occurred_at.astimezone(BUSINESS_TZ).date().isoformat(),
            "kind": str(r.kind),
            "ref_type": r.ref_type,
            "ref_id": r.ref_id,
            "order_id": orders.get((r.ref_type, r.ref_id), (None, None))[0],
            "order_number": orders.get((r.ref_type, r.ref_id), (None, None))[1],
            "amount": str(money(r.amount)),
            "due_at": r.due_at.isoformat() if r.due_at else None,
            "due_date": due_date(r.due_at, r.occurred_at, grace).isoformat() if r.amount > 0 else None,
        }
        for r in rows
    ]
    outcome = "unchanged"
    if st is None:
        st = await Statement.create(
            kind=StatementKind.RECEIVABLES,
            subject_key=subject_key,
            period=month,
            distributor_id=distributor_id,
            total=Decimal(0),
            lines=[],
        )
        outcome = "created"
    return await _issue(st, closing, lines, summary, outcome)


async def _orders_of(rows: list[ReceivableEntry]) -> dict[tuple[str, str], tuple[int, str]]:
    """(ref_type, ref_id) -> (order id, order number) for the shipment and return entries, so a
    statement line names the order a buyer knows, not only a shipment id. Batched: a few
    queries per statement, whatever its length."""
    refs: dict[str, set[int]] = {"shipment": set(), "order_return": set()}
    for r in rows:
        if r.ref_type in refs and r.ref_id and r.ref_id.isdigit():
            refs[r.ref_type].add(int(r.ref_id))
    order_of: dict[tuple[str, str], int] = {}
    for ref_type, model in (("shipment", Shipment), ("order_return", OrderReturn)):
        if refs[ref_type]:
            for ref_id, order_id in await model.filter(id__in=sorted(refs[ref_type])).values_list(
                "id", "order_id"
            ):
                order_of[(ref_type, str(ref_id))] = order_id
    if not order_of:
        return {}
    numbers = dict(
        await Order.filter(id__in=sorted(set(order_of.values()))).values_list("id", "number")  # type: ignore[arg-type]
    )
    return {k: (oid, numbers[oid]) for k, oid in order_of.items() if oid in numbers}


async def close_period(period: str | None = None) -> dict[str, Any]:
    """Build (or refresh) every statement of a month. Idempotent; one transaction per subject."""
    month = parse_month(period) if period else previous_month(current_month())
    tier_periods = tier_periods_ending(month)
    keys = set(await CommissionEntry.filter(period=month).distinct().values_list("subject_key", flat=True))
    keys |= set(
        await CommissionEntry.filter(tier_period__in=tier_periods)
        .distinct()
        .values_list("subject_key", flat=True)
    )
    commission: Counter[str] = Counter()
    for key in sorted(k for k in keys if k):
        async with in_transaction():
            await lock(statement_lock(StatementKind.COMMISSION, key, month))
            _, outcome = await refresh_commission_statement(key, month, create=True)
        commission[outcome] += 1
    _, end = month_bounds(month)
    dist_ids = (
        await ReceivableEntry.filter(occurred_at__lt=end).distinct().values_list("distributor_id", flat=True)
    )
    receivables: Counter[str] = Counter()
    for dist_id in sorted({int(d) for d in dist_ids}):  # type: ignore[call-overload]
        async with in_transaction():
            await lock(statement_lock(StatementKind.RECEIVABLES, f"distributor:{dist_id}", month))
            receivables[await refresh_receivables_statement(dist_id, month)] += 1
    return {"period": month, "commission": dict(commission), "receivables": dict(receivables)}


# --- reading ----------------------------------------------------------------------------------


class StatementOut(Out):
    id: int
    kind: str
    title: str = Field(description="返利对账单 (distributor commission), 佣金对账单 (rep), 应收对账单")
    period: str
    beneficiary: BeneficiaryOut
    total: Money
    status: str
    lines: list[dict[str, Any]]
    summary: dict[str, Any] | None = None
    dispute_reason: str | None = None
    confirmed_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class StatementQuery(PageQuery):
    period: str | None = Field(None, max_length=7)
    kind: StatementKind | None = None
    status: StatementStatus | None = None


class DisputeIn(In):
    reason: str = Field(min_length=1, max_length=500)


async def _beneficiaries(rows: list[Statement]) -> dict[str, BeneficiaryOut]:
    user_ids = {int(r.subject_key.split(":")[1]) for r in rows if r.subject_key.startswith("user:")}
    dist_ids = {int(r.subject_key.split(":")[1]) for r in rows if r.subject_key.startswith("distributor:")}
    out: dict[str, BeneficiaryOut] = {}
    if user_ids:
        for uid, name in await User.filter(id__in=sorted(user_ids)).values_list("id", "display_name"):
            out[f"user:{uid}"] = BeneficiaryOut(type="user", id=int(uid), name=str(name))  # type: ignore[call-overload]
    if dist_ids:
        for did, name in await Distributor.filter(id__in=sorted(dist_ids)).values_list("id", "name"):
            out[f"distributor:{did}"] = BeneficiaryOut(type="distributor", id=int(did), name=str(name))  # type: ignore[call-overload]
    return out


def _out(st: Statement, who: dict[str, BeneficiaryOut]) -> StatementOut:
    kind, _, ident = st.subject_key.partition(":")
    return StatementOut(
        id=st.id,
        kind=str(st.kind),
        title=statement_title(str(st.kind), rep=kind == "user"),
        period=st.period,
        beneficiary=who.get(st.subject_key) or BeneficiaryOut(type=kind, id=int(ident), name=""),
        total=money(st.total),
        status=str(st.status),
        lines=st.lines or [],
        summary=st.summary,
        dispute_reason=st.dispute_reason,
        confirmed_at=st.confirmed_at,
        created_at=st.created_at,
        updated_at=st.updated_at,
    )


async def _visible(actor: Actor) -> QuerySet[Statement]:
    qs = Statement.all()
    if actor.role == Role.admin:
        return qs
    if actor.role == Role.manager:
        ids = sorted(actor.distributor_ids or [])
        reps = sorted(await reps_in_scope(actor) or [])
        return qs.filter(Q(distributor_id__in=ids) | Q(beneficiary_id__in=reps, distributor_id__isnull=True))
    if actor.role == Role.sales:
        return qs.filter(subject_key=f"user:{actor.user_id}")
    return qs.filter(distributor_id__in=sorted(actor.distributor_ids or []))


async def list_statements(actor: Actor, query: StatementQuery) -> Page[StatementOut]:
    """The caller's statements (staff: those of their scope), newest period first."""
    qs = await _visible(actor)
    if query.period:
        qs = qs.filter(period=parse_month(query.period))
    if query.kind is not None:
        qs = qs.filter(kind=query.kind)
    if query.status is not None:
        qs = qs.filter(status=query.status)
    total = await qs.count()
    rows = (
        await qs.order_by("-period", "id").offset((query.page - 1) * query.page_size).limit(query.page_size)
    )
    who = await _beneficiaries(rows)
    return Page[StatementOut](
        items=[_out(r, who) for r in rows], total=total, page=query.page, page_size=query.page_size
    )


async def get_statement(actor: Actor, statement_id: int) -> StatementOut:
    if not 0 < statement_id <= MAX_ID:
        raise NotFound("未找到该对账单")
    st = await (await _visible(actor)).get_or_none(id=statement_id)
    if st is None:
        raise NotFound("未找到该对账单")
    return _out(st, await _beneficiaries([st]))


# --- confirm / dispute ------------------------------------------------------------------------


def _owns(actor: Actor, st: Statement) -> bool:
    if st.subject_key == f"user:{actor.user_id}":
        return True
    return (
        actor.role == Role.distributor
        and actor.distributor_id is not None
        and st.subject_key == f"distributor:{actor.distributor_id}"
    )


async def _transition(
    actor: Actor, statement_id: int, to: StatementStatus, reason: str | None
) -> StatementOut:
    if not 0 < statement_id <= MAX_ID:
        raise NotFound("未找到该对账单")
    async with in_transaction():
        st = await Statement.get_or_none(id=statement_id)
        if st is None or not _owns(actor, st):
            raise NotFound("未找到该对账单")
        await lock(statement_lock(st.kind, st.subject_key, st.period))
        await st.refresh_from_db()
        allowed = (
            {StatementStatus.OPEN, StatementStatus.DISPUTED}
            if to == StatementStatus.CONFIRMED
            else {StatementStatus.OPEN}
        )
        if st.status not in allowed:
            raise InvalidState(
                f"对账单{STATEMENT_STATUS_ZH.get(st.status, st.status)}，不能再这样操作",
                {"status": str(st.status)},
            )
        before = {"status": str(st.status)}
        st.status = to
        if to == StatementStatus.CONFIRMED:
            st.confirmed_at = now()
        else:
            st.dispute_reason = reason
        await st.save()
        await record(
            actor,
            f"statement.{'confirm' if to == StatementStatus.CONFIRMED else 'dispute'}",
            "statement",
            st.id,
            before,
            {"status": str(st.status), "reason": reason, "total": str(money(st.total))},
        )
        await emit(f"statement.{to}", statement_id=st.id, actor_id=actor.user_id)
    return _out(st, await _beneficiaries([st]))


async def confirm_statement(actor: Actor, statement_id: int) -> StatementOut:
    """The subject agrees: the month is locked for it from now on."""
    return await _transition(actor, statement_id, StatementStatus.CONFIRMED, None)


async def dispute_statement(actor: Actor, statement_id: int, reason: str) -> StatementOut:
    """The subject disagrees (with a reason); the manager is notified (statement.disputed)."""
    return await _transition(actor, statement_id, StatementStatus.DISPUTED, reason)
