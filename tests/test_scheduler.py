"""The scheduler: schedules, catch-up, two schedulers at once, the app's cleanup context and
the `qudao scheduler` / `qudao jobs` commands."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger

from channels.notifier import build_notifier
from core.clock import now as clock_now
from core.runtime import runtime
from handlers.notify import notify
from models.base import IdentityChannel, UserRole
from models.notification import JobRun, Notification
from models.stock import Stock
from scheduler.service import SchedulerService, crontab_dow, previous_fire_time, trigger_for
from tests.factories import make_product, make_warehouse
from tests.factories_push import bind, http_session, push_config, quick_user, start_fake

ROOT = Path(__file__).resolve().parent.parent
TZ = ZoneInfo("Asia/Shanghai")
ALL_OFF = {
    name: "off"
    for name in (
        "low_stock",
        "overstock",
        "contract_expiry",
        "receivables_overdue",
        "lead_expiry",
        "commission_statements",
        "order_completion",
        "outbox_drain",
        "daily_digest",
    )
}


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("*", "*"),
        ("0", "sun"),
        ("7", "sun"),
        ("1-5", "mon-fri"),
        ("0,6", "sun,sat"),
        ("*/2", "*/2"),
        ("mon", "mon"),
    ],
)
def test_crontab_day_of_week_is_converted(field: str, expected: str) -> None:
    assert crontab_dow(field) == expected


def test_triggers_follow_crontab_semantics() -> None:
    sunday_9 = trigger_for("cron:0 9 * * 0", TZ)
    assert isinstance(sunday_9, CronTrigger)
    nxt = sunday_9.get_next_fire_time(None, datetime(2026, 11, 23, 10, tzinfo=TZ))  # a Monday
    assert nxt == datetime(2026, 11, 29, 9, tzinfo=TZ) and nxt.weekday() == 6
    assert trigger_for("off", TZ) is None
    assert trigger_for("interval:3", TZ).interval == timedelta(seconds=3)  # type: ignore[union-attr]
    monthly = trigger_for("cron:0 2 1 * *", TZ)
    assert previous_fire_time(monthly, datetime(2026, 11, 23, tzinfo=TZ)) == datetime(
        2026, 11, 1, 2, tzinfo=TZ
    )  # type: ignore[arg-type]
    daily = trigger_for("cron:0 9 * * *", TZ)
    assert previous_fire_time(daily, datetime(2026, 11, 23, 8, tzinfo=TZ)) == datetime(
        2026, 11, 22, 9, tzinfo=TZ
    )  # type: ignore[arg-type]


async def low_stock_setup() -> list[int]:
    managers = [await quick_user(UserRole.MANAGER, regions=["华东"]) for _ in range(2)]
    for m in managers:
        await bind(m, IdentityChannel.WECOM, f"mgr-{m.id}")
    wh = await make_warehouse(region="华东")
    for _ in range(3):
        await Stock.create(warehouse=wh, product=await make_product(), on_hand=1, reserved=0, min_qty=5)
    return [m.id for m in managers]


async def ran_before(name: str, days_ago: int = 3) -> None:
    """A run from an earlier start (the install is not fresh)."""
    at = clock_now() - timedelta(days=days_ago)
    await JobRun.create(name=name, started_at=at, finished_at=at, result={"trigger": "schedule"})


async def test_catch_up_runs_a_missed_cron_job_once(db, config):  # type: ignore[no-untyped-def]
    managers = await low_stock_setup()
    await ran_before("low_stock")
    cfg = config.with_overrides({"scheduler": {"jobs": {**ALL_OFF, "low_stock": "cron:0 0 * * *"}}})
    service = SchedulerService(cfg, catch_up=False)
    service.build()
    assert await service.catch_up() == ["low_stock"]  # ran 3 days ago: yesterday's run was missed
    assert await service.catch_up() == []  # it ran after the last due time
    assert await JobRun.filter(name="low_stock").count() == 2
    assert await Notification.filter(recipient_id=managers[0]).count() == 3


async def test_first_start_does_not_replay_history(db, config):  # type: ignore[no-untyped-def]
    """ "A fresh install greets a manager with 87 unread items (all daily jobs catch up at first
    start): first start should not replay history." """
    managers = await low_stock_setup()
    daily = {
        name: "cron:0 8 * * *"
        for name in ("low_stock", "overstock", "contract_expiry", "receivables_overdue", "daily_digest")
    }
    monthly = {"commission_statements": "cron:0 2 1 * *"}
    cfg = config.with_overrides({"scheduler": {"jobs": {**ALL_OFF, **daily, **monthly}}})
    service = SchedulerService(cfg, catch_up=False)
    service.build()
    assert await service.catch_up() == []  # nothing ever ran: nothing was missed
    assert await Notification.filter(recipient_id__in=managers).count() == 0
    baselines = await JobRun.all().values_list("name", "result")
    assert sorted(n for n, _ in baselines) == sorted({**daily, **monthly})
    assert all(r["trigger"] == "baseline" for _, r in baselines)
    # the next start is no first start: a run missed from now on is caught up
    await JobRun.filter(name="low_stock").update(started_at=clock_now() - timedelta(days=2))
    assert await service.catch_up() == ["low_stock"]
    assert await Notification.filter(recipient_id=managers[0]).count() == 3


