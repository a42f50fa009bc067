"""The job registry and runner shared by the scheduler, `qudao jobs run` and the admin API.

`run_job(name)` takes the kv lock `job:<name>` so only one instance runs a job at a time
(scheduled runs skip when it is held; manual runs wait a little), records a JobRun with the
result, and returns {job, started_at, finished_at, result}. The lock's lease is short (a
dead instance's lock frees itself within `lease_s`) and renewed every third of it while
the job runs, so a long run keeps it. The jobs themselves are
idempotent (dedupe keys), so a rerun or a catch-up after downtime sends nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.clock import now as clock_now
from core.errors import InvalidState, NotFound, ValidationError
from core.kv import LockHandle
from core.logging import get_logger
from core.outage import outage_of
from core.runtime import runtime
from core.schema import Out
from handlers import alerts
from handlers.audit import jsonable
from handlers.periods import require_ended
from models.notification import JobRun

log = get_logger("qudao.jobs")

JobFn = Callable[[dict[str, Any]], Awaitable[Any]]
MANUAL_WAIT_S = 30.0
_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class JobSpec:
    name: str
    fn: JobFn
    lease_s: float
    summary: str
    record_idle: bool = True  # outbox_drain runs every few seconds: record only busy runs


def _external(module: str, func: str, *args_from_params: str) -> JobFn:
    """A job whose use-case lives in another feature's module, imported when it runs."""

    async def run(params: dict[str, Any]) -> Any:
        try:
            fn = getattr(importlib.import_module(module), func)
        except (ImportError, AttributeError):
            log.warning("job_use_case_missing", module=module, func=func)
            return {"skipped": f"{module}.{func} is not available"}
        kwargs = {k: params[k] for k in args_from_params if params.get(k) is not None}
        return await fn(**kwargs)

    return run


async def _outbox_drain(params: dict[str, Any]) -> Any:
    from handlers.outbox import drain_outbox

    return await drain_outbox(budget_s=float(params.get("budget_s") or 20.0))


def _wrap(fn: Callable[[dict[str, Any] | None], Awaitable[Any]]) -> JobFn:
    async def run(params: dict[str, Any]) -> Any:
        return await fn(params)

    return run


JOBS: dict[str, JobSpec] = {
    spec.name: spec
    for spec in (
        JobSpec("low_stock", _wrap(alerts.job_low_stock), 60, "low stock and days-of-cover alerts"),
        JobSpec("overstock", _wrap(alerts.job_overstock), 60, "stock above max_qty"),
        JobSpec(
            "contract_expiry",
            _wrap(alerts.job_contract_expiry),
            60,
            "contracts 30/7/1 days before end, expiry",
        ),
        JobSpec("receivables_overdue", _wrap(alerts.job_receivables_overdue), 60, "overdue receivables"),
        JobSpec("lead_expiry", _external("handlers.leads", "expire_leads"), 60, "expire lead protection"),
        JobSpec(
            "commission_statements",
            _external("handlers.statements", "close_period", "period"),
            60,
            "monthly commission statements",
        ),
        JobSpec(
            "order_completion",
            _external("handlers.ordering", "complete_due_orders"),
            60,
            "complete received orders past the return window",
        ),
        JobSpec("outbox_drain", _outbox_drain, 15, "deliver pending notifications", record_idle=False),
        JobSpec("daily_digest", _wrap(alerts.job_daily_digest), 60, "one summary per manager per day"),
    )
}


class JobRunOut(Out):
    job: str
    started_at: datetime
    finished_at: datetime | None
    result: Any


def check_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    period = params.get("period")
    if period is not None and not (isinstance(period, str) and _PERIOD.match(period)):
        raise ValidationError("period: 格式应为 年-月（如 2026-11）", {"field": "period"})
    if name == "commission_statements" and period is not None:
        require_ended(period)  # closing a running month would push later entries into the next
    return params


def spec_of(name: str) -> JobSpec:
    spec = JOBS.get(name)
    if spec is None:
        raise NotFound(f"没有名为 {name} 的任务")
    return spec


