"""BOLA cases: commission rules (admin), commissions and statements.

Objects are owned by east: rules scoped to 华东, entries of east's rep from an east order,
statements of east's rep / east's 一级 distributor. Statements are acted on by their subject
only: everyone else (staff included) gets 404."""

from __future__ import annotations

import itertools
from typing import Any

from core.clock import BUSINESS_TZ, now
from models.base import StatementKind
from models.commission import Statement
from tests.bola import STAFF_SEES, Case, Probe
from tests.factories_commission import complete, make_order, make_rule

_months = itertools.count(1)


def _rule_body(name: str = "BOLA 规则") -> dict[str, Any]:
    return {
        "name": name,
        "beneficiary": "sales",
        "mode": "flat",
        "rate": "0.01",
        "scope": {"region": "华东"},
        "valid_from": "2026-01-01",
        "priority": 900,
    }


async def _create_rule(world: Any, client: Any) -> Probe:
    return Probe("/admin/commission-rules", body=_rule_body())


async def _list_rules(world: Any, client: Any) -> Probe:
    rule = await make_rule(scope_region="华东", priority=1000, name="BOLA east")
    return Probe("/admin/commission-rules?page_size=100", marker=rule.id)


async def _rule(world: Any, client: Any) -> Probe:
    rule = await make_rule(scope_region="华东", name="BOLA east")
    return Probe(f"/admin/commission-rules/{rule.id}", body=_rule_body("改名"))


async def _rule_snapshot(world: Any, probe: Probe) -> Any:
    from models.commission import CommissionRule

    rule = await CommissionRule.get(id=int(probe.path.rsplit("/", 1)[1]))
    return (rule.name, rule.rate, rule.scope_region)


async def _commissions(world: Any, client: Any) -> Probe:
    await make_rule(scope_region="华东", rate="0.02")
    order = await make_order(world.east.distributor, [(world.product, 1, "100.00")], completed_at=now())
    await complete(order)
    month = now().astimezone(BUSINESS_TZ).strftime("%Y-%m")
    return Probe(
        f"/commissions?period={month}",
        visible=lambda answer: any(i.get("order_id") == order.id for i in answer.get("items", [])),
    )


async def _statement(world: Any, subject: str, kind: StatementKind = StatementKind.COMMISSION) -> Statement:
    """A fresh open statement of east's rep ("rep") or east's 一级 distributor ("dist")."""
    k = next(_months)
    period = f"{2100 + k // 12}-{k % 12 + 1:02d}"
    if subject == "rep":
        fields: dict[str, Any] = {"subject_key": f"user:{world.east.rep.id}", "beneficiary": world.east.rep}
    else:
        fields = {
            "subject_key": f"distributor:{world.east.distributor.id}",
            "distributor": world.east.distributor,
        }
    return await Statement.create(kind=kind, period=period, total=0, lines=[], **fields)


async def _list_statements(world: Any, client: Any) -> Probe:
    st = await _statement(world, "rep")
    return Probe(f"/statements?period={st.period}", marker=st.id)


async def _get_statement(world: Any, client: Any) -> Probe:
    st = await _statement(world, "dist", StatementKind.RECEIVABLES)
    return Probe(f"/statements/{st.id}")


async def _confirm(world: Any, client: Any) -> Probe:
    st = await _statement(world, "rep")
    return Probe(f"/statements/{st.id}/confirm", body={})


async def _dispute(world: Any, client: Any) -> Probe:
    st = await _statement(world, "dist")
    return Probe(f"/statements/{st.id}/dispute", body={"reason": "金额不对"})


async def _status(world: Any, probe: Probe) -> Any:
    st = await Statement.get(id=int(probe.path.split("/")[2]))
    return (st.status, st.dispute_reason, st.confirmed_at)


CASES: dict[tuple[str, str], Case] = {
    ("POST", "/admin/commission-rules"): Case(_create_rule, kind="self", expect={"north.manager": 403}),
    ("GET", "/admin/commission-rules"): Case(_list_rules, kind="list", sees=STAFF_SEES),
    ("GET", r"/admin/commission-rules/{id:\d+}"): Case(_rule, sees=STAFF_SEES),
    ("PUT", r"/admin/commission-rules/{id:\d+}"): Case(_rule, sees=STAFF_SEES, snapshot=_rule_snapshot),
    ("GET", "/commissions"): Case(_commissions, kind="list", sees=frozenset({"east.sales"})),
    ("GET", "/statements"): Case(
        _list_statements, kind="list", sees=frozenset({"admin", "east.manager", "east.sales"})
    ),
    ("GET", r"/statements/{id:\d+}"): Case(
        _get_statement, sees=frozenset({"admin", "east.manager", "east.distributor"})
    ),
    ("POST", r"/statements/{id:\d+}/confirm"): Case(
        _confirm, sees=frozenset({"east.sales"}), snapshot=_status
    ),
    ("POST", r"/statements/{id:\d+}/dispute"): Case(
        _dispute, sees=frozenset({"east.distributor"}), snapshot=_status
    ),
}
