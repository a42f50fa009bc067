"""Demo data: a building-materials brand, its warehouses, catalogue, distributors, reps,
price lists, contracts and a few orders. Idempotent: every row is found by a natural key
first, so running it twice adds nothing."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from tortoise.transactions import in_transaction

from core.clock import BUSINESS_TZ, FixedClock, current_clock, now, set_clock, today
from core.money import money
from handlers.actor import SYSTEM
from handlers.passwords import hash_password
from handlers.product_match import catalogue_changed
from handlers.text import pinyin_of
from handlers.uscc import make_uscc
from models.base import (
    Beneficiary,
    CommissionMode,
    CommissionPeriod,
    ContractStatus,
    DistributorStatus,
    MovementReason,
    PaymentTerms,
    PromotionKind,
    UserRole,
)
from models.commission import CommissionRule
from models.contract import Contract
from models.distributor import Distributor
from models.notification import Notification
from models.order import Order, Shipment
from models.product import PriceList, PriceListItem, Product, Promotion
from models.stock import Stock, StockMovement, Warehouse
from models.user import SalesAssignment, User

BRAND = "华峰建材"
DEMO_PASSWORD = "qudao-demo-2026"  # printed in the README; change it for anything real

REGIONS = {"华东": "上海", "华北": "北京", "华南": "广州", "西南": "成都"}
WAREHOUSES = [
    ("WH-SH", "华东中心仓（上海嘉定）", "华东"),
    ("WH-BJ", "华北中心仓（天津武清）", "华北"),
    ("WH-GZ", "华南中心仓（广州黄埔）", "华南"),
    ("WH-CD", "西南中心仓（成都新都）", "西南"),
]

# (category, sku prefix, unit, base price, name pattern, specs)
CATALOGUE: list[tuple[str, str, str, str, str, list[str]]] = [
    (
        "螺纹钢",
        "LWG",
        "吨",
        "3850",
        "螺纹钢 HRB400E Φ{s}",
        ["10", "12", "14", "16", "18", "20", "22", "25", "28", "32"],
    ),
    ("盘螺", "PL", "吨", "3920", "盘螺 HRB400E Φ{s}", ["6", "8", "10", "12"]),
    ("线材", "XC", "吨", "3780", "高速线材 HPB300 Φ{s}", ["6.5", "8", "10", "12"]),
    ("角钢", "JG", "吨", "4100", "等边角钢 Q235B {s}", ["30×3", "40×4", "50×5", "63×6", "75×7", "90×8"]),
    ("槽钢", "CG", "吨", "4150", "热轧槽钢 Q235B {s}#", ["5", "8", "10", "12", "14", "16", "18", "20"]),
    (
        "工字钢",
        "GZG",
        "吨",
        "4200",
        "热轧工字钢 Q235B {s}#",
        ["10", "12", "14", "16", "18", "20", "22", "25"],
    ),
    (
        "钢板",
        "GB",
        "吨",
        "4350",
        "热轧钢板 Q355B {s}mm",
        ["6", "8", "10", "12", "14", "16", "20", "25", "30"],
    ),
    (
        "镀锌管",
        "DXG",
        "吨",
        "5200",
        "热镀锌钢管 DN{s}",
        ["15", "20", "25", "32", "40", "50", "65", "80", "100"],
    ),
    ("焊管", "HG", "吨", "4600", "直缝焊管 Q235 Φ{s}", ["48", "60", "76", "89", "108", "114", "159", "219"]),
    (
        "方管",
        "FG",
        "吨",
        "4700",
        "方管 Q235 {s}",
        ["20×20", "30×30", "40×40", "50×50", "60×60", "80×80", "100×100"],
    ),
    ("水泥", "SN", "袋", "28", "海螺水泥 {s}", ["P.O 42.5 50kg", "P.O 52.5 50kg", "P.C 32.5R 50kg"]),
    # 散装 (bulk) is sold by the ton, cheaper than 20 bags of 50 kg
    ("水泥", "SNS", "吨", "430", "海螺水泥 {s}", ["P.O 42.5 散装"]),
    (
        "防水卷材",
        "FS",
        "卷",
        "168",
        "SBS改性沥青防水卷材 {s}",
        ["3mm PY Ⅰ型", "4mm PY Ⅰ型", "3mm PY Ⅱ型", "4mm PY Ⅱ型"],
    ),
    (
        "防水涂料",
        "FT",
        "桶",
        "286",
        "聚氨酯防水涂料 {s}",
        ["单组分 20kg", "双组分 20kg", "JS 20kg", "丙烯酸 20kg"],
    ),
    (
        "保温材料",
        "BW",
        "立方",
        "420",
        "挤塑聚苯板 XPS {s}",
        ["20mm", "30mm", "40mm", "50mm", "60mm", "80mm", "100mm"],
    ),
    (
        "石膏板",
        "SGB",
        "张",
        "26",
        "纸面石膏板 {s}",
        ["9.5mm 普通", "12mm 普通", "9.5mm 防水", "12mm 防水", "12mm 防火"],
    ),
    (
        "轻钢龙骨",
        "LG",
        "根",
        "12",
        "轻钢龙骨 {s}",
        ["50主龙骨", "38主龙骨", "60副龙骨", "50副龙骨", "75竖龙骨", "100竖龙骨"],
    ),
    ("电线", "DX", "卷", "235", "BV铜芯电线 {s}平方 100米", ["1.5", "2.5", "4", "6", "10", "16"]),
    (
        "PPR管",
        "PPR",
        "根",
        "32",
        "PPR冷热水管 {s} 4米",
        ["20×2.8", "25×3.5", "32×4.4", "40×5.5", "50×6.9", "63×8.6"],
    ),
    ("PVC管", "PVC", "根", "45", "PVC排水管 {s} 4米", ["50", "75", "110", "160", "200"]),
    ("瓷砖胶", "CZJ", "袋", "58", "瓷砖粘结剂 {s}", ["C1 20kg", "C2 20kg", "C2TE 20kg", "大板专用 20kg"]),
    ("腻子粉", "NZ", "袋", "36", "耐水腻子粉 {s}", ["内墙 20kg", "外墙 20kg", "柔性 20kg"]),
    (
        "乳胶漆",
        "RJQ",
        "桶",
        "398",
        "内墙乳胶漆 {s}",
        ["哑光白 18L", "丝光白 18L", "抗甲醛 18L", "儿童漆 18L"],
    ),
    ("钢丝网", "GSW", "卷", "95", "镀锌钢丝网 {s}", ["1m×30m 网孔10", "1m×30m 网孔20", "1.2m×30m 网孔20"]),
    ("扣件", "KJ", "套", "6", "脚手架扣件 {s}", ["直角", "旋转", "对接", "可调底座", "U型顶托"]),
    (
        "模板",
        "MB",
        "张",
        "78",
        "建筑模板 {s}",
        ["1220×2440×12 清水", "1220×2440×15 清水", "1220×2440×18 覆膜"],
    ),
    (
        "铝型材",
        "LXC",
        "支",
        "120",
        "门窗铝型材 {s}",
        ["60系列 6米", "70系列 6米", "80系列 6米", "断桥90系列 6米"],
    ),
    (
        "不锈钢管",
        "BXG",
        "支",
        "260",
        "304不锈钢圆管 Φ{s} 6米",
        ["19", "25", "32", "38", "51", "63", "76", "89", "108"],
    ),
    (
        "螺栓",
        "LS",
        "盒",
        "85",
        "8.8级高强螺栓 {s}",
        ["M8×30", "M10×40", "M12×50", "M16×60", "M20×80", "M24×100"],
    ),
    ("膨胀螺丝", "PZ", "盒", "45", "镀锌膨胀螺丝 {s}", ["M6×60", "M8×80", "M10×100", "M12×120", "M14×150"]),
    (
        "砂浆",
        "SJ",
        "袋",
        "22",
        "预拌干混砂浆 {s} 40kg",
        ["DM5 砌筑", "DM10 砌筑", "DP5 抹灰", "DP10 抹灰", "DS20 地面"],
    ),
    ("岩棉板", "YM", "立方", "650", "外墙岩棉板 {s}", ["30mm", "50mm", "80mm", "100mm", "120mm"]),
    (
        "彩钢板",
        "CGB",
        "米",
        "48",
        "彩钢夹芯板 {s}",
        ["50mm EPS", "75mm EPS", "100mm EPS", "50mm 岩棉", "100mm 岩棉"],
    ),
    ("钢筋网片", "GJW", "张", "95", "焊接钢筋网片 {s}", ["Φ4@100", "Φ5@150", "Φ6@150", "Φ6@200", "Φ8@200"]),
    ("止水钢板", "ZS", "米", "18", "镀锌止水钢板 {s}", ["300×3", "350×3", "400×3", "300×4"]),
    ("地漏", "DL", "个", "35", "不锈钢防臭地漏 {s}", ["50口径", "75口径", "110口径", "长条形 600mm"]),
]

# Pipes sold by the piece cost more the wider they are: one price per spec, in spec order.
SPEC_PRICES: dict[str, list[str]] = {
    "PPR": ["18", "28", "45", "70", "110", "175"],
    "PVC": ["22", "38", "62", "120", "185"],
    "BXG": ["95", "125", "160", "190", "260", "330", "410", "490", "620"],
}

# (name, level, region, parent index or None, payment terms, credit limit)
DISTRIBUTORS: list[tuple[str, int, str, int | None, PaymentTerms, str]] = [
    ("上海沪建钢材贸易有限公司", 1, "华东", None, PaymentTerms.MONTHLY, "2000000"),
    ("杭州浙联建材有限公司", 2, "华东", 0, PaymentTerms.PREPAY, "0"),
    ("苏州吴中五金建材商行", 2, "华东", 0, PaymentTerms.MONTHLY, "300000"),
    ("北京京城钢铁物资有限公司", 1, "华北", None, PaymentTerms.QUARTERLY, "3000000"),
    ("天津港联建材销售有限公司", 2, "华北", 3, PaymentTerms.MONTHLY, "500000"),
    ("石家庄冀中建材有限责任公司", 2, "华北", 3, PaymentTerms.PREPAY, "0"),
    ("广州穗达建筑材料有限公司", 1, "华南", None, PaymentTerms.MONTHLY, "2500000"),
    ("深圳鹏城建材供应链有限公司", 2, "华南", 6, PaymentTerms.MONTHLY, "800000"),
    ("佛山南海金属材料经营部", 2, "华南", 6, PaymentTerms.PREPAY, "0"),
    ("成都蜀建物资有限公司", 1, "西南", None, PaymentTerms.MONTHLY, "1500000"),
    ("重庆渝江建材有限公司", 2, "西南", 9, PaymentTerms.MONTHLY, "400000"),
    ("昆明滇中建材商贸有限公司", 2, "西南", 9, PaymentTerms.QUARTERLY, "300000"),
]

# Where each distributor (same order as DISTRIBUTORS) really is: its own city, not its region's.
ADDRESSES = [
    "上海市宝山区蕴川路1688号钢材市场B区12号",
    "浙江省杭州市余杭区东湖北路318号建材城3幢",
    "江苏省苏州市吴中区木渎镇金枫路228号",
    "北京市丰台区南四环西路188号总部基地十二区",
    "天津市东丽区津塘公路3018号建材市场C座",
    "河北省石家庄市长安区和平东路506号",
    "广东省广州市白云区石井大道128号钢材城",
    "广东省深圳市宝安区福永街道福海大道96号",
    "广东省佛山市南海区乐从镇钢铁世界商务中心A座",
    "四川省成都市新都区大丰街道蜀龙大道中段666号",
    "重庆市九龙坡区华岩镇西城大道99号建材市场",
    "云南省昆明市官渡区螺蛳湾建材城5栋",
]
PHONES = ["021", "0571", "0512", "010", "022", "0311", "020", "0755", "0757", "028", "023", "0871"]

# Categories the distributor-owned warehouse (杭州) stocks.
OWN_CATEGORIES = {"水泥", "防水卷材", "防水涂料", "石膏板", "腻子粉", "瓷砖胶", "PPR管"}

# (name, beneficiary, flat rate, distributor level or None)
COMMISSION_RULES = [
    ("业务员提成 2%", Beneficiary.SALES, "0.02", None),
    ("一级经销商返利 0.5%", Beneficiary.DISTRIBUTOR, "0.005", 1),
]

# Order history: (distributor index, days ago, [(sku, qty)], paid 35 days later). Only
# distributors on credit (monthly / quarterly terms); unpaid ones age into the buckets.
HISTORY_DAYS = 150
RECENT_DAYS = 7  # orders younger than this are shipped, not yet received
HISTORY: list[tuple[int, int, list[tuple[str, int]], bool]] = [
    (0, 150, [("LWG-003", 12), ("SNS-001", 30)], True),
    (0, 95, [("GB-002", 8)], False),
    (0, 50, [("LWG-005", 10), ("FS-002", 40)], False),
    (0, 9, [("SN-001", 200), ("SGB-002", 100)], False),
    (2, 120, [("DXG-003", 2), ("PPR-002", 80)], True),
    (2, 40, [("KJ-001", 500)], False),
    (2, 6, [("NZ-001", 60), ("CZJ-002", 40)], False),
    (3, 130, [("LWG-008", 20)], True),
    (3, 70, [("GZG-004", 6)], False),
    (3, 12, [("GB-005", 10)], False),
    (4, 60, [("JG-003", 5), ("CG-004", 5)], False),
    (4, 8, [("PVC-003", 120)], False),
    (6, 140, [("LWG-004", 15)], True),
    (6, 45, [("SN-002", 300)], False),
    (6, 10, [("FS-001", 60)], False),
    (7, 80, [("BW-003", 30)], False),
    (7, 5, [("RJQ-001", 20)], False),
    (9, 110, [("LWG-006", 12)], True),
    (9, 35, [("SGB-001", 300)], False),
    (9, 9, [("LG-001", 400)], False),
    (10, 65, [("XC-002", 8)], False),
    (11, 100, [("FG-003", 4)], False),
]

STAFF: list[tuple[str, str, UserRole, list[str]]] = [
    ("admin", "系统管理员", UserRole.ADMIN, []),
    ("mgr_east", "王经理（华东）", UserRole.MANAGER, ["华东"]),
    ("mgr_north", "李经理（华北）", UserRole.MANAGER, ["华北"]),
    ("mgr_south", "陈经理（华南西南）", UserRole.MANAGER, ["华南", "西南"]),
    ("rep_zhang", "张伟", UserRole.SALES, ["华东"]),
    ("rep_liu", "刘洋", UserRole.SALES, ["华北"]),
    ("rep_huang", "黄丽", UserRole.SALES, ["华南"]),
    ("rep_zhou", "周强", UserRole.SALES, ["西南"]),
]


async def seed_demo() -> dict[str, int]:
    """Load the demo set; returns row counts so a second run visibly adds nothing."""
    async with in_transaction():
        users = await _staff()
        products = await _products()
        warehouses = await _warehouses()
        distributors = await _distributors(users)
        await _stock(products, warehouses)
        await _own_stock(products)
        await _price_lists(products)
        await _promotions(products)
        await _commission_rules()
        await _contracts(distributors)
        await _history(distributors, warehouses, users)
        await _orders(distributors, products, warehouses, users)
    await catalogue_changed()  # committed: the chat's product index rebuilds
    return {
        "users": await User.all().count(),
        "products": await Product.all().count(),
        "warehouses": await Warehouse.all().count(),
        "distributors": await Distributor.all().count(),
        "contracts": await Contract.all().count(),
        "orders": await Order.all().count(),
    }


async def _staff() -> dict[str, User]:
    out: dict[str, User] = {}
    for username, name, role, regions in STAFF:
        user = await User.get_or_none(username=username)
        if user is None:
            user = await User.create(
                username=username,
                password_hash=hash_password(DEMO_PASSWORD),
                display_name=name,
                role=role,
                regions=regions if role == UserRole.MANAGER else [],
            )
        out[username] = user
    return out


async def _products() -> list[Product]:
    existing = {p.sku: p for p in await Product.all()}
    out: list[Product] = []
    for category, prefix, unit, _price, pattern, specs in CATALOGUE:
        for i, spec in enumerate(specs, 1):
            sku = f"{prefix}-{i:03d}"
            product = existing.get(sku)
            if product is None:
                name = pattern.format(s=spec)
                full, initials = pinyin_of(name)
                product = await Product.create(
                    sku=sku,
                    name=name,
                    pinyin=full,
                    initials=initials,
                    category=category,
                    unit=unit,
                    spec=spec,
                )
            out.append(product)
    return out


def _base_price(product: Product) -> Decimal:
    for category, prefix, _unit, price, _pattern, _specs in CATALOGUE:
        if product.sku.startswith(prefix + "-") and product.category == category:
            step = int(product.sku.rsplit("-", 1)[1])
            if prefix in SPEC_PRICES and step <= len(SPEC_PRICES[prefix]):
                return money(SPEC_PRICES[prefix][step - 1])
            # Bigger specs cost a little more per unit: deterministic spread of 0-9 %.
            return money(Decimal(price) * (Decimal(100 + step) / 100))
    return money("100")


async def _warehouses() -> dict[str, Warehouse]:
    out: dict[str, Warehouse] = {}
    for code, name, region in WAREHOUSES:
        out[code], _ = await Warehouse.get_or_create(code=code, defaults={"name": name, "region": region})
    return out


async def _distributors(users: dict[str, User]) -> list[Distributor]:
    reps = {
        "华东": users["rep_zhang"],
        "华北": users["rep_liu"],
        "华南": users["rep_huang"],
        "西南": users["rep_zhou"],
    }
    out: list[Distributor] = []
    for i, (name, level, region, parent, terms, credit) in enumerate(DISTRIBUTORS):
        uscc = make_uscc(f"91{310000 + i * 1111:06d}MA{i:02d}DEM0X")
        d = await Distributor.get_or_none(uscc=uscc)
        if d is None:
            d = await Distributor.create(
                name=name,
                uscc=uscc,
                level=level,
                region=region,
                parent=out[parent] if parent is not None else None,
                sales_rep=reps[region],
                credit_limit=money(credit),
                payment_terms=terms,
                status=DistributorStatus.ACTIVE,
                contact=f"{name[:2]}采购部",
                phone=f"{PHONES[i]}-{66180000 + i * 1013}",
                address=ADDRESSES[i],
            )
            await SalesAssignment.get_or_create(user=reps[region], distributor=d)
        elif d.address and "demo路" in d.address:  # a demo seeded before addresses were real
            d.address, d.phone = ADDRESSES[i], f"{PHONES[i]}-{66180000 + i * 1013}"
            await d.save(update_fields=["address", "phone"])
        username = f"dist_{i + 1:02d}"
        if level == 1 and not await User.exists(username=username):
            await User.create(
                username=username,
                password_hash=hash_password(DEMO_PASSWORD),
                display_name=f"{name[:4]}采购",
                role=UserRole.DISTRIBUTOR,
                distributor=d,
            )
        out.append(d)
    # One distributor-owned warehouse (杭州), for the "company + own warehouses" rule.
    await Warehouse.get_or_create(
        code="WH-HZ-D", defaults={"name": "杭州浙联自有仓", "region": "华东", "distributor": out[1]}
    )
    return out


async def _stock(products: list[Product], warehouses: dict[str, Warehouse]) -> None:
    rng = random.Random(2026)  # fixed seed: the same demo every time
    have = {(s.warehouse_id, s.product_id) for s in await Stock.all()}  # type: ignore[attr-defined]
    for wh, product in itertools.product(warehouses.values(), products):
        if (wh.id, product.id) in have:
            continue
        on_hand = rng.choice([0, 5, 20, 60, 120, 300, 800])
        min_qty = rng.choice([10, 20, 50])
        await Stock.create(
            warehouse=wh,
            product=product,
            on_hand=on_hand,
            reserved=0,
            min_qty=min_qty,
            reorder_point=min_qty * 2,
            max_qty=1000,
        )
        if on_hand:
            await StockMovement.create(
                warehouse=wh,
                product=product,
                reason=MovementReason.INBOUND,
                ref_type="demo",
                ref_id="seed",
                delta_on_hand=on_hand,
                delta_reserved=0,
                on_hand_after=on_hand,
                reserved_after=0,
                note="期初入库",
            )


async def _own_stock(products: list[Product]) -> None:
    """The distributor-owned warehouse holds what a 二级 stocks for quick sale: finishing
    materials, a few hundred of each, its own thresholds."""
    wh = await Warehouse.get(code="WH-HZ-D")
    have = set(await Stock.filter(warehouse=wh).values_list("product_id", flat=True))
    rng = random.Random(571)
    for product in products:
        if product.category not in OWN_CATEGORIES or product.id in have:
            continue
        on_hand = rng.choice([30, 60, 120, 200, 400])
        await Stock.create(
            warehouse=wh,
            product=product,
            on_hand=on_hand,
            reserved=0,
            min_qty=20,
            reorder_point=40,
            max_qty=600,
        )
        await StockMovement.create(
            warehouse=wh,
            product=product,
            reason=MovementReason.INBOUND,
            ref_type="demo",
            ref_id="seed",
            delta_on_hand=on_hand,
            delta_reserved=0,
            on_hand_after=on_hand,
            reserved_after=0,
            note="期初入库",
        )


def _price_start() -> date:
    """Price lists start on 1 January of the year the order history begins."""
    return (today() - timedelta(days=HISTORY_DAYS)).replace(month=1, day=1)


async def _price_lists(products: list[Product]) -> None:
    start = _price_start()
    lists = [
        ("2026 一级经销价", 1, None, Decimal("1.00"), 0),
        ("2026 二级经销价", 2, None, Decimal("1.05"), 0),
        ("2026 华南一级特价", 1, "华南", Decimal("0.98"), 10),
    ]
    for name, level, region, factor, priority in lists:
        pl, created = await PriceList.get_or_create(
            name=name, defaults={"level": level, "region": region, "valid_from": start, "priority": priority}
        )
        if created:
            await PriceListItem.bulk_create(
                [
                    PriceListItem(price_list=pl, product=p, price=money(_base_price(p) * factor))
                    for p in products
                ]
            )


async def _promotions(products: list[Product]) -> None:
    start = today() - timedelta(days=10)
    await Promotion.get_or_create(
        name="水泥季末九五折",
        defaults={
            "kind": PromotionKind.DISCOUNT,
            "category": "水泥",
            "discount_rate": Decimal("0.95"),
            "valid_from": start,
            "valid_to": today() + timedelta(days=30),
            "active": True,
        },
    )
    gypsum = next(p for p in products if p.category == "石膏板")
    await Promotion.get_or_create(
        name="石膏板买十送一",
        defaults={
            "kind": PromotionKind.BUY_N_GET_M,
            "product": gypsum,
            "buy_n": 10,
            "get_m": 1,
            "valid_from": start,
            "valid_to": today() + timedelta(days=60),
            "active": True,
        },
    )


async def _commission_rules() -> None:
    """A rep's commission and a 一级 rebate, so 佣金 shows money from the order history."""
    for name, beneficiary, rate, level in COMMISSION_RULES:
        await CommissionRule.get_or_create(
            name=name,
            defaults={
                "beneficiary": beneficiary,
                "mode": CommissionMode.FLAT,
                "rate": Decimal(rate),
                "scope_level": level,
                "period": CommissionPeriod.MONTH,
                "valid_from": _price_start(),
            },
        )


