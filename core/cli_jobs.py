"""`qudao scheduler` (the scheduler alone, no HTTP) and `qudao jobs list | run NAME`."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from zoneinfo import ZoneInfo

import aiohttp

from core.cli import command
from core.config import Config


@asynccontextmanager
async def job_runtime(config: Config, instance: str = "cli") -> AsyncIterator[None]:
    """ORM, kv, an HTTP session and the Runtime with the notifier port, closed on exit."""
    from channels.notifier import build_notifier
    from core import runtime as rt
    from core.app import instance_id
    from core.db import init_db
    from core.kv import open_kv

    ctx = await init_db(config.database.url)
    kv = open_kv(config.kv.url, namespace=config.kv.namespace)
    try:
        timeout = aiohttp.ClientTimeout(total=10, connect=3)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            runtime = rt.Runtime(config=config, kv=kv, instance_id=f"{instance_id(config)}/{instance}")
            runtime.ports["notifier"] = build_notifier(config, http, kv)
            rt.install(runtime)
            try:
                yield
            finally:
                rt.install(None)
    finally:
        await kv.close()
        await ctx.close_connections()


@command("scheduler", "run the scheduled jobs without the HTTP server (one or many processes)")
async def scheduler(config: Config, args: argparse.Namespace) -> int:
    from scheduler.service import SchedulerService

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with job_runtime(config, "scheduler"):
        service = SchedulerService(config, instance="scheduler")
        await service.start()
        print("qudao scheduler running; next runs:", flush=True)
        for name, at in sorted(service.next_runs().items()):
            print(f"  {name:22} {at.isoformat() if at else '-'}", flush=True)
        try:
            await stop.wait()
        finally:
            await service.stop()
    return 0


def _jobs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list", "run"])
    p.add_argument("name", nargs="?", help="job name (for run)")
    p.add_argument("--period", help="YYYY-MM, e.g. for commission_statements")


@command("jobs", "list the scheduled jobs, or run one now: jobs list | jobs run NAME", _jobs_args)
async def jobs(config: Config, args: argparse.Namespace) -> int:
    from handlers.jobs import JOBS, list_jobs, run_job

    if args.action == "run" and not args.name:
        print(f"qudao: jobs run needs a job name: {', '.join(JOBS)}")
        return 2
    async with job_runtime(config):
        if args.action == "list":
            tz = ZoneInfo(config.scheduler.timezone)  # people read business time, not UTC
            for info in await list_jobs():
                last = info.last_started_at.astimezone(tz).isoformat() if info.last_started_at else "never"
                print(f"{info.name:22} {info.schedule:22} last: {last:32} {info.summary}")
            return 0
        params = {"period": args.period} if args.period else {}
        out = await run_job(args.name, params, trigger="manual")
        assert out is not None
        print(json.dumps(out.model_dump(mode="json"), ensure_ascii=False, indent=2))
    return 0
