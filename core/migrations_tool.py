"""Migration tooling: generate tortoise's built-in migrations and snapshot a live schema.

`make migrations` runs :func:`make_migrations`. It drives tortoise's own
``MigrationAutodetector`` (what ``tortoise makemigrations`` does) and then rearranges the
operations, because in tortoise 1.1.9 the detector's output for new models silently loses
schema on both SQLite and PostgreSQL:

1. ``CreateModel`` never emits ``Meta.constraints``: CHECK constraints live only in the
   migration state, never in the database. Each ``CheckConstraint`` becomes an
   ``AddConstraint`` right after its ``CreateModel`` (PostgreSQL: ``ALTER TABLE ... ADD
   CONSTRAINT``; SQLite: the table is rebuilt with the CHECKs). That SQLite rebuild drops the
   table's indexes and table-level UNIQUEs, so such a model's ``unique_together`` and
   ``Meta.indexes`` move into ``AddConstraint``/``AddIndex`` operations after the CHECKs, and
   field-level ``db_index=True`` is refused on it (declare it in ``Meta.indexes``).
2. When FKs form a cycle (``User.distributor`` <-> ``Distributor.sales_rep``) the detector
   puts the cycle and every model depending on it in name order, and a model created before a
   table its FK points at loses *all* its FK columns. Here ``CreateModel`` operations are
   ordered by their FKs, and the FK that closes a cycle is added afterwards with ``AddField``
   (it must be nullable).
3. Field descriptions and model docstrings become SQL comments, and SQLite's schema editor
   splits DDL on every ``;``: a ``;`` in them is refused here.

So always generate with ``make migrations``, never with ``tortoise makemigrations``.
Only built-in operations are used, so the files stay database-neutral: the same migrations run
on SQLite and PostgreSQL. Operations that make SQLite rebuild an existing table
(RemoveField, AlterField, Add/RemoveConstraint with a CHECK) are reported: the rebuild drops
that table's indexes, which ``tests/test_models_schema.py`` would then flag.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tortoise.backends.base.config_generator import expand_db_url
from tortoise.context import TortoiseContext
from tortoise.fields.relational import ForeignKeyFieldInstance
from tortoise.indexes import Index
from tortoise.migrations.autodetector import MigrationAutodetector
from tortoise.migrations.constraints import CheckConstraint, UniqueConstraint
from tortoise.migrations.operations import (
    AddConstraint,
    AddField,
    AddIndex,
    AlterField,
    CreateModel,
    Operation,
    RemoveConstraint,
    RemoveField,
)
from tortoise.migrations.writer import MigrationWriter

from core.db import tortoise_config

# The autodetector only needs the models, not a real database.
_DETECT_URL = "sqlite://:memory:"
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


# --- generating ---------------------------------------------------------------------------------


async def make_migrations(name: str | None = None, *, fresh: bool = False) -> list[Path]:
    """Write a migration for model changes into ``migrations/``; return the files written.

    ``fresh=True`` first deletes every migration file and so writes one initial migration
    from all models: what we do until the first release (no database to upgrade yet)."""
    if fresh:
        for old in MIGRATIONS_DIR.glob("[0-9]*.py"):
            old.unlink()
    writers = await _detect()
    paths = []
    for writer in writers:
        if name:
            writer.name = f"{writer.name.split('_', 1)[0]}_{name}"
        for warning in sqlite_rebuild_warnings(writer.operations):
            print(f"warning: {warning}")
        paths.append(writer.write())
        print(f"created {paths[-1]}")
    if not paths:
        print("no changes detected")
    return paths


async def pending_operations() -> list[str]:
    """Descriptions of the operations a new migration would hold; empty = models match."""
    return [op.describe() for writer in await _detect() for op in writer.operations]


async def _detect() -> list[MigrationWriter]:
    config = tortoise_config(_DETECT_URL)
    async with TortoiseContext() as ctx:
        await ctx.init(config=config)
        writers = await MigrationAutodetector(ctx.apps, config["apps"]).changes()
    for writer in writers:
        _refuse_semicolons(writer.operations)
        writer.operations = arrange_operations(writer.operations)
    return writers


def _refuse_semicolons(operations: Iterable[Operation]) -> None:
    """Descriptions become SQL comments, and SQLite's schema editor splits DDL on every ';'."""
    texts: list[tuple[str, str | None]] = []
    for op in operations:
        if isinstance(op, CreateModel):
            texts.append((op.name, (op.options or {}).get("table_description")))
            texts += [(f"{op.name}.{name}", field.description) for name, field in op.fields]
        elif isinstance(op, (AddField, AlterField)):
            texts.append((f"{op.model_name}.{op.name}", op.field.description))
    bad = [where for where, text in texts if text and ";" in text]
    if bad:
        raise ValueError(f"';' in a description or model docstring breaks SQLite DDL: {bad}")