@contextmanager
def _clock_at(at: datetime) -> Iterator[None]:
    """Run real use-cases as of `at` (history gets true dates, due dates and periods)."""
    before = current_clock()
    set_clock(FixedClock(at))
    try:
        yield
    finally:
        set_clock(before)


async def _history(
    distributors: list[Distributor], warehouses: dict[str, Warehouse], users: dict[str, User]
) -> None:
    """Months of orders through the real lifecycle, each step at its own date: placed,
    approved, shipped the next day, received, completed (commission accrues); some paid 35
    days after. So aging has amounts in several buckets, turnover and overdue alerts have
    something to show, and reps earn commission this month. The history's notifications are
    removed: a demo starts with an inbox for today, not months of replay. Idempotent by note."""
    from handlers.auth import build_actor
    from handlers.finance import PaymentIn, record_payment

    admin = await build_actor(users["admin"])
    real_now = now()
    central = {region: warehouses[code] for code, _name, region in WAREHOUSES}
    for n, (index, days_ago, lines, paid) in enumerate(HISTORY, 1):
        d = distributors[index]
        note = f"演示历史订单 #{n}"
        if await Order.exists(note=note, distributor=d):
            continue
        placed = datetime.combine(today() - timedelta(days=days_ago), time(10), BUSINESS_TZ)
        for sku, qty in lines:
            await _top_up(central[d.region], sku, qty)
        order = await _lifecycle(admin, d, n, note, lines, placed, real_now)
        if paid:
            with _clock_at(placed + timedelta(days=35)):
                await record_payment(
                    SYSTEM,
                    PaymentIn(
                        distributor_id=d.id,
                        amount=str(order.shipped_amount),
                        paid_at=(placed + timedelta(days=35)).isoformat(),
                        ref=f"DEMO-PAY-{n:03d}",
                    ),
                )
        await Notification.filter(dedupe_key__startswith=f"order:{order.id}:").delete()


