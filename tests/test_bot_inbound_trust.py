"""Inbound trust of the bot webhooks (DESIGN §5): plaintext refused in safe mode, timestamps
within 5 minutes, each (timestamp, nonce) used by one message only — a platform retry of the
same message still gets the same reply —, DingTalk robotCode, and absurd message times are a
400, never a 500."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

import pytest

from bot.simulator import DingTalkSimulator, WeChatSimulator
from core.clock import FixedClock, SystemClock, set_clock
from core.config import Config
from core.kv import open_kv
from models.lead import Lead
from models.order import Order
from tests.factories import make_world
from tests.test_bot_intents import catalogue
from tests.test_bot_support import (
    DT_SECRET,
    WX_TOKEN,
    Chat,
    bot_overrides,
    fast_hashes,  # noqa: F401  (autouse)
)
from tests.test_bot_webhooks import _keys


@pytest.fixture
def config(config: Config) -> Config:
    return config.with_overrides(bot_overrides())


@pytest.fixture
def plain_config(config: Config) -> Config:
    """An account in plaintext mode: no EncodingAESKey configured."""
    return config.with_overrides({"wechat": {"encoding_aes_key": ""}})


@pytest.fixture
async def plain_client(aiohttp_client, plain_config: Config):  # type: ignore[no-untyped-def]
    from core.app import create_app
    from core.keys import KV_STORE

    app = create_app(plain_config, scheduler=False)
    cli = await aiohttp_client(app)
    yield cli
    await app[KV_STORE].flush_namespace()


@pytest.fixture
def clock_at():  # type: ignore[no-untyped-def]
    """Set the application clock to a unix time (the known-answer samples are old)."""

    def at(ts: int) -> None:
        set_clock(FixedClock(datetime.fromtimestamp(ts, UTC)))

    yield at
    set_clock(SystemClock())


async def _post(client, req, **over):  # type: ignore[no-untyped-def]
    resp = await client.request(
        req.method, req.path, params=req.params | over, data=req.body.encode(), headers=req.headers
    )
    return resp.status, await resp.text()


async def _no_chat_state(client) -> None:  # type: ignore[no-untyped-def]
    from core.keys import KV_STORE

    keys = await _keys(client.app[KV_STORE])
    assert not [k for k in keys if "chat:seen" in k or "chat:conv" in k], keys


# --- 1a. safe mode refuses plaintext ---------------------------------------------------------


async def test_forged_plaintext_is_refused_when_aes_key_is_configured(client) -> None:
    """The reporter's attack: the query of a real callback's kind signs only token+ts+nonce, so a
    plain body with a bound user's openid would act as that user."""
    world = await make_world()
    await catalogue(world)
    chat = Chat(client)
    await chat.bind("o_rep", world.east.rep)
    forger = WeChatSimulator(WX_TOKEN, encrypted=False)
    for text in ("订单", "下单 盘螺Φ8 5吨", "确认", "佣金"):
        status, body = await _post(client, forger.text("o_rep", text))
        assert status == 403, body
        assert json.loads(body)["error"]["code"] == "plaintext_refused"
        assert "订单" not in body and "佣金" not in body
    assert await Order.all().count() == 0
    # the real (encrypted) channel still works for the same user
    assert "还没有订单" in await chat.say("o_rep", "订单")


async def test_plaintext_mode_still_works_without_aes_key(plain_client) -> None:  # type: ignore[no-untyped-def]
    client = plain_client
    reply = await Chat(client, encrypted=False).say("o_someone", "帮助")
    assert "查库存" in reply


# --- 1b. timestamps more than 5 minutes off ----------------------------------------------------


@pytest.mark.parametrize("offset", [-10 * 365 * 86400, -301, 301, 10**6])
async def test_wechat_and_wecom_refuse_timestamps_off_by_more_than_5_minutes(client, offset: int) -> None:
    world = await make_world()
    chat, wecom = Chat(client), Chat(client, "wecom")
    await chat.bind("o_rep", world.east.rep)
    await wecom.bind("zhangsan", world.east.rep)
    ts = str(int(time.time()) + offset)
    for sim in (chat.sim, wecom.sim):
        req = sim.text("o_rep" if sim is chat.sim else "zhangsan", "报备 杭州某某建设有限公司 13812345678")
        fields = _fields_of(sim, req)
        signed = sim.build(fields, timestamp=ts)  # properly signed, only old (or early)
        status, body = await _post(client, signed)
        assert status == 401, body
        assert json.loads(body)["error"]["code"] == "stale_timestamp"
    assert await Lead.all().count() == 0


async def test_2017_timestamp_in_plaintext_mode_is_refused(plain_client) -> None:  # type: ignore[no-untyped-def]
    client = plain_client
    sim = WeChatSimulator(WX_TOKEN, encrypted=False)
    req = sim.build(sim.fields("o_x", "text", Content="帮助", MsgId="1"), timestamp="1500000000")
    status, _ = await _post(client, req)
    assert status == 401
    fresh = sim.build(
        sim.fields("o_x", "text", Content="帮助", MsgId="2"), timestamp=str(int(time.time()) - 290)
    )
    assert (await _post(client, fresh))[0] == 200  # within the window