async def test_an_idle_outbox_drain_logs_at_debug(db, config, aiohttp_server):  # type: ignore[no-untyped-def]
    """ "the drain logs an INFO line every 3 s" — only when it did something."""
    from structlog.testing import capture_logs

    from core.logging import setup_logging
    from handlers.jobs import run_job

    fake = await start_fake(aiohttp_server)
    cfg = push_config(config, fake.base)
    runtime().config = cfg
    setup_logging("DEBUG", "console")  # the tests run at WARNING: let every level through
    try:
        idle, busy = await _drain_logs(cfg, capture_logs, run_job)
    finally:
        setup_logging("WARNING", "console")
    done = [e for e in idle if e["event"] == "job_done"]
    assert len(done) == 3 and {e["log_level"] for e in done} == {"debug"}
    assert [e["log_level"] for e in busy if e["event"] == "job_done"] == ["info"]


async def _drain_logs(config, capture_logs, run_job):  # type: ignore[no-untyped-def]
    async with http_session() as http:
        runtime().ports["notifier"] = build_notifier(config, http, runtime().kv)
        with capture_logs() as idle:
            for _ in range(3):
                await run_job("outbox_drain", {"budget_s": 1}, trigger="schedule")
        user = await quick_user(UserRole.MANAGER, regions=["华东"])
        await bind(user, IdentityChannel.WECOM, f"mgr-{user.id}")
        await notify(recipient_id=user.id, kind="order_status", title="T", body="b", dedupe_key="busy")
        with capture_logs() as busy:
            await run_job("outbox_drain", {"budget_s": 1}, trigger="schedule")
    return idle, busy


async def test_two_schedulers_and_drainers_send_each_alert_once(db, config, aiohttp_server):  # type: ignore[no-untyped-def]
    fake = await start_fake(aiohttp_server)
    cfg = push_config(config, fake.base).with_overrides(
        {"scheduler": {"jobs": {**ALL_OFF, "low_stock": "cron:0 0 * * *", "outbox_drain": "interval:0.1"}}}
    )
    runtime().config = cfg
    managers = await low_stock_setup()
    await ran_before("low_stock")
    for i in range(20):  # plus some event-style notifications already waiting
        await notify(
            recipient_id=managers[i % 2], kind="order_status", title=f"E{i}", body="b", dedupe_key=f"e{i}"
        )
    async with http_session() as http:
        runtime().ports["notifier"] = build_notifier(cfg, http, runtime().kv)
        services = [SchedulerService(cfg, instance=f"i{i}") for i in range(2)]  # shared db + kv
        await asyncio.gather(*(s.start() for s in services))  # both catch up low_stock at once
        try:
            for _ in range(100):
                await asyncio.sleep(0.1)
                if await Notification.filter(status="sent").count() == 27:
                    break
        finally:
            await asyncio.gather(*(s.stop() for s in services))
    # 20 waiting + 3 stock rows x 2 managers + the robot's summary of the run
    assert Counter(await Notification.all().values_list("status", flat=True)) == Counter({"sent": 27})
    delivered = fake.delivered_titles()
    assert sum(delivered.values()) == 27 and fake.count("dingtalk.robot") == 1
    per_user = Counter(
        (c["body"]["touser"], c["body"]["text"]["content"]) for c in fake.calls("wecom.message")
    )
    assert set(per_user.values()) == {1}
    assert await JobRun.filter(name="low_stock").count() == 2  # the other instance skipped (lock)


