"""Builders for commission, statement and report tests: completed orders, returns, rules and
receivables written straight through the models (independent of order admission), plus
helpers that emit the domain events the way the order lifecycle does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from tortoise.transactions import in_transaction

from core.clock import BUSINESS_TZ
from core.money import money
from handlers.events import emit
from models.base import (
    Beneficiary,
    CommissionMode,
    CommissionPeriod,
    OrderStatus,
    ReceivableKind,
    UserRole,
)
from models.commission import CommissionRule
from models.distributor import Distributor
from models.finance import ReceivableEntry
from models.order import Order, OrderLine, OrderReturn, OrderReturnLine
from models.product import Product
from models.stock import Warehouse
from models.user import User
from tests.factories import make_user, make_warehouse, n

LineSpec = tuple[Product, int, Decimal | str] | tuple[Product, int, Decimal | str, Decimal | str]


def at(day: str, hour: int = 12) -> datetime:
    """'2026-03-15' -> that day at `hour`:00 in the business time zone."""
    d = date.fromisoformat(day)
    return datetime(d.year, d.month, d.day, hour, tzinfo=BUSINESS_TZ)


async def make_order(
    distributor: Distributor,
    lines: Sequence[LineSpec],
    *,
    status: OrderStatus = OrderStatus.COMPLETED,
    completed_at: datetime | None = None,
    placed_by: User | None = None,
    warehouse: Warehouse | None = None,
    shipped: bool = True,
) -> Order:
    """An order with frozen lines; shipped in full unless `shipped=False`."""
    when = completed_at or at("2026-03-15")
    placed_by = placed_by or await make_user(UserRole.ADMIN)
    warehouse = warehouse or await make_warehouse()
    specs = []
    for spec in lines:
        product, qty, price = spec[0], spec[1], money(spec[2])
        discount = money(spec[3]) if len(spec) > 3 else money(0)  # type: ignore[misc]
        specs.append((product, qty, price, discount, money(price * qty - discount)))
    order = await Order.create(
        number=f"SO{when.astimezone(BUSINESS_TZ):%Y%m%d}{n() % 10000:04d}{n() % 100:02d}",
        distributor=distributor,
        placed_by=placed_by,
        status=status,
        total_amount=money(sum((s[4] for s in specs), Decimal(0))),
        discount_amount=money(sum((s[3] for s in specs), Decimal(0))),
        shipped_at=when if shipped else None,
        received_at=when if status in (OrderStatus.RECEIVED, OrderStatus.COMPLETED) else None,
        completed_at=when if status == OrderStatus.COMPLETED else None,
    )
    for product, qty, price, discount, amount in specs:
        await OrderLine.create(
            order=order,
            product=product,
            sku=product.sku,
            name=product.name,
            warehouse=warehouse,
            qty=qty,
            unit_price=price,
            discount=discount,
            amount=amount,
            shipped_qty=qty if shipped else 0,
        )
    return order


async def make_return(order: Order, qtys: dict[int, int], reason: str = "质量问题") -> OrderReturn:
    """Return `qtys` = {line index (0-based, by id): units}. Amounts are the line's unit net
    price; the last units of a line take what is left, so a full return credits exactly
    the line amount."""
    lines = await OrderLine.filter(order_id=order.id).order_by("id")
    ret = await OrderReturn.create(order=order, reason=reason, amount=Decimal(0))
    total = Decimal(0)
    for index, qty in qtys.items():
        line = lines[index]
        done = await OrderReturnLine.filter(order_line_id=line.id).values_list("amount", flat=True)
        done_amount = sum((Decimal(a) for a in done), Decimal(0))  # type: ignore[arg-type]
        if line.returned_qty + qty >= line.qty:
            amount = money(Decimal(line.amount) - done_amount)
        else:
            amount = money(Decimal(line.amount) * qty / line.qty)
        await OrderReturnLine.create(order_return=ret, order_line=line, qty=qty, amount=amount)
        line.returned_qty += qty
        await line.save(update_fields=["returned_qty"])
        total += amount
    ret.amount = money(total)
    await ret.save(update_fields=["amount"])
    return ret


async def complete(order: Order, actor_id: int = 0) -> None:
    """What the order lifecycle does on completion: emit inside its transaction."""
    async with in_transaction():
        await emit("order.completed", order_id=order.id, actor_id=actor_id)


async def returned(order: Order, ret: OrderReturn, actor_id: int = 0) -> None:
    async with in_transaction():
        await emit("order.returned", order_id=order.id, return_id=ret.id, actor_id=actor_id)


async def completed_order(distributor: Distributor, lines: Sequence[LineSpec], **kw: Any) -> Order:
    order = await make_order(distributor, lines, **kw)
    await complete(order)
    return order


async def make_rule(
    *,
    beneficiary: Beneficiary | str = Beneficiary.SALES,
    mode: CommissionMode | str = CommissionMode.FLAT,
    rate: str | None = None,
    tiers: list[tuple[str, str]] | None = None,
    period: CommissionPeriod | str = CommissionPeriod.MONTH,
    **kw: Any,
) -> CommissionRule:
    """A rule valid since 2020. tiers = [("0", "0.02"), ("100000", "0.03")]."""
    if mode == CommissionMode.FLAT and rate is None:
        rate = "0.02"
    return await CommissionRule.create(
        name=kw.pop("name", f"规则{n()}"),
        beneficiary=beneficiary,
        mode=mode,
        rate=Decimal(rate) if rate is not None else None,
        tiers=[{"from": f, "rate": r} for f, r in tiers] if tiers else None,
        period=period,
        valid_from=kw.pop("valid_from", date(2020, 1, 1)),
        **kw,
    )


async def make_receivable(
    distributor: Distributor,
    kind: ReceivableKind,
    amount: Decimal | str,
    occurred_at: datetime,
    due_at: datetime | None = None,
    ref: str | None = None,
) -> ReceivableEntry:
    return await ReceivableEntry.create(
        distributor=distributor,
        kind=kind,
        amount=money(amount),
        ref_type=str(kind),
        ref_id=ref or f"T{n()}",
        occurred_at=occurred_at,
        due_at=due_at,
    )


async def quick_user(role: UserRole | str, **kw: Any) -> User:
    """A user without a password (hashing one costs ~0.5 s; tokens don't need it)."""
    i = n()
    defaults: dict[str, Any] = {"username": f"q{role}_{i}", "display_name": f"{role} {i}", "role": role}
    defaults.update(kw)
    return await User.create(**defaults)


class Shop:
    """A small isolated tenant: its own region, a 一级 distributor with a user and a rep,
    a product of its own category. Rules scoped to `region` touch nothing else."""

    region: str
    distributor: Distributor
    dist_user: User
    rep: User
    reps: list[User]
    product: Product
    warehouse: Warehouse
    placed_by: User

    @classmethod
    async def create(cls, reps: int = 1, *, sales_rep_field: bool = False, level: int = 1) -> Shop:
        from models.user import SalesAssignment
        from tests.factories import make_distributor, make_product

        shop = cls()
        i = n()
        shop.region = f"区{i}"
        shop.distributor = await make_distributor(region=shop.region, level=level)
        shop.dist_user = await quick_user(UserRole.DISTRIBUTOR, distributor=shop.distributor)
        users = [await quick_user(UserRole.SALES) for _ in range(reps)]
        shop.rep = users[0]
        if sales_rep_field:
            shop.distributor.sales_rep = shop.rep
            await shop.distributor.save(update_fields=["sales_rep_id"])
        else:
            for user in users:
                await SalesAssignment.create(user=user, distributor=shop.distributor)
        shop.reps = users
        shop.product = await make_product(category=f"类{i}")
        shop.warehouse = await make_warehouse(region=shop.region)
        shop.placed_by = shop.dist_user
        return shop

    async def order(
        self, day: str, *amounts: Decimal | str | tuple[int, str], complete_it: bool = True
    ) -> Order:
        """An order of lines: "1000.00" = 1 x 1000.00, or (qty, unit price)."""
        specs: list[LineSpec] = []
        for a in amounts:
            qty, price = a if isinstance(a, tuple) else (1, a)
            specs.append((self.product, qty, price))
        order = await make_order(
            self.distributor, specs, completed_at=at(day), placed_by=self.placed_by, warehouse=self.warehouse
        )
        if complete_it:
            await complete(order)
        return order

    async def rule(self, **kw: Any) -> CommissionRule:
        kw.setdefault("scope_region", self.region)
        return await make_rule(**kw)


def fast_passwords(monkeypatch: Any) -> None:
    """make_world hashes a password per user (~0.5 s each); these tests log in by token only."""
    monkeypatch.setattr("tests.factories.hash_password", lambda _password: "not-a-hash")
