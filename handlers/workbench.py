"""Reads for the manager console (工作台, order search, lead arbitration), scoped like /api/v1.

Every function takes the acting `Actor` and narrows by the same scope helpers as the API
(`handlers.scope.scoped`, the leads' and statements' own visibility rules), so the console has
no permission system of its own. Writes stay in their use-cases (`handlers.ordering`,
`handlers.leads`); this module only reads."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from core.clock import now, today
from core.schema import Out
from handlers import leads, ordering, statements
from handlers.actor import Actor
from handlers.finance import receivables_aging
from handlers.leads import LeadOut
from handlers.reports import SalesQuery, sales_report
from handlers.scope import scoped
from models.audit import AuditLog
from models.base import ContractStatus, LeadStatus, OrderStatus, ReturnStatus, StatementStatus
from models.contract import Contract
from models.distributor import Distributor
from models.order import Order, ReturnRequest
from models.user import User

CONTRACT_WARNING_DAYS = 30


class TodoCounts(Out):
    orders_to_review: int
    returns_to_review: int
    lead_arbitrations: int
    disputed_statements: int
    overdue_receivables: int  # distributors with an overdue balance
    contracts_expiring: int  # in force and ending within CONTRACT_WARNING_DAYS


class MonthPoint(Out):
    month: str  # YYYY-MM
    net: str  # money, two places


class AuditEntry(Out):
    action: str
    actor_name: str
    after: Any
    created_at: datetime


class ConflictOut(Out):
    """A protected lead the pending one collides with; `lead` is None outside the caller's
    scope (only the region is told, as the approve use-case does)."""

    region: str | None
    lead: LeadOut | None
    owner_name: str


class ArbitrationOut(Out):
    lead: LeadOut
    owner_name: str
    distributor_name: str
    conflicts: list[ConflictOut]


async def get_todo_counts(actor: Actor) -> TodoCounts:
    day = today()
    ids = None if actor.distributor_ids is None else sorted(actor.distributor_ids)
    overdue = [r for r in await receivables_aging(ids, day) if r.overdue > 0]
    contracts = scoped(Contract.all(), actor).filter(
        status__in=[ContractStatus.DRAFT, ContractStatus.ACTIVE],
        end_date__gte=day,
        end_date__lte=day + timedelta(days=CONTRACT_WARNING_DAYS),
    )
    disputed = (await statements._visible(actor)).filter(status=StatementStatus.DISPUTED)
    return TodoCounts(
        orders_to_review=await scoped(Order.filter(status=OrderStatus.PENDING_REVIEW), actor).count(),
        returns_to_review=await scoped(ReturnRequest.filter(status=ReturnStatus.REQUESTED), actor).count(),
        lead_arbitrations=await leads._visible(actor).filter(status=LeadStatus.PENDING_REVIEW).count(),
        disputed_statements=await disputed.count(),
        overdue_receivables=len(overdue),
        contracts_expiring=await contracts.count(),
    )


async def monthly_sales(actor: Actor) -> list[MonthPoint]:
    """Net sales per month for the last 12 months (the sales report grouped by month)."""
    report = await sales_report(actor, SalesQuery(group_by="month"))
    return [MonthPoint(month=str(r["key"]), net=str(r["net"])) for r in report.rows]


class ChartOut(Out):
    """A bar chart's data: category labels and one value per label (money as float)."""

    labels: list[str]
    values: list[float]


AGING_BUCKETS = (
    ("current", "未到期"),
    ("d1_30", "逾期1-30天"),
    ("d31_60", "31-60天"),
    ("d61_90", "61-90天"),
    ("d90_plus", "90天以上"),
)


async def top_distributors(actor: Actor, limit: int = 10) -> ChartOut:
    """The distributors with the most net sales in the last 12 months (the sales report)."""
    report = await sales_report(actor, SalesQuery(group_by="distributor"))
    rows = sorted(report.rows, key=lambda r: Decimal(str(r["net"])), reverse=True)[:limit]
    return ChartOut(labels=[str(r["label"]) for r in rows], values=[float(r["net"]) for r in rows])


async def receivables_by_age(actor: Actor) -> ChartOut:
    """Receivables in scope by age bucket, as of today (handlers.finance.receivables_aging)."""
    ids = None if actor.distributor_ids is None else sorted(actor.distributor_ids)
    rows = await receivables_aging(ids, today())
    values = [float(sum((getattr(r, key) for r in rows), Decimal(0))) for key, _ in AGING_BUCKETS]
    return ChartOut(labels=[name for _, name in AGING_BUCKETS], values=values)


async def distributor_choices(actor: Actor) -> list[tuple[int, str]]:
    """(id, name) of the distributors in scope, for filter drop-downs."""
    rows = await scoped(Distributor.all(), actor, "id").order_by("name", "id").values_list("id", "name")
    return [(int(i), str(n)) for i, n in rows]


async def order_audit(actor: Actor, order_id: int) -> list[AuditEntry]:
    """The order's audit trail, oldest first (NotFound outside scope, via get_order)."""
    await ordering.get_order(actor, order_id)
    return await _audit("order", order_id)


async def statement_audit(actor: Actor, statement_id: int) -> list[AuditEntry]:
    """The statement's confirmations, disputes and resolutions (NotFound outside scope)."""
    await statements.get_statement(actor, statement_id)
    return await _audit("statement", statement_id)


async def _audit(entity: str, entity_id: int) -> list[AuditEntry]:
    rows = await AuditLog.filter(entity=entity, entity_id=str(entity_id)).order_by("id")
    users = await _names(User, {r.actor_id for r in rows if r.actor_id}, "display_name")  # type: ignore[attr-defined]
    return [
        AuditEntry(
            action=r.action,
            actor_name=users.get(r.actor_id, "系统") if r.actor_id else "系统",  # type: ignore[attr-defined]
            after=r.after,
            created_at=r.created_at,
        )
        for r in rows
    ]


async def list_arbitrations(actor: Actor) -> list[ArbitrationOut]:
    """Pending leads in scope, each with the protected leads it collides with."""
    pending = await leads._visible(actor).filter(status=LeadStatus.PENDING_REVIEW).order_by("id").limit(100)
    at = now()
    found = {p.id: await leads._conflicts_of(p, at) for p in pending}
    every = [*pending, *(c for cs in found.values() for c in cs)]
    visible = set(
        await leads._visible(actor).filter(id__in=[x.id for x in every] or [0]).values_list("id", flat=True)
    )
    owners = await _names(User, {x.owner_id for x in every}, "display_name")  # type: ignore[attr-defined]
    dists = await _names(Distributor, {x.distributor_id for x in every if x.distributor_id})  # type: ignore[attr-defined]
    out = []
    for p in pending:
        conflicts = [
            ConflictOut(
                region=c.region,
                lead=LeadOut.of(c) if c.id in visible else None,
                owner_name=owners.get(c.owner_id, "") if c.id in visible else "",  # type: ignore[attr-defined]
            )
            for c in found[p.id]
        ]
        out.append(
            ArbitrationOut(
                lead=LeadOut.of(p),
                owner_name=owners.get(p.owner_id, ""),  # type: ignore[attr-defined]
                distributor_name=dists.get(p.distributor_id, "") if p.distributor_id else "",  # type: ignore[attr-defined]
                conflicts=conflicts,
            )
        )
    return out


async def _names(model: Any, ids: set[int], field: str = "name") -> dict[int, str]:
    if not ids:
        return {}
    return dict(await model.filter(id__in=sorted(ids)).values_list("id", field))
