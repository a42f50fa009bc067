"""Catalog: products with the caller's own price and what it can order now.

``q`` goes through the chat's product matcher (`handlers.product_match`): name, full pinyin,
pinyin initials, SKU code, numbers exactly, homophone typos (螺纹, luowen, lwg12, LWG-003,
罗纹钢 all find 螺纹钢), best match first. ``category`` filters exactly.
Non-staff callers see active products only; staff also see inactive ones (with ``status``).

``price`` is the unit price after promotions for the price context of `handlers.pricing`
(the named distributor in scope, else the caller's own, else — staff and sales reps without
one — the level-1 base price); ``null`` when no price list covers the product.
``available`` is what that distributor could order now: on_hand - reserved summed over the
warehouses its orders draw from (`handlers.stock.order_warehouses`; for the base price, every
active company warehouse).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from core.errors import NotFound
from core.schema import Money, Out, Page
from handlers.actor import Actor
from handlers.pricing import PriceContext, Quote, context_for, quotes
from handlers.product_match import search_ids
from handlers.stock import available_by_product, order_warehouses
from models.base import ProductStatus
from models.distributor import Distributor
from models.product import Product


class ProductPromotion(Out):
    """What applies to the caller today. Two promotions may apply at once (a discount and a
    buy-N-get-M): `name` joins their names, `valid_to` is the earliest last day (null: no end)."""

    name: str | None = None
    valid_to: date | None = None
    discount_rate: Decimal | None = None
    buy_n: int | None = None
    get_m: int | None = None


class ProductOut(Out):
    id: int
    sku: str
    name: str
    category: str
    unit: str
    spec: str | None
    status: str
    price: Money | None
    list_price: Money | None
    promotion: ProductPromotion | None
    available: int


async def _rows(products: list[Product], ctx: PriceContext) -> list[ProductOut]:
    quoted = await quotes(products, ctx)
    dist = await Distributor.get_or_none(id=ctx.distributor_id) if ctx.distributor_id else None
    avail = await available_by_product([p.id for p in products], await order_warehouses(dist))
    return [_out(p, quoted.get(p.id), max(avail.get(p.id, 0), 0)) for p in products]


def _out(p: Product, quote: Quote | None, available: int) -> ProductOut:
    promo = None
    if quote is not None and (quote.discount_rate is not None or quote.buy_n):
        ends = [d for d in quote.promotion_ends if d is not None]
        promo = ProductPromotion(
            name="；".join(quote.promotion_names) or None,
            valid_to=min(ends) if ends else None,
            discount_rate=quote.discount_rate,
            buy_n=quote.buy_n,
            get_m=quote.get_m,
        )
    return ProductOut(
        id=p.id,
        sku=p.sku,
        name=p.name,
        category=p.category,
        unit=p.unit,
        spec=p.spec,
        status=str(p.status),
        price=quote.price if quote else None,
        list_price=quote.list_price if quote else None,
        promotion=promo,
        available=available,
    )


async def list_products(
    actor: Actor,
    *,
    q: str | None = None,
    category: str | None = None,
    distributor_id: int | None = None,
    page: int = 1,
    page_size: int = 20,
) -> Page[ProductOut]:
    ctx = await context_for(actor, distributor_id)
    if q and q.strip():  # ranked by the matcher: its order, its total
        only = category.strip() if category else None
        ids = await search_ids(q, include_inactive=actor.is_staff, category=only)
        window = ids[(page - 1) * page_size : page * page_size]
        found = {p.id: p for p in await Product.filter(id__in=window)}
        items = await _rows([found[i] for i in window if i in found], ctx)
        return Page[ProductOut](items=items, total=len(ids), page=page, page_size=page_size)
    qs = Product.all() if actor.is_staff else Product.filter(status=ProductStatus.ACTIVE)
    if category:
        qs = qs.filter(category=category.strip())
    total = await qs.count()
    products = await qs.order_by("category", "sku").offset((page - 1) * page_size).limit(page_size)
    return Page[ProductOut](items=await _rows(products, ctx), total=total, page=page, page_size=page_size)


async def get_product(actor: Actor, product_id: int, *, distributor_id: int | None = None) -> ProductOut:
    ctx = await context_for(actor, distributor_id)
    qs = Product.filter(id=product_id)
    if not actor.is_staff:
        qs = qs.filter(status=ProductStatus.ACTIVE)
    product = await qs.first()
    if product is None:
        raise NotFound("未找到该商品")
    return (await _rows([product], ctx))[0]


async def find_products(actor: Actor, text: str, limit: int = 5) -> list[ProductOut]:
    """Best matches for free text (chat: "螺纹钢还有货吗"): the same matching as `q`."""
    page = await list_products(actor, q=text, page_size=max(1, min(limit, 100)))
    return page.items