async def test_app_runs_the_scheduler_when_enabled(config, aiohttp_client):  # type: ignore[no-untyped-def]
    from core.app import create_app
    from core.keys import EXTRAS, KV_STORE

    cfg = config.with_overrides({"scheduler": {"jobs": {**ALL_OFF, "outbox_drain": "interval:0.05"}}})
    app = create_app(cfg, scheduler=True)
    client = await aiohttp_client(app)
    service = app[EXTRAS]["scheduler_service"]
    assert service.scheduler is not None and service.scheduler.running
    assert set(service.triggers) == {"outbox_drain"}
    await asyncio.sleep(0.3)
    assert (await client.get("/healthz")).status == 200
    await app[KV_STORE].flush_namespace()


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("QUDAO_")}
    return subprocess.run(
        [sys.executable, "-m", "core", *args],
        capture_output=True,
        text=True,
        env={**base, **env},
        cwd=ROOT,
        timeout=120,
    )


def _env(config) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {
        "QUDAO_DATABASE__URL": config.database.url,
        "QUDAO_KV__URL": config.kv.url,
        "QUDAO_KV__NAMESPACE": config.kv.namespace,
        "QUDAO_LOGGING__LEVEL": "WARNING",
    }


def test_cli_jobs_list_and_run(config) -> None:  # type: ignore[no-untyped-def]
    env = _env(config)
    p = _cli("jobs", "list", env=env)
    assert p.returncode == 0, p.stderr
    assert "low_stock" in p.stdout and "outbox_drain" in p.stdout and "interval:3" in p.stdout
    p = _cli("jobs", "run", "contract_expiry", env=env)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["job"] == "contract_expiry" and "drafts" in out["result"]
    # "`jobs list` shows UTC": times are in the business timezone, with the offset
    p = _cli("jobs", "list", env=env)
    (line,) = [x for x in p.stdout.splitlines() if x.startswith("contract_expiry ")]
    shown = datetime.fromisoformat(line.split("last: ")[1].split()[0])
    assert shown.utcoffset() == timedelta(hours=8)
    assert shown == datetime.fromisoformat(out["started_at"])


def test_cli_scheduler_starts_and_stops_on_sigterm(config, tmp_path) -> None:  # type: ignore[no-untyped-def]
    base = {k: v for k, v in os.environ.items() if not k.startswith("QUDAO_")}
    env = {**base, **_env(config), "QUDAO_SCHEDULER__JOBS__OUTBOX_DRAIN": '"interval:0.2"'}
    out_file, err_file = tmp_path / "out.txt", tmp_path / "err.txt"
    with out_file.open("w") as out, err_file.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "core", "scheduler"], stdout=out, stderr=err, env=env, cwd=ROOT
        )
        try:
            deadline = time.monotonic() + 60
            while "outbox_drain" not in out_file.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, err_file.read_text()
                time.sleep(0.1)
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = out_file.read_text()
    assert "scheduler running" in text and "outbox_drain" in text, err_file.read_text()
    assert proc.returncode == 0, err_file.read_text()


# --- job locks: short leases, renewed while running (resilience item 7) ---------------------------


def test_job_leases_are_sized_to_the_work() -> None:
    from handlers.jobs import JOBS

    assert JOBS["outbox_drain"].lease_s <= 15  # a dead instance blocks the drain for one lease at most
    assert max(spec.lease_s for spec in JOBS.values()) <= 60


async def test_a_crashed_holders_lock_lets_another_instance_run_within_the_lease(db, monkeypatch):  # type: ignore[no-untyped-def]
    from handlers import jobs

    async def work(params):  # type: ignore[no-untyped-def]
        return {"ran": True}

    monkeypatch.setitem(jobs.JOBS, "quick", jobs.JobSpec("quick", work, 0.6, "test job"))
    crashed = await runtime().kv.try_lock("job:quick", 0.6)  # taken, never released (kill -9)
    assert crashed is not None
    assert await jobs.run_job("quick", trigger="schedule") is None  # held: this run skips
    await asyncio.sleep(0.7)
    out = await jobs.run_job("quick", trigger="schedule")
    assert out is not None and out.result == {"ran": True}


async def test_a_long_job_keeps_its_lock_by_renewing_it(db, monkeypatch):  # type: ignore[no-untyped-def]
    from handlers import jobs

    async def slow(params):  # type: ignore[no-untyped-def]
        await asyncio.sleep(2.0)  # more than three leases
        return {"ran": True}

    monkeypatch.setitem(jobs.JOBS, "slow", jobs.JobSpec("slow", slow, 0.6, "test job"))
    first = asyncio.create_task(jobs.run_job("slow", trigger="schedule"))
    await asyncio.sleep(1.3)
    assert await jobs.run_job("slow", trigger="schedule") is None  # still held: renewed
    assert (await first) is not None
    assert await runtime().kv.try_lock("job:slow", 1) is not None  # released at the end