def arrange_operations(operations: Iterable[Operation]) -> list[Operation]:
    """Reorder/split the detector's CreateModel operations so nothing is lost (module doc)."""
    operations = list(operations)
    creates = {op.name: op for op in operations if isinstance(op, CreateModel)}
    if not creates:
        return operations
    first = next(i for i, op in enumerate(operations) if isinstance(op, CreateModel))
    before = [op for op in operations[:first] if not isinstance(op, CreateModel)]
    after = [op for op in operations[first:] if not isinstance(op, CreateModel)]

    block: list[Operation] = []
    deferred: list[Operation] = []
    created: set[str] = set()
    pending = dict(creates)

    def unmet(model: str) -> set[str]:
        targets = {_fk_target(f) for _, f in pending[model].fields}
        return {t for t in targets if t in creates and t not in created and t != model}

    def in_cycle(model: str) -> bool:
        seen: set[str] = set()
        stack = list(unmet(model))
        while stack:
            node = stack.pop()
            if node == model:
                return True
            if node not in seen:
                seen.add(node)
                stack.extend(unmet(node))
        return False

    while pending:
        ready = sorted(m for m in pending if not unmet(m))
        if ready:
            model = ready[0]
        else:  # stuck on a cycle: create its model with the fewest forward FKs, add those later
            cyclic = [m for m in pending if in_cycle(m)]
            model = min(cyclic, key=lambda m: (len(unmet(m)), m))
        now, later = _split_create(pending[model], defer_to=unmet(model))
        block += now
        deferred += later
        created.add(model)
        del pending[model]
    # Deferred FKs first, then the index/unique operations that mention them.
    deferred.sort(key=lambda op: not isinstance(op, AddField))
    return before + block + deferred + after


def _fk_target(field: Any) -> str | None:
    if not isinstance(field, ForeignKeyFieldInstance):
        return None
    ref = field.model_name
    return ref.split(".", 1)[1] if isinstance(ref, str) else ref.__name__


def _split_create(op: CreateModel, defer_to: set[str]) -> tuple[list[Operation], list[Operation]]:
    """CreateModel without FKs to `defer_to` models (+ CHECKs as AddConstraint); the rest later."""
    fields: list[tuple[str, Any]] = []
    later: list[Operation] = []
    deferred_names: set[str] = set()
    for name, field in op.fields:
        if _fk_target(field) in defer_to:
            if not field.null or field.unique or field.index:
                raise ValueError(
                    f"{op.name}.{name} closes an FK cycle, so it is added after the table is "
                    "created: it must be nullable, not unique and not db_index (use Meta.indexes)"
                )
            later.append(AddField(model_name=op.name, name=name, field=field))
            deferred_names |= {name, field.source_field}
        else:
            fields.append((name, field))

    options = dict(op.options or {})
    checks = [c for c in options.get("constraints", ()) if isinstance(c, CheckConstraint)]
    post: list[tuple[Operation, set[str]]] = []
    if checks:
        # The rebuild keeps column UNIQUEs but not field-level indexes or unique FKs.
        indexed = [n for n, f in fields if not f.pk and (f.index or (f.unique and _fk_target(f)))]
        if indexed:
            raise ValueError(
                f"{op.name} has CHECK constraints, so SQLite rebuilds its table after creating it "
                f"and would drop the index on {indexed}: declare it in Meta.indexes instead"
            )
        others = [c for c in options.pop("constraints") if not isinstance(c, CheckConstraint)]
        if others:
            options["constraints"] = others
        for unique in options.pop("unique_together", ()):
            post.append((AddConstraint(op.name, UniqueConstraint(fields=tuple(unique))), set(unique)))
        for index in options.pop("indexes", ()):
            index = index if isinstance(index, Index) else Index(fields=tuple(index))
            post.append((AddIndex(op.name, index), set(index.fields)))

    now: list[Operation] = [
        CreateModel(name=op.name, fields=fields, options=options, bases=op.bases),
        *(AddConstraint(op.name, check) for check in checks),
    ]
    for post_op, names in post:
        (later if names & deferred_names else now).append(post_op)
    return now, later


def sqlite_rebuild_warnings(operations: Iterable[Operation]) -> list[str]:
    """Operations after which SQLite rebuilds an existing table and loses its indexes."""
    created = {op.name for op in operations if isinstance(op, CreateModel)}
    warnings = []
    for op in operations:
        model = getattr(op, "model_name", None)
        if model in created:
            continue
        rebuilds = isinstance(op, (RemoveField, AlterField)) or (
            isinstance(op, AddConstraint) and isinstance(op.constraint, CheckConstraint)
        )
        if isinstance(op, RemoveConstraint) and op.name and not op.fields:
            rebuilds = True  # named constraint: a CHECK (or a named UNIQUE, which is an index)
        if rebuilds:
            warnings.append(
                f"{op.describe()}: on SQLite this may rebuild table of {model} and drop its "
                "indexes/unique_together; re-create them in this migration"
            )
    return warnings


