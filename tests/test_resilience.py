"""Outages of the database and the kv store (resilience issue, items 1, 3-6, 8).

Outages are made without touching the shared PostgreSQL / Redis: a URL at a port nobody
listens on, or a FaultProxy in front of the real server that the test freezes or drops.
PostgreSQL / Redis tests run when those answer (under the server backend or CI they must)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import structlog
from tortoise import connections

from core import runtime as rt
from core.app import create_app
from core.config import Config
from core.db import init_db, migrate_db
from core.errors import DatabaseUnusable
from core.keys import KV_STORE
from core.kv import KVUnavailable, open_kv
from tests.conftest import PG_URL, REDIS_URL, STRICT, _pg_admin, _with_db
from tests.factories import auth, token_for
from tests.factories_orders import new_key, shop
from tests.faultproxy import FaultProxy, free_port

API = "/api/v1"


def _unreachable(what: str) -> None:
    if STRICT:
        pytest.fail(f"{what} does not answer")
    pytest.skip(f"{what} does not answer")  # counted as a failure under CI (conftest)


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


@pytest.fixture(scope="module")
def pg_db_url() -> Any:
    """A migrated scratch PostgreSQL database for this module (dropped at the end)."""
    name = f"qudao_res_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception:
        _unreachable(f"PostgreSQL at {PG_URL}")
    url = _with_db(PG_URL, name)
    try:
        asyncio.run(migrate_db(url))
        yield url
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def pg_proxy(pg_db_url: str) -> AsyncIterator[FaultProxy]:
    target = urlsplit(pg_db_url)
    proxy = await FaultProxy(target.hostname or "127.0.0.1", target.port or 5432).start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def redis_proxy() -> AsyncIterator[FaultProxy]:
    kv = open_kv(REDIS_URL, namespace="qudao-probe")
    answers = await kv.ping()
    await kv.close()
    if not answers:
        _unreachable(f"Redis at {REDIS_URL}")
    target = urlsplit(REDIS_URL)
    proxy = await FaultProxy(target.hostname or "127.0.0.1", target.port or 6379).start()
    yield proxy
    await proxy.close()


async def _timed(coro: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = await coro
    return result, time.monotonic() - started


# --- 1. SQLite: a failed open must not hang the server for good -----------------------------


async def test_sqlite_failed_open_releases_its_lock(tmp_path: Path) -> None:
    """tortoise kept its connection lock when the open failed: every later query hung."""
    path = tmp_path / "db.sqlite3"
    path.mkdir()  # unopenable: the path is a directory
    ctx = await init_db(f"sqlite://{path}")
    try:
        conn = connections.get("default")
        with pytest.raises(Exception, match="unable to open"):
            await conn.execute_query("SELECT 1")
        path.rmdir()  # the cause is gone: the next query must simply work
        async with asyncio.timeout(5):
            _, rows = await conn.execute_query("SELECT 1 AS one")
        assert rows[0]["one"] == 1
        path.unlink()
        path.mkdir()
        # the same inside a transaction (its own lock path)
        await conn.close()
        from tortoise.transactions import in_transaction

        with pytest.raises(Exception, match="unable to open"):
            async with in_transaction():
                pass
        path.rmdir()
        async with asyncio.timeout(5):
            async with in_transaction() as tx:
                await tx.execute_query("SELECT 1")
    finally:
        await ctx.close_connections()


async def _refuses_to_start(config: Config) -> str:
    from aiohttp import web

    runner = web.AppRunner(create_app(config, scheduler=False))
    try:
        with pytest.raises(DatabaseUnusable) as info:
            await runner.setup()
    finally:
        await runner.cleanup()
    return str(info.value)


async def test_app_refuses_to_start_on_an_unusable_database(config: Config, tmp_path: Path) -> None:
    path = tmp_path / "not-a-file.sqlite3"
    path.mkdir()
    assert "unable to open" in await _refuses_to_start(
        config.with_overrides({"database": {"url": f"sqlite://{path}"}})
    )
    dead = config.with_overrides({"database": {"url": f"postgres://nobody@127.0.0.1:{free_port()}/none"}})
    assert "Connect call failed" in await _refuses_to_start(dead)


def test_serve_exits_2_with_one_line_when_the_database_cannot_open(tmp_path: Path) -> None:
    path = tmp_path / "dir.sqlite3"
    path.mkdir()
    cfg_file = tmp_path / "config.toml"
    cfg_file.write_text("")
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "QUDAO_CONFIG": str(cfg_file),
        "QUDAO_DATABASE__URL": f"sqlite://{path}",
        "QUDAO_SERVER__PORT": str(free_port()),
        "QUDAO_SCHEDULER__ENABLED": "false",
        "QUDAO_LOGGING__LEVEL": "ERROR",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "core", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert proc.stderr.startswith("qudao: database unusable:") and "unable to open" in proc.stderr


# --- 8. /readyz checks that SQLite can write ---------------------------------------------------


@pytest.fixture
async def sqlite_client(config: Config, tmp_path: Path, aiohttp_client):  # type: ignore[no-untyped-def]
    """The app on a fresh SQLite file (readiness needs no tables), whatever the backend."""
    cfg = config.with_overrides({"database": {"url": f"sqlite://{tmp_path / 'ready.sqlite3'}"}})
    return await aiohttp_client(create_app(cfg, scheduler=False))


async def test_readyz_fails_when_sqlite_cannot_write(sqlite_client) -> None:  # type: ignore[no-untyped-def]
    client = sqlite_client
    assert (await client.get("/readyz")).status == 200
    conn = connections.get("default")
    _, rows = await conn.execute_query("PRAGMA page_count")
    # The file may not grow any more: what a full disk does to the next write that needs a page.
    await conn.execute_query(f"PRAGMA max_page_count = {rows[0][0]}")
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 503 and "full" in body["checks"]["db"], body
    await conn.execute_query("PRAGMA max_page_count = 1073741823")
    await conn.execute_query("PRAGMA query_only = ON")  # a read-only database
    body = await (await client.get("/readyz")).json()
    assert body["checks"]["db"].startswith("error") and "readonly" in body["checks"]["db"], body
    await conn.execute_query("PRAGMA query_only = OFF")
    assert (await client.get("/readyz")).status == 200


async def test_readyz_fails_when_the_disk_is_nearly_full(sqlite_client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    client = sqlite_client
    real = os.statvfs

    class Full:
        def __init__(self, st: os.statvfs_result) -> None:
            self.f_flag, self.f_frsize, self.f_bavail = st.f_flag, st.f_frsize, 10

    monkeypatch.setattr(os, "statvfs", lambda p: Full(real(p)))
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 503 and "MB free" in body["checks"]["db"], body


# --- 4 / 6. PostgreSQL down or frozen: bounded, 503 `unavailable`, logged once ----------------


async def _pg_app(aiohttp_client, config: Config, proxy: FaultProxy, db_url: str, **database: Any):  # type: ignore[no-untyped-def]
    cfg = config.with_overrides({"database": {"url": _via(db_url, proxy.port), **database}})
    cli = await aiohttp_client(create_app(cfg, scheduler=False))
    s = await shop()
    return cli, s, auth(await token_for(s["user"]))


@pytest.mark.server_backend
async def test_postgres_down_is_503_unavailable_logged_once(  # type: ignore[no-untyped-def]
    config, pg_proxy, pg_db_url, aiohttp_client
) -> None:
    cli, _, h = await _pg_app(aiohttp_client, config, pg_proxy, pg_db_url)
    assert (await cli.get(f"{API}/stock", headers=h)).status == 200
    await pg_proxy.down()
    with structlog.testing.capture_logs() as logs:
        answers = await asyncio.gather(*(cli.get(f"{API}/stock", headers=h) for _ in range(20)))
        for resp in answers:
            body = await resp.json()
            assert resp.status == 503 and body["error"]["code"] == "unavailable", body
            assert int(resp.headers["Retry-After"]) >= 1
        ready = await cli.get("/readyz")
        assert ready.status == 503
        await pg_proxy.up()
        await asyncio.sleep(1.1)  # the re-check runs at most once a second
        assert (await cli.get(f"{API}/stock", headers=h)).status == 200
    events = [e["event"] for e in logs]
    assert events.count("outage_started") == 1, events
    assert events.count("outage_ended") == 1, events
    assert "unhandled_error" not in events


@pytest.mark.server_backend
async def test_frozen_postgres_answers_503_within_the_bounds(  # type: ignore[no-untyped-def]
    config, pg_proxy, pg_db_url, aiohttp_client
) -> None:
    cli, _, h = await _pg_app(
        aiohttp_client, config, pg_proxy, pg_db_url, statement_timeout_s=1.0, probe_timeout_s=1.0
    )
    assert (await cli.get(f"{API}/stock", headers=h)).status == 200
    pg_proxy.freeze()  # what SIGSTOP does: connections stay open, nothing answers
    try:
        ready, took = await _timed(cli.get("/readyz"))
        assert ready.status == 503 and took < 4, took
        resp, took = await _timed(cli.get(f"{API}/stock", headers=h))
        assert resp.status == 503 and took < 6, (resp.status, took)
        assert (await resp.json())["error"]["code"] == "unavailable"
    finally:
        pg_proxy.thaw()


def test_database_timeouts_reach_asyncpg() -> None:
    from core.config import DatabaseConfig
    from core.db import tortoise_config

    url = "postgres://u:p@127.0.0.1:5432/db?maxsize=7"
    cfg = DatabaseConfig(url=url, statement_timeout_s=2.5, connect_timeout_s=3.0)
    creds = tortoise_config(url, cfg)["connections"]["default"]["credentials"]
    assert creds["timeout"] == 3.0 and creds["command_timeout"] == 3.5
    assert creds["server_settings"]["statement_timeout"] == "2500"
    assert int(creds["maxsize"]) == 7


# --- 4 / 5. Redis down: reads fall back to the database, limits fail open (bounded) -----------


async def test_redis_down_logins_stock_and_orders_still_work(config, redis_proxy, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    cfg = config.with_overrides({"kv": {"url": _via(REDIS_URL, redis_proxy.port)}})
    cli = await aiohttp_client(create_app(cfg, scheduler=False))
    s = await shop()
    from handlers.passwords import hash_password

    s["user"].password_hash = hash_password("secret-pass-1")
    await s["user"].save()
    h = auth(await token_for(s["user"]))
    line = {"lines": [{"sku": s["product"].sku, "qty": 1}]}
    assert (await cli.get(f"{API}/stock", headers=h)).status == 200  # the cache has the Actor
    await redis_proxy.down()
    with structlog.testing.capture_logs() as logs:
        login = await cli.post(
            f"{API}/auth/password-login", json={"username": s["user"].username, "password": "secret-pass-1"}
        )
        assert login.status == 200, await login.text()
        h2 = auth((await login.json())["token"])
        assert (await cli.get(f"{API}/stock", headers=h2)).status == 200
        key = new_key()
        first = await cli.post(f"{API}/orders", json=line, headers={**h, "Idempotency-Key": key})
        assert first.status == 201, await first.text()
        again = await cli.post(f"{API}/orders", json=line, headers={**h, "Idempotency-Key": key})
        assert again.status == 201 and (await again.json())["id"] == (await first.json())["id"]
        ready = await cli.get("/readyz")
        assert ready.status == 503 and (await ready.json())["checks"]["kv"].startswith("error")
    events = [e["event"] for e in logs]
    assert events.count("outage_started") == 1, events
    assert "unhandled_error" not in events
    await redis_proxy.up()
    await asyncio.sleep(1.1)
    assert (await cli.get("/readyz")).status == 200


async def test_redis_down_where_it_is_needed_is_503_unavailable(config, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    """Bind tickets live only in the kv store: without it, 503 with Retry-After, not a 500."""
    cfg = config.with_overrides({"kv": {"url": f"redis://127.0.0.1:{free_port()}/0"}})
    cli = await aiohttp_client(create_app(cfg, scheduler=False))
    resp = await cli.post(f"{API}/auth/bind", json={"bind_ticket": "t" * 20, "invite_code": "x" * 8})
    body = await resp.json()
    assert resp.status == 503 and body["error"]["code"] == "unavailable", body
    assert "Retry-After" in resp.headers


async def test_rate_limit_fails_open_only_for_a_bounded_time() -> None:
    kv = open_kv(f"redis://127.0.0.1:{free_port()}/0", namespace="t", rate_fail_open_s=60)
    try:
        for _ in range(5):  # a limit of 1, yet all pass: the store is down, we fail open
            assert (await kv.rate_limit("k", 1, 60)).allowed
        kv.rate_fail_open_s = 0  # the outage has lasted longer than the bound
        kv.outage.since = time.monotonic() - 1
        with pytest.raises(KVUnavailable):
            await kv.rate_limit("k", 1, 60)
    finally:
        await kv.close()


async def test_frozen_redis_costs_a_bounded_wait(redis_proxy) -> None:  # type: ignore[no-untyped-def]
    kv = open_kv(_via(REDIS_URL, redis_proxy.port), namespace=f"t-{uuid.uuid4().hex}")
    try:
        await kv.set("a", "1")
        redis_proxy.freeze()
        with pytest.raises(KVUnavailable):
            async with asyncio.timeout(10):
                await kv.get("a")
        _, took = await _timed(asyncio.gather(*(kv.rate_limit("r", 1, 60) for _ in range(10))))
        assert took < 0.5  # failing fast while down, not one socket timeout each
    finally:
        redis_proxy.thaw()
        await kv.close()


# --- 3. a kv error after the commit must not turn a committed order into a 500 ----------------


class _HintFails:
    """The app's kv store, except that writing the idempotency hint fails."""

    def __init__(self, kv: Any) -> None:
        self._kv = kv

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kv, name)

    async def set(self, key: str, *a: Any, **kw: Any) -> bool:
        if key.startswith("idem:done:"):
            import redis.exceptions

            raise redis.exceptions.ResponseError("OOM command not allowed")  # not an outage
        return await self._kv.set(key, *a, **kw)


