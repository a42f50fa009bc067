"""Demo data a newcomer believes: "commission rules so 佣金 shows money, months of order
history so aging, turnover and overdue alerts show something, stock in the distributor-owned
warehouse, real-looking addresses in the distributors' own cities, sensible prices (散装 cement
by the ton and cheaper than bagged; pipe prices growing with diameter)"."""

from __future__ import annotations

import re
from decimal import Decimal
from itertools import pairwise

from core.clock import BUSINESS_TZ, now, today
from handlers.alerts import job_receivables_overdue
from handlers.demo import DISTRIBUTORS, seed_demo
from handlers.finance import receivables_aging
from handlers.stock import verify_ledger
from models.distributor import Distributor
from models.finance import Payment, ReceivableEntry
from models.notification import Notification
from models.order import Order
from models.product import PriceList, PriceListItem
from models.stock import Stock, StockMovement, Warehouse
from models.user import User
from tests.factories import auth, token_for

API = "/api/v1"


async def _counts() -> dict[str, int]:
    return {
        "orders": await Order.all().count(),
        "payments": await Payment.all().count(),
        "receivables": await ReceivableEntry.all().count(),
        "movements": await StockMovement.all().count(),
        "stock": await Stock.all().count(),
        "notifications": await Notification.all().count(),
    }


async def _prices() -> dict[str, tuple[str, str, Decimal]]:
    """sku -> (name, unit, price) on the 一级 list."""
    pl = await PriceList.get(name="2026 一级经销价")
    rows = await PriceListItem.filter(price_list=pl).values_list(
        "product__sku", "product__name", "product__unit", "price"
    )
    return {sku: (name, unit, Decimal(str(price))) for sku, name, unit, price in rows}


async def test_demo_data_a_newcomer_believes(client) -> None:
    await seed_demo()
    first = await _counts()
    await seed_demo()
    assert await _counts() == first  # idempotent: the second run adds nothing
    assert await verify_ledger() == []

    # 佣金: the 华东 rep earns this month
    rep = await User.get(username="rep_zhang")
    month = now().astimezone(BUSINESS_TZ).strftime("%Y-%m")
    resp = await client.get(f"{API}/commissions?period={month}", headers=auth(await token_for(rep)))
    mine = await resp.json()
    assert resp.status == 200 and Decimal(mine["total"]) > 0, mine

    # months of history: amounts in more than one aging bucket, something overdue
    ids = list(await Distributor.all().values_list("id", flat=True))
    rows = await receivables_aging(ids, today())
    buckets = ("current", "d1_30", "d31_60", "d61_90", "d90_plus")
    filled = {b for b in buckets for r in rows if getattr(r, b) > 0}
    assert len(filled) >= 3, filled
    assert (await job_receivables_overdue())["distributors"] > 0
    months = {o.created_at.astimezone(BUSINESS_TZ).strftime("%Y-%m") for o in await Order.all()}
    assert len(months) >= 4, months
    # the demo's history does not greet anyone with months of notifications
    assert first["notifications"] <= 10

    # the distributor-owned warehouse has stock
    own = await Warehouse.get(code="WH-HZ-D")
    assert own.distributor_id is not None  # type: ignore[attr-defined]
    assert sum(await Stock.filter(warehouse=own).values_list("on_hand", flat=True)) > 0

    # addresses in the distributors' own cities
    for name, *_ in DISTRIBUTORS:
        d = await Distributor.get(name=name)
        city = re.match(r"(上海|杭州|苏州|北京|天津|石家庄|广州|深圳|佛山|成都|重庆|昆明)", name)
        assert city and city.group(1) in (d.address or ""), (name, d.address)
        assert "demo" not in (d.address or "")

    prices = await _prices()
    # 散装 cement by the ton, cheaper than the same cement in 50 kg bags (20 bags a ton)
    bulk = {n: p for n, u, p in prices.values() if "散装" in n}
    assert bulk and all(u == "吨" for n, u, p in prices.values() if "散装" in n)
    bags = {n: p for n, u, p in prices.values() if n.startswith("海螺水泥") and "50kg" in n}
    for name, per_ton in bulk.items():
        grade = name.removeprefix("海螺水泥 ").removesuffix(" 散装")
        bagged = [p * 20 for n, p in bags.items() if grade in n]
        assert bagged and per_ton < min(bagged), (name, per_ton, bagged)

    # pipes sold by the piece cost more the wider they are
    for category in ("PPR", "PVC", "BXG"):
        row = sorted(
            (float(re.search(r"(?:Φ|管 )(\d+)", n).group(1)), p)  # type: ignore[union-attr]
            for sku, (n, _u, p) in prices.items()
            if sku.startswith(category + "-")
        )
        assert len(row) >= 4 and all(a[1] < b[1] for a, b in pairwise(row)), row
        assert row[-1][1] >= 3 * row[0][1], row
