"""Issue 18, chat understanding: the users' own words, through the real webhooks (the chat
simulator signs and encrypts them as WeChat / WeCom / DingTalk do), each as the bound user's
Actor. One test per finding; the phrasings corpus is tests/test_chat_corpus.py."""

from __future__ import annotations

from datetime import date

import pytest

from core.clock import today
from core.config import Config
from handlers import returns
from handlers.actor import SYSTEM
from handlers.auth import build_actor
from handlers.leads import name_core, normalize_name
from models.base import LeadStatus, PromotionKind
from models.lead import Lead
from models.order import Order
from models.product import Promotion
from tests.factories import World, make_price_list, make_product, make_stock, make_world
from tests.factories_orders import make_order
from tests.test_bot_support import (
    Chat,
    bot_overrides,
    fast_hashes,  # noqa: F401  (autouse)
)


@pytest.fixture
def config(config: Config) -> Config:
    return config.with_overrides(bot_overrides())


async def catalogue(world: World) -> dict[str, object]:
    p8 = await make_product(name="盘螺 HRB400E Φ8", sku="PL-001", category="盘螺", unit="吨")
    p10 = await make_product(name="盘螺 HRB400E Φ10", sku="PL-002", category="盘螺", unit="吨")
    rebar = await make_product(name="螺纹钢 HRB400E Φ12", sku="LWG-012", category="螺纹钢", unit="吨")
    cement = await make_product(name="海螺水泥 P.O 42.5 50kg", sku="SN-001", category="水泥", unit="袋")
    pipe = await make_product(name="PPR给水管 De25", sku="PPR-025", category="管材", unit="根")
    for p, qty in ((p8, 40), (p10, 80), (rebar, 60), (cement, 1000), (pipe, 300)):
        await make_stock(world.company_warehouse, p, on_hand=qty)
    await make_price_list(
        {p8: "3900.00", p10: "3950.00", rebar: "4000.00", cement: "28.00", pipe: "12.00"},
        valid_from=date(2020, 1, 1),
    )
    return {"p8": p8, "p10": p10, "rebar": rebar, "cement": cement, "pipe": pipe}


def test_chat_rate_limit_default_is_60_a_minute() -> None:
    """30 a minute was tripped by a rep picking from lists and confirming briskly."""
    assert Config().limits.chat_per_sender_per_min == 60


def test_lead_name_cores_drop_regions_and_company_suffixes() -> None:
    names = ("上海宏达建筑工程有限公司", "上海宏达建设公司", "宏达建设", "上海市宏达建设集团有限责任公司")
    core = {name_core(normalize_name(n)) for n in names}
    assert core == {"宏达"}
    assert name_core(normalize_name("深圳市腾讯计算机系统有限公司")) == "腾讯计算机系统"
    # only a region and company words: nothing distinctive to match on
    assert name_core(normalize_name("建设公司")) == name_core(normalize_name("北京建设集团")) == ""


async def test_lead_same_core_name_waits_for_a_manager_like_a_near_duplicate(client) -> None:
    world = await make_world()
    east, north = Chat(client), Chat(client, "dingtalk")
    await east.bind("o_east_rep", world.east.rep)
    await north.bind("north_rep", world.north.rep)
    assert "报备成功" in await east.say("o_east_rep", "报备 上海宏达建筑工程有限公司 13800138000")
    for i, name in enumerate(("上海宏达建设公司", "宏达建设")):
        reply = await north.say("north_rep", f"报备 {name} 1390000000{i}")
        assert "经理审核" in reply and "相近" in reply, reply
    assert await Lead.filter(status=LeadStatus.PENDING_REVIEW).count() == 2


async def test_lead_overlong_name_is_refused_not_cut(client) -> None:
    world = await make_world()
    chat = Chat(client)
    await chat.bind("o_rep", world.east.rep)
    reply = await chat.say("o_rep", f"报备 {'宏' * 300} 13800138000")
    assert "客户名称" in reply and "200" in reply and "报备成功" not in reply
    assert "太长" in await chat.say("o_rep", f"报备 {'宏' * 1600} 13800138000")
    headers = world.headers("east", "sales")
    body = {"customer_name": "宏" * 1600, "phone": "13800138000"}
    async with client.post("/api/v1/leads", json=body, headers=headers) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
        assert error["code"] == "validation_error" and "200" in error["message"]
    assert await Lead.all().count() == 0


# --- stock: bare names, "有没有…的", one match taken ------------------------------------------


async def test_bare_product_name_and_youmeiyou_are_stock_lookups(client) -> None:
    world = await make_world()
    await catalogue(world)
    chat = Chat(client)
    await chat.bind("o_rep", world.east.rep)
    cement = await chat.say("o_rep", "水泥")
    assert "海螺水泥 P.O 42.5 50kg" in cement and "1000袋" in cement and "没听懂" not in cement
    assert "请回复序号" not in cement  # the one cement: no list to pick from
    coil = await chat.say("o_rep", "有没有盘螺8的")
    assert "盘螺 HRB400E Φ8" in coil and "40吨" in coil
    pipe = await chat.say("o_rep", "查库存 PPR管")  # one product matches: answered at once
    assert "PPR给水管 De25" in pipe and "300根" in pipe and "请回复序号" not in pipe
    assert "请回复序号" in await chat.say("o_rep", "盘螺")  # two match: then a list, as before
    assert "80吨" in await chat.say("o_rep", "2")
    assert "60吨" in await chat.say("o_rep", "你好，帮我查一下螺纹钢12的库存")


