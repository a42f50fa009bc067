"""BOLA cases for the app's contract reads (GET /contracts, /contracts/{id})."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from models.contract import Contract
from tests.bola import Case, Probe


async def _contract(dist: Any) -> Contract:
    return await Contract.create(
        distributor=dist,
        number=f"HT-{uuid.uuid4().hex[:10]}",
        start_date=date(2026, 1, 1),
        end_date=date(2026, 12, 31),
        status="active",
    )


async def _list(world: Any, client: Any) -> Probe:
    c = await _contract(world.east.distributor)
    return Probe("/contracts?page_size=100", marker=c.id)


async def _one(world: Any, client: Any) -> Probe:
    return Probe(f"/contracts/{(await _contract(world.east.distributor)).id}")


CASES: dict[tuple[str, str], Case] = {
    ("GET", "/contracts"): Case(_list, kind="list"),
    ("GET", r"/contracts/{id:\d+}"): Case(_one),
}
