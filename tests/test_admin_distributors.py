"""Admin distributors: create/read/update/list/export, activate/suspend, scope and audit."""

from __future__ import annotations

import asyncio
import io

import pytest
from openpyxl import load_workbook

from handlers.uscc import make_uscc
from models.audit import AuditLog
from models.distributor import Distributor
from tests import factories
from tests.bola import cached_hash
from tests.factories import auth, make_user, make_world, n, token_for, uscc


@pytest.fixture(autouse=True)
def _fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factories, "hash_password", cached_hash)


BASE = "/api/v1/admin/distributors"


def body(**kw):  # type: ignore[no-untyped-def]
    data = {
        "name": f"新经销商{n()}有限公司",
        "uscc": uscc(),
        "level": 1,
        "region": "华东",
        "credit_limit": "100000.00",
        "payment_terms": "monthly",
    }
    data.update(kw)
    return data


async def test_create_distributor_is_applying_and_audited(client) -> None:
    world = await make_world()
    resp = await client.post(BASE, json=body(), headers=world.headers("", "admin"))
    assert resp.status == 201, await resp.text()
    d = await resp.json()
    assert d["status"] == "applying" and d["credit_limit"] == "100000.00" and d["level"] == 1
    log = await AuditLog.get(entity="distributor", entity_id=str(d["id"]), action="distributor.create")
    assert log.actor_id == world.admin.id and log.after["uscc"] == d["uscc"]  # type: ignore[attr-defined,index]

    resp = await client.post(f"{BASE}/{d['id']}/activate", json={}, headers=world.headers("", "admin"))
    assert (await resp.json())["status"] == "active"
    assert await AuditLog.filter(action="distributor.activate", entity_id=str(d["id"])).count() == 1


async def test_create_distributor_bad_input_is_400(client) -> None:
    world = await make_world()
    h = world.headers("", "admin")
    bad_check = make_uscc("91110000MA0000001")[:-1] + "0"
    cases = [
        body(uscc=bad_check if bad_check != make_uscc("91110000MA0000001") else "911100000000000000"),
        body(level=3),
        body(credit_limit=1000.5),  # a float: cents may be lost
        body(credit_limit="-1.00"),
        body(credit_limit="1.234"),
        body(payment_terms="weekly"),
        body(status="active"),  # may not be set by the caller
        body(level=2),  # no parent
        body(name=""),
    ]
    for data in cases:
        resp = await client.post(BASE, json=data, headers=h)
        assert resp.status == 400, (data, resp.status)
        assert (await resp.json())["error"]["code"] == "validation_error"
    assert await Distributor.all().count() == 4  # only the world's


async def test_create_distributor_duplicate_uscc_is_400(client) -> None:
    world = await make_world()
    resp = await client.post(
        BASE, json=body(uscc=world.east.distributor.uscc), headers=world.headers("", "admin")
    )
    assert resp.status == 400 and (await resp.json())["error"]["details"]["field"] == "uscc"


async def test_level2_needs_level1_parent_in_same_region(client) -> None:
    world = await make_world()
    h = world.headers("", "admin")
    east, north = world.east, world.north
    ok = await client.post(BASE, json=body(level=2, parent_id=east.distributor.id), headers=h)
    assert ok.status == 201
    other_region = await client.post(BASE, json=body(level=2, parent_id=north.distributor.id), headers=h)
    assert other_region.status == 400
    child_parent = await client.post(BASE, json=body(level=2, parent_id=east.child.id), headers=h)
    assert child_parent.status == 400
    level1_with_parent = await client.post(BASE, json=body(level=1, parent_id=east.distributor.id), headers=h)
    assert level1_with_parent.status == 400


async def test_manager_limited_to_its_regions(client) -> None:
    world = await make_world()
    h = world.headers("east", "manager")
    assert (await client.post(BASE, json=body(region="华北"), headers=h)).status == 404
    resp = await client.post(BASE, json=body(), headers=h)
    assert resp.status == 201
    new_id = (await resp.json())["id"]
    # the manager sees the new one at once (its cached scope was refreshed)
    assert (await client.get(f"{BASE}/{new_id}", headers=h)).status == 200
    assert (await client.get(f"{BASE}/{world.north.distributor.id}", headers=h)).status == 404
    page = await (await client.get(BASE, headers=h)).json()
    assert {d["region"] for d in page["items"]} == {"华东"} and page["total"] == 3
    moved = await client.patch(f"{BASE}/{new_id}", json={"region": "华北"}, headers=h)
    assert moved.status == 404
    level2_north = await client.post(
        BASE, json=body(level=2, region="华东", parent_id=world.north.distributor.id), headers=h
    )
    assert level2_north.status == 404


async def test_sales_and_distributor_users_get_403(client) -> None:
    world = await make_world()
    for role in ("sales", "distributor", "child"):
        resp = await client.get(BASE, headers=world.headers("east", role))
        assert resp.status == 403 and (await resp.json())["error"]["code"] == "forbidden"
        assert (await client.post(BASE, json=body(), headers=world.headers("east", role))).status == 403


