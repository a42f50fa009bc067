"""`GET /api/v1/contracts` and `/contracts/{id}` (DESIGN §4): the contracts of the distributors
in the caller's scope, in the standard page shape."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest

from models.contract import Contract
from tests import factories
from tests.bola import cached_hash
from tests.factories import make_world

API = "/api/v1"


@pytest.fixture(autouse=True)
def _fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factories, "hash_password", cached_hash)


async def _contract(dist: Any, status: str = "active", end: date = date(2026, 12, 31)) -> Contract:
    return await Contract.create(
        distributor=dist,
        number=f"HT-{uuid.uuid4().hex[:10]}",
        start_date=date(end.year, 1, 1),
        end_date=end,
        status=status,
        price_policy="一级价",
    )


async def _ids(client: Any, headers: dict, query: str = "") -> set[int]:
    resp = await client.get(f"{API}/contracts?page_size=100{query}", headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    assert set(body) == {"items", "total", "page", "page_size"} and body["total"] == len(body["items"])
    return {c["id"] for c in body["items"]}


async def test_each_role_sees_exactly_its_scope(client) -> None:
    w = await make_world()
    c = {
        (t, who): await _contract(getattr(getattr(w, t), who))
        for t in ("east", "north")
        for who in ("distributor", "child")
    }
    everyone = {x.id for x in c.values()}
    east = {c[("east", "distributor")].id, c[("east", "child")].id}
    north = everyone - east
    want = {
        ("", "admin"): everyone,
        ("east", "manager"): east,
        ("east", "sales"): east,
        ("east", "distributor"): east,  # a 一级 sees its 二级 children's too
        ("east", "child"): {c[("east", "child")].id},  # a 二级 never its parent's
        ("north", "manager"): north,
        ("north", "sales"): north,
        ("north", "distributor"): north,
        ("north", "child"): {c[("north", "child")].id},
    }
    for (tenant, role), ids in want.items():
        assert await _ids(client, w.headers(tenant, role)) == ids, (tenant, role)


async def test_list_pages_filters_and_item_shape(client) -> None:
    w = await make_world()
    d = w.east.distributor
    older = await _contract(d, "expired", date(2025, 12, 31))
    current = await _contract(d, "active", date(2026, 12, 31))
    h = w.headers("east", "distributor")
    resp = await client.get(f"{API}/contracts?page_size=1", headers=h)
    body = await resp.json()
    assert body["total"] == 2 and body["page_size"] == 1 and len(body["items"]) == 1
    item = body["items"][0]
    assert item["id"] == current.id  # the latest end date first
    assert item["number"] == current.number and item["distributor_id"] == d.id
    assert item["status"] == "active" and item["price_policy"] == "一级价"
    assert item["start_date"] == "2026-01-01" and item["end_date"] == "2026-12-31"
    assert await _ids(client, h, "&status=expired") == {older.id}
    bad = await client.get(f"{API}/contracts?status=nope", headers=h)
    assert bad.status == 400 and (await bad.json())["error"]["code"] == "validation_error"


async def test_one_contract_in_scope_else_404(client) -> None:
    w = await make_world()
    mine = await _contract(w.east.child)
    ok = await client.get(f"{API}/contracts/{mine.id}", headers=w.headers("east", "distributor"))
    assert ok.status == 200 and (await ok.json())["number"] == mine.number
    for tenant, role in (("east", "child"), ("north", "manager"), ("north", "distributor")):
        if role == "child":
            other = await _contract(w.east.distributor)
            resp = await client.get(f"{API}/contracts/{other.id}", headers=w.headers(tenant, role))
        else:
            resp = await client.get(f"{API}/contracts/{mine.id}", headers=w.headers(tenant, role))
        assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"


async def test_contracts_are_in_the_openapi(client) -> None:
    spec = await (await client.get(f"{API}/openapi.json")).json()
    assert "get" in spec["paths"]["/api/v1/contracts"]
    assert "get" in spec["paths"]["/api/v1/contracts/{id}"]