# --- introspecting ------------------------------------------------------------------------------


async def schema_snapshot(url: str) -> dict[str, list[str]]:
    """{table: sorted column names} of the live database at `url` (SQLite or PostgreSQL)."""
    return {table: sorted(info["columns"]) for table, info in (await _introspect(url)).items()}


async def constraint_snapshot(url: str) -> dict[str, dict[str, list[Any]]]:
    """{table: {"indexes": [(unique, columns)], "checks": [name], "foreign_keys": [(column,
    referenced table, ON DELETE)]}}, each list sorted. Indexes exclude the primary key and
    include UNIQUE constraints (which both databases back with an index)."""
    return {
        table: {key: sorted(info[key]) for key in ("indexes", "checks", "foreign_keys")}
        for table, info in (await _introspect(url)).items()
    }


async def _introspect(url: str) -> dict[str, dict[str, Any]]:
    db = expand_db_url(url)
    creds = db["credentials"]
    if "sqlite" in db["engine"]:
        return await _introspect_sqlite(creds["file_path"])
    if "asyncpg" in db["engine"] or "psycopg" in db["engine"]:
        return await _introspect_postgres(creds)
    raise ValueError(f"unsupported database: {db['engine']}")


def _empty() -> dict[str, list[Any]]:
    return {"columns": [], "indexes": [], "checks": [], "foreign_keys": []}


async def _introspect_sqlite(path: str) -> dict[str, dict[str, Any]]:
    import aiosqlite

    result: dict[str, dict[str, Any]] = {}
    async with aiosqlite.connect(path) as conn:
        rows = await conn.execute_fetchall(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        for table, sql in rows:
            info = result[table] = _empty()
            info["columns"] = [r[1] for r in await conn.execute_fetchall(f'PRAGMA table_info("{table}")')]
            for _, index, unique, origin, _ in await conn.execute_fetchall(f'PRAGMA index_list("{table}")'):
                if origin != "pk":
                    cols = await conn.execute_fetchall(f'PRAGMA index_info("{index}")')
                    info["indexes"].append((bool(unique), tuple(r[2] for r in cols)))
            info["checks"] = re.findall(r'CONSTRAINT "([^"]+)" CHECK', sql or "")
            for fk in await conn.execute_fetchall(f'PRAGMA foreign_key_list("{table}")'):
                info["foreign_keys"].append((fk[3], fk[2], fk[6]))
    return result


_PG_COLUMNS = """
SELECT table_name, column_name FROM information_schema.columns
WHERE table_schema = current_schema()
"""
_PG_INDEXES = """
SELECT t.relname AS table_name, ix.indisunique AS is_unique,
       array_agg(a.attname ORDER BY k.ord) AS columns
FROM pg_index ix
JOIN pg_class t ON t.oid = ix.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
CROSS JOIN LATERAL unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
WHERE n.nspname = current_schema() AND NOT ix.indisprimary
GROUP BY t.relname, ix.indexrelid, ix.indisunique
"""
_PG_CONSTRAINTS = """
SELECT t.relname AS table_name, c.conname, c.contype::text AS contype, r.relname AS ref_table,
       c.confdeltype::text AS confdeltype, a.attname AS column_name
FROM pg_constraint c
JOIN pg_class t ON t.oid = c.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
LEFT JOIN pg_class r ON r.oid = c.confrelid
LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = c.conkey[1]
WHERE n.nspname = current_schema() AND c.contype IN ('c', 'f')
"""
_PG_ON_DELETE = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


async def _introspect_postgres(creds: dict[str, Any]) -> dict[str, dict[str, Any]]:
    import asyncpg

    conn = await asyncpg.connect(
        host=creds.get("host"),
        port=creds.get("port"),
        user=creds.get("user"),
        password=creds.get("password"),
        database=creds.get("database"),
    )
    try:
        result: dict[str, dict[str, Any]] = {}
        for row in await conn.fetch(_PG_COLUMNS):
            result.setdefault(row["table_name"], _empty())["columns"].append(row["column_name"])
        for row in await conn.fetch(_PG_INDEXES):
            info = result.setdefault(row["table_name"], _empty())
            info["indexes"].append((row["is_unique"], tuple(row["columns"])))
        for row in await conn.fetch(_PG_CONSTRAINTS):
            info = result.setdefault(row["table_name"], _empty())
            if row["contype"] == "c":
                info["checks"].append(row["conname"])
            else:
                on_delete = _PG_ON_DELETE[row["confdeltype"]]
                info["foreign_keys"].append((row["column_name"], row["ref_table"], on_delete))
        return result
    finally:
        await conn.close()
