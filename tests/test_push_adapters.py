"""Channel adapters: subscribe value trimming, errcode classification, robot signing and the
fake platform's own rules (sign check, msgUuid dedupe, duplicate checks)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.dingtalk.client import DingTalkClient, split_webhook
from channels.fake.messaging import SUBSCRIBE_LIMITS
from channels.notifier import build_notifier, classify
from channels.tokens import TokenProvider
from channels.wechat.client import WeChatClient, field_type, subscribe_data, trim_value
from channels.wecom.client import WeComClient
from core.config import DingTalkRobot
from core.runtime import runtime
from handlers.outbox import OutboundMessage
from tests.factories_push import ROBOT_TOKEN, http_session, push_config, start_fake

TZ = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("thing1", "一二三四五六七八九十一二三四五六七八九十一", "一二三四五六七八九十一二三…六七八九十一"),
        ("thing2", "短", "短"),
        ("thing3", "换\n行", "换 行"),
        ("number4", "库存 1,234.5 吨", "1234.5"),
        ("letter5", "abc中文DEF123", "abcDEF"),
        ("symbol6", "a%b&c*d#e@f", "%&*#@"),
        ("character_string7", "SO202611230001-订单", "SO202611230001-"),
        ("phrase8", "已发货了吗abc", "已发货了吗"),
        ("name9", "欧阳诸葛司马上官长孙令狐", "欧阳诸葛司马上官长孙"),
        ("name10", "Alexander Hamilton Jr. Esq", "Alexander Hamilton J"),
        ("amount11", "1234.5", "¥1234.50"),
        ("amount12", "¥1234567890.99", "¥1234567891"),
        ("amount13", "99元", "¥99.00"),
        ("phone_number14", "tel: +86 138-0013-8000 ext", "+86 138-0013-8000"),
        ("date15", "2026-11-23", "2026年11月23日"),
        ("time16", datetime(2026, 11, 23, 7, 1, tzinfo=UTC), "2026年11月23日 15:01"),
        ("time17", "2026-11-23T07:01:00+00:00", "2026年11月23日 15:01"),
    ],
)
def test_trim_value_per_field_type(key: str, value: object, expected: str) -> None:
    assert trim_value(key, value) == expected


TEXT_TYPES = sorted(set(SUBSCRIBE_LIMITS) - {"amount"})


@given(st.dictionaries(st.sampled_from(TEXT_TYPES), st.text(max_size=80), min_size=1))
def test_trimmed_values_always_fit_the_limits(fields: dict[str, str]) -> None:
    data = subscribe_data({f"{k}1": v for k, v in fields.items()})
    for key, item in data.items():
        limit = SUBSCRIBE_LIMITS[field_type(key)]
        assert len(item["value"]) <= limit, (key, item)


@given(st.decimals(min_value=0, max_value=9_999_999_999, places=2, allow_nan=False))
def test_trimmed_amounts_fit(value: object) -> None:
    assert len(trim_value("amount1", value)) <= SUBSCRIBE_LIMITS["amount"]


@pytest.mark.parametrize("value", ["1E100", "abc", "", "NaN", "¥123456789012"])
def test_amounts_that_cannot_be_shown_are_not_altered(value: str) -> None:
    assert trim_value("amount1", value) == value  # WeChat refuses it: failed with the reason


@pytest.mark.parametrize(
    ("data", "status", "extra"),
    [
        ({"errcode": 0}, "sent", None),
        ({"errcode": 0, "invaliduser": "bob"}, "sent", "invaliduser: bob"),
        ({"errcode": 0, "invaliduser": "me|bob"}, "failed", "81013"),
        ({"errcode": 43101, "errmsg": "user refuse to accept the msg"}, "failed", "43101"),
        ({"errcode": 310000}, "failed", "310000"),
        ({"errcode": 40001}, "retry", "still rejected"),
        ({"errcode": -1}, "retry", None),
        ({"errcode": 45011}, "retry", None),
        ({"errcode": 130101}, "retry", None),
        ({"errcode": 99999}, "retry", None),  # unknown codes: retry, then dead
        ({"errcode": -1, "_http_status": 502}, "retry", None),
    ],
)
def test_classify_errcodes(db, data: dict, status: str, extra: str | None) -> None:  # type: ignore[no-untyped-def]
    result = classify(data, "wecom", TZ, account="me")
    assert result.status == status
    if extra:
        assert extra in ((result.error or "") + (result.note or ""))
    if data["errcode"] == 130101:
        assert result.robot_throttled and result.retry_after_s == 600


def test_split_webhook_keeps_the_access_token() -> None:
    base, params = split_webhook("https://oapi.dingtalk.com/robot/send?access_token=abc")
    assert base == "https://oapi.dingtalk.com/robot/send" and params == {"access_token": "abc"}


@pytest.fixture
async def fake(aiohttp_server):  # type: ignore[no-untyped-def]
    return await start_fake(aiohttp_server)


@pytest.fixture
def config(config, fake):  # type: ignore[no-untyped-def]
    return push_config(config, fake.base)


async def test_robot_sign_is_verified_and_msguuid_dedupes(db, fake, config):  # type: ignore[no-untyped-def]
    webhook = f"{fake.base}/robot/send?access_token={ROBOT_TOKEN}"
    async with http_session() as http:
        client = DingTalkClient(config, http, TokenProvider(config, http, runtime().kv))
        good = DingTalkRobot(name="ops", webhook=webhook, secret=config.dingtalk.robots[0].secret)
        bad = DingTalkRobot(name="ops", webhook=webhook, secret="SECwrong")
        assert (await client.robot_send(bad, title="t", text="x", msg_uuid="1"))["errcode"] == 310000
        assert (await client.robot_send(good, title="t", text="x", msg_uuid="1"))["errcode"] == 0
        assert (await client.robot_send(good, title="t", text="x", msg_uuid="1"))["errcode"] == 0
        stale = 1_000_000_000_000  # 2001: more than an hour off
        assert (await client.robot_send(good, title="t", text="x", msg_uuid="2", now_ms=stale))[
            "errcode"
        ] == 310000
    assert fake.count("dingtalk.robot") == 1 and fake.count("dingtalk.robot_duplicate") == 1
    assert fake.count("dingtalk.robot_rejected") == 2


async def test_resends_are_swallowed_like_the_real_platforms(db, fake, config):  # type: ignore[no-untyped-def]
    async with http_session() as http:
        tokens = TokenProvider(config, http, runtime().kv)
        wecom, dingtalk = WeComClient(config, http, tokens), DingTalkClient(config, http, tokens)
        for _ in range(2):
            assert (await wecom.send_text("u1", "same text"))["errcode"] == 0
            assert (await dingtalk.work_notify(["u1"], "same text"))["errcode"] == 0
        assert (await wecom.send_text(["invalid-a", "invalid-b"], "x"))["errcode"] == 81013
    assert fake.count("wecom.message") == 1 and fake.count("wecom.duplicate") == 1
    assert fake.count("dingtalk.work") == 1 and fake.count("dingtalk.work_dropped") == 1


async def test_other_clients_used_by_the_bot(db, fake, config):  # type: ignore[no-untyped-def]
    async with http_session() as http:
        tokens = TokenProvider(config, http, runtime().kv)
        wechat = WeChatClient(config, http, tokens)
        assert (await wechat.send_custom_text("openid-1", "您好"))["errcode"] == 0
        data = await DingTalkClient(config, http, tokens).robot_batch_send(["u1"], "标题", "正文")
        assert "processQueryKey" in data
        fake.state.tokens.clear()  # the token expired: the new API answers 401, mapped to a refresh
        data = await DingTalkClient(config, http, tokens).robot_batch_send(["u1"], "标题", "正文")
        assert "processQueryKey" in data
    assert fake.count("wechat.custom") == 1 and fake.count("dingtalk.robot_batch") == 2
    assert fake.count("dingtalk.gettoken") == 2


async def test_notifier_refuses_misconfigured_messages(db, fake, config):  # type: ignore[no-untyped-def]
    async with http_session() as http:
        notifier = build_notifier(config, http, runtime().kv)
        msg = OutboundMessage(
            id=1, channel="dingtalk_robot", to="nobody", kind="low_stock", title="t", body="b"
        )
        result = await notifier.send(msg)
        assert result.status == "failed" and "no DingTalk robot" in (result.error or "")
        sub = OutboundMessage(id=2, channel="wechat_subscribe", to="o1", kind="x", title="t", body="b")
        assert (await notifier.send(sub)).status == "failed"
