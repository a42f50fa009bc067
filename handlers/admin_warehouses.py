"""Warehouse administration: company warehouses (no distributor) and distributor-owned ones.
A manager manages warehouses in its regions or owned by its distributors."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from core.errors import ValidationError
from core.schema import Id, In, Out, Page
from handlers.actor import Actor
from handlers.admin_common import (
    ListQuery,
    Name,
    Region,
    duplicate,
    get_or_404,
    page_of,
    require_region,
    staff_distributor,
    staff_distributor_ids,
)
from handlers.audit import record, snapshot
from models.stock import Warehouse

Code = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
FIELDS = ["code", "name", "region", "distributor_id", "active"]


class WarehouseIn(In):
    code: Code
    name: Name
    region: Region
    distributor_id: Id | None = None


class WarehousePatch(In):
    name: Name | None = None
    active: bool | None = None


class WarehouseQuery(ListQuery):
    region: str | None = Field(None, max_length=64)
    distributor_id: Id | None = None
    company: bool | None = Field(None, description="true: company warehouses only; false: distributors' only")


class WarehouseOut(Out):
    id: int
    code: str
    name: str
    region: str
    distributor_id: int | None
    active: bool
    created_at: datetime


def warehouse_out(w: Warehouse) -> WarehouseOut:
    return WarehouseOut(
        id=w.id,
        code=w.code,
        name=w.name,
        region=w.region,
        distributor_id=w.distributor_id,  # type: ignore[attr-defined]
        active=w.active,
        created_at=w.created_at,
    )


async def _many(rows: list[Warehouse]) -> list[WarehouseOut]:
    return [warehouse_out(w) for w in rows]


async def staff_warehouses(actor: Actor) -> QuerySet[Warehouse]:
    ids = await staff_distributor_ids(actor)
    if ids is None:
        return Warehouse.all()
    return Warehouse.filter(Q(region__in=sorted(actor.regions or [])) | Q(distributor_id__in=ids))


async def create_warehouse(actor: Actor, data: WarehouseIn) -> WarehouseOut:
    require_region(actor, data.region)
    if data.distributor_id is not None:
        await staff_distributor(actor, data.distributor_id)
    try:
        async with in_transaction():
            w = await Warehouse.create(**data.model_dump())
            await record(actor, "warehouse.create", "warehouse", w.id, after=snapshot(w, FIELDS))
    except IntegrityError:
        raise duplicate("code", data.code) from None
    return warehouse_out(w)


async def get_warehouse(actor: Actor, warehouse_id: int) -> WarehouseOut:
    return warehouse_out(await get_or_404(await staff_warehouses(actor), warehouse_id, "warehouse"))


async def list_warehouses(actor: Actor, query: WarehouseQuery, *, export: bool = False) -> Page[WarehouseOut]:
    qs = await staff_warehouses(actor)
    if query.region:
        qs = qs.filter(region=query.region)
    if query.distributor_id:
        qs = qs.filter(distributor_id=query.distributor_id)
    if query.company is not None:
        qs = qs.filter(distributor_id__isnull=query.company)
    return await page_of(qs, query, _many, export=export)


async def update_warehouse(actor: Actor, warehouse_id: int, data: WarehousePatch) -> WarehouseOut:
    changes = data.model_dump(exclude_unset=True)
    if any(v is None for v in changes.values()):
        raise ValidationError("名称和启用状态不能为空")
    async with in_transaction():
        w = await get_or_404((await staff_warehouses(actor)).select_for_update(), warehouse_id, "warehouse")
        before = snapshot(w, FIELDS)
        w.update_from_dict(changes)
        await w.save()
        await record(actor, "warehouse.update", "warehouse", w.id, before=before, after=snapshot(w, FIELDS))
    return warehouse_out(w)
