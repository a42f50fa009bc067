"""Admin catalogue, warehouses and contracts: computed pinyin, price lists and promotions by
region, manager limits, validation, audit."""

from __future__ import annotations

import pytest

from models.audit import AuditLog
from models.contract import Contract
from models.product import PriceList, PriceListItem, Product, Promotion
from tests import factories
from tests.bola import cached_hash
from tests.factories import make_world

API = "/api/v1/admin"


@pytest.fixture(autouse=True)
def _fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factories, "hash_password", cached_hash)


async def test_product_create_computes_pinyin_and_update_recomputes(client) -> None:
    world = await make_world()
    h = world.headers("", "admin")
    resp = await client.post(
        f"{API}/products",
        json={"sku": "LWG-12", "name": "螺纹钢 HRB400E", "category": "螺纹钢", "unit": "吨"},
        headers=h,
    )
    assert resp.status == 201
    p = await resp.json()
    assert p["pinyin"] == "luowenganghrb400e" and p["initials"] == "lwghrb400e" and p["status"] == "active"
    resp = await client.patch(
        f"{API}/products/{p['id']}", json={"name": "盘螺", "status": "inactive"}, headers=h
    )
    out = await resp.json()
    assert out["pinyin"] == "panluo" and out["status"] == "inactive"
    found = await (await client.get(f"{API}/products", params={"q": "pl"}, headers=h)).json()
    assert [x["sku"] for x in found["items"]] == ["LWG-12"]
    log = await AuditLog.get(action="product.update", entity_id=str(p["id"]))
    assert log.before["name"] == "螺纹钢 HRB400E" and log.after["name"] == "盘螺"  # type: ignore[index]


@pytest.mark.parametrize(
    "body",
    [
        {"sku": "A B", "name": "x", "category": "c", "unit": "u"},
        {"sku": "A", "name": "", "category": "c", "unit": "u"},
        {"sku": "A", "name": "x", "category": "c", "unit": "u", "price": "1.00"},
        {"sku": "A", "name": "x", "category": "c", "unit": "u", "pinyin": "x"},
        {"sku": "A", "name": "x", "category": "c"},
    ],
)
async def test_product_bad_input_is_400(client, body) -> None:
    world = await make_world()
    resp = await client.post(f"{API}/products", json=body, headers=world.headers("", "admin"))
    assert resp.status == 400
    assert not await Product.filter(sku="A").exists()


async def test_product_duplicate_sku_400_and_manager_write_403(client) -> None:
    world = await make_world()
    body = {"sku": world.product.sku, "name": "x", "category": "c", "unit": "u"}
    assert (await client.post(f"{API}/products", json=body, headers=world.headers("", "admin"))).status == 400
    body["sku"] = "NEW-1"
    assert (
        await client.post(f"{API}/products", json=body, headers=world.headers("east", "manager"))
    ).status == 403
    assert (
        await client.get(f"{API}/products/{world.product.id}", headers=world.headers("east", "manager"))
    ).status == 200


async def test_price_list_create_get_update_items(client) -> None:
    world = await make_world()
    h = world.headers("east", "manager")
    body = {
        "name": "华东一级价",
        "level": 1,
        "region": "华东",
        "valid_from": "2026-01-01",
        "valid_to": "2026-12-31",
        "items": [{"sku": world.product.sku, "price": "3850.5"}],
    }
    resp = await client.post(f"{API}/price-lists", json=body, headers=h)
    assert resp.status == 201, await resp.text()
    pl = await resp.json()
    assert pl["items"] == [{"sku": world.product.sku, "product_id": world.product.id, "price": "3850.50"}]
    resp = await client.patch(
        f"{API}/price-lists/{pl['id']}",
        json={"items": [{"sku": world.product.sku, "price": 4000}]},
        headers=h,
    )
    assert (await resp.json())["items"][0]["price"] == "4000.00"
    assert await PriceListItem.filter(price_list_id=pl["id"]).count() == 1
    log = await AuditLog.get(action="price_list.update", entity_id=str(pl["id"]))
    assert log.after["items"] == [{"sku": world.product.sku, "price": "4000.00"}]  # type: ignore[index]
    assert (
        await client.get(f"{API}/price-lists/{pl['id']}", headers=world.headers("north", "manager"))
    ).status == 404


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"region": "华北"}, 404),  # outside the manager's regions
        ({"region": None}, 403),  # every region: admin only
        ({"items": [{"sku": "NOPE", "price": "1.00"}]}, 400),
        ({"items": [{"sku": "X", "price": 1.5}]}, 400),  # float money
        ({"items": [{"sku": "X", "price": "-1"}]}, 400),
        ({"items": []}, 400),
        ({"valid_to": "2025-01-01"}, 400),
        ({"level": 3}, 400),
    ],
)
async def test_price_list_bad_input(client, change, status) -> None:
    world = await make_world()
    body = {
        "name": "x",
        "region": "华东",
        "valid_from": "2026-01-01",
        "items": [{"sku": world.product.sku, "price": "1"}],
    }
    body.update(change)
    before = await PriceList.all().count()
    resp = await client.post(f"{API}/price-lists", json=body, headers=world.headers("east", "manager"))
    assert resp.status == status, await resp.text()
    assert await PriceList.all().count() == before


