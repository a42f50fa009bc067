"""Prices: which price list applies to a distributor, and what promotions do to a line.

Rules (the catalog, the chat bot and order admission all use these):

- **Price list**: lists valid on the day (``valid_from <= day <= valid_to``, open-ended when
  ``valid_to`` is NULL) whose ``level`` and ``region`` match the distributor's or are NULL
  (= any). For each product the first list *that has an item for it* wins, ranked by
  ``priority`` (highest first), then specificity (level and region set > one of them > none),
  then the newest ``valid_from``, then the highest id. No list with the product = no price:
  the product cannot be ordered.
- **Who is priced**: a distributor (its level and region). Staff and sales reps without a
  distributor see the *level-1 base price*: level 1, no region (only region-less lists apply).
- **Promotions** active on the day (``active`` and valid dates) whose product matches (or, for
  product-less promotions, whose category matches or is NULL) and whose level/region match or
  are NULL. They do not stack within a kind: the best ``discount`` (lowest rate) and the best
  ``buy_n_get_m`` (most free units per unit bought) apply, and both kinds may apply together.
  A discount lowers the line amount (``discount`` = gross - gross * rate, per line, rounded
  half-up to cents); buy-N-get-M adds ``(qty // buy_n) * get_m`` free units (price 0), which
  are reserved and shipped like paid ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

from core.clock import today
from core.money import money
from handlers.actor import Actor
from handlers.scope import require_distributor_in_scope
from handlers.sql import SqlParams, params
from models.base import PromotionKind
from models.distributor import Distributor
from models.product import PriceListItem, Promotion

BASE_LEVEL = 1


@dataclass(frozen=True)
class PriceContext:
    """Whose price: a distributor's level and region (region None = only region-less lists)."""

    level: int
    region: str | None
    distributor_id: int | None = None


BASE_PRICE = PriceContext(level=BASE_LEVEL, region=None)


