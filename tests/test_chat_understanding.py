"""Issue 18, chat understanding: the users' own words, through the real webhooks (the chat
simulator signs and encrypts them as WeChat / WeCom / DingTalk do), each as the bound user's
Actor. One test per finding; the phrasings corpus is tests/test_chat_corpus.py."""

from __future__ import annotations

from datetime import date

import pytest

from core.config import Config
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