async def test_promotions_create_validate_and_patch(client) -> None:
    world = await make_world()
    h = world.headers("", "admin")
    disc = {
        "name": "九五折",
        "kind": "discount",
        "discount_rate": "0.95",
        "category": "螺纹钢",
        "valid_from": "2026-01-01",
    }
    resp = await client.post(f"{API}/promotions", json=disc, headers=h)
    assert resp.status == 201, await resp.text()
    promo = await resp.json()
    assert promo["discount_rate"] == "0.9500" and promo["region"] is None
    bad = [
        {**disc, "discount_rate": "1.5"},
        {**disc, "discount_rate": None},
        {**disc, "buy_n": 3},
        {"name": "买三送一", "kind": "buy_n_get_m", "buy_n": 3, "valid_from": "2026-01-01"},
        {**disc, "sku": world.product.sku},  # sku and category
        {**disc, "sku": "NOPE", "category": None},
    ]
    for body in bad:
        assert (await client.post(f"{API}/promotions", json=body, headers=h)).status == 400, body
    resp = await client.patch(f"{API}/promotions/{promo['id']}", json={"active": False}, headers=h)
    assert (await resp.json())["active"] is False
    resp = await client.patch(f"{API}/promotions/{promo['id']}", json={"buy_n": 2}, headers=h)
    assert resp.status == 400
    assert await Promotion.all().count() == 1
    # an every-region promotion is readable by managers but not writable
    mh = world.headers("east", "manager")
    assert (await client.get(f"{API}/promotions/{promo['id']}", headers=mh)).status == 200
    assert (
        await client.patch(f"{API}/promotions/{promo['id']}", json={"active": True}, headers=mh)
    ).status == 404


async def test_warehouses_create_scope_and_duplicates(client) -> None:
    world = await make_world()
    mh = world.headers("east", "manager")
    body = {"code": "WH-NEW", "name": "新仓", "region": "华东", "distributor_id": world.east.child.id}
    resp = await client.post(f"{API}/warehouses", json=body, headers=mh)
    assert resp.status == 201
    assert (await client.post(f"{API}/warehouses", json=body, headers=mh)).status == 400  # duplicate code
    other = {**body, "code": "WH-N2", "distributor_id": world.north.distributor.id}
    assert (await client.post(f"{API}/warehouses", json=other, headers=mh)).status == 404
    wid = (await resp.json())["id"]
    resp = await client.patch(f"{API}/warehouses/{wid}", json={"active": False}, headers=mh)
    assert (await resp.json())["active"] is False
    listed = await (await client.get(f"{API}/warehouses", params={"company": "false"}, headers=mh)).json()
    assert {w["code"] for w in listed["items"]} == {"WH-NEW", world.east.warehouse.code}


async def test_contracts_create_update_terminate(client) -> None:
    world = await make_world()
    mh = world.headers("east", "manager")
    body = {
        "distributor_id": world.east.distributor.id,
        "number": "HT-2026-001",
        "start_date": "2026-01-01",
        "end_date": "2026-12-31",
        "target_amount": "5000000.00",
    }
    resp = await client.post(f"{API}/contracts", json=body, headers=mh)
    assert resp.status == 201, await resp.text()
    c = await resp.json()
    assert c["status"] == "active" and c["target_amount"] == "5000000.00"
    assert (await client.post(f"{API}/contracts", json=body, headers=mh)).status == 400  # duplicate number
    bad_dates = {**body, "number": "HT-2", "end_date": "2025-12-31"}
    assert (await client.post(f"{API}/contracts", json=bad_dates, headers=mh)).status == 400
    north = {**body, "number": "HT-3", "distributor_id": world.north.distributor.id}
    assert (await client.post(f"{API}/contracts", json=north, headers=mh)).status == 404
    resp = await client.patch(f"{API}/contracts/{c['id']}", json={"end_date": "2027-06-30"}, headers=mh)
    assert (await resp.json())["end_date"] == "2027-06-30"
    resp = await client.patch(f"{API}/contracts/{c['id']}", json={"end_date": "2025-06-30"}, headers=mh)
    assert resp.status == 400
    resp = await client.post(f"{API}/contracts/{c['id']}/terminate", json={}, headers=mh)
    assert (await resp.json())["status"] == "terminated"
    assert (await client.patch(f"{API}/contracts/{c['id']}", json={"number": "X"}, headers=mh)).status == 409
    actions = await AuditLog.filter(entity="contract").order_by("id").values_list("action", flat=True)
    assert actions == ["contract.create", "contract.update", "contract.terminate"]
    assert await Contract.all().count() == 1
