"""Outbox drain against the in-process fake platform: errcode classes, concurrency, crashes,
token expiry, robot rate limits and digests, quiet hours, subscribe grants."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from tortoise.transactions import in_transaction

from channels.notifier import build_notifier
from core import clock
from core.runtime import runtime
from handlers.notify import notify, quiet_until
from handlers.outbox import ROBOT_WAIT, SEND_STARTED, Drainer
from models.base import IdentityChannel, NotificationChannel, NotificationStatus
from models.notification import Notification, SubscriptionGrant
from tests.factories_push import (
    ROBOT,
    TEMPLATES,
    bind,
    grant,
    http_session,
    push_config,
    quick_user,
    start_fake,
    statuses,
)

S = NotificationStatus
C = NotificationChannel


@pytest.fixture
async def fake(aiohttp_server):  # type: ignore[no-untyped-def]
    return await start_fake(aiohttp_server, robot_window_s=1.0)


@pytest.fixture
def config(config, fake):  # type: ignore[no-untyped-def]
    return push_config(config, fake.base)


@pytest.fixture
async def notifier(db, config):  # type: ignore[no-untyped-def]
    async with http_session() as http:
        yield build_notifier(config, http, runtime().kv)


@pytest.fixture
def restore_clock():  # type: ignore[no-untyped-def]
    yield
    clock.set_clock(clock.SystemClock())


async def wecom_user(i: int = 0):  # type: ignore[no-untyped-def]
    user = await quick_user()
    await bind(user, IdentityChannel.WECOM, f"wc-user-{user.id}")
    return user


async def queue(n: int, *, channel: C | None = None, kind: str = "low_stock", prefix: str = "T", **kw):  # type: ignore[no-untyped-def]
    """n notifications with unique titles for one WeCom user each (or the given channel)."""
    rows = []
    for i in range(n):
        if channel == C.DINGTALK_ROBOT:
            row = await notify(
                recipient_ref=ROBOT,
                kind=kind,
                title=f"{prefix}{i}",
                body="b",
                dedupe_key=f"{prefix}:{i}",
                **kw,
            )
        else:
            user = await wecom_user()
            row = await notify(
                recipient_id=user.id,
                kind=kind,
                title=f"{prefix}{i}",
                body="b",
                dedupe_key=f"{prefix}:{i}",
                channel=channel,
                **kw,
            )
        rows.append(row)
    return rows


# --- writing --------------------------------------------------------------------------------------


async def test_notify_dedupe_key_inserts_once(db):  # type: ignore[no-untyped-def]
    user = await quick_user()
    first = await notify(recipient_id=user.id, kind="low_stock", title="t", body="b", dedupe_key="k1")
    again = await notify(recipient_id=user.id, kind="low_stock", title="t2", body="b", dedupe_key="k1")
    assert first is not None and again is None
    assert await Notification.filter(dedupe_key="k1").count() == 1


async def test_notify_concurrent_same_key_one_row(db, backend):  # type: ignore[no-untyped-def]
    user = await quick_user()

    async def write() -> object:
        async with in_transaction():
            return await notify(
                recipient_id=user.id, kind="low_stock", title="t", body="b", dedupe_key="race"
            )

    results = await asyncio.gather(*(write() for _ in range(20)))
    assert sum(r is not None for r in results) == 1
    assert await Notification.filter(dedupe_key="race").count() == 1


async def test_notify_rolls_back_with_the_callers_transaction(db):  # type: ignore[no-untyped-def]
    user = await quick_user()
    with pytest.raises(RuntimeError):
        async with in_transaction():
            await notify(recipient_id=user.id, kind="low_stock", title="t", body="b", dedupe_key="rb")
            raise RuntimeError("business failure")
    assert not await Notification.exists(dedupe_key="rb")


async def test_notify_chooses_the_best_channel_per_user(db):  # type: ignore[no-untyped-def]
    users = [await quick_user() for _ in range(5)]
    await bind(users[0], IdentityChannel.MINIAPP)
    await grant(users[0], TEMPLATES["low_stock"])
    await bind(users[0], IdentityChannel.WECOM)
    await bind(users[1], IdentityChannel.MINIAPP)  # no grant -> not subscribe
    await bind(users[1], IdentityChannel.WECOM)
    await bind(users[2], IdentityChannel.DINGTALK)
    await bind(users[4], IdentityChannel.MINIAPP)
    await grant(users[4], "tpl-other")  # a grant for another template does not count
    got = []
    for i, u in enumerate(users):
        row = await notify(recipient_id=u.id, kind="low_stock", title="t", body="b", dedupe_key=f"c{i}")
        assert row is not None
        got.append((row.channel, row.status))
    assert got == [
        (C.WECHAT_SUBSCRIBE, S.PENDING),
        (C.WECOM, S.PENDING),
        (C.DINGTALK_WORK, S.PENDING),
        (C.INBOX, S.SENT),  # nothing to push: straight to the inbox
        (C.INBOX, S.SENT),
    ]


# --- delivery -------------------------------------------------------------------------------------


async def test_drain_delivers_every_channel_with_platform_shapes(db, fake, notifier):  # type: ignore[no-untyped-def]
    users = [await quick_user() for _ in range(4)]
    await bind(users[0], IdentityChannel.MINIAPP, "openid-0")
    await grant(users[0], TEMPLATES["order_status"])
    await bind(users[1], IdentityChannel.WECOM, "wc-1")
    await bind(users[2], IdentityChannel.DINGTALK, "dt-2")
    await bind(users[3], IdentityChannel.WECHAT, "oa-3")
    long_title = "一二三四五六七八九十一二三四五六七八九十超长"
    sub = await notify(
        recipient_id=users[0].id, kind="order_status", title=long_title, body="b", dedupe_key="a"
    )
    await notify(recipient_id=users[1].id, kind="low_stock", title="WC", body="库存低", dedupe_key="b")
    work = await notify(recipient_id=users[2].id, kind="low_stock", title="DT", body="库存低", dedupe_key="c")
    await notify(
        recipient_id=users[3].id,
        kind="order_status",
        title="OA",
        body="b",
        dedupe_key="d",
        channel="wechat_template",
    )
    robot = await notify(recipient_ref=ROBOT, kind="low_stock", title="RB", body="b", dedupe_key="e")
    stats = await Drainer(notifier).drain()
    assert stats.sent == 5, stats
    assert await statuses() == Counter({"sent": 5})
    [s] = fake.calls("wechat.subscribe")
    assert s["body"]["touser"] == "openid-0" and s["body"]["template_id"] == TEMPLATES["order_status"]
    assert len(s["body"]["data"]["thing1"]["value"]) == 20  # trimmed to the thing limit
    [w] = fake.calls("wecom.message")
    assert w["body"]["touser"] == "wc-1" and w["body"]["enable_duplicate_check"] == 1
    [d] = fake.calls("dingtalk.work")
    assert d["body"]["userid_list"] == "dt-2"
    assert f"#{work.id}]" in d["body"]["msg"]["text"]["content"]  # date + sequence in the text
    [r] = fake.calls("dingtalk.robot")
    assert r["verified"] is True and r["body"]["msgUuid"] == str(robot.id)
    [t] = fake.calls("wechat.template")
    assert t["body"]["touser"] == "oa-3"
    assert await SubscriptionGrant.get(user_id=users[0].id).values_list("remaining", flat=True) == 0
    assert sub is not None


PERMANENT = [43101, 40003, 40037, 41030, 43107, 45168, 47003, 81013]


@pytest.mark.parametrize("errcode", PERMANENT)
async def test_drain_permanent_errcode_fails_without_retry(db, fake, notifier, errcode):  # type: ignore[no-untyped-def]
    user = await quick_user()
    await bind(user, IdentityChannel.MINIAPP)
    await grant(user, TEMPLATES["low_stock"])
    row = await notify(recipient_id=user.id, kind="low_stock", title="t", body="b", dedupe_key="p")
    fake.fault("/subscribe/send", errcode=errcode, count=5)
    await Drainer(notifier).drain()
    await row.refresh_from_db()
    assert row.status == S.FAILED and str(errcode) in (row.last_error or "")
    assert row.attempts == 1
    assert fake.count("fault") == 1  # tried once, never again
    assert await Notification.filter(recipient_id=user.id).count() == 1  # still in the inbox


async def test_drain_robot_sign_error_310000_is_permanent(db, fake, notifier, config):  # type: ignore[no-untyped-def]
    [row] = await queue(1, channel=C.DINGTALK_ROBOT)
    fake.fault("/robot/send", errcode=310000)
    await Drainer(notifier, robot_window_s=1.0).drain()
    await row.refresh_from_db()
    assert row.status == S.FAILED and "310000" in (row.last_error or "")


@pytest.mark.parametrize(
    ("errcode", "status", "min_wait", "max_wait"),
    [
        (-1, None, 10, 40),  # busy: backoff (30 s base, equal jitter) -> 15..30 s
        (43108, None, 2, 4),
        (45011, None, 1, 61),
        (45009, None, 60, 86_400 + 600),
        (None, 502, 10, 40),
    ],
)
async def test_drain_retryable_errors_back_off(db, fake, notifier, errcode, status, min_wait, max_wait):  # type: ignore[no-untyped-def]
    [row] = await queue(1)
    fake.fault("/cgi-bin/message/send", errcode=errcode, status=status)
    before = clock.now()
    await Drainer(notifier).drain()
    await row.refresh_from_db()
    assert row.status == S.PENDING and row.attempts == 1
    wait = (row.next_attempt_at - before).total_seconds()
    assert min_wait <= wait <= max_wait, wait
    assert fake.count("wecom.message") == 0


async def test_drain_daily_quota_defers_to_tomorrow(db, fake, notifier, restore_clock):  # type: ignore[no-untyped-def]
    clock.set_clock(clock.FixedClock(datetime(2026, 11, 23, 7, 0, tzinfo=UTC)))  # 15:00 in Shanghai
    [row] = await queue(1)
    fake.fault("/cgi-bin/message/send", errcode=45009)
    await Drainer(notifier).drain()
    await row.refresh_from_db()
    assert row.next_attempt_at == datetime(2026, 11, 23, 16, 5, tzinfo=UTC)  # 00:05 tomorrow in Shanghai


async def test_drain_gives_up_dead_after_max_attempts(db, fake, notifier, restore_clock):  # type: ignore[no-untyped-def]
    [row] = await queue(1)
    fake.fault("/cgi-bin/message/send", errcode=-1, count=100)
    t = datetime.now(UTC)
    max_attempts = runtime().config.alerts.max_attempts
    for _ in range(max_attempts + 2):
        clock.set_clock(clock.FixedClock(t))
        await Drainer(notifier).drain()
        t += timedelta(hours=2)
    await row.refresh_from_db()
    assert row.status == S.DEAD and row.attempts == max_attempts
    assert "gave up" in (row.last_error or "")
    assert fake.count("fault") == max_attempts


async def test_drain_token_rejected_once_refreshes_and_sends(db, fake, notifier):  # type: ignore[no-untyped-def]
    rows = await queue(3)
    await Drainer(notifier, concurrency=1).drain_once()  # warms the token
    assert fake.count("wecom.token") == 1
    await queue(2, prefix="U")
    fake.fault("/cgi-bin/message/send", errcode=40001)
    stats = await Drainer(notifier).drain()
    assert stats.sent == 2
    assert fake.count("wecom.token") == 2  # one refresh, not one per message
    assert all(s == S.SENT for s in await Notification.all().values_list("status", flat=True))
    assert len(rows) == 3


async def test_drain_token_expiry_mid_drain_refreshes_once(db, fake, notifier, aiohttp_client):  # type: ignore[no-untyped-def]
    await queue(60)
    drainer = Drainer(notifier, batch=20, concurrency=4)
    first = await drainer.drain_once()
    assert first.sent == 20
    fake.state.tokens.clear()  # every token handed out so far is now invalid
    await drainer.drain()
    assert await statuses() == Counter({"sent": 60})
    assert fake.count("wecom.token") == 2
    assert fake.count("wecom.message") == 60


async def test_drain_token_still_rejected_after_refresh_retries_later(db, fake, notifier):  # type: ignore[no-untyped-def]
    [row] = await queue(1)
    fake.fault("/cgi-bin/message/send", errcode=42001, count=2)
    await Drainer(notifier).drain()
    await row.refresh_from_db()
    assert row.status == S.PENDING and row.attempts == 1
    assert fake.count("fault") == 2  # first try + exactly one retry after the refresh


async def test_two_drainers_send_each_notification_once(db, fake, notifier, config):  # type: ignore[no-untyped-def]
    await queue(80)
    await queue(15, channel=C.DINGTALK_ROBOT, prefix="R")
    async with http_session() as http2:
        other = build_notifier(config, http2, runtime().kv)
        d1 = Drainer(notifier, batch=10, concurrency=4, robot_window_s=60)
        d2 = Drainer(other, batch=10, concurrency=4, robot_window_s=60)
        s1, s2 = await asyncio.gather(d1.drain(), d2.drain())
    assert s1.sent + s2.sent == 95
    assert s1.sent > 0 and s2.sent > 0  # both really worked
    assert await statuses() == Counter({"sent": 95})
    delivered = fake.delivered_titles()
    assert len(delivered) == 95 and set(delivered.values()) == {1}


async def test_drainer_cancelled_mid_batch_loses_and_duplicates_nothing(db, fake, notifier, config):  # type: ignore[no-untyped-def]
    await queue(30)
    subs = []
    for i in range(10):
        user = await quick_user()
        await bind(user, IdentityChannel.MINIAPP)
        await grant(user, TEMPLATES["low_stock"])
        subs.append(
            await notify(recipient_id=user.id, kind="low_stock", title=f"S{i}", body="b", dedupe_key=f"s{i}")
        )
    fake.fault("/message/", delay=0.3, count=1000)  # a slow platform
    task = asyncio.create_task(Drainer(notifier, batch=40, concurrency=5).drain())
    await asyncio.sleep(0.45)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    fake.state.faults.clear()
    await Drainer(notifier).drain()
    final = await statuses()
    assert set(final) <= {"sent", "unknown"}, final
    assert sum(final.values()) == 40
    unknown = await Notification.filter(status=S.UNKNOWN).values_list("channel", flat=True)
    assert set(unknown) <= {C.WECHAT_SUBSCRIBE}  # only the ambiguous, non-idempotent ones
    delivered = fake.delivered_titles()
    assert set(delivered.values()) == {1}  # nothing twice
    wecom_titles = {f"T{i}" for i in range(30)}
    assert wecom_titles <= set(delivered)  # every WeCom message arrived exactly once


async def _subscriber(i: int) -> Notification:
    user = await quick_user()
    await bind(user, IdentityChannel.MINIAPP)
    await grant(user, TEMPLATES["low_stock"])
    return await notify(recipient_id=user.id, kind="low_stock", title=f"S{i}", body="b", dedupe_key=f"s{i}")


async def test_reclaim_stuck_rows_after_a_killed_drainer(db, fake, notifier):  # type: ignore[no-untyped-def]
    [wc] = await queue(1)
    started = await _subscriber(0)
    never = await _subscriber(1)
    past = clock.now() - timedelta(minutes=5)
    await Notification.all().update(status=S.SENDING, claimed_until=past)  # as a killed drainer left them
    await Notification.filter(id=started.id).update(last_error=SEND_STARTED)  # its send had begun
    await Drainer(notifier).drain()
    for row in (wc, started, never):
        await row.refresh_from_db()
    assert wc.status == S.SENT  # idempotent channel: re-sent
    assert started.status == S.UNKNOWN and "not re-sent" in (started.last_error or "")
    assert never.status == S.SENT  # never reached the platform: sent now, once
    assert fake.delivered_titles() == Counter({"T0": 1, "S1": 1})


async def test_killed_drainer_loses_no_subscribe_push_it_never_started(db, fake, notifier, monkeypatch):  # type: ignore[no-untyped-def]
    """kill -9 mid-batch (no settle): only the sends in flight may be `unknown`; every row
    the dead drainer had claimed but not started is delivered after the reclaim, once."""
    rows = [await _subscriber(i) for i in range(30)]
    fake.fault("/subscribe/send", delay=0.3, count=1000)
    dead = Drainer(notifier, batch=30, concurrency=4)

    async def killed(*a, **kw):  # type: ignore[no-untyped-def]
        return None  # a killed process settles nothing

    monkeypatch.setattr(dead, "_settle", killed)
    task = asyncio.create_task(dead.drain())
    await asyncio.sleep(0.45)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    started = await Notification.filter(status=S.SENDING, last_error=SEND_STARTED).count()
    assert 1 <= started <= 4  # in flight when it died (concurrency 4)
    assert await Notification.filter(status=S.SENDING).count() - started >= 10  # claimed, not started
    fake.state.faults.clear()
    await asyncio.sleep(0.4)  # the sends in flight land on the platform
    clock.set_clock(clock.FixedClock(clock.now() + timedelta(seconds=dead.lease_s + 1)))
    try:
        await Drainer(notifier).drain()
    finally:
        clock.set_clock(clock.SystemClock())
    final = await statuses()
    assert final == Counter({"sent": 30 - started, "unknown": started}), final
    delivered = fake.delivered_titles()
    assert set(delivered.values()) == {1}  # nothing twice
    unknown = set(await Notification.filter(status=S.UNKNOWN).values_list("title", flat=True))
    assert {r.title for r in rows} - unknown <= set(delivered)  # nothing lost


async def test_a_long_pass_renews_its_claim(db, fake, notifier, config):  # type: ignore[no-untyped-def]
    """A pass outliving its lease keeps its rows: another drainer reclaims nothing."""
    await queue(6)
    fake.fault("/message/send", delay=0.5, count=6)
    slow = Drainer(notifier, concurrency=1, lease_s=1.2)  # 6 sends x 0.5 s > the lease
    task = asyncio.create_task(slow.drain())
    await asyncio.sleep(2.0)
    async with http_session() as http2:
        other = await Drainer(build_notifier(config, http2, runtime().kv), lease_s=1.2).drain()
    await task
    assert other.reclaimed == 0 and other.sent == 0
    assert await statuses() == Counter({"sent": 6})
    assert set(fake.delivered_titles().values()) == {1}


async def test_subscribe_timeout_is_unknown_not_resent(db, fake, config):  # type: ignore[no-untyped-def]
    user = await quick_user()
    await bind(user, IdentityChannel.MINIAPP)
    await grant(user, TEMPLATES["low_stock"])
    row = await notify(recipient_id=user.id, kind="low_stock", title="S", body="b", dedupe_key="s")
    await wecom_user()
    fake.fault("/subscribe/send", delay=1.0)
    async with http_session(total=0.4) as http:
        notifier = build_notifier(config, http, runtime().kv)
        await notifier.tokens.get("wechat")
        await Drainer(notifier).drain()
        await Drainer(notifier).drain()
    await row.refresh_from_db()
    assert row.status == S.UNKNOWN and "ambiguous" in (row.last_error or "")


async def test_robot_21_messages_in_a_minute_20_sent_and_a_digest(db, fake, notifier):  # type: ignore[no-untyped-def]
    rows = await queue(21, channel=C.DINGTALK_ROBOT)
    drainer = Drainer(notifier, robot_window_s=1.0)
    first = await drainer.drain()
    assert first.sent == 20 and first.deferred == 1
    assert fake.count("dingtalk.robot") == 20
    waiting = await Notification.get(status=S.PENDING)
    assert waiting.last_error == ROBOT_WAIT
    await asyncio.sleep(1.1)
    second = await drainer.drain()
    assert second.merged == 1 and second.sent == 1
    robot_calls = fake.calls("dingtalk.robot")
    assert len(robot_calls) == 21 and fake.count("dingtalk.robot_throttled") == 0
    digest_call = robot_calls[-1]["body"]
    assert "汇总" in digest_call["markdown"]["title"] and waiting.title in digest_call["markdown"]["text"]
    await waiting.refresh_from_db()
    assert waiting.status == S.SENT and "digest" in (waiting.last_error or "")
    assert len(rows) == 21


async def test_robot_overflow_rows_merge_into_one_digest(db, fake, notifier):  # type: ignore[no-untyped-def]
    await queue(26, channel=C.DINGTALK_ROBOT)
    drainer = Drainer(notifier, robot_window_s=1.0)
    await drainer.drain()
    assert fake.count("dingtalk.robot") == 20
    await asyncio.sleep(1.1)
    await drainer.drain()
    assert fake.count("dingtalk.robot") == 21  # 6 waiting rows -> ONE digest
    assert await Notification.filter(kind="robot_digest").count() == 1
    assert await Notification.filter(last_error__startswith="merged into robot digest").count() == 6


async def test_robot_throttled_130101_holds_the_robot(db, fake, notifier):  # type: ignore[no-untyped-def]
    rows = await queue(3, channel=C.DINGTALK_ROBOT)
    fake.fault("/robot/send", errcode=130101)
    stats = await Drainer(notifier, concurrency=1, robot_window_s=1.0).drain()
    assert stats.retried == 1 and stats.deferred == 2
    assert fake.count("dingtalk.robot") == 0
    for r in rows:
        await r.refresh_from_db()
        assert r.status == S.PENDING and r.last_error == ROBOT_WAIT
        assert (r.next_attempt_at - clock.now()).total_seconds() > 500
    assert await runtime().kv.ttl(f"robot_block:{ROBOT}") is not None


async def test_quiet_hours_defer_non_urgent(db, fake, notifier, config, restore_clock):  # type: ignore[no-untyped-def]
    cfg = config.with_overrides({"alerts": {"quiet_hours": "22:00-08:00"}})
    runtime().config = cfg
    late = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai
    clock.set_clock(clock.FixedClock(late))
    assert quiet_until(late) == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)  # 08:00 Shanghai
    [calm] = await queue(1, prefix="calm")
    await queue(1, prefix="loud", urgent=True)
    assert calm.next_attempt_at == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    stats = await Drainer(notifier).drain()
    assert stats.sent == 1
    assert set(fake.delivered_titles()) == {"loud0"}
    # a row already due when quiet hours begin waits too
    await Notification.filter(id=calm.id).update(next_attempt_at=late - timedelta(hours=1))
    assert (await Drainer(notifier).drain()).sent == 0
    clock.set_clock(clock.FixedClock(datetime(2026, 11, 24, 0, 1, tzinfo=UTC)))
    assert (await Drainer(notifier).drain()).sent == 1
    assert set(fake.delivered_titles()) == {"loud0", "calm0"}


async def test_subscription_grant_one_grant_one_message(db, fake, notifier):  # type: ignore[no-untyped-def]
    user = await quick_user()
    await bind(user, IdentityChannel.MINIAPP)
    await bind(user, IdentityChannel.WECOM)
    await grant(user, TEMPLATES["low_stock"], remaining=1)
    a = await notify(recipient_id=user.id, kind="low_stock", title="A", body="b", dedupe_key="a")
    b = await notify(recipient_id=user.id, kind="low_stock", title="B", body="b", dedupe_key="b")
    assert a.channel == b.channel == C.WECHAT_SUBSCRIBE  # both chose it while the grant was there
    await Drainer(notifier, concurrency=1).drain()
    await a.refresh_from_db()
    await b.refresh_from_db()
    assert fake.count("wechat.subscribe") == 1
    assert {a.channel, b.channel} == {C.WECHAT_SUBSCRIBE, C.WECOM}  # the second fell back
    assert a.status == b.status == S.SENT
    assert (await SubscriptionGrant.get(user_id=user.id)).remaining == 0


async def test_missing_account_fails_with_reason(db, fake, notifier):  # type: ignore[no-untyped-def]
    user = await quick_user()
    row = await notify(
        recipient_id=user.id, kind="low_stock", title="t", body="b", dedupe_key="x", channel="wecom"
    )
    await Drainer(notifier).drain()
    await row.refresh_from_db()
    assert row.status == S.FAILED and "no wecom account" in (row.last_error or "")