async def test_order_answers_201_when_the_hint_cannot_be_written(client) -> None:  # type: ignore[no-untyped-def]
    s = await shop()
    h = {**auth(await token_for(s["user"])), "Idempotency-Key": new_key()}
    rt.runtime().kv = _HintFails(client.app[KV_STORE])  # type: ignore[assignment]
    line = {"lines": [{"sku": s["product"].sku, "qty": 2}]}
    first = await client.post(f"{API}/orders", json=line, headers=h)
    assert first.status == 201, await first.text()
    again = await client.post(f"{API}/orders", json=line, headers=h)  # the database decides
    assert again.status == 201 and await again.json() == await first.json()


# --- 5. chat with Redis down: stateless intents work; conversation state says it is away ------


async def test_chat_with_redis_down_answers_and_says_what_is_unavailable(  # type: ignore[no-untyped-def]
    config, redis_proxy, aiohttp_client, monkeypatch
) -> None:
    from tests import factories
    from tests.factories import make_world
    from tests.test_bot_intents import catalogue
    from tests.test_bot_support import Chat, bot_overrides, cached_hash

    monkeypatch.setattr(factories, "hash_password", cached_hash)

    cfg = config.with_overrides({**bot_overrides(), "kv": {"url": _via(REDIS_URL, redis_proxy.port)}})
    cli = await aiohttp_client(create_app(cfg, scheduler=False))
    world = await make_world()
    await catalogue(world)
    chat = Chat(cli)
    await chat.bind("o_rep", world.east.rep)
    await redis_proxy.down()
    with structlog.testing.capture_logs() as logs:
        assert "可用库存 40吨" in await chat.say("o_rep", "查库存 盘螺Φ8")  # needs no state
        listing = await chat.say("o_rep", "盘螺还有货吗")  # a numbered pick needs state
        assert "缓存服务暂时不可用" in listing and "查库存" in listing, listing
        req = chat.sim.text("o_rep", "查库存 海螺水泥")
        first = await chat.send(req)
        assert first is not None and "海螺水泥" in first
        assert await chat.send(req) == first  # a redelivery is answered from the (local) dedupe
    events = [e["event"] for e in logs]
    assert "bot_intent_failed" not in events and "bot_dispatch_failed" not in events, events


