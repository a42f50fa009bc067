"""`make soak` / `python -m bench.soak`: mixed traffic for SOAK_MINUTES (default 10) with the
scheduler on, then the DESIGN §8 invariant check of `make faults`.

Throw-away PostgreSQL and Redis on free 127.0.0.1 ports (bench.faults), never the shared
ones; the service (`bench.loadgen serve`, scheduler enabled) on a free port. Traffic, from
a few workers at once: orders with Idempotency-Keys (distributor 1 runs into its credit
limit), stock reads, chat messages (encrypted WeChat pushes from bound sales reps, some
delivered twice as WeChat does on a slow reply) and payments recorded by an admin. Every
order that got no answer or a 5xx is replayed with its key at the end. Exit 1 on an
invariant violation or a 500.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import aiohttp

from bench.faults import Load, Postgres, Redis, Service, _log_problems, check_invariants, tighten_credit

SKUS = 20
WORKERS = 8
CHAT_SENDERS = 10


async def _admin_token(db_url: str) -> str:
    from core.clock import now
    from core.db import init_db
    from handlers.auth import token_hash
    from models.base import UserRole
    from models.user import AuthToken, User

    ctx = await init_db(db_url)
    try:
        u = await User.create(display_name="soak admin", role=UserRole.ADMIN)
        token = uuid.uuid4().hex + uuid.uuid4().hex
        await AuthToken.create(token_hash=token_hash(token), user=u, expires_at=now() + timedelta(days=1))
        return token
    finally:
        await ctx.close_connections()


class Traffic:
    def __init__(self, load: Load, admin: str, openids: list[str]) -> None:
        from bench.bot_roundtrip import AES_KEY, APPID, QUERIES, TOKEN
        from bot.simulator import WeChatSimulator

        self.load, self.admin, self.openids = load, admin, openids
        self.sim = WeChatSimulator(TOKEN, AES_KEY, APPID)
        self.queries = QUERIES
        self.statuses: dict[str, Counter[str]] = {k: Counter() for k in ("order", "stock", "chat", "payment")}

    async def worker(self, http: aiohttp.ClientSession, base: str, w: int, until: float) -> None:
        rng = random.Random(w)
        i = 0
        while time.monotonic() < until:
            i += 1
            pick = rng.random()
            if pick < 0.5:
                kind, status = "order", await self.load._order(http, base, w, i)
            elif pick < 0.8:
                kind, status = "stock", await self.load._stock(http, base, w)
            elif pick < 0.97:
                kind, status = "chat", await self._chat(http, base, rng)
            else:
                kind, status = "payment", await self._payment(http, base, rng)
            self.statuses[kind][str(status) if status is not None else "no answer"] += 1
            await asyncio.sleep(rng.uniform(0.01, 0.05))

    async def _chat(self, http: aiohttp.ClientSession, base: str, rng: random.Random) -> int | None:
        req = self.sim.text(rng.choice(self.openids), rng.choice(self.queries))
        status = None
        for n in range(2 if rng.random() < 0.2 else 1):  # WeChat redelivers on a slow answer
            try:
                async with http.post(base + req.path, params=req.params, data=req.body.encode()) as resp:
                    body = await resp.text()
                    if n == 0:
                        status = resp.status
                        if status == 200 and not self.sim.read_reply(status, body):
                            status = 599  # a reply that does not verify
            except (aiohttp.ClientError, TimeoutError, OSError):
                status = None
        return status

    async def _payment(self, http: aiohttp.ClientSession, base: str, rng: random.Random) -> int | None:
        from core.clock import now

        body = {
            "distributor_id": rng.randint(1, 4),
            "amount": f"{rng.randint(1, 50)}.00",
            "paid_at": now().isoformat(),
            "ref": f"soak-{uuid.uuid4().hex[:12]}",
        }
        headers = {"Authorization": f"Bearer {self.admin}"}
        try:
            async with http.post(f"{base}/api/v1/admin/payments", json=body, headers=headers) as resp:
                await resp.read()
                return resp.status
        except (aiohttp.ClientError, TimeoutError, OSError):
            return None


async def run(root: Path, minutes: float) -> int:
    from bench.bot_roundtrip import prepare, server_env
    from bench.order_admission import seed

    pg, redis = Postgres(root), Redis()
    pg.init()
    pg.start()
    redis.start()
    svc: Service | None = None
    try:
        import asyncpg

        conn = await asyncpg.connect(pg.url("postgres").replace("postgres://", "postgresql://", 1))
        await conn.execute('CREATE DATABASE "soak"')
        await conn.close()
        db_url = pg.url("soak")
        seeded = await seed(db_url, SKUS)
        await tighten_credit(db_url)
        openids = await prepare(db_url, redis.url, CHAT_SENDERS)
        admin = await _admin_token(db_url)
        env = server_env(db_url + "?maxsize=10", redis.url) | {
            "QUDAO_KV__NAMESPACE": "soak",
            "QUDAO_LIMITS__ORDERS_PER_USER_PER_MIN": "100000",
            "QUDAO_SCHEDULER__ENABLED": "true",
        }
        svc = Service(env, root / "service.log")
        svc.start()
        load = Load(seeded)
        traffic = Traffic(load, admin, openids)
        until = time.monotonic() + minutes * 60
        print(f"soak: {minutes:g} min of orders, stock reads, chat and payments on {svc.base}", flush=True)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            await asyncio.gather(*(traffic.worker(http, svc.base, w, until) for w in range(WORKERS)))
        replayed = await load.replay(svc.base)
        problems = await check_invariants(db_url, load) + _log_problems(root / "service.log")
        problems += await _notification_problems(db_url)
        print(await _scheduler_summary(db_url), flush=True)
    finally:
        if svc is not None:
            svc.stop()
        redis.kill()
        pg.stop()
    for kind, counts in traffic.statuses.items():
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        print(f"  {kind:8} {sum(counts.values()):>7}  {answers}")
    print(f"  replayed {replayed} orders that got no answer or a 5xx")
    print(f"invariant violations: {len(problems)}")
    for p in problems[:20]:
        print(f"  - {p}")
    return 1 if problems else 0


async def _notification_problems(db_url: str) -> list[str]:
    """DESIGN §8.6: a notification that failed, died or is unknown says why."""
    from core.db import init_db
    from models.notification import Notification

    ctx = await init_db(db_url)
    try:
        bad = Notification.filter(status__in=["failed", "dead", "unknown"], last_error__isnull=True)
        silent = await bad.count()
    finally:
        await ctx.close_connections()
    return [f"{silent} notifications failed / dead / unknown without a reason"] if silent else []


async def _scheduler_summary(db_url: str) -> str:
    from core.db import init_db
    from models.notification import JobRun, Notification

    ctx = await init_db(db_url)
    try:
        runs = Counter(await JobRun.all().values_list("name", flat=True))
        notes = Counter(str(s) for s in await Notification.all().values_list("status", flat=True))
    finally:
        await ctx.close_connections()
    return f"  scheduler: job runs {dict(runs)}; notifications {dict(notes)}"


def main(argv: list[str] | None = None) -> int:
    from core.logging import setup_logging

    setup_logging("WARNING", "console")  # the seeds' own logs are noise here
    minutes = float(os.environ.get("SOAK_MINUTES", "10"))
    root = Path(tempfile.mkdtemp(prefix="qudao-soak-"))
    try:
        return asyncio.run(run(root, minutes))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
