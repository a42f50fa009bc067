"""`make faults`: kill -9 of an outbox drainer in the middle of its pushes.

A scratch database on the faults PostgreSQL holds pending notifications (WeCom app messages,
DingTalk work notifications — channels the platform de-duplicates — and WeChat subscribe
messages, which have no idempotency key). A drainer process sends them to the fake platform
(`qudao fake-platform`, its first calls slowed down so the kill lands mid-push) and is killed
with SIGKILL; after the lease runs out a new drainer reclaims and finishes.

Counted from the fake's record and the database:
- lost: a row of an idempotent channel not `sent`; a WeChat row neither `sent` nor `unknown`;
  more WeChat `unknown` rows than sends that can have been in flight (the "send started"
  mark: a reclaimed row the dead drainer had not started goes back to `pending`);
- duplicated: a message the platform acted on twice (its own de-duplication excluded).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.loadgen import free_port

ROWS = 400
CONCURRENCY = 16
LEASE_S = 10  # alerts.drain_lease_s (its minimum)
ROOT = Path(__file__).resolve().parent.parent


def _config(db_url: str, base: str) -> Any:
    from bench.outbox_drain import push_config

    return push_config(db_url, base).with_overrides({"alerts": {"drain_lease_s": LEASE_S}})


def drainer_main(db_url: str, base: str) -> int:
    """`python -m bench.faults_push DB_URL BASE`: one drainer until nothing is due."""
    from bench.outbox_drain import drain

    asyncio.run(drain(_config(db_url, base), 1, CONCURRENCY, 50))
    return 0


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def _fake(base: str, path: str, body: dict[str, Any] | None = None) -> Any:
    async with aiohttp.ClientSession() as http:
        if body is None:
            async with http.get(f"{base}{path}") as resp:
                return await resp.json()
        async with http.post(f"{base}{path}", json=body) as resp:
            return await resp.json()


async def experiment(admin_url: str, db_url: str) -> dict[str, Any]:
    """Returns {requests, statuses, recovery_s, lost, dup, problems}."""
    import asyncpg

    from bench.outbox_drain import seed, verify

    conn = await asyncpg.connect(admin_url.replace("postgres://", "postgresql://", 1))
    await conn.execute('CREATE DATABASE "push"')
    await conn.close()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUDAO_")}
    env["QUDAO_LOGGING__LEVEL"] = "ERROR"
    fake = _spawn(["core", "fake-platform", "--port", str(port)], env)
    try:
        from bench.outbox_drain import _wait_for

        await asyncio.to_thread(_wait_for, port)
        config = _config(db_url, base)
        await seed(config, ROWS)
        # the first calls take 0.3 s each: the kill finds a full set of sends in flight
        await _fake(base, "/_fake/faults", {"match": "/", "delay": 0.3, "count": 120})
        drainer = _spawn(["bench.faults_push", db_url, base], env)
        await asyncio.sleep(2.0)
        drainer.kill()
        await asyncio.to_thread(drainer.wait)
        killed_at = time.monotonic()
        await asyncio.sleep(LEASE_S + 1)  # the dead drainer's lease runs out
        again = _spawn(["bench.faults_push", db_url, base], env)
        code = await asyncio.to_thread(again.wait, 120)
        recovery = time.monotonic() - killed_at
        problems = [] if code == 0 else [f"second drainer: exit {code}"]
        check = await verify(config, base)
        statuses, lost = await _statuses(config)
    finally:
        fake.terminate()
        await asyncio.to_thread(fake.wait, 10)
    problems += [f"push lost: {x}" for x in lost]
    if check["duplicates"]:
        problems.append(f"{check['duplicates']} pushes delivered twice")
    return {
        "requests": ROWS,
        "statuses": statuses,
        "recovery_s": recovery,
        "lost": len(lost),
        "dup": check["duplicates"],
        "problems": problems,
    }


async def _statuses(config: Any) -> tuple[dict[str, int], list[str]]:
    from collections import Counter

    from core.db import init_db
    from handlers.outbox import NON_IDEMPOTENT
    from models.notification import Notification

    ctx = await init_db(config.database.url)
    try:
        rows = await Notification.all().values_list("id", "channel", "status")
    finally:
        await ctx.close_connections()
    lost: list[str] = []
    unknown = 0
    for nid, channel, status in rows:
        if channel in NON_IDEMPOTENT:
            if str(status) == "unknown":
                unknown += 1
            elif str(status) != "sent":
                lost.append(f"{channel} row {nid} ended {status}")
        elif str(status) != "sent":
            lost.append(f"{channel} row {nid} ended {status}")
    if unknown > CONCURRENCY:
        lost.append(f"{unknown} WeChat rows unknown, but at most {CONCURRENCY} sends were in flight")
    return dict(Counter(f"push {s}" for _, _, s in rows)), lost


if __name__ == "__main__":
    sys.exit(drainer_main(sys.argv[1], sys.argv[2]))
