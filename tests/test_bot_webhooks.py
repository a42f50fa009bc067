"""The three webhooks over a real server: payloads built the way the platforms build them
(signed and encrypted with the channels crypto), replies verified and decrypted; bad
signatures do nothing; redeliveries are acted on once with the same reply (invariant 5)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

import pytest

from bot import dedupe
from bot.simulator import DingTalkSimulator, WeChatSimulator
from channels.dingtalk.crypto import robot_sign
from channels.wechat.crypto import WeChatCrypto
from core.app import create_app
from core.clock import FixedClock, SystemClock, set_clock
from core.config import Config
from core.keys import KV_STORE
from models.audit import AuditLog
from models.lead import Lead
from models.user import Identity, InviteCode
from tests.factories import make_world
from tests.test_bot_support import (
    DT_SECRET,
    WX_APPID,
    WX_KEY,
    WX_TOKEN,
    Chat,
    FakePlatform,
    bot_overrides,
    fast_hashes,  # noqa: F401  (autouse)
)


@pytest.fixture
def config(config: Config) -> Config:
    return config.with_overrides(bot_overrides())


# --- URL verification ---------------------------------------------------------------------


@pytest.fixture
def clock_at():  # type: ignore[no-untyped-def]
    """The samples' timestamps are years old and callbacks must be within 5 minutes of now:
    run the known-answer checks at the samples' own time."""

    def at(ts: int) -> None:
        set_clock(FixedClock(datetime.fromtimestamp(ts, UTC)))

    yield at
    set_clock(SystemClock())


async def test_wechat_url_check_known_answer(client, clock_at) -> None:  # type: ignore[no-untyped-def]
    # PLATFORMS.md [checked]: token AAAAA
    clock_at(1714036504)
    params = {
        "signature": "f464b24fc39322e44b38aa78f5edd27bd1441696",
        "timestamp": "1714036504",
        "nonce": "1514711492",
        "echostr": "4375120948345356249",
    }
    resp = await client.get("/bot/wechat", params=params)
    assert resp.status == 200 and await resp.text() == "4375120948345356249"
    resp = await client.get("/bot/wechat", params=params | {"nonce": "1514711493"})
    assert resp.status == 401


async def test_wecom_url_check_known_answer(client, clock_at) -> None:  # type: ignore[no-untyped-def]
    clock_at(1476416373)
    params = {
        "msg_signature": "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
        "timestamp": "1476416373",
        "nonce": "47744683",
        "echostr": "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==",
    }
    resp = await client.get("/bot/wecom", params=params)
    assert resp.status == 200 and await resp.text() == "1288432023552776189"
    resp = await client.get("/bot/wecom", params=params | {"timestamp": "1476416374"})
    assert resp.status == 401


async def test_unconfigured_webhooks_refuse_everything(aiohttp_client, config: Config) -> None:
    empty = config.with_overrides(
        {
            "wechat": {"token": "", "encoding_aes_key": ""},
            "wecom": {"token": ""},
            "dingtalk": {"app_secret": ""},
        }
    )
    client = await aiohttp_client(create_app(empty, scheduler=False))
    try:
        # An empty token would make the signature computable by anyone.
        sim = WeChatSimulator("", encrypted=False)
        req = sim.text("o_someone", "帮助")
        assert (await client.post(req.path, params=req.params, data=req.body)).status == 403
        assert (await client.get("/bot/wechat", params=sim.verify_url().params)).status == 403
        assert (await client.get("/bot/wecom", params={"echostr": "x"})).status == 403
        dt = DingTalkSimulator("").text("staff1", "帮助")
        assert (await client.post(dt.path, data=dt.body, headers=dt.headers)).status == 403
    finally:
        await client.app[KV_STORE].flush_namespace()


# --- messages in, replies out ------------------------------------------------------------


