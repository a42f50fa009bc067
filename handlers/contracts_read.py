"""Contracts as their parties see them (`GET /contracts`, chat 合同): the contracts of the
distributors in the caller's scope — a distributor user its own (and its 二级 children's if it
is 一级), a rep its assigned distributors', a manager its regions', an admin all. Anything
else is 404. Writes are the admin API's (`handlers.admin_contracts`)."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from core.clock import today
from core.errors import NotFound
from core.schema import Money, Out, Page, PageQuery
from handlers.actor import Actor
from handlers.scope import access, scoped
from models.base import ContractStatus
from models.contract import Contract


class ContractsQuery(PageQuery):
    status: Literal["draft", "active", "expired", "terminated"] | None = Field(None)


class ContractBrief(Out):
    id: int
    number: str
    distributor_id: int
    distributor_name: str
    start_date: date
    end_date: date
    status: str
    target_amount: Money | None
    price_policy: str | None
    days_left: int


def _brief(c: Contract, day: date) -> ContractBrief:
    return ContractBrief(
        id=c.id,
        number=c.number,
        distributor_id=c.distributor_id,  # type: ignore[attr-defined]
        distributor_name=c.distributor.name,
        start_date=c.start_date,
        end_date=c.end_date,
        status=str(c.status),
        target_amount=c.target_amount,
        price_policy=c.price_policy,
        days_left=(c.end_date - day).days,
    )


async def list_contracts(
    actor: Actor,
    *,
    status: str | None = None,
    in_force: bool = False,
    page: int = 1,
    page_size: int = 20,
) -> Page[ContractBrief]:
    """Contracts of distributors in scope. `in_force` (chat): only draft/active ones, soonest
    end first; otherwise every status (or `status`), the latest end date first."""
    qs = scoped(Contract.all(), actor)
    if in_force:
        qs = qs.filter(status__in=[ContractStatus.DRAFT, ContractStatus.ACTIVE]).order_by("end_date", "id")
    else:
        qs = qs.order_by("-end_date", "-id")
    if status:
        qs = qs.filter(status=ContractStatus(status))
    total = await qs.count()
    rows = await qs.offset((page - 1) * page_size).limit(page_size).select_related("distributor")
    day = today()
    return Page[ContractBrief](
        items=[_brief(c, day) for c in rows], total=total, page=page, page_size=page_size
    )


async def get_contract(actor: Actor, contract_id: int) -> ContractBrief:
    try:
        c = await access(Contract.all().select_related("distributor"), actor, contract_id)
    except NotFound:
        raise NotFound("合同不存在") from None
    return _brief(c, today())
