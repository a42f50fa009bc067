"""Shared pieces of the admin use-cases: money input, staff scope (admin = all, manager = its
regions), paging and `?format=xlsx` exports, unique-key errors."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError
from tortoise.models import Model
from tortoise.queryset import QuerySet

from core.errors import Forbidden, NotFound, ValidationError
from core.money import money
from core.schema import MAX_ID, Page, PageQuery
from handlers.actor import Actor, Role
from models.distributor import Distributor
from models.product import Product
from models.stock import Warehouse
from models.user import User

M = TypeVar("M", bound=Model)
T = TypeVar("T")

EXPORT_MAX = 50_000  # rows in one ?format=xlsx export
NO_CTRL = r"^[^\x00-\x1f\x7f]*$"  # names, codes: no control characters (they break exports)
MULTILINE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"  # free text: newlines and tabs allowed
MONEY_RE = re.compile(r"^\d{1,12}(\.\d{1,2})?$")
MONEY_MAX = Decimal("999999999999.99")


def invalid(message: str) -> PydanticCustomError:
    """For validators: a value_error whose message users read as is (a plain ValueError's
    reaches them prefixed with pydantic's English "Value error, "). No braces in `message`."""
    return PydanticCustomError("value_error", message)


def _money_in(value: Any) -> Decimal:
    """Money in: a string like "100000.00" or an integer; never a float (cents already lost),
    never negative, at most two decimals."""
    if isinstance(value, bool) or isinstance(value, float):
        raise invalid('金额请用字符串（如 "1234.50"）或整数，不能用小数类型')
    if isinstance(value, int):
        if not 0 <= value <= int(MONEY_MAX):
            raise invalid("金额超出范围")
        return money(value)
    if isinstance(value, Decimal):
        value = str(value)
    if not isinstance(value, str) or not MONEY_RE.match(value.strip()):
        raise invalid('金额格式应如 "1234.50"：不能为负数，最多两位小数')
    try:
        return money(value.strip())
    except (ValueError, InvalidOperation):
        raise invalid("不是有效的金额") from None


MoneyIn = Annotated[
    Decimal,
    BeforeValidator(_money_in),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": MONEY_RE.pattern, "examples": ["100000.00"]},
                {"type": "integer", "minimum": 0, "maximum": int(MONEY_MAX)},
            ]
        },
        mode="validation",
    ),
]

Name = Annotated[str, Field(min_length=1, pattern=NO_CTRL, max_length=100)]
Region = Annotated[str, Field(min_length=1, pattern=NO_CTRL, max_length=64)]


class ListQuery(PageQuery):
    format: Literal["json", "xlsx"] = "json"


# --- scope ------------------------------------------------------------------------------------------


def require_staff(actor: Actor) -> None:
    if actor.role not in (Role.admin, Role.manager):
        raise Forbidden("只有管理员和区域经理可以操作")


def require_admin(actor: Actor) -> None:
    if actor.role != Role.admin:
        raise Forbidden("只有管理员可以操作")


def manager_regions(actor: Actor) -> list[str] | None:
    """None = every region (admin); else the manager's regions."""
    require_staff(actor)
    return None if actor.role == Role.admin else sorted(actor.regions or [])


def in_regions(actor: Actor, region: str | None) -> bool:
    regions = manager_regions(actor)
    return regions is None or (region is not None and region in regions)


def require_region(actor: Actor, region: str | None) -> None:
    """A manager may only write inside its regions (out of them: 404, like any unseen object)."""
    if not in_regions(actor, region):
        raise NotFound("该区域不在您的管辖范围内", {"field": "region"})


def staff_distributors(actor: Actor) -> QuerySet[Distributor]:
    regions = manager_regions(actor)
    qs = Distributor.all()
    return qs if regions is None else qs.filter(region__in=regions)


async def staff_distributor(
    actor: Actor, distributor_id: int | None, field: str = "distributor_id"
) -> Distributor:
    """A distributor the admin/manager may manage, else NotFound."""
    if distributor_id is None:
        raise ValidationError(f"{field}: 必填", {"field": field})
    dist = await staff_distributors(actor).get_or_none(id=distributor_id)
    if dist is None:
        raise NotFound("未找到该经销商", {"field": field})
    return dist


