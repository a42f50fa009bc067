"""BOLA cases for the admin API of issue 4: distributors, users, warehouses, contracts,
products, price lists, promotions and imports. East objects are in region 华东: the admin
and east's manager manage them; north's manager gets 404; sales/distributor users 403."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from models.base import DistributorStatus, UserRole
from models.contract import Contract
from models.distributor import Distributor
from models.product import Promotion
from models.user import User
from tests.bola import Case, Probe
from tests.factories import make_distributor, make_price_list, make_user, make_warehouse, n, uscc

STAFF = frozenset({"admin", "east.manager"})
BOTH_MANAGERS = frozenset({"admin", "east.manager", "north.manager"})
ADMIN = "/admin"


def _uid() -> str:
    return uuid.uuid4().hex[:10]


async def _new_east(world: Any, **kw: Any) -> Distributor:
    return await make_distributor(region=world.east.region, **kw)


async def _new_east_user(world: Any) -> User:
    return await make_user(UserRole.DISTRIBUTOR, distributor=world.east.distributor, password_hash=None)


async def _contract(world: Any) -> Contract:
    return await Contract.create(
        distributor=world.east.distributor,
        number=f"HT-{_uid()}",
        start_date=date(2026, 1, 1),
        end_date=date(2026, 12, 31),
        status="active",
    )


async def _dist_status(world: Any, probe: Probe) -> Any:
    return (await Distributor.get(id=probe.extra["id"])).status


async def _user_status(world: Any, probe: Probe) -> Any:
    u = await User.get(id=probe.extra["id"])
    return (u.status, u.display_name)


async def _counts(world: Any, probe: Probe) -> Any:
    return (await Distributor.all().count(), await User.all().count(), await Contract.all().count())


# --- distributors ------------------------------------------------------------------------------------


async def create_distributor(world, client) -> Probe:  # type: ignore[no-untyped-def]
    body = {"name": f"BOLA{n()}", "uscc": uscc(), "level": 1, "region": "华东", "payment_terms": "prepay"}
    return Probe(f"{ADMIN}/distributors", body=body)


async def list_distributors(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe(f"{ADMIN}/distributors?page_size=100", marker=world.east.distributor.id)


async def get_distributor(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe(f"{ADMIN}/distributors/{world.east.distributor.id}")


async def patch_distributor(world, client) -> Probe:  # type: ignore[no-untyped-def]
    d = await _new_east(world)
    return Probe(f"{ADMIN}/distributors/{d.id}", body={"name": "改名"}, extra={"id": d.id})


async def activate_distributor(world, client) -> Probe:  # type: ignore[no-untyped-def]
    d = await _new_east(world, status=DistributorStatus.APPLYING)
    return Probe(f"{ADMIN}/distributors/{d.id}/activate", body={}, extra={"id": d.id})


async def suspend_distributor(world, client) -> Probe:  # type: ignore[no-untyped-def]
    d = await _new_east(world)
    return Probe(f"{ADMIN}/distributors/{d.id}/suspend", body={}, extra={"id": d.id})


# --- users -------------------------------------------------------------------------------------------


async def create_user(world, client) -> Probe:  # type: ignore[no-untyped-def]
    body = {"display_name": "新用户", "role": "distributor", "distributor_id": world.east.distributor.id}
    return Probe(f"{ADMIN}/users", body=body)


async def list_users(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe(f"{ADMIN}/users?page_size=100", marker=world.east.dist_user.id)


async def get_user(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe(f"{ADMIN}/users/{world.east.dist_user.id}")


async def patch_user(world, client) -> Probe:  # type: ignore[no-untyped-def]
    u = await _new_east_user(world)
    return Probe(f"{ADMIN}/users/{u.id}", body={"display_name": "改名"}, extra={"id": u.id})


async def suspend_user(world, client) -> Probe:  # type: ignore[no-untyped-def]
    u = await _new_east_user(world)
    return Probe(f"{ADMIN}/users/{u.id}/suspend", body={}, extra={"id": u.id})


async def activate_user(world, client) -> Probe:  # type: ignore[no-untyped-def]
    u = await _new_east_user(world)
    u.status = "suspended"  # type: ignore[assignment]
    await u.save()
    return Probe(f"{ADMIN}/users/{u.id}/activate", body={}, extra={"id": u.id})


async def invite_code(world, client) -> Probe:  # type: ignore[no-untyped-def]
    u = await _new_east_user(world)
    return Probe(f"{ADMIN}/users/{u.id}/invite-codes", body={}, extra={"id": u.id})


# --- warehouses ------------------------------------------------------------------------------------


async def create_warehouse(world, client) -> Probe:  # type: ignore[no-untyped-def]
    body = {
        "code": f"WH-{_uid()}",
        "name": "新仓",
        "region": "华东",
        "distributor_id": world.east.distributor.id,
    }
    return Probe(f"{ADMIN}/warehouses", body=body)


async def list_warehouses(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe(f"{ADMIN}/warehouses?page_size=100", marker=world.east.warehouse.id)


async def get_warehouse(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe(f"{ADMIN}/warehouses/{world.east.warehouse.id}")


async def patch_warehouse(world, client) -> Probe:  # type: ignore[no-untyped-def]
    w = await make_warehouse(region="华东", distributor=world.east.distributor)
    return Probe(f"{ADMIN}/warehouses/{w.id}", body={"name": "改名"})


# --- contracts ---------------------------------------------------------------------------------------


async def create_contract(world, client) -> Probe:  # type: ignore[no-untyped-def]
    body = {
        "distributor_id": world.east.distributor.id,
        "number": f"HT-{_uid()}",
        "start_date": "2026-01-01",
        "end_date": "2026-12-31",
        "target_amount": "1000000",
    }
    return Probe(f"{ADMIN}/contracts", body=body)


async def list_contracts(world, client) -> Probe:  # type: ignore[no-untyped-def]
    c = await _contract(world)
    return Probe(f"{ADMIN}/contracts?page_size=100&distributor_id={world.east.distributor.id}", marker=c.id)


async def get_contract(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe(f"{ADMIN}/contracts/{(await _contract(world)).id}")


async def patch_contract(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe(f"{ADMIN}/contracts/{(await _contract(world)).id}", body={"end_date": "2027-06-30"})


async def terminate_contract(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe(f"{ADMIN}/contracts/{(await _contract(world)).id}/terminate", body={})


# --- catalogue ---------------------------------------------------------------------------------------


async def create_product(world, client) -> Probe:  # type: ignore[no-untyped-def]
    body = {"sku": f"B-{_uid()}", "name": "测试品", "category": "测试", "unit": "件"}
    return Probe(f"{ADMIN}/products", body=body)


async def list_products(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe(f"{ADMIN}/products?q={world.product.sku}", marker=world.product.id)


async def get_product(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe(f"{ADMIN}/products/{world.product.id}")


async def patch_product(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe(f"{ADMIN}/products/{world.product.id}", body={"spec": "Φ12"})


async def _east_price_list(world: Any) -> Any:
    return await make_price_list({world.product: "99.00"}, region="华东")


async def create_price_list(world, client) -> Probe:  # type: ignore[no-untyped-def]
    body = {
        "name": "华东价",
        "region": "华东",
        "valid_from": "2026-01-01",
        "items": [{"sku": world.product.sku, "price": "88.00"}],
    }
    return Probe(f"{ADMIN}/price-lists", body=body)


async def list_price_lists(world, client) -> Probe:  # type: ignore[no-untyped-def]
    pl = await _east_price_list(world)
    return Probe(f"{ADMIN}/price-lists?page_size=100", marker=pl.id)


async def get_price_list(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe(f"{ADMIN}/price-lists/{(await _east_price_list(world)).id}")


async def patch_price_list(world, client) -> Probe:  # type: ignore[no-untyped-def]
    pl = await _east_price_list(world)
    return Probe(
        f"{ADMIN}/price-lists/{pl.id}", body={"items": [{"sku": world.product.sku, "price": "77.50"}]}
    )


async def _east_promotion(world: Any) -> Promotion:
    return await Promotion.create(
        name="华东九五折", kind="discount", region="华东", discount_rate="0.95", valid_from=date(2026, 1, 1)
    )


async def create_promotion(world, client) -> Probe:  # type: ignore[no-untyped-def]
    body = {
        "name": "买十送一",
        "kind": "buy_n_get_m",
        "buy_n": 10,
        "get_m": 1,
        "region": "华东",
        "valid_from": "2026-01-01",
        "sku": world.product.sku,
    }
    return Probe(f"{ADMIN}/promotions", body=body)


async def list_promotions(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe(f"{ADMIN}/promotions?page_size=100", marker=(await _east_promotion(world)).id)


async def get_promotion(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe(f"{ADMIN}/promotions/{(await _east_promotion(world)).id}")


async def patch_promotion(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe(f"{ADMIN}/promotions/{(await _east_promotion(world)).id}", body={"active": False})


# --- import ------------------------------------------------------------------------------------------


async def import_distributors(world, client) -> Probe:  # type: ignore[no-untyped-def]
    csv = f"name,uscc,level,region\n导入{n()},{uscc()},1,华东\n".encode()
    return Probe(f"{ADMIN}/import/distributors", data=csv, headers={"Content-Type": "text/csv"})


OBJ = "object"
CASES: dict[tuple[str, str], Case] = {
    ("POST", "/admin/distributors"): Case(create_distributor, kind=OBJ, sees=STAFF, snapshot=_counts),
    ("GET", "/admin/distributors"): Case(list_distributors, sees=STAFF),
    ("GET", r"/admin/distributors/{id:\d+}"): Case(get_distributor, sees=STAFF),
    ("PATCH", r"/admin/distributors/{id:\d+}"): Case(patch_distributor, sees=STAFF),
    ("POST", r"/admin/distributors/{id:\d+}/activate"): Case(
        activate_distributor, sees=STAFF, snapshot=_dist_status
    ),
    ("POST", r"/admin/distributors/{id:\d+}/suspend"): Case(
        suspend_distributor, sees=STAFF, snapshot=_dist_status
    ),
    ("POST", "/admin/users"): Case(create_user, kind=OBJ, sees=STAFF, snapshot=_counts),
    ("GET", "/admin/users"): Case(list_users, sees=STAFF),
    ("GET", r"/admin/users/{id:\d+}"): Case(get_user, sees=STAFF),
    ("PATCH", r"/admin/users/{id:\d+}"): Case(patch_user, sees=STAFF, snapshot=_user_status),
    ("POST", r"/admin/users/{id:\d+}/suspend"): Case(suspend_user, sees=STAFF, snapshot=_user_status),
    ("POST", r"/admin/users/{id:\d+}/activate"): Case(activate_user, sees=STAFF, snapshot=_user_status),
    ("POST", r"/admin/users/{id:\d+}/invite-codes"): Case(invite_code, sees=STAFF),
    ("POST", "/admin/warehouses"): Case(create_warehouse, kind=OBJ, sees=STAFF),
    ("GET", "/admin/warehouses"): Case(list_warehouses, sees=STAFF),
    ("GET", r"/admin/warehouses/{id:\d+}"): Case(get_warehouse, sees=STAFF),
    ("PATCH", r"/admin/warehouses/{id:\d+}"): Case(patch_warehouse, sees=STAFF),
    ("POST", "/admin/contracts"): Case(create_contract, kind=OBJ, sees=STAFF, snapshot=_counts),
    ("GET", "/admin/contracts"): Case(list_contracts, sees=STAFF),
    ("GET", r"/admin/contracts/{id:\d+}"): Case(get_contract, sees=STAFF),
    ("PATCH", r"/admin/contracts/{id:\d+}"): Case(patch_contract, sees=STAFF),
    ("POST", r"/admin/contracts/{id:\d+}/terminate"): Case(terminate_contract, sees=STAFF),
    ("POST", "/admin/products"): Case(create_product, kind="self"),
    ("GET", "/admin/products"): Case(list_products, sees=BOTH_MANAGERS),
    ("GET", r"/admin/products/{id:\d+}"): Case(get_product, sees=BOTH_MANAGERS),
    ("PATCH", r"/admin/products/{id:\d+}"): Case(patch_product, sees=frozenset({"admin"})),
    ("POST", "/admin/price-lists"): Case(create_price_list, kind=OBJ, sees=STAFF),
    ("GET", "/admin/price-lists"): Case(list_price_lists, sees=STAFF),
    ("GET", r"/admin/price-lists/{id:\d+}"): Case(get_price_list, sees=STAFF),
    ("PATCH", r"/admin/price-lists/{id:\d+}"): Case(patch_price_list, sees=STAFF),
    ("POST", "/admin/promotions"): Case(create_promotion, kind=OBJ, sees=STAFF),
    ("GET", "/admin/promotions"): Case(list_promotions, sees=STAFF),
    ("GET", r"/admin/promotions/{id:\d+}"): Case(get_promotion, sees=STAFF),
    ("PATCH", r"/admin/promotions/{id:\d+}"): Case(patch_promotion, sees=STAFF),
    # a manager importing rows of another region: every row rejected (400), nothing imported
    ("POST", "/admin/import/{kind:products|stock|distributors}"): Case(
        import_distributors, kind=OBJ, sees=STAFF, expect={"north.manager": 400}, snapshot=_counts
    ),
}
