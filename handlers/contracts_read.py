"""Contracts as their parties see them (chat 合同, and any read-only view): the distributors
in the caller's scope, soonest end first."""

from __future__ import annotations

from datetime import date

from core.clock import today
from core.schema import Money, Out
from handlers.actor import Actor
from handlers.scope import scoped
from models.base import ContractStatus
from models.contract import Contract


class ContractBrief(Out):
    id: int
    number: str
    distributor_id: int
    distributor_name: str
    start_date: date
    end_date: date
    status: str
    target_amount: Money | None
    days_left: int


async def list_contracts(
    actor: Actor, *, include_ended: bool = False, limit: int = 20
) -> list[ContractBrief]:
    """Contracts of distributors in scope; by default only those not ended (draft/active)."""
    qs = scoped(Contract.all(), actor)
    if not include_ended:
        qs = qs.filter(status__in=[ContractStatus.DRAFT, ContractStatus.ACTIVE])
    rows = await qs.order_by("end_date", "id").limit(limit).select_related("distributor")
    day = today()
    return [
        ContractBrief(
            id=c.id,
            number=c.number,
            distributor_id=c.distributor_id,  # type: ignore[attr-defined]
            distributor_name=c.distributor.name,
            start_date=c.start_date,
            end_date=c.end_date,
            status=str(c.status),
            target_amount=c.target_amount,
            days_left=(c.end_date - day).days,
        )
        for c in rows
    ]