async def _lifecycle(
    admin: Any,
    d: Distributor,
    n: int,
    note: str,
    lines: list[tuple[str, int]],
    placed: datetime,
    real_now: datetime,
) -> Any:
    from handlers import ordering

    body = {"distributor_id": d.id, "lines": [{"sku": s, "qty": q} for s, q in lines], "note": note}
    with _clock_at(placed):
        out = await ordering.place_order(admin, idempotency_key=f"demo-history-{n}", body=body)
    await Order.filter(id=out.id).update(created_at=placed)
    if out.status == "pending_review":
        with _clock_at(placed + timedelta(hours=2)):
            await ordering.approve_order(SYSTEM, out.id)
    shipped = placed + timedelta(days=1)
    with _clock_at(shipped):
        out = await ordering.ship_order(
            SYSTEM,
            out.id,
            {"lines": [{"sku": s, "qty": q} for s, q in _remaining(out)], "carrier": "德邦物流"},
        )
    for sh in out.shipments or []:
        await Shipment.filter(id=sh.id).update(created_at=shipped)
        await StockMovement.filter(ref_type="shipment", ref_id=str(sh.id)).update(created_at=shipped)
    if real_now - placed < timedelta(days=RECENT_DAYS):
        return out  # recent: on its way
    with _clock_at(min(placed + timedelta(days=3), real_now - timedelta(minutes=2))):
        out = await ordering.receive_order(SYSTEM, out.id)
    with _clock_at(min(placed + timedelta(days=10), real_now - timedelta(minutes=1))):
        return await ordering.complete_order(SYSTEM, out.id)


