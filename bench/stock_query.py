"""`GET /api/v1/stock` throughput vs a bare aiohttp handler running the same SQL.

    python -m bench.stock_query [--duration 10] [--concurrency 16] [--workers 1]

Both servers run on this machine against one scratch PostgreSQL database (``QUDAO_BENCH_PG``,
default ``postgres://postgres@127.0.0.1:5432/postgres``; created, seeded with 8 warehouses x
500 products, dropped at the end) and are driven by the same load generator
(`bench.loadgen`), one after the other, with the same requests: a distributor user asking
``/api/v1/stock?sku=<random sku>`` (that SKU's rows in the warehouses it may see).

- **app**: the whole Qudao app (``bench.loadgen serve``: uvloop, no scheduler, no access log):
  bearer-token auth, scope, query validation, the use-case, the JSON shape.
- **bare**: a plain aiohttp handler (``python -m bench.stock_query bare``) that runs *the same
  SQL statement* through an asyncpg pool with the distributor id hard-wired (no auth, no
  validation) and writes the rows as JSON in the same shape. It is the floor for "HTTP + this
  query" on this machine, so the ratio measures what the framework, auth and ORM cost.

The last line is the ratio app / bare (target >= 0.5).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import uuid

from bench.loadgen import Req, drive, run_load, serve
from bench.order_admission import ADMIN_URL, _admin, _db_url

WAREHOUSES = 8
PRODUCTS = 500


async def seed(db_url: str) -> dict:
    from datetime import timedelta

    from core.clock import now
    from core.db import init_db, migrate_db
    from handlers.auth import token_hash
    from handlers.text import pinyin_of
    from handlers.uscc import make_uscc
    from models.base import DistributorStatus, PaymentTerms, UserRole
    from models.distributor import Distributor
    from models.product import Product
    from models.stock import Stock, Warehouse
    from models.user import AuthToken, User

    await migrate_db(db_url)
    ctx = await init_db(db_url)
    try:
        dist = await Distributor.create(
            name="压测经销商",
            uscc=make_uscc("91330000MA0000001"),
            level=1,
            region="华东",
            payment_terms=PaymentTerms.MONTHLY,
            status=DistributorStatus.ACTIVE,
        )
        other = await Distributor.create(
            name="别家经销商",
            uscc=make_uscc("91330000MA0000002"),
            level=1,
            region="华北",
            payment_terms=PaymentTerms.MONTHLY,
            status=DistributorStatus.ACTIVE,
        )
        whs = []
        for i in range(WAREHOUSES):
            owner = dist if i == 0 else other if i == 1 else None
            whs.append(
                await Warehouse.create(code=f"WH-{i}", name=f"仓库{i}", region="华东", distributor=owner)
            )
        products = []
        for i in range(PRODUCTS):
            name = f"热镀锌钢管 DN{i}"
            full, initials = pinyin_of(name)
            products.append(
                Product(
                    sku=f"S-{i:05d}", name=name, pinyin=full, initials=initials, category="钢管", unit="吨"
                )
            )
        await Product.bulk_create(products)
        products = await Product.all()
        rng = random.Random(1)
        await Stock.bulk_create(
            [
                Stock(warehouse=wh, product=p, on_hand=rng.randint(0, 500), reserved=0)
                for wh in whs
                for p in products
            ]
        )
        user = await User.create(display_name="压测", role=UserRole.DISTRIBUTOR, distributor=dist)
        token = uuid.uuid4().hex * 2
        await AuthToken.create(token_hash=token_hash(token), user=user, expires_at=now() + timedelta(days=1))
        return {"token": token, "skus": [p.sku for p in products], "distributor_id": dist.id}
    finally:
        await ctx.close_connections()


# --- the bare server ----------------------------------------------------------------------


def _bare_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.stock_query bare")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--reuse-port", action="store_true")
    args = parser.parse_args(argv)
    import asyncpg
    import orjson
    import uvloop
    from aiohttp import web

    from handlers.stock import STOCK_PAGE_SQL

    dsn = os.environ["BENCH_DSN"]
    distributor_id = int(os.environ["BENCH_DISTRIBUTOR_ID"])
    sql = STOCK_PAGE_SQL.format(
        visible='w."active" AND (w."distributor_id" IS NULL OR w."distributor_id" = ANY($1::int[]))',
        where=' AND p."sku" = $2',
        limit="$3",
        offset="$4",
    )
    pool_key: web.AppKey[asyncpg.Pool] = web.AppKey("pool", asyncpg.Pool)

    async def pool_ctx(app: web.Application):  # type: ignore[no-untyped-def]
        app[pool_key] = await asyncpg.create_pool(dsn, min_size=4, max_size=20)
        yield
        await app[pool_key].close()

    async def stock(request: web.Request) -> web.Response:
        sku = request.query.get("sku", "")
        async with request.app[pool_key].acquire() as conn:
            rows = await conn.fetch(sql, [distributor_id], sku, 20, 0)
        total = rows[0]["total"] if rows else 0
        items = [
            {
                "sku": r["sku"],
                "product_id": r["product_id"],
                "product_name": r["product_name"],
                "warehouse_id": r["warehouse_id"],
                "warehouse_code": r["warehouse_code"],
                "warehouse_name": r["warehouse_name"],
                "on_hand": r["on_hand"],
                "reserved": r["reserved"],
                "available": r["on_hand"] - r["reserved"],
            }
            for r in rows
        ]
        body = {"items": items, "total": total, "page": 1, "page_size": 20}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.cleanup_ctx.append(pool_ctx)
    app.router.add_get("/api/v1/stock", stock)
    app.router.add_get("/readyz", ready)
    web.run_app(
        app,
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        reuse_port=args.reuse_port or None,
        loop=uvloop.new_event_loop(),
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stock_query", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="processes per server, sharing the port")
    args = parser.parse_args(argv)
    db_name = f"qudao_bench_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{db_name}"'))
    except Exception as exc:
        print(f"stock_query: PostgreSQL at {ADMIN_URL} does not answer: {exc}")
        return 2
    try:
        seeded = asyncio.run(seed(_db_url(db_name)))
        skus, token = seeded["skus"], seeded["token"]
        rng = random.Random(3)

        def query(worker: int, seq: int) -> Req:
            return Req(
                "GET", f"/api/v1/stock?sku={rng.choice(skus)}", headers={"Authorization": f"Bearer {token}"}
            )

        app_env = {
            "QUDAO_DATABASE__URL": _db_url(db_name, maxsize="20"),
            "QUDAO_KV__URL": os.environ.get("QUDAO_BENCH_REDIS", "redis://127.0.0.1:6379/0")
            if args.workers > 1
            else "memory://",
            "QUDAO_KV__NAMESPACE": db_name,
            "QUDAO_LOGGING__LEVEL": "WARNING",
            "QUDAO_SCHEDULER__ENABLED": "false",
        }
        with serve(app_env, workers=args.workers) as base:
            app = drive(
                run_load(
                    base, query, concurrency=args.concurrency, duration=args.duration, warmup=args.warmup
                )
            )
        print(f"app  GET /stock: {app.summary()}")
        bare_env = {
            "BENCH_DSN": _db_url(db_name).replace("postgres://", "postgresql://", 1),
            "BENCH_DISTRIBUTOR_ID": str(seeded["distributor_id"]),
        }
        with serve(bare_env, workers=args.workers, target=("bench.stock_query", "bare")) as base:
            bare = drive(
                run_load(
                    base, query, concurrency=args.concurrency, duration=args.duration, warmup=args.warmup
                )
            )
        print(f"bare aiohttp + asyncpg, same SQL: {bare.summary()}")
        ratio = app.rps / bare.rps if bare.rps else 0.0
        print(
            f"stock query: app {app.rps:,.0f} req/s vs bare aiohttp {bare.rps:,.0f} req/s at "
            f"{args.concurrency} clients -> ratio {ratio:.2f} (target >= 0.5)"
        )
        return 0
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "bare":
        sys.exit(_bare_main(sys.argv[2:]))
    sys.exit(main())
