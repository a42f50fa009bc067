"""APScheduler 3 (`AsyncIOScheduler`) running the jobs of `handlers.jobs` on their schedules.

Schedules come from `[scheduler.jobs]`: "cron:m h dom mon dow" (standard crontab: 0 or 7 =
Sunday — converted, since APScheduler 3 counts 0 as Monday), "interval:N" seconds or "off",
in `[scheduler] timezone`. Every process may run a scheduler: each run takes the job's kv
lock (a held lock = skip), and the jobs' dedupe keys make reruns harmless. On start, a cron
job whose last scheduled time passed without a JobRun (the process was down) runs once now;
a job that has never run (a fresh install, a newly enabled job) is not "behind": it gets a
baseline JobRun at now and runs first at its next scheduled time, so a first start replays
no history.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core.clock import now as clock_now
from core.logging import get_logger
from core.outage import describe, outage_of
from core.runtime import runtime
from handlers.jobs import JOBS, last_run_at, record_baseline, run_job

if TYPE_CHECKING:
    from core.config import Config

log = get_logger("qudao.scheduler")

_DOW = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]
CATCH_UP_LOOKBACK = timedelta(days=35)


def crontab_dow(field: str) -> str:
    """Standard crontab day-of-week numbers (0/7 = Sunday) -> names APScheduler 3 reads right."""

    def name(m: re.Match[str]) -> str:
        n = int(m.group(0))
        if n > 7:
            raise ValueError(f"day of week {n} out of range 0-7")
        return _DOW[n]

    return re.sub(r"(?<![/\d])\d+", name, field)


def trigger_for(spec: str, tz: ZoneInfo) -> BaseTrigger | None:
    kind, _, rest = spec.partition(":")
    if kind == "off":
        return None
    if kind == "interval":
        return IntervalTrigger(seconds=float(rest), timezone=tz)
    if kind == "cron":
        minute, hour, day, month, dow = rest.split()
        return CronTrigger(
            minute=minute, hour=hour, day=day, month=month, day_of_week=crontab_dow(dow), timezone=tz
        )
    raise ValueError(f"bad schedule {spec!r}")


def previous_fire_time(
    trigger: BaseTrigger, at: datetime, lookback: timedelta = CATCH_UP_LOOKBACK
) -> datetime | None:
    """The last time `trigger` fired at or before `at` (within `lookback`)."""
    fire = trigger.get_next_fire_time(None, at - lookback)
    last = None
    for _ in range(10_000):
        if fire is None or fire > at:
            break
        last = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    return last


class SchedulerService:
    def __init__(self, config: Config, *, instance: str = "local", catch_up: bool = True) -> None:
        self.config = config
        self.instance = instance
        self.tz = ZoneInfo(config.scheduler.timezone)
        self.catch_up_enabled = catch_up
        self.scheduler: AsyncIOScheduler | None = None
        self.triggers: dict[str, BaseTrigger] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def build(self) -> AsyncIOScheduler:
        scheduler = AsyncIOScheduler(timezone=self.tz)
        for name in JOBS:
            spec = getattr(self.config.scheduler.jobs, name, "off")
            trigger = trigger_for(spec, self.tz)
            if trigger is None:
                continue
            self.triggers[name] = trigger
            scheduler.add_job(
                self.run,
                trigger,
                args=[name],
                id=name,
                name=name,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=3600,
                replace_existing=True,
            )
        return scheduler

    async def start(self) -> None:
        self.scheduler = self.build()
        self.scheduler.start()
        log.info("scheduler_started", jobs=sorted(self.triggers), instance=self.instance)
        if self.catch_up_enabled:
            self._spawn(self.catch_up())

    async def stop(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        log.info("scheduler_stopped", instance=self.instance)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run(self, name: str) -> None:
        """One scheduled run (tracked, so stop() can cancel it)."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            params: dict[str, Any] = {}
            trigger = self.triggers.get(name)
            if name == "outbox_drain" and isinstance(trigger, IntervalTrigger):
                # finish before the next tick instead of overlapping it
                params["budget_s"] = max(0.5, trigger.interval.total_seconds() * 0.8)
            await run_job(name, params, trigger="schedule")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if outage_of(exc) is None:
                log.exception("scheduled_job_failed", job=name)
            else:  # the outage is logged once where it is seen; skip this run quietly
                if outage_of(exc) == "database":
                    runtime().db_outage.failed(exc)
                log.debug("scheduled_job_skipped_outage", job=name, error=describe(exc))
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def catch_up(self) -> list[str]:
        """Run each cron job whose last scheduled time has no JobRun since (missed while down);
        a job with no JobRun at all only gets its baseline."""
        ran = []
        at = clock_now()
        for name, trigger in self.triggers.items():
            if not isinstance(trigger, CronTrigger):
                continue
            due = previous_fire_time(trigger, at)
            if due is None:
                continue
            last = await last_run_at(name)
            if last is None:
                await record_baseline(name)
                log.info("scheduler_baseline", job=name)
                continue
            if last >= due:
                continue
            log.info("scheduler_catch_up", job=name, missed=due.isoformat())
            await self.run(name)
            ran.append(name)
        return ran

    def next_runs(self) -> dict[str, datetime | None]:
        at = clock_now().astimezone(self.tz)
        return {name: t.get_next_fire_time(None, at) for name, t in self.triggers.items()}
