"""The `qudao` command (also `python -m core`). Errors leave as one line and a non-zero exit."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from core.config import Config, load_config
from core.errors import ConfigError, DatabaseUnusable, DomainError

Command = Callable[[Config, argparse.Namespace], Coroutine[Any, Any, int] | int]
COMMANDS: dict[str, tuple[Command, Callable[[argparse.ArgumentParser], None], str]] = {}


def command(name: str, help: str, args: Callable[[argparse.ArgumentParser], None] = lambda p: None):
    def register(fn: Command) -> Command:
        COMMANDS[name] = (fn, args, help)
        return fn

    return register


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--no-scheduler", action="store_true", help="do not run scheduled jobs here")
    p.add_argument("--workers", type=int, default=1, help="processes sharing the port (PostgreSQL only)")
    p.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)


@command("serve", "serve the HTTP API, bot webhooks and (unless disabled) the scheduler", _serve_args)
def serve(config: Config, args: argparse.Namespace) -> int:
    import os

    from core.app import create_app, run

    limit = (os.cpu_count() or 1) * 4
    if not 1 <= args.workers <= limit:
        raise ConfigError(f"--workers must be 1..{limit}, got {args.workers}")
    if args.workers > 1 and config.database.url.startswith("sqlite"):
        raise ConfigError("--workers > 1 needs PostgreSQL (SQLite has one writer)")
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    if args.workers > 1 and args.worker_index is None:
        from core.workers import supervise

        print(f"Qudao serving on http://{host}:{port} with {args.workers} workers", flush=True)
        return supervise(args.workers, host, port, config_path=args.config, no_scheduler=args.no_scheduler)
    no_scheduler = args.no_scheduler or (args.worker_index or 0) > 0
    app = create_app(config, scheduler=False if no_scheduler else None)
    if args.worker_index is None:
        print(f"Qudao serving on http://{host}:{port}  (healthz: /healthz, docs: /api/docs)", flush=True)
    run(app, host=host, port=port, reuse_port=args.workers > 1)
    return 0


@command("migrate", "apply database migrations (safe to run twice)")
async def migrate(config: Config, args: argparse.Namespace) -> int:
    from core.db import migrate_db

    await migrate_db(config.database.url)
    print(f"migrated {_safe_url(config.database.url)}")
    return 0


def _admin_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--username", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--display-name", default="")


@command("create-admin", "create (or reset the password of) an admin user", _admin_args)
async def create_admin(config: Config, args: argparse.Namespace) -> int:
    from handlers.users import create_admin as do_create_admin

    async with _db(config):
        created = await do_create_admin(args.username, args.password, args.display_name or args.username)
    print(("created" if created else "updated") + f" admin {args.username}")
    return 0


@command("seed-demo", "load demo data (idempotent: running it twice adds nothing)")
async def seed_demo(config: Config, args: argparse.Namespace) -> int:
    from handlers.demo import seed_demo as do_seed

    async with _db(config):
        summary = await do_seed()
    print("demo data: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
    return 0


class _db:
    """Open the ORM (and install a Runtime) for one CLI command, always closing it."""

    def __init__(self, config: Config) -> None:
        self.config = config

    async def __aenter__(self) -> None:
        from core import runtime as rt
        from core.db import init_db
        from core.kv import open_kv

        self.ctx = await init_db(self.config.database.url, database=self.config.database)
        self.kv = open_kv(
            self.config.kv.url,
            namespace=self.config.kv.namespace,
            rate_fail_open_s=self.config.kv.rate_fail_open_s,
        )
        rt.install(rt.Runtime(config=self.config, kv=self.kv, instance_id="cli"))

    async def __aexit__(self, *exc: object) -> None:
        from core import runtime as rt

        rt.install(None)
        await self.kv.close()
        await self.ctx.close_connections()


def _safe_url(url: str) -> str:
    return Config().with_overrides({"database": {"url": url}}).redacted()["database"]["url"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qudao", description="Qudao (渠道) distributor management")
    parser.add_argument("--config", help="TOML config file (default: $QUDAO_CONFIG or ./config.toml)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, add_args, help_text) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    return parser


# Feature commands live beside their feature and register themselves with @command.
COMMAND_MODULES = (
    "core.cli_import",
    "core.cli_stock",
    "core.cli_finance",
    "core.cli_jobs",
    "core.cli_chat",
    "core.cli_fake",
)


def _load_command_modules() -> None:
    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module)


def main(argv: list[str] | None = None) -> int:
    _load_command_modules()
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
        from core.logging import setup_logging

        setup_logging(config.logging.level, config.logging.format)
        fn = COMMANDS[args.command][0]
        result = fn(config, args)
        if isinstance(result, Awaitable):
            result = asyncio.run(result)  # type: ignore[arg-type]
        return int(result or 0)
    except ConfigError as exc:
        print(f"qudao: config error: {exc}", file=sys.stderr)
        return 2
    except DatabaseUnusable as exc:
        print(f"qudao: database unusable: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    except DomainError as exc:
        print(f"qudao: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except (OSError, ConnectionError) as exc:
        print(f"qudao: cannot connect: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from tortoise.exceptions import DBConnectionError, OperationalError

        if isinstance(exc, DBConnectionError | OperationalError):
            print(f"qudao: database error: {exc}".splitlines()[0], file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