def test_which_errors_are_outages() -> None:
    """503 for a dependency that is down or too slow; a bug (or a platform) stays what it is."""
    import sqlite3

    import aiohttp
    import asyncpg
    from tortoise.exceptions import IntegrityError, OperationalError

    from core.outage import is_db_outage

    def wrapped(inner: BaseException) -> BaseException:
        outer = OperationalError(inner)
        outer.__cause__ = inner
        return outer

    # found by `make faults`: a connection whose server restarted mid-operation
    assert is_db_outage(
        asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress")
    )
    assert is_db_outage(ConnectionRefusedError(111, "Connect call failed"))
    assert is_db_outage(asyncpg.QueryCanceledError("canceling statement due to statement timeout"))
    assert is_db_outage(TimeoutError())
    assert is_db_outage(wrapped(sqlite3.OperationalError("database or disk is full")))
    assert is_db_outage(wrapped(sqlite3.OperationalError("attempt to write a readonly database")))
    assert not is_db_outage(wrapped(sqlite3.OperationalError("no such table: x")))
    assert not is_db_outage(IntegrityError("duplicate key"))
    assert not is_db_outage(ValueError("bug"))
    assert not is_db_outage(aiohttp.ServerDisconnectedError())  # a platform, not the database


# --- the PostgreSQL pool: first come first served, bounded wait, no leaked slot ------------


