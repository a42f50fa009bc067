"""Scheduler scans on PostgreSQL: `low_stock` over 100,000 stock rows and `contract_expiry`
over 50,000 contracts, each timed and its peak Python memory measured.

    python -m bench.scheduler_scan [--stock 100000] [--contracts 50000]

A scratch database (``QUDAO_BENCH_PG``, default ``postgres://postgres@127.0.0.1:5432/postgres``
as the admin connection) is created, migrated, bulk-loaded with COPY and dropped at the end.
Data: 50 distributors in 5 regions (a manager each, a sales rep each), 100 warehouses x 1,000
products; ~2% of the rows are below their minimum, and 20,000 ship movements in the last
28 days drive the days-of-cover check. Contracts end uniformly over three years, so ~3% are
inside the 30-day window or just expired.

Each job runs twice on the same data: once for time (fresh: every alert is new, written to
the outbox with digests) and, after emptying the outbox, once under tracemalloc for the peak.
Targets: < 5 s and < 300 MB each. The last line carries the ratios measured / target.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import tracemalloc
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ADMIN_URL = os.environ.get("QUDAO_BENCH_PG", "postgres://postgres@127.0.0.1:5432/postgres")
TIME_TARGET_S = 5.0
MEM_TARGET_MB = 300.0
REGIONS = ["华东", "华北", "华南", "西南", "东北"]


def _db_url(name: str) -> str:
    return urlunsplit(urlsplit(ADMIN_URL)._replace(path=f"/{name}"))


def _pg(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_pg(ADMIN_URL))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def seed(db_url: str, n_stock: int, n_contracts: int) -> dict[str, int]:
    """Reference rows through the ORM, the big tables through COPY."""
    import asyncpg

    from core.db import init_db, migrate_db
    from handlers.uscc import make_uscc
    from models.base import DistributorStatus, PaymentTerms, UserRole
    from models.distributor import Distributor
    from models.product import Product
    from models.stock import Warehouse
    from models.user import User

    await migrate_db(db_url)
    ctx = await init_db(db_url)
    rng = random.Random(7)
    try:
        for region in REGIONS:
            await User.create(display_name=f"经理 {region}", role=UserRole.MANAGER, regions=[region])
        dists = []
        for i in range(50):
            rep = await User.create(display_name=f"业务员 {i}", role=UserRole.SALES)
            dists.append(
                await Distributor.create(
                    name=f"压测经销商{i}",
                    uscc=make_uscc(f"91330000MA{i:07d}"),
                    level=1,
                    region=REGIONS[i % len(REGIONS)],
                    sales_rep=rep,
                    payment_terms=PaymentTerms.MONTHLY,
                    status=DistributorStatus.ACTIVE,
                )
            )
        n_wh = 100
        n_products = max(1, n_stock // n_wh)
        await Warehouse.bulk_create(
            [
                Warehouse(
                    code=f"WH-{i}",
                    name=f"仓库{i}",
                    region=REGIONS[i % len(REGIONS)],
                    distributor=dists[i % 50],
                )
                for i in range(n_wh)
            ]
        )
        await Product.bulk_create(
            [
                Product(
                    sku=f"S-{i:06d}",
                    name=f"螺纹钢 {i}",
                    pinyin="luowengang",
                    initials="lwg",
                    category="钢",
                    unit="吨",
                )
                for i in range(n_products)
            ]
        )
        wh_ids = list(await Warehouse.all().order_by("id").values_list("id", flat=True))
        product_ids = list(await Product.all().order_by("id").values_list("id", flat=True))
        dist_ids = [d.id for d in dists]
    finally:
        await ctx.close_connections()

    now = datetime.now(UTC)
    conn = await asyncpg.connect(_pg(db_url))
    try:
        stock = []
        for w in wh_ids:
            for p in product_ids:
                on_hand = rng.randint(0, 1000)
                low = rng.random() < 0.02
                min_qty = on_hand + 10 if low else rng.randint(0, max(0, on_hand - 1))
                stock.append((w, p, on_hand, 0, min_qty, on_hand * 3 + 10, None, None, now))
        await conn.copy_records_to_table(
            "stock",
            records=stock[:n_stock],
            columns=[
                "warehouse_id", "product_id", "on_hand", "reserved", "min_qty", "max_qty",
                "reorder_point", "cover_days", "updated_at",
            ],
        )  # fmt: skip
        moves = []
        for _ in range(20_000):
            s = stock[rng.randrange(min(n_stock, len(stock)))]
            qty = rng.randint(1, 50)
            moves.append(
                (s[0], s[1], "ship", "order", "1", -qty, -qty, 0, 0, now - timedelta(days=rng.uniform(0, 27)))
            )
        await conn.copy_records_to_table(
            "stock_movement",
            records=moves,
            columns=[
                "warehouse_id", "product_id", "reason", "ref_type", "ref_id", "delta_on_hand",
                "delta_reserved", "on_hand_after", "reserved_after", "created_at",
            ],
        )  # fmt: skip
        today = date.today()
        contracts = []
        for i in range(n_contracts):
            end = today + timedelta(days=rng.randint(-10, 3 * 365))
            contracts.append(
                (rng.choice(dist_ids), f"HT-{i:06d}", end - timedelta(days=365), end, "active", now, now)
            )
        await conn.copy_records_to_table(
            "contract",
            records=contracts,
            columns=[
                "distributor_id",
                "number",
                "start_date",
                "end_date",
                "status",
                "created_at",
                "updated_at",
            ],
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return {"stock": min(n_stock, len(stock)), "movements": len(moves), "contracts": n_contracts}


async def measure(db_url: str, job: str) -> dict[str, Any]:
    from core import runtime as rt
    from core.config import Config
    from core.db import init_db
    from core.kv import open_kv
    from handlers import alerts
    from models.notification import Notification

    config = Config().with_overrides({"database": {"url": db_url}, "logging": {"level": "WARNING"}})
    ctx = await init_db(db_url)
    kv = open_kv("memory://")
    rt.install(rt.Runtime(config=config, kv=kv, instance_id="bench"))
    fn = {"low_stock": alerts.job_low_stock, "contract_expiry": alerts.job_contract_expiry}[job]
    try:
        started = time.perf_counter()
        result = await fn()
        elapsed = time.perf_counter() - started
        rerun_started = time.perf_counter()
        rerun = await fn()  # idempotent: nothing new
        rerun_s = time.perf_counter() - rerun_started
        await Notification.all().delete()
        if job == "contract_expiry":
            from models.base import ContractStatus
            from models.contract import Contract

            await Contract.filter(status=ContractStatus.EXPIRED).update(status=ContractStatus.ACTIVE)
        tracemalloc.start()
        await fn()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {
            "job": job,
            "s": elapsed,
            "rerun_s": rerun_s,
            "peak_mb": peak / 1e6,
            "result": result,
            "rerun": rerun,
        }
    finally:
        rt.install(None)
        await kv.close()
        await ctx.close_connections()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scheduler_scan")
    p.add_argument("--stock", type=int, default=100_000)
    p.add_argument("--contracts", type=int, default=50_000)
    args = p.parse_args(argv or [])  # main() from `python -m bench`: the defaults
    from core.logging import setup_logging

    setup_logging("WARNING", "console")
    name = f"qudao_bench_scan_{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        print(f"scheduler_scan: PostgreSQL at {ADMIN_URL} does not answer: {exc}")
        return 2
    try:
        db_url = _db_url(name)
        t = time.perf_counter()
        sizes = asyncio.run(seed(db_url, args.stock, args.contracts))
        print(f"seeded {sizes} in {time.perf_counter() - t:.1f}s", flush=True)
        runs = [asyncio.run(measure(db_url, job)) for job in ("low_stock", "contract_expiry")]
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    for r in runs:
        res = r["result"]
        print(
            f"{r['job']:16} {r['s']:6.2f} s  peak {r['peak_mb']:6.1f} MB  rerun {r['rerun_s']:5.2f} s "
            f"(new {r['rerun'].get('new')})  findings/contracts "
            f"{res.get('findings', res.get('contracts'))}  notifications {res.get('notifications')} "
            f"digests {res.get('digests')}"
        )
    time_ratio = max(r["s"] for r in runs) / TIME_TARGET_S
    mem_ratio = max(r["peak_mb"] for r in runs) / MEM_TARGET_MB
    low, con = runs
    print(
        f"scheduler_scan: low_stock {low['s']:.2f}s/{low['peak_mb']:.0f}MB over {sizes['stock']} rows, "
        f"contract_expiry {con['s']:.2f}s/{con['peak_mb']:.0f}MB over {sizes['contracts']}; "
        f"ratio time/target {time_ratio:.2f} (target {TIME_TARGET_S:.0f}s), "
        f"mem/target {mem_ratio:.2f} (target {MEM_TARGET_MB:.0f}MB)"
    )
    return 0 if time_ratio < 1 and mem_ratio < 1 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