def _remaining(out: Any) -> list[tuple[str, int]]:
    left: dict[str, int] = {}
    for line in out.lines:
        left[line.sku] = left.get(line.sku, 0) + line.qty + line.free_qty - line.shipped_qty
    return [(s, q) for s, q in left.items() if q > 0]


async def _top_up(wh: Warehouse, sku: str, qty: int) -> None:
    """Enough stock in the region's central warehouse for a history order (a real inbound)."""
    from handlers.stock import AdjustmentIn, adjust_stock

    row = await Stock.filter(warehouse=wh, product__sku=sku).first()
    free = row.on_hand - row.reserved if row is not None else 0
    if free < qty:
        await adjust_stock(
            SYSTEM,
            AdjustmentIn(
                warehouse_id=wh.id, sku=sku, delta=qty - free + 100, reason="inbound", note="采购入库"
            ),
        )


async def _contracts(distributors: list[Distributor]) -> None:
    # Days until the end: some expire soon (30/7/1-day alerts), one has already expired.
    ends = [200, 25, 6, 1, 90, -3, 300, 45, 14, 120, 29, 365]
    for i, (d, days) in enumerate(zip(distributors, ends, strict=True)):
        number = f"HT-2026-{i + 1:03d}"
        end = today() + timedelta(days=days)
        await Contract.get_or_create(
            number=number,
            defaults={
                "distributor": d,
                "start_date": end - timedelta(days=365),
                "end_date": end,
                "target_amount": money(d.credit_limit * 3 if d.credit_limit else Decimal("500000")),
                "price_policy": "执行一级经销价" if d.level == 1 else "执行二级经销价",
                "status": ContractStatus.ACTIVE if days >= 0 else ContractStatus.EXPIRED,
            },
        )


async def _orders(
    distributors: list[Distributor],
    products: list[Product],
    warehouses: dict[str, Warehouse],
    users: dict[str, User],
) -> None:
    """A few pending orders placed through the real order admission (prices, reservations,
    ledger, numbering), by each distributor's own user. Idempotent: an order is found by its
    note first; one refused (say, stock ran out) is skipped."""
    from core.errors import DomainError
    from handlers.auth import build_actor
    from handlers.ordering import place_order

    specs = [(0, ["LWG-003", "LWG-005"]), (3, ["GB-002"]), (6, ["SN-001", "FS-002"])]
    for n, (dist_index, skus) in enumerate(specs, 1):
        note = f"演示订单 #{n}"
        d = distributors[dist_index]
        if await Order.exists(note=note, distributor=d):
            continue
        user = await User.filter(distributor=d).order_by("id").first()
        if user is None:
            continue
        body = {"lines": [{"sku": sku, "qty": 3} for sku in skus], "note": note}
        try:
            await place_order(await build_actor(user), idempotency_key=f"demo-order-{n}", body=body)
        except DomainError:
            continue