def test_pool_size_and_acquire_timeout_reach_the_client() -> None:
    from core.config import DatabaseConfig
    from core.db import tortoise_config

    url = "postgres://u:p@127.0.0.1:5432/db"
    conn = tortoise_config(url, DatabaseConfig(url=url))["connections"]["default"]
    creds = conn["credentials"]
    assert conn["engine"] == "core.pg_client"
    assert (creds["minsize"], creds["maxsize"], creds["pool_acquire_timeout"]) == (2, 10, 3.0)
    cfg = DatabaseConfig(url=url, pool_min=1, pool_max=4, pool_acquire_timeout_s=0.5)
    creds = tortoise_config(url, cfg)["connections"]["default"]["credentials"]
    assert (creds["minsize"], creds["maxsize"], creds["pool_acquire_timeout"]) == (1, 4, 0.5)


class _FakeAsyncpgPool:
    """Hands out numbered connections; like asyncpg, a returned one may go to anybody."""

    def __init__(self) -> None:
        self.out = 0

    async def acquire(self) -> int:
        self.out += 1
        return self.out

    async def release(self, conn: int, *, timeout: float | None = None) -> None:  # noqa: ASYNC109
        self.out -= 1


async def test_pool_serves_waiters_in_arrival_order_and_bounds_the_wait() -> None:
    from core.outage import is_db_outage
    from core.pg_client import FairPool, PoolTimeout

    pool = FairPool(_FakeAsyncpgPool(), size=1, timeout=5.0)  # type: ignore[arg-type]
    held = await pool.acquire()
    served: list[int] = []

    async def waiter(n: int) -> None:
        conn = await pool.acquire()
        served.append(n)
        await asyncio.sleep(0)
        await pool.release(conn)

    waiters = [asyncio.create_task(waiter(n)) for n in range(5)]
    await asyncio.sleep(0.01)
    await pool.release(held)
    # a newcomer arriving just as the slot comes back queues behind the waiters
    late = asyncio.create_task(waiter(99))
    await asyncio.gather(*waiters, late)
    assert served == [0, 1, 2, 3, 4, 99]

    held = await pool.acquire()
    with pytest.raises(PoolTimeout) as caught:
        await pool.acquire(timeout=0.05)
    assert is_db_outage(caught.value)  # -> 503 unavailable, not a 500
    await pool.release(held)
    assert await asyncio.wait_for(pool.acquire(), 1) is not None  # the timed-out waiter left no trace


