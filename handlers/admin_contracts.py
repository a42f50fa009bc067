"""Contract administration: a distributor's contracts with dates and targets. Created active
(or as a draft); renewed by moving `end_date`; ended early with /terminate."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, model_validator
from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from core.errors import InvalidState, ValidationError
from core.schema import Day, Id, In, Money, Out, Page
from handlers.actor import Actor
from handlers.admin_common import (
    MULTILINE,
    NO_CTRL,
    ListQuery,
    MoneyIn,
    duplicate,
    get_or_404,
    page_of,
    staff_distributor,
    staff_distributor_ids,
)
from handlers.audit import record, snapshot
from models.base import ContractStatus
from models.contract import Contract

Number = Annotated[str, Field(min_length=1, pattern=NO_CTRL, max_length=64)]
FIELDS = ["distributor_id", "number", "start_date", "end_date", "target_amount", "price_policy", "status"]


class ContractIn(In):
    distributor_id: Id
    number: Number
    start_date: Day
    end_date: Day
    target_amount: MoneyIn | None = None
    price_policy: Annotated[str, Field(pattern=MULTILINE, max_length=2000)] | None = None
    status: Literal["draft", "active"] = "active"

    @model_validator(mode="after")
    def _dates(self) -> ContractIn:
        if self.end_date < self.start_date:
            raise ValueError("结束日期不能早于开始日期")
        return self


class ContractPatch(In):
    number: Number | None = None
    start_date: Day | None = None
    end_date: Day | None = None
    target_amount: MoneyIn | None = None
    price_policy: Annotated[str, Field(pattern=MULTILINE, max_length=2000)] | None = None
    status: Literal["draft", "active"] | None = None


class ContractQuery(ListQuery):
    distributor_id: Id | None = None
    status: Literal["draft", "active", "expired", "terminated"] | None = None
    ends_before: Day | None = None


class AdminContractOut(Out):
    id: int
    distributor_id: int
    number: str
    start_date: date
    end_date: date
    target_amount: Money | None
    price_policy: str | None
    status: str
    created_at: datetime


def contract_out(c: Contract) -> AdminContractOut:
    return AdminContractOut(
        id=c.id,
        distributor_id=c.distributor_id,  # type: ignore[attr-defined]
        number=c.number,
        start_date=c.start_date,
        end_date=c.end_date,
        target_amount=Decimal(c.target_amount) if c.target_amount is not None else None,
        price_policy=c.price_policy,
        status=str(c.status),
        created_at=c.created_at,
    )


async def _many(rows: list[Contract]) -> list[AdminContractOut]:
    return [contract_out(c) for c in rows]


async def staff_contracts(actor: Actor) -> QuerySet[Contract]:
    ids = await staff_distributor_ids(actor)
    return Contract.all() if ids is None else Contract.filter(distributor_id__in=ids)


async def create_contract(actor: Actor, data: ContractIn) -> AdminContractOut:
    await staff_distributor(actor, data.distributor_id)
    values = data.model_dump()
    values["status"] = ContractStatus(data.status)
    try:
        async with in_transaction():
            c = await Contract.create(**values)
            await record(actor, "contract.create", "contract", c.id, after=snapshot(c, FIELDS))
    except IntegrityError:
        raise duplicate("number", data.number) from None
    return contract_out(c)


async def get_contract(actor: Actor, contract_id: int) -> AdminContractOut:
    return contract_out(await get_or_404(await staff_contracts(actor), contract_id, "contract"))


async def list_contracts(
    actor: Actor, query: ContractQuery, *, export: bool = False
) -> Page[AdminContractOut]:
    qs = await staff_contracts(actor)
    if query.distributor_id:
        qs = qs.filter(distributor_id=query.distributor_id)
    if query.status:
        qs = qs.filter(status=query.status)
    if query.ends_before:
        qs = qs.filter(end_date__lt=query.ends_before)
    return await page_of(qs, query, _many, export=export)


async def update_contract(actor: Actor, contract_id: int, data: ContractPatch) -> AdminContractOut:
    changes = data.model_dump(exclude_unset=True)
    if any(changes.get(k, 0) is None for k in ("number", "start_date", "end_date", "status")):
        raise ValidationError("合同编号、日期和状态不能为空")
    try:
        async with in_transaction():
            c = await get_or_404((await staff_contracts(actor)).select_for_update(), contract_id, "contract")
            if c.status == ContractStatus.TERMINATED:
                raise InvalidState("该合同已终止")
            before = snapshot(c, FIELDS)
            if "status" in changes:
                changes["status"] = ContractStatus(changes["status"])
            c.update_from_dict(changes)
            if c.end_date < c.start_date:
                raise ValidationError("end_date: 结束日期不能早于开始日期", {"field": "end_date"})
            if "end_date" in changes and c.status == ContractStatus.EXPIRED and c.end_date >= _today():
                c.status = ContractStatus.ACTIVE  # renewed
            await c.save()
            await record(actor, "contract.update", "contract", c.id, before=before, after=snapshot(c, FIELDS))
    except IntegrityError:
        raise duplicate("number", changes.get("number")) from None
    return contract_out(c)


async def terminate_contract(actor: Actor, contract_id: int) -> AdminContractOut:
    async with in_transaction():
        c = await get_or_404((await staff_contracts(actor)).select_for_update(), contract_id, "contract")
        if c.status != ContractStatus.TERMINATED:
            before = snapshot(c, FIELDS)
            c.status = ContractStatus.TERMINATED
            await c.save(update_fields=["status", "updated_at"])
            await record(
                actor, "contract.terminate", "contract", c.id, before=before, after=snapshot(c, FIELDS)
            )
    return contract_out(c)


def _today() -> date:
    from core.clock import today

    return today()