async def staff_distributor_ids(actor: Actor) -> list[int] | None:
    if manager_regions(actor) is None:
        return None
    return list(await staff_distributors(actor).values_list("id", flat=True))


# What get_or_404 callers name the object (code words) -> the word users read.
_WHAT = {
    "object": "记录",
    "product": "商品",
    "price list": "价格表",
    "promotion": "促销活动",
    "distributor": "经销商",
    "warehouse": "仓库",
    "alert rule": "预警规则",
    "user": "用户",
    "contract": "合同",
}


def not_found(what: str) -> NotFound:
    """ "未找到该商品" for `what` = "product" (or a Chinese noun as is)."""
    return NotFound(f"未找到该{_WHAT.get(what, what)}")


async def get_or_404(qs: QuerySet[M], obj_id: int | str, what: str = "object") -> M:
    try:
        pk = int(obj_id)
    except (TypeError, ValueError):
        raise not_found(what) from None
    if not 1 <= pk <= MAX_ID:  # a 40-digit id is simply not there (and would overflow the driver)
        raise not_found(what)
    obj = await qs.get_or_none(id=pk)
    if obj is None:
        raise not_found(what)
    return obj


# --- lists ------------------------------------------------------------------------------------------


async def page_of(
    qs: QuerySet[M],
    query: PageQuery,
    convert: Callable[[list[M]], Awaitable[Sequence[T]]],
    *,
    export: bool = False,
) -> Page[T]:
    """One page of `qs` (ordered by id), or every row (up to EXPORT_MAX) when exporting."""
    qs = qs.order_by("id")
    if export:
        rows = await qs.limit(EXPORT_MAX)
        items = list(await convert(rows))
        return Page[Any](items=items, total=len(items), page=1, page_size=len(items) or 1)
    total = await qs.count()
    rows = await qs.offset((query.page - 1) * query.page_size).limit(query.page_size)
    return Page[Any](items=list(await convert(rows)), total=total, page=query.page, page_size=query.page_size)


# An id column -> the column with its name, placed right after it in exports.
_NAMED_IDS: dict[str, tuple[str, str]] = {
    "parent_id": ("parent_name", "distributor"),
    "distributor_id": ("distributor_name", "distributor"),
    "distributor_ids": ("distributor_names", "distributor"),
    "sales_rep_id": ("sales_rep_name", "user"),
    "user_id": ("user_name", "user"),
    "product_id": ("product_name", "product"),
    "warehouse_id": ("warehouse_name", "warehouse"),
}


async def _names_of(kind: str, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    model, field = {
        "distributor": (Distributor, "name"),
        "user": (User, "display_name"),
        "product": (Product, "name"),
        "warehouse": (Warehouse, "name"),
    }[kind]
    out: dict[int, str] = {}
    ordered = sorted(ids)
    for i in range(0, len(ordered), 500):
        rows = await model.filter(id__in=ordered[i : i + 500]).values_list("id", field)
        out.update({int(k): str(v) for k, v in rows})
    return out


async def with_names(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Export rows with a name next to every id they cite (distributor_id -> distributor_name,
    sales_rep_id -> sales_rep_name, ...): one query per kind of object for all the rows."""
    wanted: dict[str, set[int]] = {}
    for row in rows:
        for col, (name_col, kind) in _NAMED_IDS.items():
            if col not in row or name_col in row:
                continue
            ids = row[col] if isinstance(row[col], list) else [row[col]]
            wanted.setdefault(kind, set()).update(int(i) for i in ids if i is not None)
    names = {kind: await _names_of(kind, ids) for kind, ids in wanted.items()}
    out = []
    for row in rows:
        named: dict[str, Any] = {}
        for col, v in row.items():
            named[col] = v
            spec = _NAMED_IDS.get(col)
            if spec is None or spec[0] in row:
                continue
            name_col, kind = spec
            if isinstance(v, list):
                named[name_col] = "、".join(names[kind].get(int(i), "") for i in v)
            else:
                named[name_col] = None if v is None else names[kind].get(int(v))
        out.append(named)
    return out


def duplicate(field: str, value: Any) -> ValidationError:
    return ValidationError(f"{field}: “{value}”已存在", {"field": field})


def changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in after.items() if before.get(k) != v}