@pytest.mark.server_backend
async def test_pool_full_answers_503_after_the_acquire_timeout(  # type: ignore[no-untyped-def]
    config, pg_proxy, pg_db_url, aiohttp_client
) -> None:
    cli, _, h = await _pg_app(
        aiohttp_client, config, pg_proxy, pg_db_url + "?maxsize=1&minsize=1", pool_acquire_timeout_s=0.5
    )
    assert (await cli.get(f"{API}/stock", headers=h)).status == 200
    pool = connections.get("default")._pool  # type: ignore[attr-defined]
    conn = await pool.acquire()
    try:
        resp, took = await _timed(cli.get(f"{API}/stock", headers=h))
        assert resp.status == 503 and 0.4 < took < 3, (resp.status, took)
        assert (await resp.json())["error"]["code"] == "unavailable"
    finally:
        await pool.release(conn)
    assert (await cli.get(f"{API}/stock", headers=h)).status == 200


@pytest.mark.server_backend
async def test_a_dead_connection_gives_its_pool_slot_back(pg_db_url, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """BEGIN on a dead connection failed and the connection was never released: with a
    pool of one, every later transaction then waited for good."""
    import asyncpg
    from tortoise.backends.asyncpg.client import TransactionWrapper
    from tortoise.transactions import in_transaction

    from core.config import DatabaseConfig

    url = pg_db_url + "?maxsize=1&minsize=1"
    ctx = await init_db(url, database=DatabaseConfig(url=url, pool_acquire_timeout_s=1.0))
    try:
        real_begin = TransactionWrapper.begin

        async def dead_begin(self: Any) -> None:
            monkeypatch.setattr(TransactionWrapper, "begin", real_begin)
            await self._connection.close()  # the server went away under this connection
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")

        monkeypatch.setattr(TransactionWrapper, "begin", dead_begin)
        with pytest.raises(asyncpg.ConnectionDoesNotExistError):
            async with in_transaction():
                pass
        async with asyncio.timeout(5), in_transaction() as tx:
            assert (await tx.execute_query_dict("SELECT 1 AS one"))[0]["one"] == 1
    finally:
        await ctx.close_connections()


async def test_a_probe_does_not_wait_for_a_slow_cleanup() -> None:
    """Giving a connection back to a frozen PostgreSQL waits for asyncpg's cancel request:
    /readyz (and the outage re-check) must not wait with it."""
    from core.outage import probe

    cleaned = asyncio.Event()

    async def check() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.shield(asyncio.sleep(1.0))  # what releasing to a frozen server costs
            cleaned.set()

    answer, took = await _timed(probe(check(), 0.2))
    assert answer == "error: no answer within 0.2s" and took < 0.8, (answer, took)
    await asyncio.wait_for(cleaned.wait(), 5)  # the cleanup still runs, in the background
    assert await probe(asyncio.sleep(0), 1) == "ok"
    assert (await probe(_raise(), 1)).startswith("error: RuntimeError")


async def _raise() -> None:
    raise RuntimeError("boom")