async def test_greetings_and_thanks_get_short_polite_replies(client) -> None:
    world = await make_world()
    chat = Chat(client)
    await chat.bind("o_rep", world.east.rep)
    for words in ("你好", "您好", "在吗", "谢谢", "好的，谢谢", "收到"):
        reply = await chat.say("o_rep", words)
        assert "没听懂" not in reply and "报备 客户名称" not in reply and len(reply) < 60, (words, reply)
    assert "您好" in await chat.say("o_rep", "你好")
    assert "不客气" in await chat.say("o_rep", "谢谢")
    unbound = await chat.say("o_new", "你好")
    assert "您好" in unbound and "绑定" in unbound


async def test_help_is_per_role(client) -> None:
    world = await make_world()
    chat = Chat(client)
    await chat.bind("o_rep", world.east.rep)
    await chat.bind("o_dist", world.east.dist_user)
    await chat.bind("o_mgr", world.east.manager)
    rep, dist, mgr = [await chat.say(who, "帮助") for who in ("o_rep", "o_dist", "o_mgr")]
    assert "业务员" in rep and "报备" in rep and "佣金" in rep and "审核" not in rep
    assert "经销商" in dist and "返利" in dist and "额度" in dist and "审核" not in dist
    assert "经理" in mgr and "审核" in mgr and "通过 1" in mgr and "报备客户" not in mgr
    assert "查库存" in await chat.say("o_rep", "今天天气怎么样")  # unknown text: the role's help


# --- 下单: numerals, decimals, spaces, one unclear item ---------------------------------------


async def test_order_items_with_chinese_numerals_and_spaces(client) -> None:
    world = await make_world()
    await catalogue(world)
    chat = Chat(client)
    await chat.bind("o_dist", world.east.dist_user)
    summary = await chat.say("o_dist", "下单 螺纹钢12 三吨 水泥 一百袋")
    assert "螺纹钢 HRB400E Φ12 × 3吨" in summary and "海螺水泥 P.O 42.5 50kg × 100袋" in summary
    assert "合计：¥14800.00" in summary
    assert "订单已提交" in await chat.say("o_dist", "确认下单")
    one = await chat.say("o_dist", "下单 PPR管 十根")  # the one matching product: no question
    assert "PPR给水管 De25 × 10根" in one and "请回复序号" not in one


async def test_order_decimal_for_whole_units_is_asked_about_not_failed(client) -> None:
    world = await make_world()
    await catalogue(world)
    chat = Chat(client)
    await chat.bind("o_dist", world.east.dist_user)
    assert "是数量" in await chat.say("o_dist", "2.5吨")  # alone: which product?
    ask = await chat.say("o_dist", "下单 螺纹钢12 2.5吨，水泥 100袋")
    assert "不是整数" in ask and "2或3" in ask and "其余 1 项已记下" in ask
    summary = await chat.say("o_dist", "3吨")
    assert "螺纹钢 HRB400E Φ12 × 3吨" in summary and "× 100袋" in summary
    ask = await chat.say("o_dist", "下单 螺纹钢12 两吨半")
    assert "不是整数" in ask
    assert "× 2吨" in await chat.say("o_dist", "两吨")


async def test_one_ambiguous_item_is_asked_about_alone(client) -> None:
    world = await make_world()
    await catalogue(world)
    chat = Chat(client)
    await chat.bind("o_dist", world.east.dist_user)
    ask = await chat.say("o_dist", "下单 盘螺 3吨 水泥 100袋 螺纹钢12 5吨")
    assert "“盘螺”有多个商品" in ask and "1. 盘螺 HRB400E Φ8" in ask and "2. 盘螺 HRB400E Φ10" in ask
    assert "其余 2 项已记下" in ask and "重新发送" not in ask
    assert "还有一项没确定" in await chat.say("o_dist", "确认")
    assert "1000袋" in await chat.say("o_dist", "查库存 水泥")  # a question meanwhile: answered
    summary = await chat.say("o_dist", "2")
    assert "盘螺 HRB400E Φ10 × 3吨" in summary and "× 100袋" in summary and "Φ12 × 5吨" in summary
    assert "订单已提交" in await chat.say("o_dist", "确认")
    # an unknown item: the rest stay; 跳过 drops it
    ask = await chat.say("o_dist", "下单 水泥 10袋，不存在的东西 3吨")
    assert "没有找到“不存在的东西”" in ask and "其余 1 项已记下" in ask
    assert "× 10袋" in await chat.say("o_dist", "跳过")
    assert "取消" in await chat.say("o_dist", "取消")
    # a product without its quantity, while writing an order: asked for the quantity
    await chat.say("o_dist", "下单")
    assert "“盘螺8”要多少" in await chat.say("o_dist", "盘螺8")
    assert "盘螺 HRB400E Φ8 × 3吨" in await chat.say("o_dist", "盘螺8 三吨")