async def run_job(
    name: str, params: dict[str, Any] | None = None, *, trigger: str = "manual"
) -> JobRunOut | None:
    """Run one job to completion. Scheduled runs (`trigger="schedule"`) return None when another
    instance holds the job's lock; manual runs wait up to MANUAL_WAIT_S, then 409."""
    spec = spec_of(name)
    params = check_params(name, dict(params or {}))
    kv = runtime().kv
    if trigger == "manual":
        handle = await kv.acquire_lock(f"job:{name}", spec.lease_s, blocking_timeout=MANUAL_WAIT_S)
        if handle is None:
            raise InvalidState(f"任务 {name} 正在运行，请稍后再试")
    else:
        handle = await kv.try_lock(f"job:{name}", spec.lease_s)
        if handle is None:
            log.info("job_skipped_lock_held", job=name)
            return None
    started = clock_now()
    renewer = asyncio.create_task(_keep_lock(handle, spec))
    try:
        try:
            result = jsonable(await spec.fn(params))
        except Exception as exc:
            if outage_of(exc) is not None:
                raise  # a dependency is down: no traceback, no JobRun (the caller logs it)
            log.exception("job_failed", job=name)
            await _record(spec, started, {"error": f"{type(exc).__name__}: {exc}"}, trigger, force=True)
            raise
        finished = clock_now()
        await _record(spec, started, result, trigger, finished=finished, force=trigger == "manual")
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        if not await handle.release():
            log.warning("job_lock_expired", job=name, lease_s=spec.lease_s)
    # outbox_drain runs every few seconds: an idle run logs at DEBUG, not an INFO line per tick
    quiet = not spec.record_idle and _idle(result)
    (log.debug if quiet else log.info)("job_done", job=name, trigger=trigger, result=result)
    return JobRunOut(job=name, started_at=started, finished_at=finished, result=result)


async def _keep_lock(handle: LockHandle, spec: JobSpec) -> None:
    """Renew the job's lock every third of its lease while the job runs."""
    while True:
        await asyncio.sleep(spec.lease_s / 3)
        try:
            if not await handle.extend(spec.lease_s):
                log.warning("job_lock_lost", job=spec.name, lease_s=spec.lease_s)
                return
        except Exception as exc:  # kv down for a moment: the lease still runs, try again
            log.warning("job_lock_not_renewed", job=spec.name, error=f"{type(exc).__name__}: {exc}")


def _idle(result: Any) -> bool:
    return isinstance(result, dict) and not result.get("claimed") and not result.get("reclaimed")


async def _record(
    spec: JobSpec,
    started: datetime,
    result: Any,
    trigger: str,
    *,
    finished: datetime | None = None,
    force: bool,
) -> None:
    if not spec.record_idle and not force and _idle(result):
        return
    await JobRun.create(
        name=spec.name,
        started_at=started,
        finished_at=finished or clock_now(),
        result={"trigger": trigger, **result}
        if isinstance(result, dict)
        else {"trigger": trigger, "value": result},
        instance=runtime().instance_id,
    )


class JobInfo(Out):
    name: str
    summary: str
    schedule: str
    last_started_at: datetime | None = None
    last_result: Any = None


async def list_jobs() -> list[JobInfo]:
    schedules = runtime().config.scheduler.jobs
    out = []
    for name, spec in JOBS.items():
        last = await JobRun.filter(name=name).order_by("-started_at", "-id").first()
        out.append(
            JobInfo(
                name=name,
                summary=spec.summary,
                schedule=getattr(schedules, name, "off"),
                last_started_at=last.started_at if last else None,
                last_result=last.result if last else None,
            )
        )
    return out


async def record_baseline(name: str) -> None:
    """A job that never ran, seen at start: record now as where its history begins, without
    running it (a fresh install must not replay the past; `scheduler.service.catch_up`)."""
    at = clock_now()
    await JobRun.create(
        name=name,
        started_at=at,
        finished_at=at,
        result={"trigger": "baseline", "skipped": "first start: earlier runs are not replayed"},
        instance=runtime().instance_id,
    )


async def last_run_at(name: str) -> datetime | None:
    last = await JobRun.filter(name=name).order_by("-started_at", "-id").first()
    return last.started_at if last else None
