"""Outages of the database and the kv store: which errors mean "a dependency is down" (503
`unavailable`, retry later) rather than a bug (500), and one log line when an outage starts
and one when it ends — not a traceback per request."""

from __future__ import annotations

import asyncio
import time

from core.logging import get_logger

log = get_logger("qudao.outage")

RETRY_AFTER_S = 5.0


class Outage:
    """The up/down state of one dependency, as seen by this process."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.since: float | None = None  # monotonic time of the first failure
        self.failures = 0
        self.last_check = 0.0  # when a request last re-checked a down dependency
        self.last_failure = 0.0

    @property
    def down(self) -> bool:
        return self.since is not None

    def seconds(self) -> float:
        return 0.0 if self.since is None else time.monotonic() - self.since

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_failure = time.monotonic()
        if self.since is None:
            self.since = time.monotonic()
            log.error("outage_started", dependency=self.name, error=describe(exc))

    def fail_fast(self, retry_every: float) -> bool:
        """While down, skip calls (answer "unavailable" at once) except one every
        `retry_every` seconds — a frozen server must not cost every caller a timeout."""
        return self.since is not None and time.monotonic() - self.last_failure < retry_every

    def recovered(self) -> None:
        if self.since is not None:
            log.warning(
                "outage_ended", dependency=self.name, down_s=round(self.seconds(), 1), failures=self.failures
            )
            self.since = None
            self.failures = 0


def describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return text[:300]


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 10:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def is_db_outage(exc: BaseException) -> bool:
    """The database is unreachable, gone mid-query, or too slow (a statement or connect
    timeout) — as opposed to a bad query or a constraint."""
    import asyncpg
    from tortoise.exceptions import DBConnectionError

    outage_types: tuple[type[BaseException], ...] = (
        OSError,  # refused, reset, unreachable (ConnectionError is an OSError)
        TimeoutError,  # asyncpg's command_timeout / connect timeout, our own bounds
        asyncpg.PostgresConnectionError,  # includes CannotConnectNowError (starting up / shutting down)
        asyncpg.ConnectionDoesNotExistError,  # the connection died mid-query
        asyncpg.QueryCanceledError,  # statement_timeout
        asyncpg.AdminShutdownError,
        asyncpg.CannotConnectNowError,
        asyncpg.TooManyConnectionsError,
        # "cannot switch to state N; another operation is in progress": a connection whose
        # server went away mid-operation (seen by `make faults` while PostgreSQL restarts)
        asyncpg.InternalClientError,
        DBConnectionError,
    )
    for e in _chain(exc):
        if type(e).__module__.startswith("aiohttp"):
            return False  # a platform API call failed: not the database
        if isinstance(e, outage_types) or _sqlite_outage(e):
            return True
        if isinstance(e, asyncpg.InterfaceError) and "closed" in str(e):
            return True  # "connection is closed", "pool is closing"
    return False


_SQLITE_OUTAGE = (
    "unable to open",
    "readonly database",
    "disk is full",
    "disk i/o error",
    "database is locked",
)


def _sqlite_outage(exc: BaseException) -> bool:
    """SQLite: the file cannot be opened or written (read-only, disk full, I/O error)."""
    import sqlite3

    if not isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError):
        return False
    text = str(exc).lower()
    return any(s in text for s in _SQLITE_OUTAGE)


_PROBES: set[asyncio.Task[object]] = set()  # timed-out probes still cleaning up


async def probe(check: object, timeout: float) -> str:  # noqa: ASYNC109
    """Run an awaitable health check with a time bound: "ok" or a short error text. A check
    that times out is cancelled but not waited for: giving back a connection to a frozen
    server (asyncpg waits for its cancel request) must not stretch the bound."""
    task: asyncio.Task[object] = asyncio.ensure_future(check)  # type: ignore[arg-type]
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        _PROBES.add(task)
        task.add_done_callback(_forget)
        return f"error: no answer within {timeout:g}s"
    exc = task.exception()
    if isinstance(exc, TimeoutError):
        return f"error: no answer within {timeout:g}s"
    if exc is not None:  # a probe reports, it never raises
        return "error: " + describe(exc)
    return "ok" if task.result() in (None, True) else "error: no answer"


def _forget(task: asyncio.Task[object]) -> None:
    _PROBES.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" at exit


def outage_of(exc: BaseException) -> str | None:
    """ "kv" or "database" when `exc` means that dependency is down, else None (a bug)."""
    from core.kv import KVUnavailable

    if isinstance(exc, KVUnavailable):
        return "kv"
    return "database" if is_db_outage(exc) else None
