"""Alert jobs: what they find, who hears about it, digests, reruns and catch-up."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from core import clock
from core.runtime import runtime
from handlers import alerts
from handlers.fanout import fan_out_events
from handlers.jobs import run_job
from handlers.notify import notify
from models.base import ContractStatus, MovementReason, NotificationChannel, ReceivableKind, UserRole
from models.contract import Contract
from models.finance import ReceivableEntry
from models.notification import AlertRule, JobRun, Notification
from models.stock import Stock, StockMovement
from models.user import SalesAssignment
from tests.factories import make_distributor, make_product, make_warehouse
from tests.factories_orders import make_order, shop
from tests.factories_push import ROBOT, bind, quick_user

C = NotificationChannel


@pytest.fixture
def config(config):  # type: ignore[no-untyped-def]
    robots = [{"name": ROBOT, "webhook": "http://127.0.0.1:9/robot/send?access_token=x", "secret": "s"}]
    return config.with_overrides({"dingtalk": {"robots": robots}, "wecom": {"corp_id": "ww1", "secret": "s"}})


@pytest.fixture
def restore_clock():  # type: ignore[no-untyped-def]
    yield
    clock.set_clock(clock.SystemClock())


async def tenant(region: str = "华东"):  # type: ignore[no-untyped-def]
    """A distributor with a rep, a manager of its region, a warehouse it owns."""
    dist = await make_distributor(region=region)
    rep = await quick_user(UserRole.SALES)
    await SalesAssignment.create(user=rep, distributor=dist)
    manager = await quick_user(UserRole.MANAGER, regions=[region])
    wh = await make_warehouse(region=region, distributor=dist)
    return dist, rep, manager, wh


async def stock(wh, on_hand: int, reserved: int = 0, **thresholds):  # type: ignore[no-untyped-def]
    product = await make_product()
    row = await Stock.create(warehouse=wh, product=product, on_hand=on_hand, reserved=reserved, **thresholds)
    return product, row


async def shipped(wh, product, qty: int, days_ago: int = 1) -> None:  # type: ignore[no-untyped-def]
    m = await StockMovement.create(
        warehouse=wh,
        product=product,
        reason=MovementReason.SHIP,
        delta_on_hand=-qty,
        delta_reserved=-qty,
        on_hand_after=0,
        reserved_after=0,
    )
    await StockMovement.filter(id=m.id).update(created_at=clock.now() - timedelta(days=days_ago))


async def rows_for(user_id: int) -> list[Notification]:
    await fan_out_events()  # what the next outbox drain pass does first
    return list(await Notification.filter(recipient_id=user_id).order_by("id"))


# --- low stock / overstock -------------------------------------------------------------------------


async def test_low_stock_conditions_and_recipients(db):  # type: ignore[no-untyped-def]
    _dist, rep, manager, wh = await tenant()
    _, other_manager_region = await quick_user(UserRole.MANAGER, regions=["华北"]), None
    _, below_min = await stock(wh, 10, reserved=5, min_qty=6)  # available 5 < 6
    _, at_reorder = await stock(wh, 20, reorder_point=20)  # available 20 <= 20
    fast, low_cover = await stock(wh, 30)  # 30 units, sells 280/28d = 10/day -> 3 days < 7
    await shipped(wh, fast, 280)
    slow, ok_cover = await stock(wh, 30)  # sells 28/28d = 1/day -> 30 days: fine
    await shipped(wh, slow, 28)
    old, _ = await stock(wh, 5)  # sales older than 28 days do not count
    await shipped(wh, old, 500, days_ago=40)
    _, fine = await stock(wh, 100, min_qty=10, reorder_point=50)
    own_cover, _ = await stock(wh, 30, cover_days=40)  # the row's own target: 30 days < 40
    await shipped(wh, own_cover, 28)
    result = await alerts.job_low_stock()
    assert result["findings"] == 4
    for user in (rep, manager):
        got = await rows_for(user.id)
        subjects = {r.payload["stock_id"] for r in got}
        assert subjects == {
            below_min.id,
            at_reorder.id,
            low_cover.id,
            (await Stock.get(product=own_cover)).id,
        }
    assert await rows_for(other_manager_region.id if other_manager_region else 0) == []
    robot = await Notification.filter(recipient_ref=ROBOT)
    assert len(robot) == 1 and robot[0].channel == C.DINGTALK_ROBOT and "4" in robot[0].title
    assert ok_cover.id and fine.id


async def test_low_stock_rerun_and_concurrent_runs_send_nothing_twice(db):  # type: ignore[no-untyped-def]
    _, rep, _manager, wh = await tenant()
    for _ in range(3):
        await stock(wh, 1, min_qty=5)
    first = await alerts.job_low_stock()
    assert first["notifications"] == 3 * 2 + 1  # rep + manager per row, one robot summary
    again = await alerts.job_low_stock()
    assert again["new"] == 0 and again["notifications"] == 0
    # two instances racing without the job lock: the unique dedupe key still decides
    await stock(wh, 1, min_qty=5)
    results = await asyncio.gather(alerts.job_low_stock(), alerts.job_low_stock())
    keys = Counter(await Notification.all().values_list("dedupe_key", flat=True))
    assert set(keys.values()) == {1}
    assert await Notification.filter(recipient_id=rep.id).count() == 4
    assert sum(r["notifications"] for r in results) >= 2


async def test_two_schedulers_at_once_run_the_job_once(db):  # type: ignore[no-untyped-def]
    _, _, manager, wh = await tenant()
    await stock(wh, 1, min_qty=5)
    runs = await asyncio.gather(*(run_job("low_stock", trigger="schedule") for _ in range(4)))
    done = [r for r in runs if r is not None]
    assert len(done) >= 1
    assert await Notification.filter(recipient_id=manager.id).count() == 1
    assert await JobRun.filter(name="low_stock").count() == len(done)


async def test_low_stock_storm_becomes_one_digest_per_recipient(db, config):  # type: ignore[no-untyped-def]
    threshold = runtime().config.alerts.digest_threshold
    _, rep, manager, wh = await tenant()
    await bind(rep, "wecom", "rep-wc")
    for _ in range(threshold + 3):
        await stock(wh, 0, min_qty=1)
    result = await alerts.job_low_stock()
    assert result["digests"] == 2  # rep and manager
    for user in (rep, manager):
        got = await rows_for(user.id)
        digests = [r for r in got if r.payload.get("digest_of")]
        members = [r for r in got if r not in digests]
        assert len(members) == threshold + 3  # every alert is in the inbox...
        assert all(
            r.channel == C.INBOX and r.payload.get("_digest") for r in members
        )  # ...never pushed alone
        assert len(digests) == 1 and str(threshold + 3) in digests[0].title
    [rep_digest] = [r for r in await rows_for(rep.id) if r.payload.get("digest_of")]
    assert rep_digest.channel == C.WECOM and rep_digest.status == "pending"  # the one push
    again = await alerts.job_low_stock()
    assert again["digests"] == 0 and again["notifications"] == 0


async def test_overstock_weekly_and_company_warehouse_goes_to_region_managers(db):  # type: ignore[no-untyped-def]
    manager = await quick_user(UserRole.MANAGER, regions=["华南"])
    company = await make_warehouse(region="华南")
    _, row = await stock(company, 500, max_qty=100)
    await stock(company, 50, max_qty=100)
    result = await alerts.job_overstock()
    assert result["findings"] == 1 and result["period"].startswith(str(date.today().year)[:3])
    [n] = await rows_for(manager.id)
    assert n.kind == "overstock" and n.payload["stock_id"] == row.id and "W" in n.dedupe_key.split(":")[2]


async def test_alert_rule_adds_recipients_and_thresholds(db):  # type: ignore[no-untyped-def]
    _, _rep, _, wh = await tenant()
    watcher = await quick_user(UserRole.ADMIN)
    fast, _ = await stock(wh, 30)
    await shipped(wh, fast, 280)  # 3 days of cover
    await AlertRule.create(
        kind="low_stock", channel=C.INBOX, recipients=[watcher.id], params={"cover_days": 2}
    )
    assert (await alerts.job_low_stock())["findings"] == 0  # the rule lowered the target to 2 days
    await AlertRule.all().update(params={"cover_days": 5})
    assert (await alerts.job_low_stock())["findings"] == 1
    [n] = await rows_for(watcher.id)
    assert n.channel == C.INBOX
    await AlertRule.create(kind="low_stock", channel=C.DINGTALK_ROBOT, recipients=["someone-else"])
    await Notification.all().delete()
    await alerts.job_low_stock()
    assert not await Notification.exists(recipient_ref=ROBOT)  # robots named by rules only


# --- contracts ---------------------------------------------------------------------------------------


def at_day(d: date) -> clock.FixedClock:
    return clock.FixedClock(datetime(d.year, d.month, d.day, 1, 0, tzinfo=UTC))  # 09:00 in Shanghai


async def stages_sent(contract: Contract, user_id: int) -> list[str]:
    rows = await Notification.filter(recipient_id=user_id, kind="contract_expiry").order_by("id")
    return [r.payload["stage"] for r in rows if r.payload.get("contract_id") == contract.id]


async def test_contract_expiry_stages_each_once_then_expired(db, restore_clock):  # type: ignore[no-untyped-def]
    dist, rep, manager, _ = await tenant()
    end = date(2026, 12, 31)
    contract = await Contract.create(
        distributor=dist,
        number="HT-1",
        start_date=date(2026, 1, 1),
        end_date=end,
        status=ContractStatus.ACTIVE,
    )
    for days_before in (40, 30, 29, 8, 7, 6, 1, 0):
        clock.set_clock(at_day(end - timedelta(days=days_before)))
        await alerts.job_contract_expiry()
        await alerts.job_contract_expiry()  # a rerun the same day changes nothing
    assert await stages_sent(contract, manager.id) == ["d30", "d7", "d1"]
    assert (await Contract.get(id=contract.id)).status == ContractStatus.ACTIVE  # in force on its last day
    clock.set_clock(at_day(end + timedelta(days=1)))
    result = await alerts.job_contract_expiry()
    assert result["expired"] == 1
    assert await stages_sent(contract, manager.id) == ["d30", "d7", "d1", "expired"]
    assert await stages_sent(contract, rep.id) == ["d30", "d7", "d1", "expired"]
    assert (await Contract.get(id=contract.id)).status == ContractStatus.EXPIRED
    await alerts.job_contract_expiry()
    assert len(await stages_sent(contract, manager.id)) == 4


async def test_contract_expiry_catch_up_sends_only_the_most_urgent_stage(db, restore_clock):  # type: ignore[no-untyped-def]
    dist, _, manager, _ = await tenant()
    end = date(2026, 12, 31)
    c1 = await Contract.create(
        distributor=dist,
        number="HT-2",
        start_date=date(2026, 1, 1),
        end_date=end,
        status=ContractStatus.ACTIVE,
    )
    c2 = await Contract.create(
        distributor=dist,
        number="HT-3",
        start_date=date(2026, 1, 1),
        end_date=end,
        status=ContractStatus.ACTIVE,
    )
    clock.set_clock(at_day(end - timedelta(days=25)))
    await alerts.job_contract_expiry()  # c1, c2: d30
    clock.set_clock(at_day(end - timedelta(days=1)))  # down from day 25 to day 1: d7 was missed
    await alerts.job_contract_expiry()
    assert await stages_sent(c1, manager.id) == ["d30", "d1"]  # never two stages at once
    clock.set_clock(at_day(end + timedelta(days=3)))  # down again past the end
    await alerts.job_contract_expiry()
    assert await stages_sent(c2, manager.id) == ["d30", "d1", "expired"]


@pytest.mark.parametrize(
    ("days_left", "stage"),
    [(31, None), (30, "d30"), (8, "d30"), (7, "d7"), (2, "d7"), (1, "d1"), (0, "d1"), (-1, "expired")],
)
def test_contract_stage(days_left: int, stage: str | None) -> None:
    assert alerts.contract_stage(days_left, [30, 7, 1]) == stage


# --- receivables, digest -----------------------------------------------------------------------------


async def test_receivables_overdue_counts_payments_against_the_oldest_debt(db):  # type: ignore[no-untyped-def]
    dist, rep, manager, _ = await tenant()
    paid_up, _, _, _ = await tenant()
    now = clock.now()

    async def entry(d, amount: str, kind: ReceivableKind, due_days: int | None) -> None:  # type: ignore[no-untyped-def]
        await ReceivableEntry.create(
            distributor=d,
            kind=kind,
            amount=Decimal(amount),
            ref_type="test",
            ref_id="x",
            due_at=None if due_days is None else now + timedelta(days=due_days),
            occurred_at=now,
        )

    await entry(dist, "1000.00", ReceivableKind.SHIPMENT, -10)  # overdue
    await entry(dist, "500.00", ReceivableKind.SHIPMENT, 20)  # not yet due
    await entry(dist, "-300.00", ReceivableKind.PAYMENT, None)
    await entry(paid_up, "800.00", ReceivableKind.SHIPMENT, -5)
    await entry(paid_up, "-800.00", ReceivableKind.PAYMENT, None)
    overdue = await alerts.overdue_by_distributor()
    assert overdue == {dist.id: (Decimal("700.00"), Decimal("1200.00"))}
    await alerts.job_receivables_overdue()
    [n] = await rows_for(manager.id)
    assert n.kind == "receivables_overdue" and "700.00" in n.body
    assert len(await rows_for(rep.id)) == 1
    assert (await alerts.job_receivables_overdue())["notifications"] == 0


async def test_daily_digest_one_per_manager_per_day(db):  # type: ignore[no-untyped-def]
    s = await shop()
    manager = await quick_user(UserRole.MANAGER, regions=["华东"])
    await make_order(s["distributor"], product=s["product"], qty=2)
    await fan_out_events()  # the outbox drain's next pass
    await notify(recipient_id=manager.id, kind="low_stock", title="t", body="b", dedupe_key="x")
    await alerts.job_daily_digest()
    await alerts.job_daily_digest()
    [digest] = await Notification.filter(recipient_id=manager.id, kind="daily_digest")
    assert (
        "新订单 1 笔" in digest.body and "待审核订单 1 笔" in digest.body and "提醒 2 条" in digest.body
    )  # order.placed + ours


# --- events ------------------------------------------------------------------------------------------


async def test_order_status_events_notify_the_distributors_users_once(db):  # type: ignore[no-untyped-def]
    s = await shop()
    manager = await quick_user(UserRole.MANAGER, regions=["华东"])
    out = await make_order(s["distributor"], product=s["product"], qty=2, status="shipped")
    mine = await rows_for(s["user"].id)
    assert [r.kind for r in mine] == ["order_status", "order_status"]
    assert {r.dedupe_key.split(":")[2] for r in mine} == {"approved", "shipped"}
    assert all(out.number in r.title for r in mine)
    placed = await rows_for(manager.id)
    assert len(placed) == 1 and "待审核" in placed[0].title


async def test_job_runner_wraps_other_features_use_cases(db):  # type: ignore[no-untyped-def]
    for name in ("lead_expiry", "order_completion", "commission_statements"):
        out = await run_job(name)
        assert out is not None and isinstance(out.result, dict) and "skipped" not in out.result
