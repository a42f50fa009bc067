"""Catalog: fuzzy search (name, pinyin, initials, SKU), the caller's own price (price list
rules + promotions), availability over the warehouses the caller's orders draw from."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from core.clock import today
from models.base import ProductStatus, PromotionKind, UserRole
from models.product import Product, Promotion
from models.user import SalesAssignment
from tests.factories import (
    auth,
    make_distributor,
    make_price_list,
    make_product,
    make_stock,
    make_warehouse,
    token_for,
)
from tests.factories_orders import quick_user

API = "/api/v1"


async def _get(client: Any, path: str, headers: dict) -> tuple[int, Any]:
    resp = await client.get(f"{API}{path}", headers=headers)
    return resp.status, await resp.json()


async def _headers(role: UserRole, **kw: Any) -> dict[str, str]:
    return auth(await token_for(await quick_user(role, **kw)))


async def test_search_by_name_pinyin_initials_and_sku(client) -> None:
    rebar = await make_product(name="螺纹钢 HRB400E Φ12", sku="LWG-012", category="螺纹钢")
    pipe = await make_product(name="热镀锌钢管 DN20", sku="DXG-002", category="镀锌管")
    pvc = await make_product(name="PVC排水管 110 4米", sku="PVC-003", category="PVC管")
    h = await _headers(UserRole.ADMIN)
    cases = {
        "螺纹": {rebar.id},
        "luowen": {rebar.id},
        "LWG": {rebar.id},
        "lwg-012": {rebar.id},
        "rdxgg": {pipe.id},
        "dxg-002": {pipe.id},
        "ＰＶＣ": {pvc.id},
        "gang": {rebar.id, pipe.id},
        "管": {pipe.id, pvc.id},
        "nothing-like-this": set(),
    }
    for q, expected in cases.items():
        status, body = await _get(client, f"/products?q={q}", h)
        assert status == 200, body
        assert {p["id"] for p in body["items"]} == expected, q


async def test_search_uses_the_chat_matcher_best_first(client) -> None:
    """Numbers, initials with numbers and homophone typos find what chat finds, best first."""
    rebar12 = await make_product(name="螺纹钢 HRB400E Φ12", sku="LWG-012", category="螺纹钢")
    rebar16 = await make_product(name="螺纹钢 HRB400E Φ16", sku="LWG-016", category="螺纹钢")
    await make_product(name="热镀锌钢管 DN20", sku="DXG-002", category="镀锌管")
    admin = await _headers(UserRole.ADMIN)
    for q in ("螺纹钢12", "lwg12", "螺纹钢Φ12", "luowengang12"):
        status, body = await _get(client, f"/products?q={q}", admin)
        assert status == 200 and [p["id"] for p in body["items"]] == [rebar12.id], q
    _, body = await _get(client, "/products?q=罗纹钢", admin)
    assert {p["id"] for p in body["items"]} == {rebar12.id, rebar16.id} and body["total"] == 2
    # Paging walks the ranked list; the total is the number of matches.
    _, first = await _get(client, "/products?q=螺纹钢&page_size=1", admin)
    _, second = await _get(client, "/products?q=螺纹钢&page_size=1&page=2", admin)
    assert first["total"] == second["total"] == 2
    assert {first["items"][0]["id"], second["items"][0]["id"]} == {rebar12.id, rebar16.id}
    # Scope is unchanged: inactive products only for staff; the category still filters.
    from handlers.product_match import catalogue_changed

    await Product.filter(id=rebar16.id).update(status=ProductStatus.INACTIVE)
    await catalogue_changed()  # a queryset update bypasses the save signal
    dist = await _headers(UserRole.DISTRIBUTOR, distributor=await make_distributor())
    assert [p["id"] for p in (await _get(client, "/products?q=螺纹钢", dist))[1]["items"]] == [rebar12.id]
    assert (await _get(client, "/products?q=螺纹钢", admin))[1]["total"] == 2
    assert (await _get(client, "/products?q=钢&category=镀锌管", admin))[1]["total"] == 1


async def test_category_filter_and_pagination(client) -> None:
    for i in range(5):
        await make_product(name=f"角钢 {i}", category="角钢")
    await make_product(name="水泥", category="水泥")
    h = await _headers(UserRole.ADMIN)
    status, body = await _get(client, "/products?category=角钢&page_size=2&page=3", h)
    assert status == 200 and body["total"] == 5 and len(body["items"]) == 1 and body["page"] == 3
    assert all(p["category"] == "角钢" for p in body["items"])
    assert (await _get(client, "/products?page_size=101", h))[0] == 400


async def test_price_list_rules_priority_then_specificity_then_validity(client) -> None:
    p = await make_product()
    q = await make_product()
    day = today()
    await make_price_list({p: "100", q: "50"})  # base: any level, any region
    await make_price_list({p: "90"}, level=1, region="华东")  # more specific, same priority
    await make_price_list({p: "95", q: "45"}, level=1, priority=5)  # higher priority wins
    await make_price_list(
        {p: "1"}, priority=99, valid_from=day - timedelta(days=30), valid_to=day - timedelta(days=1)
    )
    await make_price_list({p: "2"}, priority=99, valid_from=day + timedelta(days=1))
    await make_price_list({q: "40"}, level=2, region="华北", priority=1)
    east1 = await make_distributor(level=1, region="华东")
    north2 = await make_distributor(level=2, region="华北")
    south1 = await make_distributor(level=1, region="华南")

    async def prices(headers: dict, extra: str = "") -> dict[int, str | None]:
        _, body = await _get(client, f"/products?page_size=100{extra}", headers)
        return {x["id"]: x["price"] for x in body["items"] if x["id"] in (p.id, q.id)}

    east_h = await _headers(UserRole.DISTRIBUTOR, distributor=east1)
    assert await prices(east_h) == {p.id: "95.00", q.id: "45.00"}
    assert await prices(await _headers(UserRole.DISTRIBUTOR, distributor=north2)) == {
        p.id: "100.00",
        q.id: "40.00",
    }
    assert await prices(await _headers(UserRole.DISTRIBUTOR, distributor=south1)) == {
        p.id: "95.00",
        q.id: "45.00",
    }
    # Without the priority-5 list, the more specific 华东 list beats the base list.
    await make_price_list({p: "70"}, level=1, region="华东", priority=5)
    assert (await prices(east_h))[p.id] == "70.00"
    # Staff and reps without a distributor: the level-1 base price (region-less lists only).
    admin_h = await _headers(UserRole.ADMIN)
    assert await prices(admin_h) == {p.id: "95.00", q.id: "45.00"}
    # A rep may ask for an assigned distributor's price; another's is 404.
    rep = await quick_user(UserRole.SALES)
    await SalesAssignment.create(user=rep, distributor=north2)
    rep_h = auth(await token_for(rep))
    assert await prices(rep_h, f"&distributor_id={north2.id}") == {p.id: "100.00", q.id: "40.00"}
    assert (await _get(client, f"/products?distributor_id={east1.id}", rep_h))[0] == 404
    assert (await _get(client, f"/products/{p.id}?distributor_id={east1.id}", rep_h))[0] == 404
    status, one = await _get(client, f"/products/{p.id}?distributor_id={north2.id}", rep_h)
    assert status == 200 and one["price"] == "100.00"


async def test_product_without_a_price_shows_null(client) -> None:
    p = await make_product()
    status, body = await _get(client, f"/products/{p.id}", await _headers(UserRole.ADMIN))
    assert status == 200 and body["price"] is None and body["list_price"] is None


async def test_promotions_show_in_the_price(client) -> None:
    p = await make_product(category="水泥")
    g = await make_product(category="石膏板")
    await make_price_list({p: "28.00", g: "26.00"})
    day = today()
    await Promotion.create(
        name="水泥九五折",
        kind=PromotionKind.DISCOUNT,
        category="水泥",
        discount_rate=Decimal("0.95"),
        valid_from=day,
    )
    await Promotion.create(
        name="华南专享八折",
        kind=PromotionKind.DISCOUNT,
        category="水泥",
        region="华南",
        discount_rate=Decimal("0.8"),
        valid_from=day,
    )
    await Promotion.create(
        name="停用",
        kind=PromotionKind.DISCOUNT,
        product=p,
        discount_rate=Decimal("0.5"),
        valid_from=day,
        active=False,
    )
    await Promotion.create(
        name="买十送一", kind=PromotionKind.BUY_N_GET_M, product=g, buy_n=10, get_m=1, valid_from=day
    )
    d = await make_distributor(region="华东")
    h = await _headers(UserRole.DISTRIBUTOR, distributor=d)
    _, cement = await _get(client, f"/products/{p.id}", h)
    assert (cement["price"], cement["list_price"], cement["promotion"]["discount_rate"]) == (
        "26.60",
        "28.00",
        "0.9500",
    )
    _, board = await _get(client, f"/products/{g.id}", h)
    assert board["price"] == "26.00" and board["promotion"] == {
        "name": "买十送一",
        "valid_to": None,
        "discount_rate": None,
        "buy_n": 10,
        "get_m": 1,
    }


async def test_availability_counts_the_warehouses_orders_draw_from(client) -> None:
    p = await make_product()
    await make_price_list({p: "1"})
    d = await make_distributor(region="华东")
    other = await make_distributor(region="华东")
    company = await make_warehouse(region="华北")
    own = await make_warehouse(region="华东", distributor=d)
    foreign = await make_warehouse(region="华东", distributor=other)
    inactive = await make_warehouse(region="华东", active=False)
    for wh, qty in ((company, 10), (own, 5), (foreign, 1000), (inactive, 1000)):
        await make_stock(wh, p, on_hand=qty)
    _, body = await _get(client, f"/products/{p.id}", await _headers(UserRole.DISTRIBUTOR, distributor=d))
    assert body["available"] == 15
    _, body = await _get(client, f"/products/{p.id}", await _headers(UserRole.ADMIN))
    assert body["available"] == 10  # base view: active company warehouses


async def test_inactive_products_are_hidden_from_distributors(client) -> None:
    p = await make_product(status=ProductStatus.INACTIVE)
    d = await make_distributor()
    h = await _headers(UserRole.DISTRIBUTOR, distributor=d)
    assert (await _get(client, f"/products/{p.id}", h))[0] == 404
    _, body = await _get(client, "/products", h)
    assert p.id not in [x["id"] for x in body["items"]]
    status, body = await _get(client, f"/products/{p.id}", await _headers(UserRole.ADMIN))
    assert status == 200 and body["status"] == "inactive"
    assert (await _get(client, "/products/999999", h))[0] == 404


async def test_find_products_for_chat(client) -> None:
    from handlers.actor import SYSTEM
    from handlers.catalog import find_products

    p = await make_product(name="海螺水泥 P.O 42.5 50kg")
    found = await find_products(SYSTEM, "haiLuo")
    assert [x.id for x in found] == [p.id]
