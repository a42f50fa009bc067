"""Reading the commission ledger: whose entries a caller may see, and one month of them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from core.errors import NotFound
from core.money import money
from core.schema import Money, Out
from handlers.actor import Actor, Role
from handlers.commission_rules import Rate
from handlers.periods import current_month, parse_month
from models.base import UserRole
from models.commission import CommissionEntry, CommissionRule
from models.distributor import Distributor
from models.user import SalesAssignment, User


class BeneficiaryOut(Out):
    type: str  # "user" | "distributor"
    id: int
    name: str


class CommissionItem(Out):
    id: int
    kind: str
    order_id: int | None
    order_number: str | None
    rule_id: int
    rule_name: str
    period: str
    tier_period: str | None
    base: Money
    rate: Rate
    amount: Money
    statement_id: int | None
    created_at: datetime
    detail: dict[str, Any]


class CommissionsOut(Out):
    period: str
    beneficiary: BeneficiaryOut | None
    total: Money
    items: list[CommissionItem]


async def reps_in_scope(actor: Actor) -> set[int] | None:
    """Sales users a staff member may look at: those serving a distributor in its scope."""
    if actor.distributor_ids is None:
        return None
    ids = sorted(actor.distributor_ids)
    assigned = await SalesAssignment.filter(distributor_id__in=ids).values_list("user_id", flat=True)
    reps = await Distributor.filter(id__in=ids, sales_rep_id__isnull=False).values_list(
        "sales_rep_id", flat=True
    )
    return {int(x) for x in [*assigned, *reps]}  # type: ignore[call-overload]


async def subject_for(actor: Actor, beneficiary_id: int | None = None) -> tuple[str, BeneficiaryOut | None]:
    """The subject key whose commissions the caller asked for (404 when out of scope)."""
    if beneficiary_id is None or beneficiary_id == actor.user_id:
        if actor.role == Role.distributor and actor.distributor_id is not None:
            dist = await Distributor.get(id=actor.distributor_id)
            return f"distributor:{dist.id}", BeneficiaryOut(type="distributor", id=dist.id, name=dist.name)
        return f"user:{actor.user_id}", BeneficiaryOut(type="user", id=actor.user_id, name=actor.display_name)
    if not actor.is_staff:
        raise NotFound("未找到该佣金对象")
    user = await User.get_or_none(id=beneficiary_id)
    if user is None:
        raise NotFound("未找到该佣金对象")
    if user.role == UserRole.SALES:
        reps = await reps_in_scope(actor)
        if reps is not None and user.id not in reps:
            raise NotFound("未找到该佣金对象")
        return f"user:{user.id}", BeneficiaryOut(type="user", id=user.id, name=user.display_name)
    dist_id = user.distributor_id  # type: ignore[attr-defined]
    if user.role == UserRole.DISTRIBUTOR and dist_id is not None and actor.may_see_distributor(dist_id):
        dist = await Distributor.get(id=dist_id)
        return f"distributor:{dist.id}", BeneficiaryOut(type="distributor", id=dist.id, name=dist.name)
    raise NotFound("未找到该佣金对象")


def item_of(e: CommissionEntry, rule_names: dict[int, str]) -> CommissionItem:
    return CommissionItem(
        id=e.id,
        kind=str(e.kind),
        order_id=e.order_id,  # type: ignore[attr-defined]
        order_number=e.detail.get("order_number"),
        rule_id=e.rule_id,  # type: ignore[attr-defined]
        rule_name=rule_names.get(e.rule_id, ""),  # type: ignore[attr-defined]
        period=e.period,
        tier_period=e.tier_period,
        base=money(e.base),
        rate=Decimal(e.rate),
        amount=money(e.amount),
        statement_id=e.statement_id,  # type: ignore[attr-defined]
        created_at=e.created_at,
        detail=e.detail,
    )


async def rule_names(ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await CommissionRule.filter(id__in=sorted(ids)).values_list("id", "name")
    return {int(i): str(n) for i, n in rows}


async def get_commissions(
    actor: Actor, period: str | None = None, beneficiary_id: int | None = None
) -> CommissionsOut:
    """The caller's commission entries of one month (default: this month), not paged;
    `total` is the money sum of the items. Staff may name a beneficiary (a user id) in scope."""
    month = parse_month(period) if period else current_month()
    subject_key, who = await subject_for(actor, beneficiary_id)
    entries = await CommissionEntry.filter(subject_key=subject_key, period=month).order_by("id")
    names = await rule_names({e.rule_id for e in entries})  # type: ignore[attr-defined]
    items = [item_of(e, names) for e in entries]
    total = money(sum((i.amount for i in items), Decimal(0)))
    return CommissionsOut(period=month, beneficiary=who, total=total, items=items)