async def test_update_distributor_and_audit_before_after(client) -> None:
    world = await make_world()
    d = world.east.distributor
    resp = await client.patch(
        f"{BASE}/{d.id}",
        json={"credit_limit": "5000", "name": "改名有限公司"},
        headers=world.headers("", "admin"),
    )
    assert resp.status == 200
    out = await resp.json()
    assert out["credit_limit"] == "5000.00" and out["name"] == "改名有限公司"
    log = await AuditLog.get(action="distributor.update", entity_id=str(d.id))
    assert log.before["credit_limit"] == "100000.00" and log.after["credit_limit"] == "5000.00"  # type: ignore[index]
    bad = await client.patch(f"{BASE}/{d.id}", json={"status": "active"}, headers=world.headers("", "admin"))
    assert bad.status == 400
    bad = await client.patch(f"{BASE}/{d.id}", json={"level": 2}, headers=world.headers("", "admin"))
    assert bad.status == 400


async def test_suspend_distributor_ends_its_users_sessions(client) -> None:
    world = await make_world()
    east = world.east
    h = world.headers("east", "distributor")
    assert (await client.get("/api/v1/me", headers=h)).status == 200
    resp = await client.post(f"{BASE}/{east.distributor.id}/suspend", headers=world.headers("", "admin"))
    assert resp.status == 200 and (await resp.json())["status"] == "suspended"
    me = await client.get("/api/v1/me", headers=h)
    assert me.status == 401
    # a fresh token is refused too, and password login fails
    assert (await client.get("/api/v1/me", headers=auth(await token_for(east.dist_user)))).status == 401
    # other tenants unaffected
    assert (await client.get("/api/v1/me", headers=world.headers("north", "distributor"))).status == 200
    again = await client.post(f"{BASE}/{east.distributor.id}/activate", headers=world.headers("", "admin"))
    assert (await again.json())["status"] == "active"


async def test_list_filters_paging_and_xlsx_export(client) -> None:
    world = await make_world()
    h = world.headers("", "admin")
    for i in range(5):
        await client.post(BASE, json=body(name=f"分页测试{i}"), headers=h)
    page = await (
        await client.get(BASE, params={"q": "分页测试", "page_size": 2, "page": 2}, headers=h)
    ).json()
    assert page["total"] == 5 and len(page["items"]) == 2 and page["page"] == 2
    applying = await (await client.get(BASE, params={"status": "applying"}, headers=h)).json()
    assert applying["total"] == 5
    assert (await client.get(BASE, params={"page_size": 101}, headers=h)).status == 400
    resp = await client.get(BASE, params={"format": "xlsx", "region": "华东"}, headers=h)
    assert resp.status == 200 and "spreadsheetml" in resp.headers["Content-Type"]
    wb = load_workbook(io.BytesIO(await resp.read()), read_only=True)
    rows = list(wb.worksheets[0].iter_rows(values_only=True))
    wb.close()
    # header + 2 world + 5 new + 合计
    assert rows[0][:3] == ("ID", "名称", "统一社会信用代码") and len(rows) == 1 + 7 + 1
    assert rows[-1][0] == "合计"


async def test_sales_rep_must_be_a_sales_user(client) -> None:
    world = await make_world()
    admin2 = await make_user("admin")
    h = world.headers("", "admin")
    assert (await client.post(BASE, json=body(sales_rep_id=admin2.id), headers=h)).status == 400
    resp = await client.post(BASE, json=body(sales_rep_id=world.east.rep.id), headers=h)
    assert resp.status == 201 and (await resp.json())["sales_rep_id"] == world.east.rep.id


async def test_concurrent_creates_with_one_uscc_create_one(client) -> None:
    world = await make_world()
    data = body()
    resps = await asyncio.gather(
        *(
            client.post(BASE, json={**data, "name": f"并发{i}"}, headers=world.headers("", "admin"))
            for i in range(20)
        )
    )
    assert sorted(r.status for r in resps) == [201] + [400] * 19
    assert await Distributor.filter(uscc=data["uscc"]).count() == 1


async def test_manager_cannot_put_a_rep_of_another_region_in_charge(client) -> None:
    """Naming a rep widens the rep's scope: a manager may name only reps it can see."""
    world = await make_world()
    east, north, h = world.east, world.north, world.headers("east", "manager")
    url = f"{BASE}/{east.distributor.id}"
    resp = await client.patch(url, json={"sales_rep_id": north.rep.id}, headers=h)
    assert resp.status == 404 and (await resp.json())["error"]["details"]["field"] == "sales_rep_id"
    assert (await client.post(BASE, json=body(sales_rep_id=north.rep.id), headers=h)).status == 404
    await east.distributor.refresh_from_db()
    assert east.distributor.sales_rep_id is None  # type: ignore[attr-defined]
    assert (await client.get(f"/api/v1/admin/users/{north.rep.id}", headers=h)).status == 404
    resp = await client.patch(url, json={"sales_rep_id": east.rep.id}, headers=h)
    assert resp.status == 200 and (await resp.json())["sales_rep_id"] == east.rep.id
