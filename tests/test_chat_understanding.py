"""Issue 18, chat understanding: the users' own words, through the real webhooks (the chat
simulator signs and encrypts them as WeChat / WeCom / DingTalk do), each as the bound user's
Actor. One test per finding; the phrasings corpus is tests/test_chat_corpus.py."""

from __future__ import annotations

from datetime import date

import pytest

from core.config import Config
from handlers.leads import name_core, normalize_name
from models.base import LeadStatus
from models.lead import Lead
from tests.factories import World, make_price_list, make_product, make_stock, make_world
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
    for p, qty in ((p8, 40), (p10, 80), (rebar, 60), (cement, 1000)):
        await make_stock(world.company_warehouse, p, on_hand=qty)
    await make_price_list(
        {p8: "3900.00", p10: "3950.00", rebar: "4000.00", cement: "28.00"}, valid_from=date(2020, 1, 1)
    )
    return {"p8": p8, "p10": p10, "rebar": rebar, "cement": cement}


def test_chat_rate_limit_default_is_60_a_minute() -> None:
    """30 a minute was tripped by a rep picking from lists and confirming briskly."""
    assert Config().limits.chat_per_sender_per_min == 60


def test_lead_name_cores_drop_regions_and_company_suffixes() -> None:
    names = ("上海宏达建筑工程有限公司", "上海宏达建设公司", "宏达建设", "上海市宏达建设集团有限责任公司")
    core = {name_core(normalize_name(n)) for n in names}
    assert core == {"宏达"}
    assert name_core(normalize_name("深圳市腾讯计算机系统有限公司")) == "腾讯计算机系统"
    assert name_core(normalize_name("建设公司")) == "建设"  # nothing left to strip down to: keep a core


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
        assert (await resp.json())["error"]["code"] == "validation_error"
    assert await Lead.all().count() == 0