async def test_wechat_safe_mode_xml_and_json_and_plaintext(client, aiohttp_client, config: Config) -> None:
    for chat in (Chat(client), Chat(client, fmt="json")):
        reply = await chat.say("o_unbound_user", "帮助")
        assert "绑定" in reply and "查库存" in reply
    # plaintext only when no EncodingAESKey is configured (safe mode refuses it: 403)
    assert (await Chat(client, encrypted=False).post(Chat(client, encrypted=False).sim.text("o_u", "帮助")))[
        0
    ] == 403
    plain = await aiohttp_client(
        create_app(config.with_overrides({"wechat": {"encoding_aes_key": ""}}), scheduler=False)
    )
    for chat in (Chat(plain, encrypted=False), Chat(plain, encrypted=False, fmt="json")):
        reply = await chat.say("o_unbound_user", "帮助")
        assert "绑定" in reply and "查库存" in reply


async def test_encrypted_reply_is_sealed_for_us(client) -> None:
    chat = Chat(client)
    status, body = await chat.post(chat.sim.text("o_user", "帮助"))
    assert status == 200 and "<Encrypt>" in body and "帮助" not in body and "绑定" not in body
    # our own crypto (not the simulator's reader) opens it: the signature is over our token
    crypto = WeChatCrypto(WX_TOKEN, WX_KEY, WX_APPID)
    from channels.wechat.parser import parse_body

    fields = parse_body(body)
    plain = crypto.verify_and_decrypt(
        fields["MsgSignature"], fields["TimeStamp"], fields["Nonce"], fields["Encrypt"]
    ).text
    assert "<ToUserName><![CDATA[o_user]]></ToUserName>" in plain and "<MsgType><![CDATA[text]]>" in plain


async def test_wecom_and_dingtalk_round_trip(client) -> None:
    assert "查库存" in await Chat(client, "wecom").say("zhangsan", "帮助")
    dt = Chat(client, "dingtalk")
    assert "查库存" in await dt.say("staff001", "帮助")
    req = dt.sim.text("staff002", "帮助", group=True)
    status, body = await dt.post(req)
    data = json.loads(body)
    assert status == 200 and data["msgtype"] == "text" and data["at"] == {"atUserIds": ["staff002"]}


async def test_events_and_pictures_get_an_answer_or_success(client) -> None:
    chat = Chat(client)
    welcome = await chat.send(chat.sim.event("o_new", "subscribe"))
    assert welcome is not None and "欢迎" in welcome and "邀请码" in welcome
    assert await chat.send(chat.sim.event("o_new", "unsubscribe")) is None
    assert await chat.send(chat.sim.event("o_new", "subscribe_msg_popup_event")) is None
    picture = await chat.send(chat.sim.image("o_new"))
    assert picture is not None and "文字" in picture


# --- bad signatures and bad payloads change nothing --------------------------------------


