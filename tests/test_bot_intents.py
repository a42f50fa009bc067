"""Intents end to end through the real webhooks: bind, stock (fuzzy, numbered pick), leads
(conflict -> 仲裁), a 下单 conversation that places one order however often 确认 comes,
orders, commission, contracts — each as the bound user's Actor (the API's scope rules)."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest

from bot.intents.leads import parse as parse_lead
from bot.intents.orders import Item, parse_items
from core.clock import today
from core.config import Config
from models.base import LeadStatus
from models.contract import Contract
from models.lead import Lead
from models.order import IdempotencyRecord, Order
from tests.factories import World, make_price_list, make_product, make_stock, make_world
from tests.test_bot_support import (
    Chat,
    bot_overrides,
    fast_hashes,  # noqa: F401  (autouse)
)


@pytest.fixture
def config(config: Config) -> Config:
    return config.with_overrides(bot_overrides())


def test_parse_items() -> None:
    assert parse_items("螺纹钢Φ12 5吨, 水泥 100袋") == [Item("螺纹钢Φ12", 5, "吨"), Item("水泥", 100, "袋")]
    assert parse_items("盘螺8 x3；PPR管25 10根") == [Item("盘螺8", 3, None), Item("PPR管25", 10, "根")]
    assert parse_items("水泥100袋") == [Item("水泥", 100, "袋")]
    assert parse_items("螺纹钢Φ12") is None  # 12 is the spec, not a quantity
    assert parse_items("螺纹钢 0吨") is None
    assert parse_items("你好") is None


def test_parse_lead_command() -> None:
    lead = parse_lead("深圳市腾讯计算机系统有限公司 +86 138-0013-8000 南山总部")
    assert lead is not None and lead.customer_name == "深圳市腾讯计算机系统有限公司"
    assert lead.phone == "+86138-0013-8000" and lead.project == "南山总部"
    lead = parse_lead("深圳市腾讯计算机系统有限公司 13800138000 914403007261824992 南山 总部")
    assert lead is not None and lead.phone == "13800138000" and lead.uscc == "914403007261824992"
    assert lead.customer_name == "深圳市腾讯计算机系统有限公司" and lead.project == "南山 总部"
    assert parse_lead("只有名字") is None
    lead = parse_lead("某某建设有限公司 13800138000 南山 区域：华北 总部")
    assert lead is not None and lead.region == "华北" and lead.project == "南山 总部"


async def catalogue(world: World) -> dict[str, object]:
    p8 = await make_product(name="盘螺 HRB400E Φ8", sku="PL-001", category="盘螺", unit="吨")
    p10 = await make_product(name="盘螺 HRB400E Φ10", sku="PL-002", category="盘螺", unit="吨")
    cement = await make_product(name="海螺水泥 P.O 42.5 50kg", sku="SN-001", category="水泥", unit="袋")
    for p, qty in ((p8, 40), (p10, 80), (cement, 1000)):
        await make_stock(world.company_warehouse, p, on_hand=qty)
    await make_price_list({p8: "3900.00", p10: "3950.00", cement: "28.00"}, valid_from=date(2020, 1, 1))
    return {"p8": p8, "p10": p10, "cement": cement}


async def test_unbound_sender_is_told_how_to_bind_and_unknown_text_gets_help(client) -> None:
    chat = Chat(client)
    reply = await chat.say("o_stranger", "查库存 盘螺")
    assert "绑定" in reply and "邀请码" in reply
    assert "邀请码无效" in await chat.say("o_stranger", "绑定 NOTACODE")
    world = await make_world()
    await chat.bind("o_rep", world.east.rep)
    reply = await chat.say("o_rep", "今天天气怎么样")
    assert "没听懂" in reply and "查库存" in reply


async def test_chat_bind_guesses_are_limited_per_account(client) -> None:
    from core import runtime as rt
    from handlers.identity import issue_invite_code
    from models.user import Identity

    r = rt.runtime()
    r.config = r.config.with_overrides({"limits": {"bind_failures_per_account_per_hour": 3}})
    chat = Chat(client)
    world = await make_world()
    for i in range(3):
        assert "邀请码无效" in await chat.say("o_guess", f"绑定 WRONG{i:03d}")
    right = (await issue_invite_code(None, world.east.rep.id)).code
    assert "太频繁" in await chat.say("o_guess", f"绑定 {right}")
    assert not await Identity.filter(account_id="o_guess").exists()
    assert "绑定成功" in await chat.say("o_fine", f"绑定 {right}")  # another account: unaffected


async def test_stock_fuzzy_question_numbered_pick(client) -> None:
    world = await make_world()
    products = await catalogue(world)
    await make_stock(world.north.warehouse, products["p8"], on_hand=7)  # north's own: not east's
    chat = Chat(client)
    await chat.bind("o_rep", world.east.rep)
    listing = await chat.say("o_rep", "盘螺还有货吗")
    assert "1. 盘螺 HRB400E Φ8" in listing and "2. 盘螺 HRB400E Φ10" in listing
    picked = await chat.say("o_rep", "2")
    assert "盘螺 HRB400E Φ10" in picked and "80吨" in picked
    own = await chat.say("o_rep", "查库存 盘螺Φ8")
    assert "可用库存 40吨" in own and world.north.warehouse.name not in own
    assert "40吨" in await chat.say("o_rep", "查库存 pl8")  # pinyin initials + spec
    assert "没有找到" in await chat.say("o_rep", "查库存 不存在的东西")


async def test_lead_registration_conflict_and_arbitration_across_channels(client) -> None:
    world = await make_world()
    wechat, dingtalk = Chat(client), Chat(client, "dingtalk")
    await wechat.bind("o_east_rep", world.east.rep)
    await dingtalk.bind("north_rep", world.north.rep)
    ok = await wechat.say("o_east_rep", "报备 深圳市腾讯计算机系统有限公司 13800138000 南山总部")
    assert "报备成功" in ok and "保护期至" in ok
    conflict = await dingtalk.say("north_rep", "报备 深圳市腾讯计算机系统有限责任公司\u3000 13900000000")
    assert "已被报备" in conflict and world.east.rep.display_name not in conflict
    pending = await dingtalk.say("north_rep", "仲裁")
    assert "经理审核" in pending
    statuses = sorted(str(s) for s in await Lead.all().values_list("status", flat=True))
    assert statuses == [LeadStatus.PENDING_REVIEW, LeadStatus.PROTECTED]
    assert "格式" in await wechat.say("o_east_rep", "报备 只有名字")


async def test_order_conversation_places_exactly_one_order(client) -> None:
    world = await make_world()
    await catalogue(world)
    chat = Chat(client)
    await chat.bind("o_rep", world.east.rep)
    ask = await chat.say("o_rep", "下单")
    assert world.east.distributor.name in ask and world.east.child.name in ask
    assert world.north.distributor.name not in ask  # out of the rep's scope
    number = 1 if ask.index(world.east.distributor.name) < ask.index(world.east.child.name) else 2
    assert "请发送商品和数量" in await chat.say("o_rep", str(number))
    summary = await chat.say("o_rep", "盘螺Φ8 5吨，水泥 100袋")
    assert "盘螺 HRB400E Φ8 × 5吨" in summary and "单价¥3900.00" in summary
    assert "海螺水泥 P.O 42.5 50kg × 100袋" in summary and "合计：¥22300.00" in summary
    confirm = chat.sim.text("o_rep", "确认")
    replies = await asyncio.gather(*(chat.send(confirm) for _ in range(5)))  # WeChat retries at once
    placed = replies[0]
    assert placed is not None and "订单已提交" in placed and set(replies) == {placed}
    order = await Order.get()
    assert order.number in placed and order.distributor_id == world.east.distributor.id
    assert str(order.total_amount) == "22300.00"
    # the user sends 确认 again (a new message, not a redelivery): same order, none added
    again = await chat.say("o_rep", "确认")
    assert order.number in again and await Order.all().count() == 1
    assert await IdempotencyRecord.filter(key__startswith="chat:wechat:o_rep:").count() == 1
    # the orders intents see it; another tenant's rep does not
    assert order.number in await chat.say("o_rep", "订单")
    detail = await chat.say("o_rep", f"查订单 {order.number}")
    assert "待审核" in detail or "已审核" in detail
    other = Chat(client, "wecom")
    await other.bind("north_rep", world.north.rep)
    assert "没有找到" in await other.say("north_rep", f"查订单 {order.number}")


async def test_order_summary_can_be_cancelled_and_checks_units(client) -> None:
    world = await make_world()
    await catalogue(world)
    chat = Chat(client)
    await chat.bind("o_dist", world.east.dist_user)  # a distributor user orders for itself
    assert "单位是吨" in await chat.say("o_dist", "下单 盘螺Φ10 3袋")
    summary = await chat.say("o_dist", "下单 盘螺Φ10 3吨")
    assert "× 3吨" in summary and world.east.distributor.name in summary
    assert "取消" in await chat.say("o_dist", "取消")
    assert "没有待确认" in await chat.say("o_dist", "确认")
    assert await Order.all().count() == 0
    many = await chat.say("o_dist", "下单 盘螺 3吨")
    assert "多个商品" in many


async def test_commission_and_contracts(client) -> None:
    world = await make_world()
    await Contract.create(
        distributor=world.east.distributor,
        number="HT-2026-001",
        start_date=today() - timedelta(days=300),
        end_date=today() + timedelta(days=20),
        status="active",
    )
    east, north = Chat(client), Chat(client, "dingtalk")
    await east.bind("o_rep", world.east.rep)
    await north.bind("north_rep", world.north.rep)
    assert "暂无佣金" in await east.say("o_rep", "本月佣金")
    contracts = await east.say("o_rep", "合同")
    assert "HT-2026-001" in contracts and "剩20天" in contracts
    assert "HT-2026-001" not in await north.say("north_rep", "合同")
