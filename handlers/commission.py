"""The commission ledger: accrual at completion, reversal on returns, tier adjustments
(reading it: `handlers.commission_reads`; months and quarters: `handlers.periods`).

Who earns
---------
A `sales` rule pays the ordering distributor's rep, read when the order completes: its
`sales_rep_id` (an active sales user), or else every active sales user assigned to it through
SalesAssignment — several split the order equally (each gets an equal share of every line's
net amount, cents distributed so the shares sum exactly to the line; for flat rules the
order's commission is computed once and split the same way, so the split amounts sum exactly
to it). A `distributor` rule pays the ordering distributor itself: the entry's
`beneficiary_distributor` is the distributor and `beneficiary` its first active
distributor-role user (a distributor without users earns nothing, and a warning is logged).
Each beneficiary has a subject key: "user:<id>" (reps) or "distributor:<id>" (rebates).

What an entry is
----------------
- `accrual` (source "order:<id>"): one per (beneficiary, rule, tier slice) when the order
  completes. base = the in-scope net amount (line amounts after discounts, minus anything
  returned before completion). Tier volume = the beneficiary's in-scope net amount booked
  for that rule in the rule's period (month "YYYY-MM" or quarter "YYYY-Qn", Asia/Shanghai):
  the order's lines are laid end to end after the volume booked so far, and flat pays
  `rate`, tiered_whole the rate of the tier the volume reached, tiered_marginal each slice at
  its tier's rate. `detail` explains it: order number, lines (sku, qty, net, base, amount),
  tier, volume before/after, split.
- `reversal` (source "return:<id>"): a return reverses exactly its share of each accrual it
  touches, at the accrual's rate. Cumulative and exact: after returns totalling R of a line
  whose net was N, the reversed base and amount of each accrual slice are
  round(slice * R / N) — so a fully returned order nets to exactly zero.
- `adjustment` (source "tier:<tier period>"): when a statement is built the tiers are
  recomputed over the whole tier period (the quarter's last month for quarterly rules) and
  the difference between round(commission(volume)) and what was booked is booked here, so the
  entries always sum to the statement. Flat rules are exact per order and never adjusted.
  Also `adjustment`: an accrual or reversal whose month is locked (the beneficiary confirmed
  that month's statement) goes to the next month without a confirmed statement instead
  (`detail.late`).

Every entry's `period` is a month ("YYYY-MM"), the month its statement covers; `tier_period`
is the rule's volume window. Money is Decimal, ROUND_HALF_UP to cents.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tortoise import connections
from tortoise.transactions import in_transaction

from core.clock import BUSINESS_TZ, now
from core.logging import get_logger
from core.money import money
from handlers.commission_rules import (
    accrual_segments,
    commission_of,
    pick_rule,
    rule_tiers,
    rules_valid_on,
    tier_at,
)
from handlers.events import emit
from handlers.periods import month_of, next_month, quarter_of, tier_periods_ending
from models.base import (
    Beneficiary,
    CommissionEntryKind,
    CommissionMode,
    CommissionPeriod,
    OrderStatus,
    StatementKind,
    StatementStatus,
    UserRole,
    UserStatus,
)
from models.commission import CommissionEntry, CommissionRule, Statement
from models.distributor import Distributor
from models.order import Order, OrderLine, OrderReturnLine
from models.user import SalesAssignment, User

log = get_logger("qudao.commission")
CENTS = Decimal("0.01")


def tier_period_for(rule: CommissionRule, month: str) -> str:
    return quarter_of(month) if rule.period == CommissionPeriod.QUARTER else month


# --- small exact helpers ----------------------------------------------------------------------


def split_even(total: Decimal, n: int, offset: int = 0) -> list[Decimal]:
    """`total` in n equal parts, the odd cents going to parts offset, offset+1, ... (sum exact)."""
    cents = int((money(total) / CENTS).to_integral_value())
    base, extra = divmod(abs(cents), n)
    sign = -1 if cents < 0 else 1
    parts = [base] * n
    for k in range(extra):
        parts[(offset + k) % n] += 1
    return [sign * p * CENTS for p in parts]


def allocate(total: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """`total` spread over `weights` proportionally, largest remainder, cents summing exactly."""
    cents = int((money(total) / CENTS).to_integral_value())
    wsum = sum(weights)
    if not weights:
        return []
    if wsum == 0:
        return [cents * CENTS if i == 0 else Decimal("0.00") for i in range(len(weights))]
    sign = -1 if cents < 0 else 1
    raw = [abs(cents) * w / wsum for w in weights]
    floors = [int(r) for r in raw]
    left = abs(cents) - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-(raw[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return [sign * f * CENTS for f in floors]


def _m(value: Any) -> Decimal:
    return money(Decimal(str(value)))


# --- locks ------------------------------------------------------------------------------------


async def lock(name: str) -> None:
    """A transaction-scoped lock (PostgreSQL advisory lock). On SQLite, transactions already
    run one at a time, so nothing is needed there."""
    conn = connections.get("default")
    if conn.capabilities.dialect != "postgres":
        return
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    await conn.execute_query("SELECT pg_advisory_xact_lock($1)", [key])


def statement_lock(kind: StatementKind | str, subject_key: str, month: str) -> str:
    return f"statement:{kind}:{subject_key}:{month}"


# --- beneficiaries ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    key: str  # "user:<id>" | "distributor:<id>"
    user_id: int
    distributor_id: int | None = None


async def _subjects(kind: Beneficiary, dist: Distributor) -> list[Subject]:
    if kind == Beneficiary.DISTRIBUTOR:
        uids = (
            await User.filter(distributor_id=dist.id, role=UserRole.DISTRIBUTOR, status=UserStatus.ACTIVE)
            .order_by("id")
            .limit(1)
            .values_list("id", flat=True)
        )
        return [Subject(f"distributor:{dist.id}", int(uids[0]), dist.id)] if uids else []  # type: ignore[call-overload]
    if dist.sales_rep_id is not None:  # type: ignore[attr-defined]
        rep = await User.get_or_none(
            id=dist.sales_rep_id,  # type: ignore[attr-defined]
            role=UserRole.SALES,
            status=UserStatus.ACTIVE,
        )
        if rep is not None:
            return [Subject(f"user:{rep.id}", rep.id)]
    ids = await SalesAssignment.filter(
        distributor_id=dist.id, user__role=UserRole.SALES, user__status=UserStatus.ACTIVE
    ).values_list("user_id", flat=True)
    return [Subject(f"user:{uid}", int(uid)) for uid in sorted(set(ids))]  # type: ignore[arg-type]


# --- booking ----------------------------------------------------------------------------------


@dataclass
class Draft:
    """An entry about to be booked."""

    subject: Subject
    rule_id: int
    kind: CommissionEntryKind
    month: str
    tier_period: str
    base: Decimal
    rate: Decimal
    amount: Decimal
    source_ref: str
    order_id: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        return {
            "beneficiary_id": self.subject.user_id,
            "beneficiary_distributor_id": self.subject.distributor_id,
            "subject_key": self.subject.key,
            "rule_id": self.rule_id,
            "order_id": self.order_id,
            "kind": self.kind,
            "period": self.month,
            "tier_period": self.tier_period,
            "base": money(self.base),
            "rate": Decimal(self.rate).quantize(Decimal("0.0001")),
            "amount": money(self.amount),
            "detail": self.detail,
            "source_ref": self.source_ref,
        }


async def _locked(subject_key: str, month: str) -> bool:
    return await Statement.filter(
        kind=StatementKind.COMMISSION, subject_key=subject_key, period=month, status=StatementStatus.CONFIRMED
    ).exists()


async def open_month(subject_key: str, month: str) -> str:
    """`month`, or the first later month whose statement the beneficiary has not confirmed.
    Takes the statement lock of every month it looks at (held until the transaction ends)."""
    for _ in range(1200):
        await lock(statement_lock(StatementKind.COMMISSION, subject_key, month))
        if not await _locked(subject_key, month):
            return month
        month = next_month(month)
    raise RuntimeError("no open commission period")  # pragma: no cover - 100 years of confirmations


async def book(drafts: list[Draft]) -> list[CommissionEntry]:
    """Write entries (inside the caller's transaction). An entry for a locked month moves to
    the next open month as an adjustment; a month that already has an open statement gets
    that statement rebuilt at once, so entries and statements never disagree."""
    from handlers.statements import refresh_commission_statement  # statements imports us

    written: list[CommissionEntry] = []
    touched: set[tuple[str, str]] = set()
    for draft in sorted(drafts, key=lambda d: (d.subject.key, d.month)):
        target = await open_month(draft.subject.key, draft.month)
        if target != draft.month:
            draft.detail = {**draft.detail, "late": {"kind": str(draft.kind), "period": draft.month}}
            draft.kind = CommissionEntryKind.ADJUSTMENT
            draft.month = target
        written.append(await CommissionEntry.create(**draft.fields()))
        touched.add((draft.subject.key, target))
    for subject_key, month in sorted(touched):
        await refresh_commission_statement(subject_key, month, create=False)
    return written


async def volume(subject_key: str, rule_id: int, tier_period: str) -> Decimal:
    """In-scope net amount booked for (beneficiary, rule) in a tier period (adjustments carry
    base 0, late entries their own base)."""
    bases = await CommissionEntry.filter(
        subject_key=subject_key, rule_id=rule_id, tier_period=tier_period
    ).values_list("base", flat=True)
    return money(sum((Decimal(b) for b in bases), Decimal(0)))  # type: ignore[arg-type]


# --- accrual ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineNet:
    line_id: int
    sku: str
    qty: int
    net: Decimal  # the whole line's in-scope net amount
    share: Decimal  # this beneficiary's share of it


def _lay_out(lines: list[LineNet], v0: Decimal, lo: Decimal, hi: Decimal) -> list[tuple[LineNet, Decimal]]:
    """The lines placed end to end from volume v0: each line's piece inside [lo, hi)."""
    out = []
    cursor = v0
    for line in lines:
        start, end = cursor, cursor + line.share
        piece = min(end, hi) - max(start, lo)
        if piece > 0:
            out.append((line, piece))
        cursor = end
    return out


def _line_json(line: LineNet, base: Decimal, amount: Decimal) -> dict[str, Any]:
    return {
        "line_id": line.line_id,
        "sku": line.sku,
        "qty": line.qty,
        "net": str(money(line.net)),
        "base": str(money(base)),
        "amount": str(money(amount)),
    }


async def _accrual_drafts(
    order: Order,
    rule: CommissionRule,
    subjects: list[Subject],
    lines: list[LineNet],
    month: str,
    netted: list[int],
) -> list[Draft]:
    tier_period = tier_period_for(rule, month)
    tiers = rule_tiers(rule)
    n = len(subjects)
    shares = [split_even(line.net, n, offset=k) for k, line in enumerate(lines)]
    share_totals = [money(sum((s[i] for s in shares), Decimal(0))) for i in range(n)]
    order_base = money(sum((line.net for line in lines), Decimal(0)))
    # flat: the order's commission once, split in proportion to the (equal) shares, cent-exact
    flat_split = (
        allocate(money(order_base * tiers[0].rate), share_totals)
        if rule.mode == CommissionMode.FLAT
        else None
    )
    drafts: list[Draft] = []
    for i, subject in enumerate(subjects):
        mine = [
            LineNet(line.line_id, line.sku, line.qty, line.net, shares[k][i])
            for k, line in enumerate(lines)
            if shares[k][i] > 0
        ]
        total = share_totals[i]
        if total <= 0:
            continue
        v0 = await volume(subject.key, rule.id, tier_period)
        for tier, lo, hi in accrual_segments(rule.mode, tiers, v0, v0 + total):
            pieces = _lay_out(mine, v0, lo, hi)
            base = money(sum((p for _, p in pieces), Decimal(0)))
            amount = flat_split[i] if flat_split is not None else money(base * tier.rate)
            amounts = allocate(amount, [p for _, p in pieces])
            detail: dict[str, Any] = {
                "order_number": order.number,
                "distributor_id": order.distributor_id,  # type: ignore[attr-defined]
                "rule": rule.name,
                "mode": str(rule.mode),
                "tier_period": tier_period,
                "tier": tier.to_json(),
                "volume_before": str(money(v0)),
                "volume_after": str(money(v0 + total)),
                "lines": [_line_json(line, p, a) for (line, p), a in zip(pieces, amounts, strict=True)],
                "netted_returns": netted,
            }
            if n > 1:
                detail["split"] = {"among": n, "user_ids": [s.user_id for s in subjects]}
                if flat_split is not None:
                    detail["split"]["order_amount"] = str(money(sum(flat_split, Decimal(0))))
            drafts.append(
                Draft(
                    subject=subject,
                    rule_id=rule.id,
                    kind=CommissionEntryKind.ACCRUAL,
                    month=month,
                    tier_period=tier_period,
                    base=base,
                    rate=tier.rate,
                    amount=amount,
                    source_ref=f"order:{order.id}",
                    order_id=order.id,
                    detail=detail,
                )
            )
    return drafts


async def accrue_order(order_id: int, actor_id: int = 0) -> list[CommissionEntry]:
    """Book the commission of a completed order (idempotent: a second call books nothing)."""
    async with in_transaction():
        await lock(f"commission:order:{order_id}")
        order = await Order.get_or_none(id=order_id).select_related("distributor")
        if order is None or order.status != OrderStatus.COMPLETED:
            return []
        if await CommissionEntry.filter(order_id=order.id, source_ref=f"order:{order.id}").exists():
            return []
        dist: Distributor = order.distributor
        completed = order.completed_at or now()
        month = month_of(completed)
        rules = await rules_valid_on(completed.astimezone(BUSINESS_TZ).date())
        if not rules:
            return []
        returned: dict[int, Decimal] = defaultdict(Decimal)
        netted: set[int] = set()
        for row in await OrderReturnLine.filter(order_return__order_id=order.id).values(
            "order_line_id", "amount", "order_return_id"
        ):
            returned[row["order_line_id"]] += Decimal(row["amount"])
            netted.add(row["order_return_id"])
        groups: dict[tuple[Beneficiary, int], list[LineNet]] = defaultdict(list)
        by_id = {r.id: r for r in rules}
        for line in await OrderLine.filter(order_id=order.id).select_related("product").order_by("id"):
            net = money(max(Decimal(line.amount) - returned[line.id], Decimal(0)))
            if net <= 0:
                continue
            for kind in (Beneficiary.SALES, Beneficiary.DISTRIBUTOR):
                rule = pick_rule(
                    rules,
                    kind,
                    category=line.product.category,
                    sku=line.sku,
                    level=dist.level,
                    region=dist.region,
                )
                if rule is not None:
                    groups[(kind, rule.id)].append(LineNet(line.id, line.sku, line.qty, net, net))
        drafts: list[Draft] = []
        for (kind, rule_id), lines in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
            subjects = await _subjects(kind, dist)
            if not subjects:
                log.warning("commission_no_beneficiary", order_id=order.id, rule_id=rule_id, kind=str(kind))
                continue
            drafts += await _accrual_drafts(order, by_id[rule_id], subjects, lines, month, sorted(netted))
        entries = await book(drafts)
        if entries:
            await emit(
                "commission.accrued",
                order_id=order.id,
                entry_ids=[e.id for e in entries],
                actor_id=actor_id,
            )
        return entries


# --- reversal ---------------------------------------------------------------------------------


async def reverse_return(order_id: int, return_id: int, actor_id: int = 0) -> list[CommissionEntry]:
    """Reverse exactly the returned share of every accrual of the order (idempotent per return).

    Per (rule, line) the cumulative returned amount R of the line's net N is spread over the
    line's accrual pieces (beneficiaries x tier slices) by largest remainder: bases in
    proportion to the pieces' bases (they sum to N, so the reversed bases sum to R exactly) and
    amounts round(A * R / N) in proportion to the pieces' amounts (A = what the line earned).
    Each return books the difference to what earlier returns reversed, so at R = N every piece
    is reversed exactly."""
    async with in_transaction():
        await lock(f"commission:order:{order_id}")
        src = f"return:{return_id}"
        entries = await CommissionEntry.filter(order_id=order_id).order_by("id")
        if any(e.source_ref == src for e in entries):
            return []
        accruals = [e for e in entries if e.source_ref == f"order:{order_id}"]
        if not accruals or return_id in accruals[0].detail.get("netted_returns", []):
            return []  # not accrued yet, or returned before completion (already out of the base)
        reversed_ids = {
            int(e.source_ref.split(":")[1])
            for e in entries
            if e.source_ref and e.source_ref.startswith("return:")
        }
        this: dict[int, Decimal] = defaultdict(Decimal)
        before: dict[int, Decimal] = defaultdict(Decimal)
        for row in await OrderReturnLine.filter(order_return__order_id=order_id).values(
            "order_return_id", "order_line_id", "amount"
        ):
            if row["order_return_id"] == return_id:
                this[row["order_line_id"]] += Decimal(row["amount"])
            elif row["order_return_id"] in reversed_ids:
                before[row["order_line_id"]] += Decimal(row["amount"])
        done: dict[tuple[int, int], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
        for e in entries:  # what earlier returns reversed, per (accrual, line), as positive numbers
            if e.source_ref and e.source_ref.startswith("return:"):
                for ln in e.detail.get("lines", []):
                    acc = done[(e.detail["accrual_entry_id"], ln["line_id"])]
                    acc[0] -= Decimal(ln["base"])
                    acc[1] -= Decimal(ln["amount"])
        groups: dict[tuple[int, int], list[tuple[CommissionEntry, dict[str, Any]]]] = defaultdict(list)
        for acc in accruals:
            for ln in acc.detail.get("lines", []):
                if this.get(ln["line_id"], Decimal(0)) > 0:
                    groups[(acc.rule_id, ln["line_id"])].append((acc, ln))  # type: ignore[attr-defined]
        rows: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for (_, line_id), pieces in sorted(groups.items(), key=lambda kv: kv[0]):
            net = _m(pieces[0][1]["net"])
            if net <= 0:
                continue
            cum_prev = min(before[line_id], net)
            cum = min(before[line_id] + this[line_id], net)
            earned = [_m(ln["amount"]) for _, ln in pieces]
            bases = allocate(cum, [_m(ln["base"]) for _, ln in pieces])
            amounts = allocate(money(sum(earned, Decimal(0)) * cum / net), earned)
            for (acc, ln), base, amount in zip(pieces, bases, amounts, strict=True):
                prev_base, prev_amount = done[(acc.id, line_id)]
                rows[acc.id].append(
                    {
                        "line_id": line_id,
                        "sku": ln["sku"],
                        "line_returned": str(money(cum - cum_prev)),
                        "base": str(money(prev_base - base)),
                        "amount": str(money(prev_amount - amount)),
                    }
                )
        drafts = []
        for acc in accruals:
            if acc.id not in rows:
                continue
            drafts.append(
                Draft(
                    subject=Subject(
                        acc.subject_key or f"user:{acc.beneficiary_id}",  # type: ignore[attr-defined]
                        acc.beneficiary_id,  # type: ignore[attr-defined]
                        acc.beneficiary_distributor_id,  # type: ignore[attr-defined]
                    ),
                    rule_id=acc.rule_id,  # type: ignore[attr-defined]
                    kind=CommissionEntryKind.REVERSAL,
                    month=acc.period,
                    tier_period=acc.tier_period or acc.period,
                    base=sum((Decimal(r["base"]) for r in rows[acc.id]), Decimal(0)),
                    rate=Decimal(acc.rate),
                    amount=sum((Decimal(r["amount"]) for r in rows[acc.id]), Decimal(0)),
                    source_ref=src,
                    order_id=order_id,
                    detail={
                        "order_number": acc.detail.get("order_number"),
                        "return_id": return_id,
                        "accrual_entry_id": acc.id,
                        "tier_period": acc.tier_period,
                        "tier": acc.detail.get("tier"),
                        "lines": rows[acc.id],
                    },
                )
            )
        written = await book(drafts)
        if written:
            await emit(
                "commission.reversed",
                order_id=order_id,
                return_id=return_id,
                entry_ids=[e.id for e in written],
                actor_id=actor_id,
            )
        return written


# --- tier recomputation (at statement time) ---------------------------------------------------


async def tier_adjustments(subject_key: str, month: str) -> list[Draft]:
    """For each tiered rule whose tier period ends with `month`: round(commission(volume)) minus
    what is booked for that period, as an adjustment draft in `month` (none when equal)."""
    periods = tier_periods_ending(month)
    entries = await CommissionEntry.filter(subject_key=subject_key, tier_period__in=periods).order_by("id")
    groups: dict[tuple[int, str], list[CommissionEntry]] = defaultdict(list)
    for e in entries:
        groups[(e.rule_id, e.tier_period or e.period)].append(e)  # type: ignore[attr-defined]
    if not groups:
        return []
    rules = {r.id: r for r in await CommissionRule.filter(id__in=sorted({k[0] for k in groups}))}
    drafts = []
    for (rule_id, tier_period), rows in sorted(groups.items()):
        rule = rules[rule_id]
        if rule.mode == CommissionMode.FLAT or tier_period not in periods:
            continue
        tiers = rule_tiers(rule)
        vol = money(sum((Decimal(e.base) for e in rows), Decimal(0)))
        target = money(commission_of(rule.mode, tiers, vol))
        booked = money(sum((Decimal(e.amount) for e in rows), Decimal(0)))
        if target == booked:
            continue
        first = rows[0]
        reached = tier_at(tiers, vol)
        drafts.append(
            Draft(
                subject=Subject(subject_key, first.beneficiary_id, first.beneficiary_distributor_id),  # type: ignore[attr-defined]
                rule_id=rule_id,
                kind=CommissionEntryKind.ADJUSTMENT,
                month=month,
                tier_period=tier_period,
                base=Decimal(0),
                rate=reached.rate,
                amount=target - booked,
                source_ref=f"tier:{tier_period}",
                detail={
                    "reason": "tier_recompute",
                    "rule": rule.name,
                    "mode": str(rule.mode),
                    "tier_period": tier_period,
                    "volume": str(vol),
                    "tier": reached.to_json(),
                    "due": str(target),
                    "booked_before": str(booked),
                },
            )
        )
    return drafts
