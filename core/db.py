"""Database setup: tortoise config from a URL (with time bounds), migrations, readiness and
writability checks."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tortoise import Tortoise, connections
from tortoise.context import TortoiseContext

if TYPE_CHECKING:
    from core.config import DatabaseConfig

APP_LABEL = "qudao"

# Every model module; the single tortoise app ("qudao") whose migrations live in `migrations/`.
MODEL_MODULES = [
    "models.user",
    "models.distributor",
    "models.product",
    "models.stock",
    "models.order",
    "models.finance",
    "models.lead",
    "models.contract",
    "models.commission",
    "models.notification",
    "models.audit",
]


async def _keep_session(connection: Any) -> None:
    """asyncpg's pool reset, minus its round trip. By default every connection given back to
    the pool runs ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` — one
    more round trip per transaction (two per order admission). Qudao never leaves session
    state behind (no SET, LISTEN, cursors or session advisory locks; advisory locks are
    transaction-scoped), and asyncpg still rolls back a transaction left open before this."""


def _settings(url: str, database: DatabaseConfig | None) -> DatabaseConfig:
    from core.config import DatabaseConfig

    return database or DatabaseConfig(url=url)


def _connection(url: str, database: DatabaseConfig | None = None) -> str | dict[str, Any]:
    from tortoise.backends.base.config_generator import expand_db_url

    if url.startswith("sqlite://"):
        conn = expand_db_url(url)
        conn["engine"] = "core.sqlite_client"  # releases its lock when an open fails
        return conn
    if not url.startswith(("postgres://", "postgresql://", "asyncpg://")):
        return url
    cfg = _settings(url, database)
    conn = expand_db_url(url)
    conn["engine"] = "core.pg_client"  # a FIFO-fair, time-bounded pool that never leaks a slot
    creds = conn["credentials"]
    # Pool size: [database] pool_min / pool_max unless the URL names them (?minsize=&maxsize=).
    creds.setdefault("maxsize", max(cfg.pool_max, int(creds.get("minsize", 0))))
    creds.setdefault("minsize", min(cfg.pool_min, int(creds["maxsize"])))
    creds["pool_acquire_timeout"] = cfg.pool_acquire_timeout_s
    creds["reset"] = _keep_session
    # Time bounds (asyncpg via tortoise's pass-through of unknown credentials): a connect
    # timeout, the server's statement_timeout, and a client-side bound one second longer
    # for a server that stopped answering altogether (it would never send the cancel).
    creds.setdefault("timeout", cfg.connect_timeout_s)
    creds.setdefault("command_timeout", cfg.statement_timeout_s + 1)
    server = dict(creds.get("server_settings") or {})
    server.setdefault("statement_timeout", str(int(cfg.statement_timeout_s * 1000)))
    creds["server_settings"] = server
    return conn


def tortoise_config(url: str, database: DatabaseConfig | None = None) -> dict[str, Any]:
    return {
        "connections": {"default": _connection(url, database)},
        "apps": {
            APP_LABEL: {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def ensure_sqlite_dir(url: str) -> None:
    """SQLite creates the file but not its folder (./data/ in a fresh clone)."""
    if not url.startswith("sqlite://") or url.startswith("sqlite://:memory:"):
        return
    path = url.removeprefix("sqlite://").split("?", 1)[0]
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)


async def init_db(
    url: str, *, global_fallback: bool = True, database: DatabaseConfig | None = None
) -> TortoiseContext:
    """Open the ORM. The global fallback lets background tasks (scheduler, outbox) that
    did not inherit the contextvar still reach the database."""
    ensure_sqlite_dir(url)
    return await Tortoise.init(config=tortoise_config(url, database), _enable_global_fallback=global_fallback)


def sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite://") or url.startswith("sqlite://:memory:"):
        return None
    path = url.removeprefix("sqlite://").split("?", 1)[0]
    return Path(path) if path else None


async def _select_one() -> None:
    await connections.get("default").execute_query("SELECT 1")


async def _sqlite_writable(path: Path, min_free_mb: int) -> None:
    """Raise unless SQLite can write: the mount is writable, the disk has room, and a write
    transaction (a new page, rolled back) goes through on our connection."""
    folder = path.parent if str(path.parent) else Path(".")
    st = os.statvfs(folder)
    if st.f_flag & os.ST_RDONLY:
        raise OSError(f"{folder} is on a read-only file system")
    free_mb = st.f_bavail * st.f_frsize / 1_048_576
    if free_mb < min_free_mb:
        raise OSError(f"only {free_mb:.1f} MB free on the disk of {path} (need {min_free_mb} MB)")
    from tortoise.transactions import in_transaction

    class _Probe(Exception):
        pass

    # CREATE TABLE allocates a page (fails on SQLITE_FULL / READONLY); the rollback leaves
    # no trace. The transaction holds the client's lock, so no other query interleaves.
    try:
        async with in_transaction() as conn:
            await conn.execute_query("CREATE TABLE _qudao_write_probe (x INTEGER)")
            raise _Probe
    except _Probe:
        pass


async def check_database(database: DatabaseConfig, *, write: bool = True) -> None:
    """Query the database (and, for SQLite, check it can write), within probe_timeout_s.
    Raises on failure; /readyz and the start-up check share it."""
    async with asyncio.timeout(database.probe_timeout_s):
        await _select_one()
        path = sqlite_path(database.url)
        if write and path is not None:
            await _sqlite_writable(path, database.min_free_mb)


async def migrate_db(url: str) -> None:
    """Apply tortoise's built-in migrations; running it twice is harmless."""
    from tortoise.migrations.api import migrate

    ensure_sqlite_dir(url)
    try:
        await migrate(config=tortoise_config(url))
    finally:
        # Always close: a leaked aiosqlite thread keeps the process alive after an error.
        await Tortoise.close_connections()