async def test_bad_signatures_do_nothing(client) -> None:
    world = await make_world()
    from handlers.identity import issue_invite_code

    invite = await issue_invite_code(None, world.east.rep.id)
    audit_before = await AuditLog.all().count()
    kv = client.app[KV_STORE]
    chat = Chat(client)
    good = chat.sim.text("o_attacker", f"绑定 {invite.code}")
    bad_cases = [
        (good.params | {"msg_signature": "0" * 40}, good.body),  # wrong msg_signature
        (good.params | {"timestamp": str(int(time.time()) + 1)}, good.body),  # signed for another ts
        (good.params, good.body.replace("<Encrypt><![CDATA[", "<Encrypt><![CDATA[AAAA")),  # tampered
        ({k: v for k, v in good.params.items() if k != "msg_signature"}, good.body),  # missing
    ]
    for params, body in bad_cases:
        resp = await client.post("/bot/wechat", params=params, data=body.encode())
        assert resp.status == 401, await resp.text()
    plain = Chat(client, encrypted=False).sim.text("o_attacker", f"绑定 {invite.code}")
    for signature in ("f" * 40, plain.params["signature"]):  # plaintext in safe mode: refused either way
        resp = await client.post(
            "/bot/wechat", params=plain.params | {"signature": signature}, data=plain.body
        )
        assert resp.status == 403
    dt = DingTalkSimulator(DT_SECRET).text("staff_x", f"绑定 {invite.code}")
    for headers in (
        dt.headers | {"sign": robot_sign("not-the-secret", dt.headers["timestamp"])},
        dt.headers | {"timestamp": str(int(dt.headers["timestamp"]) + 1)},
        {k: v for k, v in dt.headers.items() if k != "sign"},
    ):
        resp = await client.post("/bot/dingtalk", data=dt.body.encode(), headers=headers)
        assert resp.status == 401
    stale_ms = int(time.time() * 1000) - 2 * 3600 * 1000  # right sign, 2 h old
    stale = DingTalkSimulator(DT_SECRET).text("staff_x", f"绑定 {invite.code}", timestamp_ms=stale_ms)
    assert (await client.post("/bot/dingtalk", data=stale.body.encode(), headers=stale.headers)).status == 401
    # nothing happened: the code is unused, nobody is bound, no audit, no dedupe or state keys
    assert (await InviteCode.get(id=invite.id)).used_at is None
    assert await Identity.all().count() == 0
    assert await AuditLog.all().count() == audit_before
    for key in ("chat:seen", "chat:conv", "rate:chat"):
        assert not [k for k in await _keys(kv) if key in k]


async def _keys(kv) -> list[str]:  # type: ignore[no-untyped-def]
    if hasattr(kv, "_data"):
        return [*kv._data, *kv._windows]
    return [k.decode() for k in await kv.client.keys(kv.full_key("*"))]


async def test_bad_payloads_are_400(client, aiohttp_client, config: Config) -> None:
    plain = await aiohttp_client(
        create_app(config.with_overrides({"wechat": {"encoding_aes_key": ""}}), scheduler=False)
    )
    req = Chat(plain, encrypted=False).sim.text("o_x", "帮助")
    for body in ("<xml><ToUserName>", '<!DOCTYPE x [<!ENTITY a "b">]><xml/>', "[1,2]", "<xml><A>1</A></xml>"):
        resp = await plain.post("/bot/wechat", params=req.params, data=body.encode())
        assert resp.status == 400, body
    other_app = WeChatSimulator(WX_TOKEN, WX_KEY, "wx_some_other_app")  # sealed for someone else
    req = other_app.text("o_x", "帮助")
    assert (await client.post("/bot/wechat", params=req.params, data=req.body.encode())).status == 400
    dt = DingTalkSimulator(DT_SECRET).sign('{"msgtype": "text"}')
    assert (await client.post("/bot/dingtalk", data=dt.body.encode(), headers=dt.headers)).status == 400


# --- delivery semantics ------------------------------------------------------------------


async def test_redelivered_message_is_acted_on_once_with_the_same_reply(client) -> None:
    world = await make_world()
    chat = Chat(client)
    await chat.bind("o_rep", world.east.rep)
    req = chat.sim.text("o_rep", "报备 杭州西湖建筑工程有限公司 13812345678 地铁项目")
    replies = await asyncio.gather(*(chat.send(req) for _ in range(6)))  # WeChat's retries, at once
    later = await chat.send(req)  # and one more after the first finished
    assert await Lead.all().count() == 1
    assert len(set(replies)) == 1 and replies[0] == later and "报备成功" in replies[0]


async def test_dingtalk_replay_by_msg_id_is_acted_on_once(client) -> None:
    world = await make_world()
    chat = Chat(client, "dingtalk")
    await chat.bind("staff_rep", world.east.rep)
    req = chat.sim.text("staff_rep", "报备 宁波北仑港务建设有限公司 13822223333")
    first = await chat.send(req)
    # a replay re-signed with a fresh timestamp: the sign is fine, the msgId gives it away
    again = DingTalkSimulator(DT_SECRET).sign(req.body)
    assert await chat.send(again) == first
    assert await Lead.all().count() == 1


