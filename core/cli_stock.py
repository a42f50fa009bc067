"""`qudao stock verify`: recompute every stock balance from the movement ledger.

Prints one line per drifting (warehouse, product) and exits 1 when anything drifts, 0 when
the ledger reproduces every balance (see `handlers.stock.verify_ledger`)."""

from __future__ import annotations

import argparse

from core.cli import _db, command
from core.config import Config


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["verify"], help="verify: recompute balances from the ledger")


@command("stock", "stock ledger tools: `stock verify` reports balances that drift from the ledger", _args)
async def stock(config: Config, args: argparse.Namespace) -> int:
    from handlers.stock import verify_ledger
    from models.stock import Stock

    async with _db(config):
        drift = await verify_ledger()
        rows = await Stock.all().count()
    for d in drift:
        print(
            f"DRIFT warehouse={d.warehouse_id} product={d.product_id}: on_hand={d.on_hand} "
            f"ledger={d.ledger_on_hand} (last after={d.last_on_hand_after}), reserved={d.reserved} "
            f"ledger={d.ledger_reserved} (last after={d.last_reserved_after})"
        )
    if drift:
        print(f"stock ledger: {len(drift)} of {rows} balances drift")
        return 1
    print(f"stock ledger: {rows} balances match the movements")
    return 0
