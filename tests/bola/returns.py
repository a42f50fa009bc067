"""BOLA cases for after-sales return requests (/returns...). Each probe makes a fresh request
on a received order of `world.east.distributor` (the 一级), so a write acts on a new one."""

from __future__ import annotations

from typing import Any

from handlers import returns
from handlers.actor import SYSTEM
from models.order import ReturnRequest
from models.stock import StockMovement
from tests.bola import STAFF_SEES, Case, Probe
from tests.bola.orders import _order


async def _request(world: Any, approved: bool = False) -> returns.ReturnRequestOut:
    out, p = await _order(world, "received")
    req = await returns.request_return(
        SYSTEM, out.id, {"lines": [{"sku": p.sku, "qty": 1}], "reason": "破损"}
    )
    return await returns.approve_return(SYSTEM, req.id) if approved else req


async def _state(world: Any, probe: Probe) -> Any:
    rid = probe.extra["return_id"]
    status = await ReturnRequest.filter(id=rid).values_list("status", flat=True)
    return status, await StockMovement.all().count()


async def _list(world: Any, client: Any) -> Probe:
    req = await _request(world)
    return Probe("/returns?page_size=100", marker=req.id)


async def _one(world: Any, client: Any) -> Probe:
    return Probe(f"/returns/{(await _request(world)).id}")


def _act(action: str, body: Any, approved: bool = False) -> Any:
    async def probe(world: Any, client: Any) -> Probe:
        req = await _request(world, approved)
        return Probe(f"/returns/{req.id}/{action}", body=body, extra={"return_id": req.id})

    return probe


CASES: dict[tuple[str, str], Case] = {
    ("GET", "/returns"): Case(_list, kind="list"),
    ("GET", r"/returns/{id:\d+}"): Case(_one),
    ("POST", r"/returns/{id:\d+}/approve"): Case(_act("approve", {}), sees=STAFF_SEES, snapshot=_state),
    ("POST", r"/returns/{id:\d+}/reject"): Case(
        _act("reject", {"reason": "不符合"}), sees=STAFF_SEES, snapshot=_state
    ),
    ("POST", r"/returns/{id:\d+}/receive"): Case(
        _act("receive", {}, approved=True), sees=STAFF_SEES, snapshot=_state
    ),
}