def _fields_of(sim, req) -> dict:  # type: ignore[no-untyped-def]
    """Rebuild the fields a simulator request was made of (for re-signing them differently)."""
    from channels.wechat.parser import parse_body

    plain = sim.crypto.decrypt_unverified(parse_body(req.body)["Encrypt"]).text if sim.crypto else req.body
    fields = dict(parse_body(plain))
    return {k: (int(v) if k in ("CreateTime", "AgentID") else v) for k, v in fields.items()}


# --- 1c. one (timestamp, nonce) per message; retries still answered ---------------------------


@pytest.mark.parametrize("channel", ["wechat", "wecom"])
async def test_same_timestamp_and_nonce_with_another_body_is_refused(client, channel: str) -> None:
    world = await make_world()
    chat = Chat(client, channel)
    await chat.bind("u_rep", world.east.rep)
    ts, nonce = str(int(time.time())), "1234567890"
    first = chat.sim.build(
        _fields_of(chat.sim, chat.sim.text("u_rep", "报备 宁波甲建设有限公司 13811112222")),
        timestamp=ts,
        nonce=nonce,
    )
    second = chat.sim.build(
        _fields_of(chat.sim, chat.sim.text("u_rep", "报备 宁波乙建设有限公司 13833334444")),
        timestamp=ts,
        nonce=nonce,
    )
    assert "报备成功" in (chat.sim.read_reply(*await _post(client, first)) or "")
    status, body = await _post(client, second)
    assert status == 401 and json.loads(body)["error"]["code"] == "replayed", body
    assert await Lead.all().count() == 1


async def test_forged_body_on_a_captured_plaintext_query_is_refused(plain_client) -> None:  # type: ignore[no-untyped-def]
    """Plaintext mode: the signature does not cover the body. Once the real message used the
    query's (timestamp, nonce), a different body under that query does nothing."""
    client = plain_client
    world = await make_world()
    chat = Chat(client, encrypted=False)
    await chat.bind("o_rep", world.east.rep)
    real = chat.sim.text("o_rep", "帮助")
    assert (await _post(client, real))[0] == 200
    forged = chat.sim.plain_body(
        chat.sim.fields("o_rep", "text", Content="报备 伪造建设有限公司 13899990000", MsgId="9")
    )
    resp = await client.post("/bot/wechat", params=real.params, data=forged.encode())
    assert resp.status == 401
    assert await Lead.all().count() == 0


async def test_platform_retry_with_the_same_query_gets_the_same_reply(client) -> None:
    """WeChat re-sends a message it got no answer for; whether or not the retry reuses the
    query's (timestamp, nonce), it must be answered like the first, never refused (a refusal
    shows the user "该公众号暂时无法提供服务")."""
    world = await make_world()
    for channel in ("wechat", "wecom"):
        chat = Chat(client, channel)
        await chat.bind(f"{channel}_rep", world.east.rep)
        req = chat.sim.text(f"{channel}_rep", f"报备 {channel}重试建设有限公司 138{len(channel):08d}")
        replies = await asyncio.gather(*(chat.send(req) for _ in range(4)))  # at once
        later = await chat.send(req)  # and after the first finished
        assert len(set(replies)) == 1 and replies[0] == later and "报备成功" in (later or "")
    assert await Lead.all().count() == 2


async def test_nonce_memory_is_shared_by_instances(config: Config) -> None:
    """Two instances on one kv store: a (timestamp, nonce) used on one is used on the other."""
    from bot.webhooks.common import NonceMemory

    kv_a = open_kv(config.kv.url, namespace=config.kv.namespace)
    kv_b = open_kv(config.kv.url, namespace=config.kv.namespace)  # its own connection (Redis)
    if config.kv.url.startswith("memory"):
        kv_b = kv_a  # the in-process store is one instance's by design
    try:
        a, b = NonceMemory(kv_a), NonceMemory(kv_b)
        ts = str(int(time.time()))
        results = await asyncio.gather(
            a.claim("wechat", ts, "42", "body-1"),
            b.claim("wechat", ts, "42", "body-2"),
            return_exceptions=True,
        )
        assert sorted(type(r).__name__ for r in results) == ["NoneType", "Replayed"]
        await a.claim("wechat", ts, "43", "body-1")
        await b.claim("wechat", ts, "43", "body-1")  # the same message again: a retry, fine
        await b.claim("wecom", ts, "43", "body-2")  # another channel's nonces are its own
    finally:
        await kv_a.flush_namespace()
        await kv_a.close()
        if kv_b is not kv_a:
            await kv_b.close()


# --- GET verification keeps working, inside the window ------------------------------------------


