"""Database setup: tortoise config from a URL, migrations, readiness check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tortoise import Tortoise
from tortoise.context import TortoiseContext

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


def _connection(url: str) -> str | dict[str, Any]:
    from tortoise.backends.base.config_generator import expand_db_url

    if not url.startswith(("postgres://", "postgresql://", "asyncpg://")):
        return url
    conn = expand_db_url(url)
    conn["credentials"]["reset"] = _keep_session
    return conn


def tortoise_config(url: str) -> dict[str, Any]:
    return {
        "connections": {"default": _connection(url)},
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


async def init_db(url: str, *, global_fallback: bool = True) -> TortoiseContext:
    """Open the ORM. The global fallback lets background tasks (scheduler, outbox) that
    did not inherit the contextvar still reach the database."""
    ensure_sqlite_dir(url)
    return await Tortoise.init(config=tortoise_config(url), _enable_global_fallback=global_fallback)


async def migrate_db(url: str) -> None:
    """Apply tortoise's built-in migrations; running it twice is harmless."""
    from tortoise.migrations.api import migrate

    ensure_sqlite_dir(url)
    try:
        await migrate(config=tortoise_config(url))
    finally:
        # Always close: a leaked aiosqlite thread keeps the process alive after an error.
        await Tortoise.close_connections()