@dataclass(frozen=True)
class Quote:
    """One product's price for a PriceContext on a day."""

    product_id: int
    list_price: Decimal
    discount_rate: Decimal | None = None  # 0.95 = 5 % off
    buy_n: int | None = None
    get_m: int | None = None
    promotion_ids: tuple[int, ...] = ()
    promotion_names: tuple[str, ...] = ()  # of the promotions applied, in promotion_ids order
    promotion_ends: tuple[date | None, ...] = ()  # their last valid day (None: open-ended)

    @property
    def price(self) -> Decimal:
        """The unit price after the discount (what the catalog shows)."""
        rate = self.discount_rate if self.discount_rate is not None else Decimal(1)
        return money(self.list_price * rate)

    def free_units(self, qty: int) -> int:
        if not self.buy_n or not self.get_m:
            return 0
        return (qty // self.buy_n) * self.get_m


@dataclass(frozen=True)
class LineTerms:
    """A priced line: qty paid units plus free units, frozen at admission."""

    qty: int
    free_qty: int
    unit_price: Decimal
    discount: Decimal
    amount: Decimal


def line_terms(quote: Quote, qty: int) -> LineTerms:
    gross = money(quote.list_price * qty)
    amount = gross if quote.discount_rate is None else money(gross * quote.discount_rate)
    return LineTerms(
        qty=qty,
        free_qty=quote.free_units(qty),
        unit_price=money(quote.list_price),
        discount=gross - amount,
        amount=amount,
    )


def context_of(distributor: Distributor) -> PriceContext:
    return PriceContext(level=distributor.level, region=distributor.region, distributor_id=distributor.id)


async def context_for(actor: Actor, distributor_id: int | None = None) -> PriceContext:
    """Whose prices `actor` sees: the named distributor (in scope, else NotFound), else the
    caller's own distributor, else the level-1 base price."""
    if distributor_id is None:
        distributor_id = actor.distributor_id
        if distributor_id is None:
            return BASE_PRICE
    require_distributor_in_scope(actor, distributor_id)
    dist = await Distributor.get_or_none(id=distributor_id)
    if dist is None:
        from core.errors import NotFound

        raise NotFound("未找到该经销商")
    return context_of(dist)


class Priced(Protocol):
    """What pricing needs of a product (a Product row, or a light copy of one)."""

    id: int
    category: str


# Raw SQL (one statement each): pricing runs inside every order admission, where the ORM's
# per-query cost would dominate. `{...}` parts are built from fixed fragments and placeholders.
_ITEMS_SQL = (
    "SELECT i.product_id AS product_id, i.price AS price, i.price_list_id AS price_list_id,"
    " pl.priority AS priority, pl.level AS level, pl.region AS region, pl.valid_from AS valid_from"
    " FROM price_list_item i JOIN price_list pl ON pl.id = i.price_list_id"
    " WHERE {products} AND pl.valid_from <= {day} AND (pl.valid_to IS NULL OR pl.valid_to >= {day2})"
    " AND (pl.level IS NULL OR pl.level = {level}) AND {region}"
)
_PROMOS_SQL = (
    "SELECT id, name, kind, product_id, category, discount_rate, buy_n, get_m, valid_to FROM promotion"
    " WHERE active AND valid_from <= {day} AND (valid_to IS NULL OR valid_to >= {day2})"
    " AND (level IS NULL OR level = {level}) AND {region}"
    " AND ({products} OR (product_id IS NULL AND (category IS NULL OR {categories})))"
)


def _region(p: SqlParams, ctx: PriceContext, column: str) -> str:
    if ctx.region is None:
        return f"{column} IS NULL"
    return f"({column} IS NULL OR {column} = {p(ctx.region)})"


def _day(p: SqlParams, day: date) -> str:
    return p(day if p.pg else day.isoformat())


def _as_date(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


async def quotes(products: Sequence[Priced], ctx: PriceContext, day: date | None = None) -> dict[int, Quote]:
    """Quotes for the products that have a price (missing ids = no price list covers them)."""
    if not products:
        return {}
    day = day or today()
    p = params(PriceListItem)
    sql = _ITEMS_SQL.format(
        products=p.any_int("i.product_id", [x.id for x in products]), **_list_filter(p, ctx, day)
    )
    return await _quote(products, await p.fetch(sql), ctx, day)


@dataclass(frozen=True)
class ProductRow:
    """A product as order admission needs it."""

    id: int
    sku: str
    name: str
    category: str
    status: str


# Products by SKU, each with the price items that may apply (NULL item = none): the product
# lookup and the price lookup of an order admission in one statement.
_PRODUCTS_ITEMS_SQL = (
    "SELECT p.id AS id, p.sku AS sku, p.name AS name, p.category AS category, p.status AS status,"
    " q.price AS price, q.price_list_id AS price_list_id, q.priority AS priority, q.level AS level,"
    " q.region AS region, q.valid_from AS valid_from"
    " FROM product p LEFT JOIN (" + _ITEMS_SQL.replace("{products}", "1 = 1") + ") q ON q.product_id = p.id"
    " WHERE {skus}"
)


async def quotes_by_sku(
    skus: Sequence[str], ctx: PriceContext, day: date | None = None
) -> tuple[dict[str, ProductRow], dict[int, Quote]]:
    """The products with these SKUs (any status) and the quotes of those that have a price."""
    day = day or today()
    p = params(PriceListItem)
    filters = _list_filter(p, ctx, day)  # placeholders in statement order: list filter, then skus
    rows = await p.fetch(_PRODUCTS_ITEMS_SQL.format(**filters, skus=p.any_str("p.sku", list(skus))))
    products = {
        r["sku"]: ProductRow(
            id=r["id"], sku=r["sku"], name=r["name"], category=r["category"], status=r["status"]
        )
        for r in rows
    }
    items = [{**r, "product_id": r["id"]} for r in rows if r["price_list_id"] is not None]
    return products, await _quote(list(products.values()), items, ctx, day)


def _list_filter(p: SqlParams, ctx: PriceContext, day: date) -> dict[str, str]:
    return {
        "day": _day(p, day),
        "day2": _day(p, day),
        "level": p(ctx.level),
        "region": _region(p, ctx, "pl.region"),
    }


async def _quote(
    products: Sequence[Priced], items: list[dict], ctx: PriceContext, day: date
) -> dict[int, Quote]:
    """Apply the ranking rule to the candidate items, then the promotions."""
    best: dict[int, tuple[tuple, Decimal]] = {}
    for item in items:
        specific = (item["level"] is not None) + (item["region"] is not None)
        valid_from = _as_date(item["valid_from"]).toordinal()
        rank = (-item["priority"], -specific, -valid_from, -item["price_list_id"])
        if item["product_id"] not in best or rank < best[item["product_id"]][0]:
            best[item["product_id"]] = (rank, Decimal(str(item["price"])))
    if not best:
        return {}
    promos = await _promotions(products, ctx, day)
    return {x.id: _apply_promotions(x, money(best[x.id][1]), promos) for x in products if x.id in best}


async def _promotions(products: Sequence[Priced], ctx: PriceContext, day: date) -> list[dict]:
    p = params(Promotion)
    sql = _PROMOS_SQL.format(
        day=_day(p, day),
        day2=_day(p, day),
        level=p(ctx.level),
        region=_region(p, ctx, "region"),
        products=p.any_int("product_id", [x.id for x in products]),
        categories=p.any_str("category", sorted({x.category for x in products})),
    )
    return await p.fetch(sql)


def _apply_promotions(product: Priced, list_price: Decimal, promos: list[dict]) -> Quote:
    discount: tuple | None = None  # (rate, -id, id)
    bngm: tuple | None = None  # (free per unit, -buy_n, -id, buy_n, get_m, id)
    for promo in promos:
        pid = promo["product_id"]
        if pid is not None and pid != product.id:
            continue
        if pid is None and promo["category"] is not None and promo["category"] != product.category:
            continue
        if promo["kind"] == PromotionKind.DISCOUNT and promo["discount_rate"] is not None:
            key = (Decimal(str(promo["discount_rate"])), -promo["id"], promo["id"])
            if discount is None or key[:2] < discount[:2]:
                discount = key
        elif promo["kind"] == PromotionKind.BUY_N_GET_M and promo["buy_n"] and promo["get_m"]:
            n, m = promo["buy_n"], promo["get_m"]
            key = (Decimal(m) / Decimal(n), -n, -promo["id"], n, m, promo["id"])
            if bngm is None or key[:3] > bngm[:3]:
                bngm = key
    ids = [k[-1] for k in (discount, bngm) if k is not None]
    by_id = {promo["id"]: promo for promo in promos}
    return Quote(
        product_id=product.id,
        list_price=list_price,
        discount_rate=discount[0] if discount is not None else None,
        buy_n=bngm[3] if bngm is not None else None,
        get_m=bngm[4] if bngm is not None else None,
        promotion_ids=tuple(ids),
        promotion_names=tuple(by_id[i]["name"] for i in ids),
        promotion_ends=tuple(_as_date(by_id[i]["valid_to"]) if by_id[i]["valid_to"] else None for i in ids),
    )
