"""Distributor administration: create (status "applying"), read, update, list, activate,
suspend. A manager works only inside its regions; everything else is 404 to it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from core.errors import InvalidState, NotFound, ValidationError
from core.schema import Id, In, Money, Out, Page
from handlers.actor import Actor
from handlers.admin_common import (
    NO_CTRL,
    ListQuery,
    MoneyIn,
    Region,
    duplicate,
    get_or_404,
    invalid,
    manager_regions,
    page_of,
    require_region,
    staff_distributors,
)
from handlers.admin_users import staff_users
from handlers.audit import record, snapshot
from handlers.auth import refresh_user_scope, revoke_user_tokens
from handlers.uscc import is_valid_uscc, normalize_uscc
from models.base import DistributorStatus, UserRole, UserStatus
from models.distributor import Distributor
from models.user import SalesAssignment, User

Terms = Literal["prepay", "monthly", "quarterly"]
FIELDS = [
    "name",
    "uscc",
    "level",
    "region",
    "parent_id",
    "sales_rep_id",
    "credit_limit",
    "payment_terms",
    "status",
    "contact",
    "phone",
    "address",
]


def _uscc(value: str) -> str:
    code = normalize_uscc(value)
    if not is_valid_uscc(code):
        raise invalid("不是有效的统一社会信用代码（应为 18 位，且校验位正确）")
    return code


class DistributorIn(In):
    name: str = Field(min_length=1, pattern=NO_CTRL, max_length=200)
    uscc: str = Field(min_length=18, max_length=18, pattern=NO_CTRL)
    level: Literal[1, 2]
    region: Region
    parent_id: Id | None = None
    sales_rep_id: Id | None = None
    credit_limit: MoneyIn = Decimal("0.00")
    payment_terms: Terms = "prepay"
    contact: Annotated[str, Field(pattern=NO_CTRL, max_length=64)] | None = None
    phone: Annotated[str, Field(pattern=NO_CTRL, max_length=32)] | None = None
    address: Annotated[str, Field(pattern=NO_CTRL, max_length=255)] | None = None

    @field_validator("uscc")
    @classmethod
    def _check_uscc(cls, v: str) -> str:
        return _uscc(v)


class DistributorPatch(In):
    """Level and status are not patched: status changes through /activate and /suspend."""

    name: str | None = Field(None, min_length=1, pattern=NO_CTRL, max_length=200)
    uscc: str | None = Field(None, min_length=18, max_length=18, pattern=NO_CTRL)
    region: Region | None = None
    parent_id: Id | None = None
    sales_rep_id: Id | None = None
    credit_limit: MoneyIn | None = None
    payment_terms: Terms | None = None
    contact: Annotated[str, Field(pattern=NO_CTRL, max_length=64)] | None = None
    phone: Annotated[str, Field(pattern=NO_CTRL, max_length=32)] | None = None
    address: Annotated[str, Field(pattern=NO_CTRL, max_length=255)] | None = None

    @field_validator("uscc")
    @classmethod
    def _check_uscc(cls, v: str | None) -> str | None:
        return None if v is None else _uscc(v)


class DistributorQuery(ListQuery):
    q: str | None = Field(None, max_length=100, description="name or USCC contains")
    region: str | None = Field(None, max_length=64)
    level: Literal[1, 2] | None = None
    status: Literal["applying", "active", "suspended"] | None = None
    parent_id: Id | None = None


class DistributorOut(Out):
    id: int
    name: str
    uscc: str
    level: int
    region: str
    parent_id: int | None
    sales_rep_id: int | None
    credit_limit: Money
    payment_terms: str
    status: str
    contact: str | None
    phone: str | None
    address: str | None
    created_at: datetime
    updated_at: datetime


def distributor_out(d: Distributor) -> DistributorOut:
    return DistributorOut(
        id=d.id,
        name=d.name,
        uscc=d.uscc,
        level=d.level,
        region=d.region,
        parent_id=d.parent_id,  # type: ignore[attr-defined]
        sales_rep_id=d.sales_rep_id,  # type: ignore[attr-defined]
        credit_limit=d.credit_limit,
        payment_terms=str(d.payment_terms),
        status=str(d.status),
        contact=d.contact,
        phone=d.phone,
        address=d.address,
        created_at=d.created_at,
        updated_at=d.updated_at,
    )


async def _many(rows: list[Distributor]) -> list[DistributorOut]:
    return [distributor_out(d) for d in rows]


async def _check_links(
    actor: Actor, level: int, region: str, parent_id: int | None, rep_id: int | None
) -> None:
    """A 二级 needs a 一级 parent in the same region that the caller may manage; a 一级 has
    no parent. The rep must be a sales user."""
    if level == 1 and parent_id is not None:
        raise ValidationError("parent_id: 一级经销商没有上级", {"field": "parent_id"})
    if level == 2:
        if parent_id is None:
            raise ValidationError("parent_id: 二级经销商须指定一级经销商作为上级", {"field": "parent_id"})
        parent = await staff_distributors(actor).get_or_none(id=parent_id)
        if parent is None:
            raise NotFound("未找到该上级经销商", {"field": "parent_id"})
        if parent.level != 1:
            raise ValidationError("parent_id: 上级必须是一级经销商", {"field": "parent_id"})
        if parent.region != region:
            raise ValidationError("parent_id: 上级必须在同一区域", {"field": "parent_id"})
    if rep_id is not None:
        # Naming a rep widens its scope, so a manager names only users it can see
        # (reps of its regions); others are not found, like any object outside its scope.
        rep = await (await staff_users(actor)).get_or_none(id=rep_id)
        if rep is None and manager_regions(actor) is not None:
            raise NotFound("未找到该业务员", {"field": "sales_rep_id"})
        if rep is None or rep.role != UserRole.SALES:
            raise ValidationError("sales_rep_id: 没有这个业务员", {"field": "sales_rep_id"})


async def _affected_users(d: Distributor, extra_reps: list[int | None] = ()) -> list[int]:  # type: ignore[assignment]
    """Users whose cached scope includes (or should include) this distributor."""
    managers = [u.id for u in await User.filter(role=UserRole.MANAGER) if d.region in (u.regions or [])]
    ids = set(managers)
    if d.parent_id:  # type: ignore[attr-defined]
        ids |= set(await User.filter(distributor_id=d.parent_id).values_list("id", flat=True))  # type: ignore[attr-defined]
    ids |= set(await SalesAssignment.filter(distributor_id=d.id).values_list("user_id", flat=True))
    ids |= {r for r in [d.sales_rep_id, *extra_reps] if r}  # type: ignore[attr-defined]
    return sorted(ids)


async def create_distributor(actor: Actor, data: DistributorIn) -> DistributorOut:
    require_region(actor, data.region)
    await _check_links(actor, data.level, data.region, data.parent_id, data.sales_rep_id)
    values: dict[str, Any] = data.model_dump()
    try:
        async with in_transaction():
            d = await Distributor.create(**values, status=DistributorStatus.APPLYING)
            await record(actor, "distributor.create", "distributor", d.id, after=snapshot(d, FIELDS))
    except IntegrityError:
        raise duplicate("uscc", data.uscc) from None
    await refresh_user_scope(await _affected_users(d))
    return distributor_out(d)


async def get_distributor(actor: Actor, distributor_id: int) -> DistributorOut:
    return distributor_out(await get_or_404(staff_distributors(actor), distributor_id, "distributor"))


async def list_distributors(
    actor: Actor, query: DistributorQuery, *, export: bool = False
) -> Page[DistributorOut]:
    qs = staff_distributors(actor)
    if query.q:
        qs = qs.filter(Q(name__icontains=query.q) | Q(uscc__icontains=query.q.upper()))
    for name in ("region", "level", "status", "parent_id"):
        value = getattr(query, name)
        if value is not None:
            qs = qs.filter(**{name: value})
    return await page_of(qs, query, _many, export=export)


async def update_distributor(actor: Actor, distributor_id: int, data: DistributorPatch) -> DistributorOut:
    changes = data.model_dump(exclude_unset=True)
    if any(changes.get(k, 0) is None for k in ("name", "uscc", "region", "credit_limit", "payment_terms")):
        raise ValidationError("名称、统一社会信用代码、区域、信用额度和结算方式不能为空")
    try:
        async with in_transaction():
            d = await get_or_404(staff_distributors(actor).select_for_update(), distributor_id, "distributor")
            before = snapshot(d, FIELDS)
            region = changes.get("region", d.region)
            require_region(actor, region)
            parent_id = changes.get("parent_id", d.parent_id)  # type: ignore[attr-defined]
            rep_id = changes.get("sales_rep_id", d.sales_rep_id)  # type: ignore[attr-defined]
            if "region" in changes or "parent_id" in changes or "sales_rep_id" in changes:
                await _check_links(actor, d.level, region, parent_id, rep_id)
            if "region" in changes and d.level == 1 and region != d.region:
                if await Distributor.filter(parent_id=d.id).exclude(region=region).exists():
                    raise ValidationError("region: 请先把下属二级经销商调到新区域", {"field": "region"})
            old_affected = await _affected_users(d)
            d.update_from_dict(changes)
            await d.save()
            await record(
                actor, "distributor.update", "distributor", d.id, before=before, after=snapshot(d, FIELDS)
            )
    except IntegrityError:
        raise duplicate("uscc", changes.get("uscc")) from None
    await refresh_user_scope(sorted(set(old_affected) | set(await _affected_users(d))))
    return distributor_out(d)


_STATUS_WORDS = {"applying": "正在申请中", "active": "已启用", "suspended": "已停用"}
_TARGET_WORDS = {DistributorStatus.ACTIVE: "启用", DistributorStatus.SUSPENDED: "停用"}


async def _set_status(
    actor: Actor, distributor_id: int, target: DistributorStatus, allowed: set[str]
) -> Distributor:
    async with in_transaction():
        d = await get_or_404(staff_distributors(actor).select_for_update(), distributor_id, "distributor")
        if str(d.status) == target:
            return d  # idempotent
        if str(d.status) not in allowed:
            now = _STATUS_WORDS.get(str(d.status), str(d.status))
            raise InvalidState(f"经销商{now}，不能{_TARGET_WORDS[target]}")
        before = snapshot(d, FIELDS)
        d.status = target
        await d.save(update_fields=["status", "updated_at"])
        verb = "activate" if target == DistributorStatus.ACTIVE else "suspend"
        await record(
            actor, f"distributor.{verb}", "distributor", d.id, before=before, after=snapshot(d, FIELDS)
        )
    return d


async def activate_distributor(actor: Actor, distributor_id: int) -> DistributorOut:
    d = await _set_status(actor, distributor_id, DistributorStatus.ACTIVE, {"applying", "suspended"})
    return distributor_out(d)


async def suspend_distributor(actor: Actor, distributor_id: int) -> DistributorOut:
    """Suspend and end every session of the distributor's users at once."""
    d = await _set_status(actor, distributor_id, DistributorStatus.SUSPENDED, {"applying", "active"})
    users = await User.filter(distributor_id=d.id, status=UserStatus.ACTIVE).values_list("id", flat=True)
    await revoke_user_tokens(list(users))
    return distributor_out(d)


__all__ = [
    "activate_distributor",
    "create_distributor",
    "get_distributor",
    "list_distributors",
    "suspend_distributor",
    "update_distributor",
]