async def test_same_text_in_two_messages_is_two_actions(client) -> None:
    """Dedupe is on the delivery, not the text: a user asking twice is answered twice."""
    chat = Chat(client)
    one = await chat.say("o_u", "帮助")
    two = await chat.say("o_u", "帮助")
    assert one == two  # both answered (two different MsgIds)


async def test_slow_reply_is_acknowledged_then_pushed(
    aiohttp_client, aiohttp_server, config, monkeypatch
) -> None:
    platform = FakePlatform()
    server = await aiohttp_server(platform.app())
    cfg = config.with_overrides(bot_overrides(str(server.make_url("")).rstrip("/")))
    client = await aiohttp_client(create_app(cfg, scheduler=False))
    monkeypatch.setattr(dedupe, "DEADLINE_S", 0.05)
    monkeypatch.setattr(dedupe, "RETRY_WAIT_S", 0.01)
    import bot.dispatcher

    real = bot.dispatcher.actor_for_identity

    async def slow(channel: str, account: str):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.3)
        return await real(channel, account)

    monkeypatch.setattr(bot.dispatcher, "actor_for_identity", slow)
    try:
        chat = Chat(client)
        req = chat.sim.text("o_slow", "帮助")
        assert await chat.send(req) is None  # "success" within the deadline
        assert await chat.send(req) is None  # WeChat's retry while it still runs: success again
        dt = Chat(client, "dingtalk", session_webhook_base=str(server.make_url("")).rstrip("/"))
        assert await dt.send(dt.sim.text("staff_slow", "帮助")) is None
        for _ in range(100):
            if len(platform.sent) >= 2:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        by_channel = {name: body for name, body in platform.sent}
        assert len(platform.sent) == 2, platform.sent  # pushed once each, the retry added nothing
        assert (
            by_channel["wechat"]["touser"] == "o_slow" and "绑定" in by_channel["wechat"]["text"]["content"]
        )
        assert "绑定" in by_channel["dingtalk"]["text"]["content"]
        # the retry that comes after the push is acknowledged, not answered a second time
        assert await chat.send(req) is None
    finally:
        await client.app[KV_STORE].flush_namespace()


async def test_session_webhook_only_goes_to_the_dingtalk_host(client) -> None:
    from channels.chat_push import ChatPusher, PushFailed, PushTarget
    from core.keys import CONFIG, HTTP

    pusher = ChatPusher(client.app[CONFIG], client.app[HTTP], client.app[KV_STORE])
    target = PushTarget("dingtalk", "staff", session_webhook="http://169.254.169.254/latest/meta-data")
    with pytest.raises(PushFailed):
        await pusher.push_text(target, "hi")
    assert pusher.allowed_webhook("https://oapi.dingtalk.com/robot/sendBySession?session=x")


async def test_rate_limit_per_sender_is_polite(aiohttp_client, config: Config) -> None:
    cfg = config.with_overrides(bot_overrides() | {"limits": {"chat_per_sender_per_min": 3}})
    client = await aiohttp_client(create_app(cfg, scheduler=False))
    try:
        chat = Chat(client)
        replies = [await chat.say("o_fast", "帮助") for _ in range(4)]
        assert all("查库存" in r for r in replies[:3]) and "太快" in replies[3]
        assert "查库存" in await chat.say("o_other", "帮助")  # per sender, not global
    finally:
        await client.app[KV_STORE].flush_namespace()


async def test_background_tasks_are_drained_then_cancelled() -> None:
    tasks = dedupe.BackgroundTasks()
    done: list[str] = []

    async def quick() -> None:
        await asyncio.sleep(0.01)
        done.append("quick")

    slow = tasks.spawn(asyncio.sleep(30))
    tasks.spawn(quick())
    assert len(tasks) == 2
    await tasks.drain(timeout=0.2)
    assert done == ["quick"] and slow.cancelled() and len(tasks) == 0