# --- 审核 from chat: the same use-cases and scope as the API ----------------------------------


async def test_manager_reviews_orders_from_chat_within_scope(client) -> None:
    world = await make_world()
    products = await catalogue(world)
    first = await make_order(world.east.distributor, {products["cement"]: 10}, by=world.east.rep)
    second = await make_order(world.east.child, {products["cement"]: 20}, by=world.east.rep)
    east, north = Chat(client), Chat(client, "dingtalk")
    await east.bind("o_mgr", world.east.manager)
    await east.bind("o_rep", world.east.rep)
    await north.bind("north_mgr", world.north.manager)
    listing = await east.say("o_mgr", "有哪些待审核的订单")
    assert "待审核订单 2 个" in listing and first.number in listing and second.number in listing
    assert world.east.distributor.name in listing and world.east.child.name in listing
    index = 1 if listing.index(first.number) < listing.index(second.number) else 2
    assert f"已通过：{first.number}" in await east.say("o_mgr", f"通过 {index}")
    assert "驳回原因" in await east.say("o_mgr", f"驳回 {second.number}")
    rejected = await east.say("o_mgr", f"{second.number} 驳回 价格有误")
    assert f"已驳回：{second.number}" in rejected and "价格有误" in rejected
    assert (await Order.get(id=first.id)).status == "approved"
    second_row = await Order.get(id=second.id)
    assert second_row.status == "rejected" and second_row.reject_reason == "价格有误"
    again = await east.say("o_mgr", f"通过 {first.number}")  # already approved: the use-case refuses
    assert again and not again.startswith("已通过")
    # a rep may not; another region's manager does not even see it
    third = await make_order(world.east.distributor, {products["cement"]: 5}, by=world.east.rep)
    assert "需要经理" in await east.say("o_rep", f"通过 {third.number}")
    assert "需要经理" in await east.say("o_rep", "审核")
    assert "没有找到" in await north.say("north_mgr", f"批准 {third.number}")
    assert (await Order.get(id=third.id)).status == "pending_review"
    assert "没有待审核" in await north.say("north_mgr", "审核")


# --- 返利, 对账单, 应收, 额度 -------------------------------------------------------------------


async def test_money_questions_rebate_statement_receivables_credit(client) -> None:
    world = await make_world()
    products = await catalogue(world)
    await make_order(world.east.distributor, {products["cement"]: 100}, status="shipped")
    chat = Chat(client)
    await chat.bind("o_dist", world.east.dist_user)
    await chat.bind("o_rep", world.east.rep)
    assert "暂无返利记录" in await chat.say("o_dist", "我的返利")
    assert "还没有对账单" in await chat.say("o_dist", "对账单")
    assert "2026-11 没有对账单" in await chat.say("o_dist", "2026年11月对账单")
    owed = await chat.say("o_dist", "我们还欠多少钱")
    assert "应收款" in owed and "¥2800.00" in owed and world.east.distributor.name in owed
    credit = await chat.say("o_dist", "信用额度还有多少")
    assert "额度 ¥100000.00" in credit and "已用 ¥2800.00" in credit and "可用 ¥97200.00" in credit
    rep_view = await chat.say("o_rep", "客户的应收")
    assert world.east.distributor.name in rep_view and world.north.distributor.name not in rep_view
    assert world.east.child.name in await chat.say("o_rep", "额度")


# --- 查订单 / 订单 -----------------------------------------------------------------------------


async def test_order_detail_shows_units_gifts_and_returns_and_lists_show_names(client) -> None:
    world = await make_world()
    products = await catalogue(world)
    await Promotion.create(
        name="买十送一",
        kind=PromotionKind.BUY_N_GET_M,
        product=products["cement"],
        buy_n=10,
        get_m=1,
        valid_from=today(),
    )
    order = await make_order(world.east.distributor, {products["cement"]: 10}, status="received")
    dist = await build_actor(world.east.dist_user)
    req = await returns.request_return(
        dist, order.id, {"lines": [{"sku": "SN-001", "qty": 2}], "reason": "破损"}
    )
    await returns.approve_return(SYSTEM, req.id)
    await returns.receive_return(SYSTEM, req.id)
    chat = Chat(client)
    await chat.bind("o_rep", world.east.rep)
    detail = await chat.say("o_rep", f"查订单 {order.number}")
    assert "海螺水泥 P.O 42.5 50kg × 10袋" in detail and "赠1袋" in detail
    assert "已发 11/11袋" in detail and "已发11" not in detail  # the gift is not an over-shipment
    assert "已退 2袋" in detail and "退货" in detail and "破损" in detail
    assert world.east.distributor.name in detail
    listing = await chat.say("o_rep", "我的订单")
    assert order.number in listing and world.east.distributor.name in listing
    assert order.number in await chat.say("o_rep", f"{order.number.lower()}到哪了")
