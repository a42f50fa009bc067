"""The migrations build exactly the schema the models declare, the same on SQLite and
PostgreSQL, and the database itself enforces the declared constraints.

PostgreSQL: `QUDAO_TEST_PG` (default postgres://postgres@127.0.0.1:5432/test; its server is
used, a scratch database is created per test and dropped after). Unreachable PostgreSQL skips
those cases, or fails them with `QUDAO_TEST_BACKEND=server`.

ORM work here uses its own connection names per backend: tortoise caches generated SQL per
connection name, so SQLite and PostgreSQL must never share one in a process.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from tortoise.context import TortoiseContext
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.models import Model

from core.db import APP_LABEL, migrate_db, tortoise_config
from core.migrations_tool import constraint_snapshot, pending_operations, schema_snapshot

PG_URL = os.environ.get("QUDAO_TEST_PG", "postgres://postgres@127.0.0.1:5432/test")
SERVER = os.environ.get("QUDAO_TEST_BACKEND") == "server"
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
MIGRATION_TABLE = "tortoise_migrations"


# --- databases ------------------------------------------------------------------------------


def _pg_url(database: str) -> str:
    return urlunsplit(urlsplit(PG_URL)._replace(path=f"/{database}"))


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_pg_url("postgres").replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def _pg_database(template: str | None = None) -> Iterator[str]:
    """A scratch PostgreSQL database (a copy of `template` if given), dropped afterwards."""
    name = f"qudao_scratch_{uuid.uuid4().hex[:10]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"{copy}'))
    except Exception as exc:
        message = f"PostgreSQL at {PG_URL} does not answer: {exc}"
        if SERVER:
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield name
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# Migrating an empty database takes seconds (tortoise rebuilds its model state per
# operation), so the constraint tests start from copies of one migrated template per backend.


@pytest.fixture(scope="module")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("schema") / "template.sqlite3"
    asyncio.run(migrate_db(f"sqlite://{path}"))
    return path


@pytest.fixture(scope="module")
def pg_template() -> Iterator[str]:
    with _pg_database() as name:
        asyncio.run(migrate_db(_pg_url(name)))
        yield name


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An empty SQLite database."""
    return f"sqlite://{tmp_path / 'schema.sqlite3'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """An empty PostgreSQL database."""
    with _pg_database() as name:
        yield _pg_url(name)


@pytest.fixture(params=["sqlite", "postgres"])
def migrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated database on each backend."""
    if request.param == "sqlite":
        target = tmp_path / "schema.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        yield f"sqlite://{target}"
        return
    with _pg_database(template=request.getfixturevalue("pg_template")) as name:
        yield _pg_url(name)


@asynccontextmanager
async def orm(url: str) -> AsyncIterator[dict[str, type[Model]]]:
    """The ORM on `url` under a connection name of its own; yields the models by name."""
    backend = "sqlite" if url.startswith("sqlite") else "pg"
    config = tortoise_config(url)
    config["connections"] = {f"schema_test_{backend}": url}
    config["apps"][APP_LABEL]["default_connection"] = f"schema_test_{backend}"
    async with TortoiseContext() as ctx:
        await ctx.init(config=config)
        yield dict(ctx.apps[APP_LABEL])


# --- expected schema, from the models -----------------------------------------------------------


def _column(model: type[Model], name: str) -> str:
    meta = model._meta
    return meta.fields_db_projection.get(name) or meta.fields_map[name].source_field or name


def _expected(model: type[Model]) -> dict[str, Any]:
    meta = model._meta
    indexes = set()
    for name, field in meta.fields_map.items():
        if name in meta.fields_db_projection and not field.pk and (field.unique or field.index):
            indexes.add((bool(field.unique), (meta.fields_db_projection[name],)))
    for group in meta.unique_together:
        indexes.add((True, tuple(_column(model, n) for n in group)))
    for index in meta.indexes:
        names = index.fields if hasattr(index, "fields") else index
        indexes.add((False, tuple(_column(model, n) for n in names)))
    fks = [
        (
            meta.fields_map[name].source_field,
            meta.fields_map[name].related_model._meta.db_table,
            str(meta.fields_map[name].on_delete),
        )
        for name in meta.fk_fields
    ]
    return {
        "columns": sorted(meta.fields_db_projection.values()),
        "indexes": sorted(indexes),
        "checks": sorted(c.name for c in meta.constraints),
        "foreign_keys": sorted(fks),
    }


async def _actual(url: str) -> dict[str, dict[str, Any]]:
    columns = await schema_snapshot(url)
    constraints = await constraint_snapshot(url)
    return {table: {"columns": columns[table], **constraints[table]} for table in columns}


# --- (a) one schema, as declared, on both backends -------------------------------------------


