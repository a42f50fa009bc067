"""Catalogue administration: products (admin writes; pinyin and initials computed), price
lists and promotions (a manager only for its regions; lists without a region are admin's)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from core.errors import ValidationError
from core.schema import Day, In, Money, Out, Page
from handlers.actor import Actor
from handlers.admin_common import (
    NO_CTRL,
    ListQuery,
    MoneyIn,
    Name,
    Region,
    duplicate,
    get_or_404,
    invalid,
    manager_regions,
    page_of,
    require_admin,
    require_region,
)
from handlers.audit import record, snapshot
from handlers.product_match import catalogue_changed
from handlers.text import pinyin_of
from models.base import ProductStatus, PromotionKind
from models.product import PriceList, PriceListItem, Product, Promotion

Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/#+-]*$")]
PRODUCT_FIELDS = ["sku", "name", "pinyin", "initials", "category", "unit", "status", "spec"]

# --- products -----------------------------------------------------------------------------------------


class ProductIn(In):
    sku: Sku
    name: str = Field(min_length=1, pattern=NO_CTRL, max_length=200)
    category: str = Field(min_length=1, pattern=NO_CTRL, max_length=64)
    unit: str = Field(min_length=1, pattern=NO_CTRL, max_length=16)
    spec: Annotated[str, Field(pattern=NO_CTRL, max_length=200)] | None = None


class ProductPatch(In):
    name: str | None = Field(None, min_length=1, pattern=NO_CTRL, max_length=200)
    category: str | None = Field(None, min_length=1, pattern=NO_CTRL, max_length=64)
    unit: str | None = Field(None, min_length=1, pattern=NO_CTRL, max_length=16)
    spec: Annotated[str, Field(pattern=NO_CTRL, max_length=200)] | None = None
    status: Literal["active", "inactive"] | None = None


class ProductQuery(ListQuery):
    q: str | None = Field(None, max_length=100, description="SKU, name or pinyin contains")
    category: str | None = Field(None, max_length=64)
    status: Literal["active", "inactive"] | None = None


class AdminProductOut(Out):
    id: int
    sku: str
    name: str
    pinyin: str
    initials: str
    category: str
    unit: str
    spec: str | None
    status: str
    created_at: datetime
    updated_at: datetime


def product_out(p: Product) -> AdminProductOut:
    return AdminProductOut(
        id=p.id,
        sku=p.sku,
        name=p.name,
        pinyin=p.pinyin,
        initials=p.initials,
        category=p.category,
        unit=p.unit,
        spec=p.spec,
        status=str(p.status),
        created_at=p.created_at,
        updated_at=p.updated_at,
    )


async def _products(rows: list[Product]) -> list[AdminProductOut]:
    return [product_out(p) for p in rows]


def product_values(sku: str, name: str, category: str, unit: str, spec: str | None = None) -> dict[str, Any]:
    full, initials = pinyin_of(name)
    return {
        "sku": sku,
        "name": name,
        "pinyin": full[:512],
        "initials": initials[:128],
        "category": category,
        "unit": unit,
        "spec": spec,
    }


async def create_product(actor: Actor, data: ProductIn) -> AdminProductOut:
    require_admin(actor)
    try:
        async with in_transaction():
            p = await Product.create(
                **product_values(data.sku, data.name, data.category, data.unit, data.spec)
            )
            await record(actor, "product.create", "product", p.id, after=snapshot(p, PRODUCT_FIELDS))
    except IntegrityError:
        raise duplicate("sku", data.sku) from None
    await catalogue_changed()  # committed (the save signal fired inside the transaction)
    return product_out(p)


async def get_product(actor: Actor, product_id: int) -> AdminProductOut:
    manager_regions(actor)  # staff only
    return product_out(await get_or_404(Product.all(), product_id, "product"))


async def list_products(actor: Actor, query: ProductQuery, *, export: bool = False) -> Page[AdminProductOut]:
    manager_regions(actor)
    qs = Product.all()
    if query.q:
        q = query.q.lower()
        qs = qs.filter(
            Q(sku__icontains=query.q)
            | Q(name__icontains=query.q)
            | Q(pinyin__contains=q)
            | Q(initials__contains=q)
        )
    if query.category:
        qs = qs.filter(category=query.category)
    if query.status:
        qs = qs.filter(status=query.status)
    return await page_of(qs, query, _products, export=export)


async def update_product(actor: Actor, product_id: int, data: ProductPatch) -> AdminProductOut:
    require_admin(actor)
    changes = data.model_dump(exclude_unset=True)
    if any(changes.get(k, "") is None for k in ("name", "category", "unit", "status")):
        raise ValidationError("名称、类别、单位和状态不能为空")
    async with in_transaction():
        p = await get_or_404(Product.select_for_update(), product_id, "product")
        before = snapshot(p, PRODUCT_FIELDS)
        if "name" in changes:
            full, initials = pinyin_of(changes["name"])
            changes.update(pinyin=full[:512], initials=initials[:128])
        if "status" in changes:
            changes["status"] = ProductStatus(changes["status"])
        p.update_from_dict(changes)
        await p.save()
        await record(
            actor, "product.update", "product", p.id, before=before, after=snapshot(p, PRODUCT_FIELDS)
        )
    await catalogue_changed()  # committed (the save signal fired inside the transaction)
    return product_out(p)


# --- price lists ------------------------------------------------------------------------------------


class PriceItemIn(In):
    sku: Sku
    price: MoneyIn


class PriceListIn(In):
    name: Name
    level: Literal[1, 2] | None = None
    region: Region | None = None
    valid_from: Day
    valid_to: Day | None = None
    priority: int = Field(0, ge=-1000, le=1000)
    items: list[PriceItemIn] = Field(min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def _dates_and_skus(self) -> PriceListIn:
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise invalid("失效日期（valid_to）早于生效日期（valid_from）")
        skus = [i.sku for i in self.items]
        if len(set(skus)) != len(skus):
            raise invalid("items: 同一商品编码出现了两次")
        return self


class PriceListPatch(In):
    name: Name | None = None
    valid_to: Day | None = None
    priority: int | None = Field(None, ge=-1000, le=1000)
    items: list[PriceItemIn] | None = Field(None, min_length=1, max_length=10_000)


class PriceListQuery(ListQuery):
    region: str | None = Field(None, max_length=64)
    level: Literal[1, 2] | None = None
    on: Day | None = Field(None, description="only lists valid on this day")


class PriceItemOut(Out):
    sku: str
    product_id: int
    price: Money


class PriceListOut(Out):
    id: int
    name: str
    level: int | None
    region: str | None
    valid_from: date
    valid_to: date | None
    priority: int
    items: list[PriceItemOut]
    created_at: datetime


PL_FIELDS = ["name", "level", "region", "valid_from", "valid_to", "priority"]


def _visible_lists(actor: Actor) -> QuerySet[PriceList]:
    """A manager reads lists of its regions and lists for every region (region NULL)."""
    regions = manager_regions(actor)
    qs = PriceList.all()
    return qs if regions is None else qs.filter(Q(region__in=regions) | Q(region__isnull=True))


def _writable_lists(actor: Actor) -> QuerySet[PriceList]:
    regions = manager_regions(actor)
    return PriceList.all() if regions is None else PriceList.filter(region__in=regions)


async def _products_by_sku(skus: list[str]) -> dict[str, int]:
    found = dict(await Product.filter(sku__in=skus).values_list("sku", "id"))
    missing = [s for s in skus if s not in found]
    if missing:
        more = "等" if len(missing) > 5 else ""
        message = f"商品编码不存在：{'、'.join(missing[:5])}{more}"
        raise ValidationError(message, {"field": "items", "skus": missing[:50]})
    return found  # type: ignore[return-value]


async def _items_out(lists: list[PriceList]) -> dict[int, list[PriceItemOut]]:
    out: dict[int, list[PriceItemOut]] = {pl.id: [] for pl in lists}
    rows = (
        await PriceListItem.filter(price_list_id__in=list(out))
        .order_by("price_list_id", "id")
        .values_list("price_list_id", "product_id", "product__sku", "price")
    )
    for pl_id, product_id, sku, price in rows:
        out[pl_id].append(PriceItemOut(sku=sku, product_id=product_id, price=Decimal(price)))
    return out


async def _price_lists(rows: list[PriceList]) -> list[PriceListOut]:
    items = await _items_out(rows)
    return [
        PriceListOut(
            id=pl.id,
            name=pl.name,
            level=pl.level,
            region=pl.region,
            valid_from=pl.valid_from,
            valid_to=pl.valid_to,
            priority=pl.priority,
            items=items[pl.id],
            created_at=pl.created_at,
        )
        for pl in rows
    ]


async def _write_items(pl: PriceList, items: list[PriceItemIn]) -> list[dict[str, str]]:
    ids = await _products_by_sku([i.sku for i in items])
    await PriceListItem.filter(price_list_id=pl.id).delete()
    await PriceListItem.bulk_create(
        [PriceListItem(price_list_id=pl.id, product_id=ids[i.sku], price=i.price) for i in items],
        batch_size=1000,
    )
    return [{"sku": i.sku, "price": str(i.price)} for i in items]


async def create_price_list(actor: Actor, data: PriceListIn) -> PriceListOut:
    if data.region is None:
        require_admin(actor)
    require_region(actor, data.region)
    async with in_transaction():
        values = data.model_dump(exclude={"items"})
        pl = await PriceList.create(**values)
        items = await _write_items(pl, data.items)
        await record(
            actor, "price_list.create", "price_list", pl.id, after={**snapshot(pl, PL_FIELDS), "items": items}
        )
    return (await _price_lists([pl]))[0]


async def get_price_list(actor: Actor, price_list_id: int) -> PriceListOut:
    pl = await get_or_404(_visible_lists(actor), price_list_id, "price list")
    return (await _price_lists([pl]))[0]


async def list_price_lists(
    actor: Actor, query: PriceListQuery, *, export: bool = False
) -> Page[PriceListOut]:
    qs = _visible_lists(actor)
    if query.region:
        qs = qs.filter(region=query.region)
    if query.level:
        qs = qs.filter(level=query.level)
    if query.on:
        qs = qs.filter(valid_from__lte=query.on).filter(Q(valid_to__isnull=True) | Q(valid_to__gte=query.on))
    return await page_of(qs, query, _price_lists, export=export)


async def update_price_list(actor: Actor, price_list_id: int, data: PriceListPatch) -> PriceListOut:
    changes = data.model_dump(exclude_unset=True, exclude={"items"})
    if changes.get("name", "") is None or changes.get("priority", 0) is None:
        raise ValidationError("名称和优先级不能为空")
    async with in_transaction():
        pl = await get_or_404(_writable_lists(actor).select_for_update(), price_list_id, "price list")
        before = snapshot(pl, PL_FIELDS)
        after: dict[str, Any] = {}
        if "valid_to" in changes and changes["valid_to"] is not None and changes["valid_to"] < pl.valid_from:
            raise ValidationError("失效日期（valid_to）早于生效日期（valid_from）", {"field": "valid_to"})
        pl.update_from_dict(changes)
        await pl.save()
        if data.items is not None:
            after["items"] = await _write_items(pl, data.items)
        await record(
            actor,
            "price_list.update",
            "price_list",
            pl.id,
            before=before,
            after={**snapshot(pl, PL_FIELDS), **after},
        )
    return (await _price_lists([pl]))[0]


# --- promotions -------------------------------------------------------------------------------------

Rate = Annotated[
    Decimal,
    Field(gt=0, le=1, max_digits=5, decimal_places=4, description='price multiplier: "0.95" = 5% off'),
]


class PromotionIn(In):
    name: Name
    kind: Literal["discount", "buy_n_get_m"]
    sku: Sku | None = None
    category: Annotated[str, Field(min_length=1, pattern=NO_CTRL, max_length=64)] | None = None
    level: Literal[1, 2] | None = None
    region: Region | None = None
    discount_rate: Rate | None = None
    buy_n: int | None = Field(None, ge=1, le=10_000)
    get_m: int | None = Field(None, ge=1, le=10_000)
    valid_from: Day
    valid_to: Day | None = None
    active: bool = True

    @model_validator(mode="after")
    def _kind_fields(self) -> PromotionIn:
        _check_promotion(self.kind, self.discount_rate, self.buy_n, self.get_m)
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise invalid("失效日期（valid_to）早于生效日期（valid_from）")
        if self.sku and self.category:
            raise invalid("商品编码和类别只能填一个")
        return self


def _check_promotion(kind: str, rate: Decimal | None, buy_n: int | None, get_m: int | None) -> None:
    if kind == "discount" and (rate is None or buy_n is not None or get_m is not None):
        raise invalid("折扣促销须填写折扣率（discount_rate），不填买赠数量（buy_n/get_m）")
    if kind == "buy_n_get_m" and (buy_n is None or get_m is None or rate is not None):
        raise invalid("买赠促销须填写买几（buy_n）和赠几（get_m），不填折扣率（discount_rate）")


class PromotionPatch(In):
    name: Name | None = None
    discount_rate: Rate | None = None
    buy_n: int | None = Field(None, ge=1, le=10_000)
    get_m: int | None = Field(None, ge=1, le=10_000)
    valid_to: Day | None = None
    active: bool | None = None


class PromotionQuery(ListQuery):
    region: str | None = Field(None, max_length=64)
    kind: Literal["discount", "buy_n_get_m"] | None = None
    active: bool | None = None


class PromotionOut(Out):
    id: int
    name: str
    kind: str
    sku: str | None
    product_id: int | None
    category: str | None
    level: int | None
    region: str | None
    discount_rate: Decimal | None
    buy_n: int | None
    get_m: int | None
    valid_from: date
    valid_to: date | None
    active: bool
    created_at: datetime


PROMO_FIELDS = [
    "name",
    "kind",
    "product_id",
    "category",
    "level",
    "region",
    "discount_rate",
    "buy_n",
    "get_m",
    "valid_from",
    "valid_to",
    "active",
]


async def _promotions(rows: list[Promotion]) -> list[PromotionOut]:
    pids = {p.product_id for p in rows if p.product_id}  # type: ignore[attr-defined]
    skus = dict(await Product.filter(id__in=list(pids)).values_list("id", "sku")) if pids else {}
    return [
        PromotionOut(
            id=p.id,
            name=p.name,
            kind=str(p.kind),
            sku=skus.get(p.product_id),  # type: ignore[attr-defined]
            product_id=p.product_id,  # type: ignore[attr-defined]
            category=p.category,
            level=p.level,
            region=p.region,
            discount_rate=p.discount_rate,
            buy_n=p.buy_n,
            get_m=p.get_m,
            valid_from=p.valid_from,
            valid_to=p.valid_to,
            active=p.active,
            created_at=p.created_at,
        )
        for p in rows
    ]


def _visible_promotions(actor: Actor) -> QuerySet[Promotion]:
    regions = manager_regions(actor)
    qs = Promotion.all()
    return qs if regions is None else qs.filter(Q(region__in=regions) | Q(region__isnull=True))


def _writable_promotions(actor: Actor) -> QuerySet[Promotion]:
    regions = manager_regions(actor)
    return Promotion.all() if regions is None else Promotion.filter(region__in=regions)


async def create_promotion(actor: Actor, data: PromotionIn) -> PromotionOut:
    if data.region is None:
        require_admin(actor)
    require_region(actor, data.region)
    values = data.model_dump(exclude={"sku"})
    values["kind"] = PromotionKind(data.kind)
    if data.sku:
        values["product_id"] = (await _products_by_sku([data.sku]))[data.sku]
    async with in_transaction():
        promo = await Promotion.create(**values)
        await record(actor, "promotion.create", "promotion", promo.id, after=snapshot(promo, PROMO_FIELDS))
    return (await _promotions([promo]))[0]


async def get_promotion(actor: Actor, promotion_id: int) -> PromotionOut:
    return (await _promotions([await get_or_404(_visible_promotions(actor), promotion_id, "promotion")]))[0]


async def list_promotions(actor: Actor, query: PromotionQuery, *, export: bool = False) -> Page[PromotionOut]:
    qs = _visible_promotions(actor)
    if query.region:
        qs = qs.filter(region=query.region)
    if query.kind:
        qs = qs.filter(kind=query.kind)
    if query.active is not None:
        qs = qs.filter(active=query.active)
    return await page_of(qs, query, _promotions, export=export)


async def update_promotion(actor: Actor, promotion_id: int, data: PromotionPatch) -> PromotionOut:
    changes = data.model_dump(exclude_unset=True)
    if changes.get("name", "") is None or changes.get("active", False) is None:
        raise ValidationError("名称和启用状态不能为空")
    async with in_transaction():
        promo = await get_or_404(_writable_promotions(actor).select_for_update(), promotion_id, "promotion")
        before = snapshot(promo, PROMO_FIELDS)
        promo.update_from_dict(changes)
        try:
            _check_promotion(str(promo.kind), promo.discount_rate, promo.buy_n, promo.get_m)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        if promo.valid_to is not None and promo.valid_to < promo.valid_from:
            raise ValidationError("失效日期（valid_to）早于生效日期（valid_from）", {"field": "valid_to"})
        await promo.save()
        await record(
            actor,
            "promotion.update",
            "promotion",
            promo.id,
            before=before,
            after=snapshot(promo, PROMO_FIELDS),
        )
    return (await _promotions([promo]))[0]
