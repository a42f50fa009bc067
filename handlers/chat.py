"""Reads the chat bot needs beyond the API's use-cases: which distributors a user may order
for, a priced preview of an order (the same pricing rules admission applies), an order by
its number, a product's stock, the units of an order's lines, and the receivables and credit
status of the distributors in scope. Scope rules are the API's (handlers.scope/stock)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from rapidfuzz import fuzz, process
from tortoise.expressions import Subquery

from core.errors import NotFound
from core.money import ZERO, money
from core.schema import Money, Out
from handlers import finance, ordering, pricing
from handlers.actor import Actor
from handlers.scope import require_distributor_in_scope, scoped
from handlers.stock import available_by_product, order_warehouses, visible_warehouses
from models.base import DistributorStatus, PaymentTerms, ProductStatus
from models.distributor import Distributor
from models.order import Order
from models.product import Product
from models.stock import Stock, Warehouse

NAME_MATCH_MIN = 70


class DistributorBrief(Out):
    id: int
    name: str
    region: str


class PreviewLine(Out):
    sku: str
    name: str
    unit: str
    qty: int
    free_qty: int
    unit_price: Money | None  # None: no price list covers it for this distributor
    amount: Money | None
    discount: Money | None
    available: int


class OrderPreview(Out):
    distributor: DistributorBrief
    lines: list[PreviewLine]
    total: Money

    @property
    def unpriced(self) -> list[PreviewLine]:
        return [line for line in self.lines if line.unit_price is None]


class StockPlace(Out):
    warehouse_name: str
    available: int


class ProductStock(Out):
    sku: str
    name: str
    unit: str
    available: int
    places: list[StockPlace]


def _brief(d: Distributor) -> DistributorBrief:
    return DistributorBrief(id=d.id, name=d.name, region=d.region)


async def order_distributors(
    actor: Actor, name: str | None = None, *, limit: int = 9
) -> list[DistributorBrief]:
    """Active distributors the actor may order for, best name match first when `name` is given.
    A distributor user gets only its own."""
    if actor.distributor_id is not None:
        own = await Distributor.get_or_none(id=actor.distributor_id, status=DistributorStatus.ACTIVE)
        return [_brief(own)] if own else []
    qs = scoped(Distributor.filter(status=DistributorStatus.ACTIVE), actor, field="id")
    if not name:
        return [_brief(d) for d in await qs.order_by("id").limit(limit)]
    rows = await qs.values_list("id", "name", "region")
    choices = {i: n for i, n, _ in rows}
    found = process.extract(
        name, choices, scorer=fuzz.partial_ratio, limit=limit, score_cutoff=NAME_MATCH_MIN
    )
    regions = {i: r for i, _, r in rows}
    return [DistributorBrief(id=key, name=text, region=regions[key]) for text, _score, key in found]


async def get_order_distributor(actor: Actor, distributor_id: int) -> DistributorBrief:
    """One active distributor the actor may order for, else NotFound."""
    require_distributor_in_scope(actor, distributor_id)
    dist = await Distributor.get_or_none(id=distributor_id, status=DistributorStatus.ACTIVE)
    if dist is None:
        raise NotFound("未找到该经销商")
    return _brief(dist)


async def preview_order(actor: Actor, distributor_id: int, items: list[tuple[int, int]]) -> OrderPreview:
    """Price `items` [(product_id, qty)] for the distributor as admission will (price list and
    promotions), with what is available to it now. Nothing is reserved."""
    require_distributor_in_scope(actor, distributor_id)
    dist = await Distributor.get_or_none(id=distributor_id)
    if dist is None:
        raise NotFound("未找到该经销商")
    ids = [pid for pid, _ in items]
    products = {p.id: p for p in await Product.filter(id__in=ids, status=ProductStatus.ACTIVE)}
    quotes = await pricing.quotes(list(products.values()), pricing.context_of(dist))
    available = await available_by_product(list(products), await order_warehouses(dist))
    lines: list[PreviewLine] = []
    total = Decimal(0)
    for pid, qty in items:
        p = products.get(pid)
        if p is None:
            raise NotFound("未找到该商品")
        quote = quotes.get(pid)
        terms = pricing.line_terms(quote, qty) if quote else None
        if terms is not None:
            total += terms.amount
        lines.append(
            PreviewLine(
                sku=p.sku,
                name=p.name,
                unit=p.unit,
                qty=qty,
                free_qty=terms.free_qty if terms else 0,
                unit_price=terms.unit_price if terms else None,
                amount=terms.amount if terms else None,
                discount=terms.discount if terms else None,
                available=available.get(pid, 0),
            )
        )
    return OrderPreview(distributor=_brief(dist), lines=lines, total=money(total))


async def get_order_by_number(actor: Actor, number: str) -> ordering.OrderOut:
    """An order in scope by its number (SO...), else NotFound."""
    number = number.strip().upper()
    ids = await scoped(Order.filter(number=number), actor).limit(1).values_list("id", flat=True)
    if not ids:
        raise NotFound("未找到该订单")
    return await ordering.get_order(actor, int(ids[0]))  # type: ignore[arg-type]


async def product_stock(actor: Actor, product_id: int) -> ProductStock:
    """Available units of one product in the warehouses the actor may see, by warehouse."""
    product = await Product.get_or_none(id=product_id)
    if product is None:
        raise NotFound("未找到该商品")
    visible = Subquery(Warehouse.filter(visible_warehouses(actor)).values("id"))
    rows = (
        await Stock.filter(product_id=product_id, warehouse_id__in=visible)
        .order_by("warehouse_id")
        .values("on_hand", "reserved", warehouse_name="warehouse__name")
    )
    places = [
        StockPlace(warehouse_name=r["warehouse_name"], available=r["on_hand"] - r["reserved"]) for r in rows
    ]
    return ProductStock(
        sku=product.sku,
        name=product.name,
        unit=product.unit,
        available=sum(p.available for p in places),
        places=[p for p in places if p.available > 0],
    )


async def units_of(skus: list[str]) -> dict[str, str]:
    """Each SKU's unit (吨, 袋…): order lines freeze name and price, the unit is the product's."""
    if not skus:
        return {}
    rows = await Product.filter(sku__in=sorted(set(skus))).values_list("sku", "unit")
    return {str(sku): str(unit) for sku, unit in rows}


class ReceivableStatus(Out):
    distributor_id: int
    name: str
    balance: Money
    overdue: Money
    oldest_due: date | None


class CreditStatus(Out):
    distributor_id: int
    name: str
    payment_terms: str
    credit_limit: Money
    used: Money  # receivables + open orders' unshipped value (what admission checks)
    available: Money  # credit left (monthly/quarterly), or prepayment not yet spoken for (prepay)


MAX_STATUS_ROWS = 10


async def _in_scope(actor: Actor) -> list[Distributor]:
    qs = scoped(Distributor.exclude(status=DistributorStatus.APPLYING), actor, field="id")
    return await qs.order_by("id").limit(200)


async def receivables_status(actor: Actor) -> list[ReceivableStatus]:
    """应收: what the distributors in scope owe (most overdue first, then largest), as the
    aging report computes it; at most MAX_STATUS_ROWS rows."""
    dists = {d.id: d.name for d in await _in_scope(actor)}
    rows = await finance.receivables_aging(sorted(dists))
    rows.sort(key=lambda r: (-r.overdue, -r.balance, r.distributor_id))
    return [
        ReceivableStatus(
            distributor_id=r.distributor_id,
            name=dists[r.distributor_id],
            balance=r.balance,
            overdue=r.overdue,
            oldest_due=r.oldest_due,
        )
        for r in rows[:MAX_STATUS_ROWS]
    ]


async def credit_status(actor: Actor) -> list[CreditStatus]:
    """额度: each distributor's credit limit, what is used (the admission check's exposure) and
    what is left; a prepay distributor's available prepayment instead."""
    out: list[CreditStatus] = []
    for d in (await _in_scope(actor))[:MAX_STATUS_ROWS]:
        if d.payment_terms == PaymentTerms.PREPAY:
            left = await finance.prepaid_available(d.id)
            used, limit = ZERO, ZERO
        else:
            used = await finance.credit_exposure(d.id)
            limit = money(d.credit_limit)
            left = limit - used
        out.append(
            CreditStatus(
                distributor_id=d.id,
                name=d.name,
                payment_terms=str(d.payment_terms),
                credit_limit=limit,
                used=money(used),
                available=money(left),
            )
        )
    return out


async def issue_invite_for_username(username: str) -> str:
    """A one-time invite code for a user by login name (the `qudao chat --bind-as` demo aid)."""
    from handlers.identity import issue_invite_code
    from models.user import User

    user = await User.get_or_none(username=username)
    if user is None:
        raise NotFound(f"no user named {username!r}")
    return (await issue_invite_code(None, user.id)).code