async def test_migrate_when_empty_builds_declared_schema_same_on_sqlite_and_postgres(
    sqlite_url: str, pg_url: str
) -> None:
    await migrate_db(sqlite_url)
    await migrate_db(pg_url)
    lite, pg = await _actual(sqlite_url), await _actual(pg_url)

    async with orm(sqlite_url) as models:
        expected = {m._meta.db_table: _expected(m) for m in models.values()}
    assert len(expected) == 36  # + notification_event (handlers.fanout)
    assert set(lite) == set(expected) | {MIGRATION_TABLE}
    for table, want in expected.items():
        assert lite[table] == want, table
    # Same tables, columns, indexes, CHECKs and FKs (with ON DELETE) on PostgreSQL.
    assert lite == pg


async def test_migrate_when_empty_creates_every_check_and_cycle_fk(migrated_url: str) -> None:
    """The two things tortoise 1.1.9's autodetector alone loses (core/migrations_tool.py)."""
    schema = await constraint_snapshot(migrated_url)
    assert schema["stock"]["checks"] == [
        "ck_stock_on_hand",
        "ck_stock_reserved",
        "ck_stock_reserved_le_on_hand",
        "ck_stock_thresholds",
    ]
    assert "ck_order_line_qty" in schema["order_line"]["checks"]
    assert (True, ("warehouse_id", "product_id")) in schema["stock"]["indexes"]
    assert ("sales_rep_id", "app_user", "SET NULL") in schema["distributor"]["foreign_keys"]
    assert ("distributor_id", "distributor", "RESTRICT") in schema["app_user"]["foreign_keys"]
    assert ("actor_id", "app_user", "SET NULL") in schema["audit_log"]["foreign_keys"]


# --- (b) migrate is idempotent ----------------------------------------------------------------


async def test_migrate_when_run_twice_changes_nothing_and_keeps_data(migrated_url: str) -> None:
    before = await _actual(migrated_url)
    async with orm(migrated_url) as models:
        await models["Product"].create(
            sku="P-1", name="矿泉水", pinyin="kuangquanshui", initials="kqs", category="饮料", unit="箱"
        )

    await migrate_db(migrated_url)

    assert await _actual(migrated_url) == before
    async with orm(migrated_url) as models:
        assert await models["Product"].filter(sku="P-1").count() == 1
        conn = models["Product"]._meta.db
        _, rows = await conn.execute_query(f'SELECT name FROM "{MIGRATION_TABLE}"')
    files = sorted(p.stem for p in MIGRATIONS_DIR.glob("[0-9]*.py"))
    assert sorted(r["name"] for r in rows) == files


# --- (c) models and migrations agree ------------------------------------------------------------


async def test_models_when_compared_with_migrations_have_no_pending_changes() -> None:
    assert await pending_operations() == []


# --- (d) the database enforces the constraints --------------------------------------------------


async def _world(m: dict[str, type[Model]]) -> dict[str, Any]:
    """Just enough rows to hang the constrained ones on."""
    distributor = await m["Distributor"].create(
        name="华东商贸", uscc="91310000MA1FL0000X", level=1, region="华东", payment_terms="monthly"
    )
    user = await m["User"].create(display_name="小王", role="sales")
    warehouse = await m["Warehouse"].create(code="WH1", name="上海仓", region="华东")
    product = await m["Product"].create(
        sku="SKU-1", name="矿泉水", pinyin="kuangquanshui", initials="kqs", category="饮料", unit="箱"
    )
    order = await m["Order"].create(
        number="SO202611230001", distributor=distributor, placed_by=user, total_amount=Decimal("10.00")
    )
    return {"d": distributor, "u": user, "w": warehouse, "p": product, "o": order}


async def test_stock_when_negative_or_overreserved_raises_integrity_error(migrated_url: str) -> None:
    async with orm(migrated_url) as m:
        w = await _world(m)
        Stock = m["Stock"]
        with pytest.raises(IntegrityError):
            await Stock.create(warehouse=w["w"], product=w["p"], on_hand=-1, reserved=0)
        with pytest.raises(IntegrityError):
            await Stock.create(warehouse=w["w"], product=w["p"], on_hand=5, reserved=-1)
        with pytest.raises(IntegrityError):
            await Stock.create(warehouse=w["w"], product=w["p"], on_hand=1, reserved=2)

        stock = await Stock.create(warehouse=w["w"], product=w["p"], on_hand=5, reserved=2)
        with pytest.raises(IntegrityError):  # a handler that forgot its guard still can't oversell
            await Stock.filter(id=stock.id).update(reserved=F("reserved") + 4)
        with pytest.raises(IntegrityError):
            await Stock.filter(id=stock.id).update(on_hand=F("on_hand") - 4)
        assert await Stock.filter(id=stock.id).values_list("on_hand", "reserved") == [(5, 2)]
        with pytest.raises(IntegrityError):  # one row per (warehouse, product)
            await Stock.create(warehouse=w["w"], product=w["p"], on_hand=1, reserved=0)


