"""Outbox drain rate against the fake platform, with two drainers at once (two "instances").

    python -m bench.outbox_drain [--rows 5000] [--drainers 2] [--concurrency 32] [--batch 200]

A scratch PostgreSQL database (``QUDAO_BENCH_PG`` admin URL, created and dropped) holds
`--rows` pending notifications for distinct users: 80% WeCom app messages, 10% DingTalk work
notifications, 10% WeChat subscribe messages (each with a grant). The fake platform runs as
its own process (`qudao fake-platform`), like a remote API. The drainers claim with
`FOR UPDATE SKIP LOCKED`, send outside transactions and record each result.

Checked after the run: every row `sent`, every message delivered exactly once (the fake's
record of delivered messages per recipient and text), grants consumed. The last line is the
rate and the ratio measured / target (target >= 500 notifications/s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp

ADMIN_URL = os.environ.get("QUDAO_BENCH_PG", "postgres://postgres@127.0.0.1:5432/postgres")
TARGET_PER_S = 500.0
ROOT = Path(__file__).resolve().parent.parent


def _db_url(name: str, **query: str) -> str:
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return urlunsplit(urlsplit(ADMIN_URL)._replace(path=f"/{name}", query=q))


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(ADMIN_URL.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def push_config(db_url: str, base: str):  # type: ignore[no-untyped-def]
    from core.config import Config

    return Config().with_overrides(
        {
            "database": {"url": db_url},
            "logging": {"level": "WARNING"},
            "wechat": {
                "appid": "wx-bench",
                "secret": "s",
                "api_base": base,
                "templates": {"order_status": "tpl-o"},
            },
            "wecom": {"corp_id": "ww-bench", "agent_id": 1, "secret": "s", "api_base": base},
            "dingtalk": {
                "app_key": "dk",
                "app_secret": "s",
                "agent_id": 2,
                "api_base": base,
                "oapi_base": base,
            },
        }
    )


async def seed(config, rows: int) -> None:  # type: ignore[no-untyped-def]
    from core import runtime as rt
    from core.clock import now
    from core.db import init_db, migrate_db
    from core.kv import open_kv
    from handlers.notify import build_row
    from models.base import IdentityChannel, NotificationChannel, UserRole
    from models.notification import Notification, SubscriptionGrant
    from models.user import Identity, User

    await migrate_db(config.database.url)
    ctx = await init_db(config.database.url)
    kv = open_kv("memory://")
    rt.install(rt.Runtime(config=config, kv=kv))
    try:
        await User.bulk_create([User(display_name=f"u{i}", role=UserRole.SALES) for i in range(rows)])
        ids = list(await User.all().order_by("id").values_list("id", flat=True))
        idents, grants, notes = [], [], []
        at = now()
        for i, uid in enumerate(ids):
            if i % 10 == 0:
                idents.append(Identity(user_id=uid, channel=IdentityChannel.MINIAPP, account_id=f"o{uid}"))
                grants.append(SubscriptionGrant(user_id=uid, template_id="tpl-o", remaining=1))
                channel = NotificationChannel.WECHAT_SUBSCRIBE
            elif i % 10 == 1:
                idents.append(Identity(user_id=uid, channel=IdentityChannel.DINGTALK, account_id=f"d{uid}"))
                channel = NotificationChannel.DINGTALK_WORK
            else:
                idents.append(Identity(user_id=uid, channel=IdentityChannel.WECOM, account_id=f"w{uid}"))
                channel = NotificationChannel.WECOM
            notes.append(
                build_row(
                    recipient_id=uid,
                    recipient_ref=None,
                    kind="order_status",
                    title=f"订单 SO{uid:08d} 已发货",
                    body="压测消息",
                    payload={},
                    dedupe_key=f"bench:{uid}",
                    urgent=True,
                    channel=channel,
                    at=at,
                )
            )
        for batch in (idents, grants, notes):
            for i in range(0, len(batch), 1000):
                await type(batch[0]).bulk_create(batch[i : i + 1000])
        assert await Notification.filter(status="pending").count() == rows
    finally:
        rt.install(None)
        await kv.close()
        await ctx.close_connections()


async def drain(config, drainers: int, concurrency: int, batch: int) -> tuple[float, list]:  # type: ignore[no-untyped-def]
    from channels.notifier import build_notifier
    from core import runtime as rt
    from core.db import init_db
    from core.kv import open_kv
    from handlers.outbox import Drainer

    ctx = await init_db(config.database.url)
    kv = open_kv("memory://")
    rt.install(rt.Runtime(config=config, kv=kv, instance_id="bench"))
    sessions = [aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) for _ in range(drainers)]
    try:
        workers = [
            Drainer(build_notifier(config, s, kv), batch=batch, concurrency=concurrency) for s in sessions
        ]
        await workers[0].notifier.tokens.get("wecom")  # type: ignore[attr-defined]
        started = time.perf_counter()
        stats = await asyncio.gather(*(w.drain(max_passes=100_000) for w in workers))
        return time.perf_counter() - started, stats
    finally:
        for s in sessions:
            await s.close()
        rt.install(None)
        await kv.close()
        await ctx.close_connections()


async def verify(config, base: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    from core.db import init_db
    from models.notification import Notification, SubscriptionGrant

    async with aiohttp.ClientSession() as http, http.get(f"{base}/_fake/messages") as resp:
        calls = (await resp.json())["items"]
    delivered: Counter[tuple[str, str]] = Counter()
    for c in calls:
        body = c["body"] or {}
        if c["kind"] == "wecom.message":
            delivered[(body["touser"], body["text"]["content"])] += 1
        elif c["kind"] == "dingtalk.work":
            delivered[(body["userid_list"], body["msg"]["text"]["content"])] += 1
        elif c["kind"] == "wechat.subscribe":
            delivered[(body["touser"], body["data"]["thing1"]["value"])] += 1
    ctx = await init_db(config.database.url)
    try:
        statuses = Counter(str(s) for s in await Notification.all().values_list("status", flat=True))
        grants_left = await SubscriptionGrant.filter(remaining__gt=0).count()
    finally:
        await ctx.close_connections()
    return {
        "delivered": sum(delivered.values()),
        "duplicates": sum(v - 1 for v in delivered.values()),
        "sent": statuses.get("sent", 0),
        "not_sent": sum(v for k, v in statuses.items() if k != "sent"),
        "grants_left": grants_left,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.outbox_drain")
    p.add_argument("--rows", type=int, default=5000)
    p.add_argument("--drainers", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--batch", type=int, default=200)
    args = p.parse_args(argv or [])  # main() from `python -m bench`: the defaults
    from core.logging import setup_logging

    setup_logging("WARNING", "console")
    name = f"qudao_bench_outbox_{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        print(f"outbox_drain: PostgreSQL at {ADMIN_URL} does not answer: {exc}")
        return 2
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUDAO_")} | {
        "QUDAO_LOGGING__LEVEL": "WARNING"
    }
    fake = subprocess.Popen(
        [sys.executable, "-m", "core", "fake-platform", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(port)
        config = push_config(_db_url(name, maxsize=str(max(10, args.drainers * 8))), base)
        t = time.perf_counter()
        asyncio.run(seed(config, args.rows))
        print(f"seeded {args.rows} pending notifications in {time.perf_counter() - t:.1f}s", flush=True)
        elapsed, stats = asyncio.run(drain(config, args.drainers, args.concurrency, args.batch))
        check = asyncio.run(verify(config, base))
    finally:
        fake.terminate()
        fake.wait(timeout=10)
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    for i, s in enumerate(stats):
        print(f"drainer {i}: sent {s.sent} claimed {s.claimed} retried {s.retried} failed {s.failed}")
    rate = check["sent"] / elapsed if elapsed else 0.0
    ok = check["duplicates"] == 0 and check["not_sent"] == 0 and check["delivered"] == args.rows
    print(f"checks: {check}")
    print(
        f"outbox_drain: {check['sent']} notifications in {elapsed:.2f}s = {rate:.0f}/s "
        f"({args.drainers} drainers x {args.concurrency}), duplicates {check['duplicates']}, "
        f"not sent {check['not_sent']}; ratio measured/target {rate / TARGET_PER_S:.2f} "
        f"(target {TARGET_PER_S:.0f}/s)"
    )
    return 0 if ok and rate >= TARGET_PER_S else 1


def _wait_for(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"fake platform did not start on port {port}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
