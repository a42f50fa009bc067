"""Commission rules (admin API) and GET /commissions over HTTP: validation, roles, scope, audit."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from models.audit import AuditLog
from tests.factories import make_world
from tests.factories_commission import at, complete, fast_passwords, make_order, make_rule

RULES = "/api/v1/admin/commission-rules"


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    fast_passwords(monkeypatch)


def rule_body(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "华东返利",
        "beneficiary": "sales",
        "mode": "tiered_marginal",
        "tiers": [{"from": "0", "rate": "0.02"}, {"from": "100000", "rate": "0.03"}],
        "scope": {"region": "华东"},
        "period": "month",
        "valid_from": "2026-01-01",
        "priority": 5,
    }
    body.update(kw)
    return body


async def test_admin_creates_reads_lists_and_replaces_a_rule(client) -> None:
    w = await make_world()
    admin = w.headers("", "admin")
    async with client.post(RULES, json=rule_body(), headers=admin) as resp:
        assert resp.status == 201, await resp.text()
        rule = await resp.json()
    assert rule["tiers"] == [{"from": "0.00", "rate": "0.0200"}, {"from": "100000.00", "rate": "0.0300"}]
    assert rule["scope"] == {"category": None, "sku": None, "level": None, "region": "华东"}
    assert (rule["mode"], rule["rate"], rule["priority"], rule["active"]) == (
        "tiered_marginal",
        None,
        5,
        True,
    )
    async with client.get(f"{RULES}/{rule['id']}", headers=admin) as resp:
        assert (await resp.json())["name"] == "华东返利"
    flat = rule_body(mode="flat", rate="0.015", tiers=None, name="统一", scope={"sku": w.product.sku})
    async with client.put(f"{RULES}/{rule['id']}", json=flat, headers=admin) as resp:
        assert resp.status == 200, await resp.text()
        replaced = await resp.json()
    assert (replaced["mode"], replaced["rate"], replaced["tiers"]) == ("flat", "0.0150", None)
    assert replaced["scope"]["sku"] == w.product.sku and replaced["scope"]["region"] is None
    async with client.get(RULES, params={"beneficiary": "sales"}, headers=admin) as resp:
        page = await resp.json()
    assert page["total"] == 1 and page["items"][0]["id"] == rule["id"]
    actions = await AuditLog.filter(entity="commission_rule").order_by("id").values_list("action", flat=True)
    assert actions == ["commission_rule.create", "commission_rule.update"]


async def test_rule_input_is_validated(client) -> None:
    w = await make_world()
    admin = w.headers("", "admin")
    bad = [
        rule_body(tiers=[{"from": "5", "rate": "0.02"}]),
        rule_body(tiers=[{"from": "0", "rate": 0.02}]),  # a float
        rule_body(mode="flat", tiers=None),
        rule_body(mode="flat", rate="2", tiers=None),
        rule_body(scope={"sku": "NO-SUCH-SKU"}),
        rule_body(scope={"region": "华东", "color": "red"}),
        rule_body(valid_from="yesterday"),
        rule_body(owner=1),
    ]
    for body in bad:
        async with client.post(RULES, json=body, headers=admin) as resp:
            assert resp.status == 400, body
            assert (await resp.json())["error"]["code"] == "validation_error"
    async with client.get(RULES, headers=admin) as resp:
        assert (await resp.json())["total"] == 0


async def test_managers_write_only_their_regions_rules(client) -> None:
    w = await make_world()
    east = w.headers("east", "manager")
    north = w.headers("north", "manager")
    async with client.post(RULES, json=rule_body(), headers=east) as resp:
        assert resp.status == 201
        east_rule = await resp.json()
    for body in (rule_body(scope={"region": "华北"}), rule_body(scope=None)):
        async with client.post(RULES, json=body, headers=east) as resp:
            assert resp.status == 403
    company = await make_rule(name="全公司")
    async with client.get(RULES, headers=north) as resp:
        assert [r["id"] for r in (await resp.json())["items"]] == [company.id]  # not east's
    for method, path in (("GET", f"{RULES}/{east_rule['id']}"), ("PUT", f"{RULES}/{east_rule['id']}")):
        async with client.request(
            method, path, json=rule_body(scope={"region": "华北"}), headers=north
        ) as resp:
            assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    async with client.put(f"{RULES}/{company.id}", json=rule_body(), headers=east) as resp:
        assert resp.status == 403  # company-wide rules are the admin's
    for role in ("sales", "distributor"):
        async with client.post(RULES, json=rule_body(), headers=w.headers("east", role)) as resp:
            assert resp.status == 403


async def test_get_commissions_for_the_caller_and_for_staff(client) -> None:
    w = await make_world()
    await make_rule(scope_region="华东", rate="0.02")
    order = await make_order(w.east.distributor, [(w.product, 3, "33.33")], completed_at=at("2026-03-10"))
    await complete(order)
    async with client.get("/api/v1/commissions?period=2026-03", headers=w.headers("east", "sales")) as resp:
        mine = await resp.json()
    assert mine["period"] == "2026-03" and mine["total"] == "2.00"
    assert mine["beneficiary"] == {"type": "user", "id": w.east.rep.id, "name": w.east.rep.display_name}
    (item,) = mine["items"]
    assert {k: item[k] for k in ("kind", "order_id", "order_number", "base", "rate", "amount")} == {
        "kind": "accrual",
        "order_id": order.id,
        "order_number": order.number,
        "base": "99.99",
        "rate": "0.0200",
        "amount": "2.00",
    }
    assert Decimal(mine["total"]) == sum(Decimal(i["amount"]) for i in mine["items"])
    url = f"/api/v1/commissions?period=2026-03&beneficiary_id={w.east.rep.id}"
    for who in (w.headers("", "admin"), w.headers("east", "manager")):
        async with client.get(url, headers=who) as resp:
            assert (await resp.json())["total"] == "2.00"
    for who in (w.headers("north", "manager"), w.headers("north", "sales"), w.headers("east", "distributor")):
        async with client.get(url, headers=who) as resp:
            assert resp.status == 404
    async with client.get("/api/v1/commissions?period=2026-04", headers=w.headers("east", "sales")) as resp:
        assert (await resp.json()) | {"beneficiary": None} == {
            "period": "2026-04",
            "total": "0.00",
            "items": [],
        } | {"beneficiary": None}
    for bad in ("2026-13", "2026-3", "abc"):
        async with client.get(
            f"/api/v1/commissions?period={bad}", headers=w.headers("east", "sales")
        ) as resp:
            assert resp.status == 400
