"""`qudao finance verify`: recompute every distributor's exposure balance (receivables +
open orders' unshipped value) from the receivables ledger and the orders.

Prints one line per drifting distributor and exits 1 when anything drifts, 0 when the ledger
reproduces every stored balance (see `handlers.finance.verify_exposure`)."""

from __future__ import annotations

import argparse

from core.cli import _db, command
from core.config import Config


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["verify"], help="verify: recompute exposure balances from the ledger")


@command(
    "finance", "finance tools: `finance verify` reports exposure balances that drift from the ledger", _args
)
async def finance(config: Config, args: argparse.Namespace) -> int:
    from handlers.finance import verify_exposure
    from models.distributor import Distributor

    async with _db(config):
        drift = await verify_exposure()
        rows = await Distributor.all().count()
    for d in drift:
        print(f"DRIFT distributor={d.distributor_id}: exposure={d.stored} ledger={d.ledger}")
    if drift:
        print(f"exposure: {len(drift)} of {rows} balances drift")
        return 1
    print(f"exposure: {rows} balances match the ledger")
    return 0
