"""Order admission throughput on PostgreSQL, beside pgbench running the bare SQL.

    python -m bench.order_admission [--duration 10] [--concurrency 16] [--workers 1] [--skus 100]

1. Creates a scratch PostgreSQL database (server from ``QUDAO_BENCH_PG``, default
   ``postgres://postgres@127.0.0.1:5432/postgres``; dropped at the end), migrates it and
   seeds one company warehouse, ``--skus`` products with a price list and ample stock, and
   64 active distributors with a user and a token each.
2. Starts the app on a free port (``bench.loadgen serve``: uvloop, no scheduler, no access
   log; ``--workers`` processes sharing the port) and fires ``POST /api/v1/orders`` from
   ``--concurrency`` closed-loop clients for ``--duration`` seconds: each order is one line of
   qty 1 of a random SKU, with a fresh Idempotency-Key; each client is the user of its own
   distributor (one distributor's orders are serialised by the credit check, as they must be). Every order
   takes the whole path: auth, rate limit, idempotency record, distributor lock, pricing,
   credit check, stock lock + reservation, order number, order + line + movement, audit,
   events.
3. Runs pgbench with ``bench/order_admission.sql`` — the same SQL transaction: every statement
   the app sends for one of these orders, in the same order (BEGIN, distributor lock, products
   and prices, promotions, credit, order, stock lock, line, reservation, movement, the number,
   audit, the event's outbox row, the Idempotency-Key record, COMMIT; checked
   against the app by tests/test_bench_smoke.py) — with prepared statements (``-M prepared``,
   as asyncpg prepares the app's), one distributor per client, the same random SKU spread, at
   the same concurrency for the same time. The ratio is then what the app (HTTP, auth, Python,
   the driver) costs on top of the database work an admission needs.
   The two sides take turns, ABBA (app, pgbench, pgbench, app, each for half the duration),
   so the database growing and the machine drifting weigh on both alike.
4. Checks the stock ledger still balances and prints both rates; the last line is the ratio
   (target >= 0.35).

pgbench ships in the ``postgresql-client`` package (Debian/Ubuntu: ``apt-get install -y
postgresql-client``); without it the bench says so and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench.loadgen import LoadResult, Req, drive, run_load, serve

HERE = Path(__file__).resolve().parent
SQL_SCRIPT = HERE / "order_admission.sql"
ADMIN_URL = os.environ.get("QUDAO_BENCH_PG", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("QUDAO_BENCH_REDIS", "redis://127.0.0.1:6379/0")
DISTRIBUTORS = 64


def _db_url(name: str, **query: str) -> str:
    parts = urlsplit(ADMIN_URL)
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return urlunsplit(parts._replace(path=f"/{name}", query=q))


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(ADMIN_URL.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def seed(db_url: str, skus: int) -> dict:
    """Migrate and load the bench data; returns the tokens, SKUs and the warehouse id."""
    from core.db import init_db, migrate_db
    from core.money import money
    from handlers.auth import token_hash
    from handlers.text import pinyin_of
    from handlers.uscc import make_uscc
    from models.base import DistributorStatus, MovementReason, PaymentTerms, UserRole
    from models.distributor import Distributor
    from models.product import PriceList, PriceListItem, Product
    from models.stock import Stock, StockMovement, Warehouse
    from models.user import AuthToken, User

    await migrate_db(db_url)
    ctx = await init_db(db_url)
    try:
        from datetime import date, timedelta

        from core.clock import now

        wh = await Warehouse.create(code="WH-BENCH", name="压测仓", region="华东")
        products = []
        for i in range(1, skus + 1):
            name = f"螺纹钢 HRB400E 压测{i}"
            full, initials = pinyin_of(name)
            products.append(
                await Product.create(
                    sku=f"B-{i:05d}", name=name, pinyin=full, initials=initials, category="螺纹钢", unit="吨"
                )
            )
        pl = await PriceList.create(name="压测价", valid_from=date(2020, 1, 1))
        await PriceListItem.bulk_create(
            [PriceListItem(price_list=pl, product=p, price=money("10")) for p in products]
        )
        big = 1_000_000_000
        for p in products:  # one by one: stock ids must equal product ids (the pgbench script)
            s = await Stock.create(warehouse=wh, product=p, on_hand=big, reserved=0)
            assert s.id == p.id, "bench database must be fresh"
        await StockMovement.bulk_create(
            [
                StockMovement(
                    warehouse=wh,
                    product=p,
                    reason=MovementReason.INBOUND,
                    ref_type="bench",
                    ref_id="seed",
                    delta_on_hand=big,
                    delta_reserved=0,
                    on_hand_after=big,
                    reserved_after=0,
                )
                for p in products
            ]
        )
        tokens = []
        for i in range(DISTRIBUTORS):
            d = await Distributor.create(
                name=f"压测经销商{i}",
                uscc=make_uscc(f"91330000MA{i:07d}"),
                level=1,
                region="华东",
                credit_limit=money(Decimal("999999999999")),
                payment_terms=PaymentTerms.MONTHLY,
                status=DistributorStatus.ACTIVE,
            )
            u = await User.create(display_name=f"压测{i}", role=UserRole.DISTRIBUTOR, distributor=d)
            # the pgbench script's client n is distributor n + 1 and its user n + 1
            assert d.id == u.id == i + 1, "bench database must be fresh"
            token = uuid.uuid4().hex + uuid.uuid4().hex
            await AuthToken.create(token_hash=token_hash(token), user=u, expires_at=now() + timedelta(days=1))
            tokens.append(token)
        return {
            "tokens": tokens,
            "skus": [p.sku for p in products],
            "warehouse_id": wh.id,
        }
    finally:
        await ctx.close_connections()


async def verify(db_url: str) -> int:
    from core.db import init_db
    from handlers.stock import verify_ledger

    ctx = await init_db(db_url)
    try:
        return len(await verify_ledger())
    finally:
        await ctx.close_connections()


def run_pgbench(db_name: str, seeded: dict, clients: int, seconds: int) -> float:
    parts = urlsplit(ADMIN_URL)
    env = {
        **os.environ,
        "PGHOST": parts.hostname or "127.0.0.1",
        "PGPORT": str(parts.port or 5432),
        "PGUSER": parts.username or "postgres",
    }
    if parts.password:
        env["PGPASSWORD"] = parts.password
    cmd = [
        "pgbench",
        "-n",
        "-M",
        "prepared",
        "-c",
        str(clients),
        "-j",
        str(min(clients, os.cpu_count() or 2)),
        "-T",
        str(seconds),
        "-f",
        str(SQL_SCRIPT),
        "-D",
        f"nsku={len(seeded['skus'])}",
        "-D",
        f"wid={seeded['warehouse_id']}",
        db_name,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pgbench failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out = proc.stdout
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    if not match:
        raise RuntimeError(f"could not read pgbench output:\n{out}")
    return float(match.group(1))


# --- keeping the pgbench script honest -------------------------------------------------------


def statement_signature(sql: str) -> tuple:
    """What a statement does, independent of how its values are written ($n, :var, literals):
    its verb, the tables it names in order, the columns an INSERT writes, and whether it locks,
    upserts or returns. tests/test_bench_smoke.py compares the app's and pgbench's lists."""
    text = re.sub(r"'(?:[^']|'')*'", "''", sql)  # literals hide no table names
    verb = text.strip().split(None, 1)[0].upper()
    tables = tuple(
        m.group(2).lower()
        for m in re.finditer(r'\b(FROM|JOIN|INTO|UPDATE)\s+"?(\w+)"?', text, re.IGNORECASE)
        if not (m.group(1).upper() == "UPDATE" and m.group(2).upper() in ("OF", "SET"))
    )
    columns: tuple[str, ...] = ()
    if verb == "INSERT":
        cols = re.search(r"INTO\s+\"?\w+\"?\s*\(([^)]*)\)", text, re.IGNORECASE)
        columns = tuple(c.strip().strip('"') for c in cols.group(1).split(",")) if cols else ()
    flat = re.sub(r"\s+", " ", text).upper()
    flags = tuple(flag for flag in ("FOR NO KEY UPDATE", "ON CONFLICT", "RETURNING") if flag in flat)
    return (verb, tables, columns, flags)


def script_statements() -> list[str]:
    """The SQL commands of bench/order_admission.sql (meta-commands and comments dropped)."""
    commands: list[str] = []
    current: list[str] = []
    for line in SQL_SCRIPT.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("--") or (stripped.startswith("\\") and not current):
            continue
        current.append(stripped)
        if stripped.endswith(";") or stripped.endswith("\\gset"):
            commands.append(" ".join(current).removesuffix("\\gset").rstrip().rstrip(";"))
            current = []
    return commands


async def capture_app_sql() -> list[str]:
    """The statements the app sends for one bench order (the caller's second: the first warms
    the token cache), in a scratch database."""
    import logging

    from aiohttp.test_utils import TestClient, TestServer

    from core.app import create_app
    from core.config import Config

    class Capture(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.statements: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            if record.args and isinstance(record.args, tuple) and len(record.args) == 2:
                self.statements.append(str(record.args[0]))

    name = f"qudao_bench_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        url = _db_url(name)
        seeded = await seed(url, 3)
        config = Config.model_validate(
            {"database": {"url": url}, "scheduler": {"enabled": False}, "logging": {"level": "WARNING"}}
        )
        async with TestClient(TestServer(create_app(config))) as client:
            capture = Capture()
            db_log = logging.getLogger("tortoise.db_client")
            for attempt in range(2):
                if attempt:
                    db_log.setLevel(logging.DEBUG)
                    db_log.addHandler(capture)
                resp = await client.post(
                    "/api/v1/orders",
                    json={"lines": [{"sku": seeded["skus"][0], "qty": 1}]},
                    headers={
                        "Authorization": f"Bearer {seeded['tokens'][0]}",
                        "Idempotency-Key": f"cap-{attempt}",
                    },
                )
                assert resp.status == 201, await resp.text()
            db_log.removeHandler(capture)
        return capture.statements
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.order_admission", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="app processes sharing the port")
    parser.add_argument("--skus", type=int, default=100)
    parser.add_argument("--pool", type=int, default=20, help="database pool size per app process")
    parser.add_argument(
        "--print-sql", action="store_true", help="print the SQL the app sends for one order (JSON lines)"
    )
    args = parser.parse_args(argv)
    if args.print_sql:
        import json

        try:
            statements = asyncio.run(capture_app_sql())
        except OSError as exc:
            print(f"order_admission: PostgreSQL at {ADMIN_URL} does not answer: {exc}")
            return 2
        for sql in statements:
            print("sql\t" + json.dumps(sql, ensure_ascii=False))
        return 0

    if not 1 <= args.concurrency <= DISTRIBUTORS:
        parser.error(f"--concurrency must be 1..{DISTRIBUTORS} (one distributor per client)")
    if shutil.which("pgbench") is None:
        print(
            "order_admission: pgbench not found — install the postgresql-client package "
            "(apt-get install -y postgresql-client) and run again"
        )
        return 2
    db_name = f"qudao_bench_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{db_name}"'))
    except Exception as exc:
        print(f"order_admission: PostgreSQL at {ADMIN_URL} does not answer: {exc}")
        return 2
    try:
        db_url = _db_url(db_name)
        seeded = asyncio.run(seed(db_url, args.skus))
        env = {
            "QUDAO_DATABASE__URL": _db_url(db_name, maxsize=str(args.pool)),
            "QUDAO_KV__URL": REDIS_URL if args.workers > 1 else "memory://",
            "QUDAO_KV__NAMESPACE": db_name,
            "QUDAO_LIMITS__ORDERS_PER_USER_PER_MIN": "100000000",
            "QUDAO_LOGGING__LEVEL": "WARNING",
            "QUDAO_SCHEDULER__ENABLED": "false",
            "QUDAO_AUTH__SECRET": "bench-secret",
        }
        tokens, skus = seeded["tokens"], seeded["skus"]
        rng = random.Random(7)

        def order(worker: int, seq: int) -> Req:
            return Req(
                "POST",
                "/api/v1/orders",
                headers={  # one distributor per client: concurrent orders of one distributor queue
                    "Authorization": f"Bearer {tokens[worker % len(tokens)]}",
                    "Idempotency-Key": f"b-{worker}-{seq}-{uuid.uuid4().hex[:8]}",
                },
                json={"lines": [{"sku": rng.choice(skus), "qty": 1}]},
            )

        # ABBA: app, pgbench, pgbench, app — each half the time — so the database growing and
        # the machine drifting during the run weigh on both sides alike.
        half = max(1, args.duration // 2)
        with serve(env, workers=args.workers) as base:

            def app_run() -> LoadResult:
                return drive(
                    run_load(base, order, concurrency=args.concurrency, duration=half, warmup=args.warmup)
                )

            first = app_run()
            tps_runs = [run_pgbench(db_name, seeded, args.concurrency, half) for _ in range(2)]
            second = app_run()
        app_ok = first.ok + second.ok
        app_rps = app_ok / (first.seconds + second.seconds)
        tps = sum(tps_runs) / len(tps_runs)
        procs = f"{args.workers} process{'es' if args.workers > 1 else ''}"
        print(f"app ({procs}), first half: {first.summary()}")
        print(f"app ({procs}), last half: {second.summary()}")
        print(
            f"pgbench (same SQL transaction, {args.concurrency} clients): "
            + ", ".join(f"{t:,.0f}" for t in tps_runs)
            + " tps"
        )
        drift = asyncio.run(verify(db_url))
        print(f"stock ledger after both runs: {'balanced' if drift == 0 else f'{drift} rows DRIFT'}")
        ratio = app_rps / tps if tps else 0.0
        print(
            f"order admission: app {app_rps:,.0f} orders/s vs pgbench {tps:,.0f} tps at {args.concurrency} "
            f"clients -> ratio {ratio:.2f} (target >= 0.35)"
        )
        return 0 if drift == 0 else 1
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))


if __name__ == "__main__":
    sys.exit(main())
