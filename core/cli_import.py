"""`qudao import products|stock|distributors FILE`: bulk import from CSV or XLSX with a
progress bar. All or nothing: a file with bad rows imports nothing and lists every bad row
(spreadsheet numbering, header = row 1) with its reasons. Columns: handlers/importer.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from core.cli import _db, command
from core.config import Config
from core.errors import DomainError


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=["products", "stock", "distributors"])
    p.add_argument("file", type=Path, help="a .csv (UTF-8 or GB18030) or .xlsx file")
    p.add_argument("--as-user", metavar="USERNAME", help="act as this admin/manager (default: system)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


class _Bars:
    """One tqdm bar per phase (validate, write), on stderr."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bars: dict[str, Any] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        bar = self.bars.get(phase)
        if bar is None:
            bar = self.bars[phase] = tqdm(total=total, desc=f"{phase:>8}", unit="row", file=sys.stderr)
        bar.total = total
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


@command("import", "import products, stock or distributors from a CSV/XLSX file", _args)
async def import_cmd(config: Config, args: argparse.Namespace) -> int:
    from handlers.importer import ImportRejected, import_file

    try:
        data = args.file.read_bytes()
    except OSError as exc:
        print(f"qudao: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    bars = _Bars(not args.no_progress)
    async with _db(config):
        actor = await _actor(args.as_user)
        try:
            report = await import_file(actor, args.kind, data, args.file.name, progress=bars)
        except ImportRejected as exc:
            bars.close()
            _print_rejects(exc)
            return 1
        except DomainError:
            bars.close()
            raise
        bars.close()
    print(
        f"imported {report.kind}: {report.rows} rows, {report.created} created, {report.updated} updated, "
        f"{report.unchanged} unchanged"
        + (f", {report.movements} stock movements" if report.kind == "stock" else "")
        + f" (import {report.import_id})"
    )
    return 0


async def _actor(username: str | None):  # type: ignore[no-untyped-def]
    from handlers.actor import SYSTEM

    if not username:
        return SYSTEM
    from handlers.auth import build_actor
    from models.user import User

    user = await User.get_or_none(username=username)
    if user is None:
        raise DomainError(f"no user {username!r}")
    return await build_actor(user)


def _print_rejects(exc: DomainError) -> None:
    details = exc.details  # the operator's summary in English; row reasons as users read them
    print(
        f"qudao: {details.get('rejected')} of {details.get('rows')} rows rejected, nothing imported",
        file=sys.stderr,
    )
    for err in details.get("errors", []):
        print(f"  row {err['row']}: " + "; ".join(err["errors"]), file=sys.stderr)
    if details.get("more"):
        print(f"  ... and {details['more']} more rows", file=sys.stderr)