async def test_order_line_when_qty_not_positive_raises_integrity_error(migrated_url: str) -> None:
    async with orm(migrated_url) as m:
        w = await _world(m)
        line = {"order": w["o"], "product": w["p"], "sku": "SKU-1", "name": "矿泉水", "warehouse": w["w"]}
        money = {"unit_price": Decimal("5.00"), "amount": Decimal("10.00")}
        for qty in (0, -2):
            with pytest.raises(IntegrityError):
                await m["OrderLine"].create(**line, **money, qty=qty)
        ok = await m["OrderLine"].create(**line, **money, qty=2)
        assert (ok.shipped_qty, ok.returned_qty, ok.free_qty) == (0, 0, 0)  # db defaults read back
        with pytest.raises(IntegrityError):  # can't ship more than ordered + free
            await m["OrderLine"].filter(id=ok.id).update(shipped_qty=3)
        with pytest.raises(IntegrityError):  # can't return more than shipped
            await m["OrderLine"].filter(id=ok.id).update(returned_qty=1)


async def test_money_and_level_checks_when_violated_raise_integrity_error(migrated_url: str) -> None:
    """Decimal columns are VARCHAR on SQLite: the CHECKs cast, so they bite there too."""
    async with orm(migrated_url) as m:
        w = await _world(m)
        paid = {"distributor": w["d"], "paid_at": datetime.now(UTC)}
        with pytest.raises(IntegrityError):
            await m["Payment"].create(**paid, amount=Decimal("-5.00"), ref="T-1")
        await m["Payment"].create(**paid, amount=Decimal("5.00"), ref="T-1")
        with pytest.raises(IntegrityError):  # ref unique per distributor
            await m["Payment"].create(**paid, amount=Decimal("7.00"), ref="T-1")
        with pytest.raises(IntegrityError):
            await m["Distributor"].create(
                name="X", uscc="91310000MA1FL0001X", level=3, region="华东", payment_terms="prepay"
            )
        with pytest.raises(IntegrityError):
            await m["PriceList"].create(name="过期", valid_from=date(2026, 1, 2), valid_to=date(2026, 1, 1))


async def test_unique_keys_when_duplicated_raise_integrity_error(migrated_url: str) -> None:
    async with orm(migrated_url) as m:
        w = await _world(m)
        with pytest.raises(IntegrityError):
            await m["Product"].create(
                sku="SKU-1", name="重复", pinyin="chongfu", initials="cf", category="饮料", unit="箱"
            )
        with pytest.raises(IntegrityError):
            await m["Distributor"].create(
                name="同码", uscc="91310000MA1FL0000X", level=1, region="华北", payment_terms="prepay"
            )
        note = {
            "recipient": w["u"],
            "channel": "inbox",
            "kind": "low_stock",
            "title": "库存不足",
            "body": "SKU-1",
            "dedupe_key": "low_stock:SKU-1:2026-11-23:u1",
            "next_attempt_at": datetime.now(UTC),
        }
        await m["Notification"].create(**note)
        with pytest.raises(IntegrityError):
            await m["Notification"].create(**note)
        key = {
            "user": w["u"],
            "key": "k-1",
            "request_hash": "h",
            "expires_at": datetime.now(UTC) + timedelta(days=1),
        }
        await m["IdempotencyRecord"].create(**key)
        with pytest.raises(IntegrityError):
            await m["IdempotencyRecord"].create(**key)
        statement = {
            "kind": "commission",
            "beneficiary": w["u"],
            "period": "2026-11",
            "total": Decimal("0.00"),
        }
        await m["Statement"].create(**statement, subject_key=f"user:{w['u'].id}")
        with pytest.raises(IntegrityError):
            await m["Statement"].create(**statement, subject_key=f"user:{w['u'].id}")
        with pytest.raises(IntegrityError):  # a statement needs a subject
            await m["Statement"].create(
                kind="receivables", period="2026-11", total=Decimal("0.00"), subject_key="nobody"
            )


async def test_foreign_keys_when_dangling_or_referenced_raise_integrity_error(migrated_url: str) -> None:
    async with orm(migrated_url) as m:
        w = await _world(m)
        with pytest.raises(IntegrityError):  # the cycle-closing FK exists on both backends
            await m["Distributor"].filter(id=w["d"].id).update(sales_rep_id=999_999)
        await m["Stock"].create(warehouse=w["w"], product=w["p"], on_hand=1, reserved=0)
        with pytest.raises(IntegrityError):  # RESTRICT: stock keeps its product
            await w["p"].delete()
