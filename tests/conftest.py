"""One conftest for both backends.

QUDAO_TEST_BACKEND=embedded (default): SQLite file per test (copied from a migrated
template) + in-process kv. QUDAO_TEST_BACKEND=server: a PostgreSQL database created for this
pytest process (migrated once, tables truncated per test, dropped at the end) + Redis with a
namespace per test. In server mode, or with CI=true, nothing may be skipped silently."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from hypothesis import HealthCheck, settings

from core import runtime as rt
from core.config import Config
from core.db import init_db, migrate_db
from core.kv import open_kv
from core.logging import setup_logging

settings.register_profile(
    "qudao", deadline=None, max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.load_profile("qudao")
setup_logging("WARNING", "console")

BACKEND = os.environ.get("QUDAO_TEST_BACKEND", "embedded")
PG_URL = os.environ.get("QUDAO_TEST_PG", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("QUDAO_TEST_REDIS", "redis://127.0.0.1:6379/0")
SERVER = BACKEND == "server"
STRICT = SERVER or os.environ.get("CI") == "true"


@dataclass(frozen=True)
class Backend:
    kind: str  # "embedded" | "server"
    db_url: str  # for server: the migrated session database
    kv_url: str
    template: Path | None = None  # embedded: migrated SQLite template file

    @property
    def is_pg(self) -> bool:
        return self.kind == "server"


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_with_db(PG_URL, "postgres").replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _redis_answers() -> bool:
    async def ping() -> bool:
        kv = open_kv(REDIS_URL, namespace="qudao-probe")
        try:
            return await kv.ping()
        finally:
            await kv.close()

    try:
        return asyncio.run(ping())
    except Exception:
        return False


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    if not SERVER:
        template = tmp_path_factory.mktemp("db") / "template.sqlite3"
        asyncio.run(migrate_db(f"sqlite://{template}"))
        yield Backend("embedded", f"sqlite://{template}", "memory://", template)
        return
    name = f"qudao_test_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.exit(f"QUDAO_TEST_BACKEND=server but PostgreSQL at {PG_URL} does not answer: {exc}", 3)
    if not _redis_answers():
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}"'))
        pytest.exit(f"QUDAO_TEST_BACKEND=server but Redis at {REDIS_URL} does not answer", 3)
    db_url = _with_db(PG_URL, name)
    try:
        asyncio.run(migrate_db(db_url))
        yield Backend("server", db_url, REDIS_URL)
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _truncate_pg(db_url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(db_url.replace("postgres://", "postgresql://", 1))
    try:
        rows = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE '%migration%'"
        )
        if rows:
            tables = ", ".join(f'"{r["tablename"]}"' for r in rows)
            await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def db_url(backend: Backend, tmp_path: Path) -> str:
    """A clean, migrated database for this test."""
    if backend.template is not None:
        target = tmp_path / "qudao.sqlite3"
        shutil.copyfile(backend.template, target)
        return f"sqlite://{target}"
    await _truncate_pg(backend.db_url)
    return backend.db_url


@pytest.fixture
def config(backend: Backend, db_url: str) -> Config:
    return Config().with_overrides(
        {
            "database": {"url": db_url},
            "kv": {"url": backend.kv_url, "namespace": f"qt-{uuid.uuid4().hex[:12]}"},
            "scheduler": {"enabled": False},
            "logging": {"level": "WARNING"},
            "auth": {"secret": "test-secret"},
        }
    )


@pytest.fixture
async def db(config: Config) -> AsyncIterator[None]:
    """ORM + Runtime without the web app, for use-case tests."""
    ctx = await init_db(config.database.url)
    kv = open_kv(config.kv.url, namespace=config.kv.namespace)
    rt.install(rt.Runtime(config=config, kv=kv, instance_id="test"))
    try:
        yield
    finally:
        rt.install(None)
        await kv.flush_namespace()
        await kv.close()
        await ctx.close_connections()


@pytest.fixture
async def client(config: Config, aiohttp_client):  # type: ignore[no-untyped-def]
    """A real HTTP server on 127.0.0.1 running the whole app, and a client for it."""
    from core.app import create_app
    from core.keys import KV_STORE

    app = create_app(config, scheduler=False)
    cli = await aiohttp_client(app)
    yield cli
    await app[KV_STORE].flush_namespace()


def pytest_report_header(config: pytest.Config) -> str:
    return f"qudao backend: {BACKEND}" + (f" (PostgreSQL {PG_URL}, Redis {REDIS_URL})" if SERVER else "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`server_backend` tests run in the server pass only: tortoise caches each model's SQL for
    the dialect it first met, so a PostgreSQL app in the SQLite pass's process would send SQLite
    SQL. Deselected, not skipped: `make test` always runs the server pass too."""
    if SERVER:
        return
    kept = [item for item in items if item.get_closest_marker("server_backend") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI or on the server backend a skipped test is a failure: no hidden gaps."""
    if not STRICT:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped and exitstatus == 0:
        reporter.write_line(f"FAILED: {skipped} test(s) skipped under CI/server mode", red=True)
        session.exitstatus = 1