async def test_url_checks_known_answers_at_their_time_and_refused_later(client, clock_at) -> None:  # type: ignore[no-untyped-def]
    wx = {
        "signature": "f464b24fc39322e44b38aa78f5edd27bd1441696",
        "timestamp": "1714036504",
        "nonce": "1514711492",
        "echostr": "4375120948345356249",
    }
    wecom = {
        "msg_signature": "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
        "timestamp": "1476416373",
        "nonce": "47744683",
        "echostr": "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==",
    }
    # today: the samples are years old, and a stale check is refused like a bad signature
    assert (await client.get("/bot/wechat", params=wx)).status == 401
    assert (await client.get("/bot/wecom", params=wecom)).status == 401
    clock_at(1714036504 + 200)
    resp = await client.get("/bot/wechat", params=wx)
    assert resp.status == 200 and await resp.text() == "4375120948345356249"
    resp = await client.get("/bot/wechat", params=wx)  # the console may check twice: no nonce memory
    assert resp.status == 200
    clock_at(1476416373 - 200)
    resp = await client.get("/bot/wecom", params=wecom)
    assert resp.status == 200 and await resp.text() == "1288432023552776189"
    # the simulator's own checks use the current time
    set_clock(SystemClock())
    assert (await client.get("/bot/wechat", params=Chat(client).sim.verify_url().params)).status == 200
    assert (
        await client.get("/bot/wecom", params=Chat(client, "wecom").sim.verify_url().params)
    ).status == 200


# --- DingTalk robotCode -------------------------------------------------------------------------


async def test_dingtalk_callback_for_another_robot_is_refused(client) -> None:
    world = await make_world()
    chat = Chat(client, "dingtalk")
    await chat.bind("staff_rep", world.east.rep)
    other = DingTalkSimulator(DT_SECRET, robot_code="ding_some_other_robot")
    status, body = await _post(client, other.text("staff_rep", "报备 杭州丙建设有限公司 13855556666"))
    assert status == 403 and json.loads(body)["error"]["code"] == "robot_mismatch", body
    missing = json.loads(other.text("staff_rep", "帮助").body)
    missing.pop("robotCode")
    status, _ = await _post(client, other.sign(json.dumps(missing)))
    assert status == 403
    assert await Lead.all().count() == 0
    assert "报备成功" in await chat.say("staff_rep", "报备 杭州丙建设有限公司 13855556666")


async def test_dingtalk_without_configured_robot_code_accepts_any(aiohttp_client, config: Config) -> None:
    from core.app import create_app
    from core.keys import KV_STORE

    app = create_app(config.with_overrides({"dingtalk": {"robot_code": ""}}), scheduler=False)
    client = await aiohttp_client(app)
    try:
        other = DingTalkSimulator(DT_SECRET, robot_code="ding_any")
        assert "查库存" in (other.read_reply(*await _post(client, other.text("staff", "帮助"))) or "")
    finally:
        await app[KV_STORE].flush_namespace()


# --- 5. absurd message times are 400 ------------------------------------------------------------

ABSURD_SECONDS = ["99999999999999999999", "100000000000000", "253402300800", "-1", "abc", "1e9", ""]


async def _absurd_create_time_is_400(client, chat: Chat, create_time: str) -> None:  # type: ignore[no-untyped-def]
    fields = _fields_of(chat.sim, chat.sim.text("u1", "帮助"))
    fields["CreateTime"] = create_time
    status, body = await _post(client, chat.sim.build(fields))
    assert status == 400, body
    await _no_chat_state(client)


@pytest.mark.parametrize("create_time", ABSURD_SECONDS)
@pytest.mark.parametrize("channel", ["wechat", "wecom"])
async def test_absurd_create_time_is_400(client, channel: str, create_time: str) -> None:  # type: ignore[no-untyped-def]
    await _absurd_create_time_is_400(client, Chat(client, channel), create_time)


@pytest.mark.parametrize("create_time", ABSURD_SECONDS)
async def test_absurd_create_time_in_plaintext_mode_is_400(plain_client, create_time: str) -> None:  # type: ignore[no-untyped-def]
    await _absurd_create_time_is_400(plain_client, Chat(plain_client, encrypted=False), create_time)


@pytest.mark.parametrize("create_at", [10**30, 10**17, 2**63, -1, "1700000000000", 1.7e12, None, True])
async def test_absurd_dingtalk_create_at_is_400(client, create_at: object) -> None:
    sim = DingTalkSimulator(DT_SECRET)
    body = json.loads(sim.text("staff1", "帮助").body)
    body["createAt"] = create_at
    status, text = await _post(client, sim.sign(json.dumps(body)))
    assert status == 400, text
    body = json.loads(sim.text("staff1", "帮助").body)
    body["sessionWebhookExpiredTime"] = 10**30
    status, text = await _post(client, sim.sign(json.dumps(body)))
    assert status == 400, text
    await _no_chat_state(client)


def test_timestamp_window_bounds() -> None:
    from channels.errors import StaleTimestamp
    from channels.wechat.crypto import check_timestamp

    now = 1_800_000_000
    for ok in ("1800000000", "1799999700", "1800000300", " 1800000000 "):
        assert check_timestamp(ok, now_s=now) == int(ok)
    for bad in ("1799999699", "1800000301", "0", "", "-1", "+1800000000", "1.8e9", "١٨٠٠٠٠٠٠٠٠", "9" * 13):
        with pytest.raises(StaleTimestamp):
            check_timestamp(bad, now_s=now)
