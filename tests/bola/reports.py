"""BOLA cases: reports. East's data (an order, a receivable, a commission, east's warehouse)
must show up for the roles that see east and never for the others."""

from __future__ import annotations

from typing import Any

from core.clock import now
from models.base import ReceivableKind
from tests.bola import EAST_SEES, Case, Probe
from tests.factories_commission import complete, make_order, make_receivable, make_rule


def _rows_with(field: str, value: Any, **also: Any) -> Any:
    def visible(answer: Any) -> bool:
        rows = answer.get("rows", []) if isinstance(answer, dict) else []
        return any(r.get(field) == value and all(r.get(k) == v for k, v in also.items()) for r in rows)

    return visible


async def _sales(world: Any, client: Any) -> Probe:
    await make_order(world.east.distributor, [(world.product, 1, "100.00")], completed_at=now())
    return Probe("/reports/sales?group_by=distributor", visible=_rows_with("key", world.east.distributor.id))


async def _inventory(world: Any, client: Any) -> Probe:
    return Probe("/reports/inventory", visible=_rows_with("warehouse_id", world.east.warehouse.id))


async def _receivables(world: Any, client: Any) -> Probe:
    await make_receivable(world.east.distributor, ReceivableKind.SHIPMENT, "100.00", now(), due_at=now())
    return Probe("/reports/receivables", visible=_rows_with("distributor_id", world.east.distributor.id))


async def _commissions(world: Any, client: Any) -> Probe:
    await make_rule(scope_region="华东", rate="0.02")
    order = await make_order(world.east.distributor, [(world.product, 1, "100.00")], completed_at=now())
    await complete(order)
    return Probe(
        "/reports/commissions",
        visible=_rows_with("beneficiary_id", world.east.rep.id, beneficiary_type="user"),
    )


async def _dashboard(world: Any, client: Any) -> Probe:
    return Probe("/reports/dashboard")


CASES: dict[tuple[str, str], Case] = {
    ("GET", "/reports/sales"): Case(_sales, kind="list", sees=EAST_SEES),
    ("GET", "/reports/inventory"): Case(_inventory, kind="list", sees=EAST_SEES),
    ("GET", "/reports/receivables"): Case(_receivables, kind="list", sees=EAST_SEES),
    ("GET", "/reports/commissions"): Case(
        _commissions, kind="list", sees=frozenset({"admin", "east.manager", "east.sales"})
    ),
    ("GET", "/reports/dashboard"): Case(_dashboard, kind="self"),
}
