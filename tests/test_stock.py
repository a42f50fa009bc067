"""Stock: who sees which warehouses, admin adjustments and thresholds, the ledger check and
`qudao stock verify`."""

from __future__ import annotations

from typing import Any

from handlers.stock import verify_ledger
from models.audit import AuditLog
from models.base import MovementReason, UserRole
from models.stock import Stock, StockMovement
from models.user import SalesAssignment
from tests.cli_run import run_cli
from tests.factories import auth, make_distributor, make_product, make_stock, make_warehouse, token_for
from tests.factories_orders import assert_consistent, make_order, quick_user, stocked_product, world_state

API = "/api/v1"


async def _h(role: UserRole, **kw: Any) -> dict[str, str]:
    return auth(await token_for(await quick_user(role, **kw)))


async def _stock(client: Any, headers: dict, query: str = "") -> tuple[int, Any]:
    resp = await client.get(f"{API}/stock{query}", headers=headers)
    return resp.status, await resp.json()


async def test_stock_rows_visible_per_scope(client) -> None:
    p = await make_product()
    parent = await make_distributor(region="华东")
    child = await make_distributor(region="华东", level=2, parent=parent)
    other = await make_distributor(region="华北")
    company = await make_warehouse(region="华南")
    closed = await make_warehouse(region="华南", active=False)
    own = await make_warehouse(region="华东", distributor=parent)
    childs = await make_warehouse(region="华东", distributor=child)
    others = await make_warehouse(region="华北", distributor=other)
    for wh in (company, closed, own, childs, others):
        await make_stock(wh, p, on_hand=10)
    await Stock.filter(warehouse=own).update(reserved=4)

    async def seen(headers: dict) -> set[int]:
        status, body = await _stock(client, headers, "?page_size=100")
        assert status == 200
        return {r["warehouse_id"] for r in body["items"]}

    parent_h = await _h(UserRole.DISTRIBUTOR, distributor=parent)
    assert await seen(parent_h) == {company.id, own.id, childs.id}
    assert await seen(await _h(UserRole.DISTRIBUTOR, distributor=child)) == {company.id, childs.id}
    rep = await quick_user(UserRole.SALES)
    await SalesAssignment.create(user=rep, distributor=other)
    assert await seen(auth(await token_for(rep))) == {company.id, others.id}
    assert await seen(await _h(UserRole.MANAGER, regions=["华北"])) == {company.id, others.id}
    assert await seen(await _h(UserRole.ADMIN)) == {company.id, closed.id, own.id, childs.id, others.id}
    # The row shape, and filters.
    status, body = await _stock(client, parent_h, f"?warehouse_id={own.id}&sku={p.sku}")
    assert body["items"] == [
        {
            "sku": p.sku,
            "product_id": p.id,
            "product_name": p.name,
            "warehouse_id": own.id,
            "warehouse_code": own.code,
            "warehouse_name": own.name,
            "on_hand": 10,
            "reserved": 4,
            "available": 6,
        }
    ]
    assert (await _stock(client, parent_h, "?sku=NOPE"))[1]["total"] == 0
    # Another distributor's warehouse is not found, never forbidden.
    status, body = await _stock(client, parent_h, f"?warehouse_id={others.id}")
    assert status == 404 and body["error"]["code"] == "not_found"
    assert (await _stock(client, parent_h, f"?warehouse_id={closed.id}"))[0] == 404


async def test_stock_sku_filter_ignores_case_and_width(client) -> None:
    p = await make_product(sku="LWG-012")
    other = await make_product(sku="LWG-0120")
    wh = await make_warehouse()
    await make_stock(wh, p, on_hand=5)
    await make_stock(wh, other, on_hand=7)
    h = await _h(UserRole.ADMIN)
    for sku in ("LWG-012", "lwg-012", " Lwg-012 ", "ＬＷＧ－０１２"):
        status, body = await _stock(client, h, f"?sku={sku}")
        assert status == 200 and [r["product_id"] for r in body["items"]] == [p.id], sku


async def test_stock_pagination(client) -> None:
    wh = await make_warehouse()
    for _ in range(5):
        await make_stock(wh, await make_product(), on_hand=1)
    admin = await _h(UserRole.ADMIN)
    status, body = await _stock(client, admin, "?page_size=2&page=2")
    assert status == 200 and body["total"] == 5 and len(body["items"]) == 2
    status, body = await _stock(client, admin, "?page_size=2&page=9")  # past the end: still the total
    assert status == 200 and body["total"] == 5 and body["items"] == []


async def test_adjustments_inbound_outbound_stocktake(client) -> None:
    wh = await make_warehouse(region="华东")
    p = await make_product()
    mgr = await _h(UserRole.MANAGER, regions=["华东"])

    async def adjust(body: dict, headers: dict = mgr) -> tuple[int, Any]:
        resp = await client.post(f"{API}/admin/stock-adjustments", json=body, headers=headers)
        return resp.status, await resp.json()

    base = {"warehouse_id": wh.id, "sku": p.sku}
    status, body = await adjust({**base, "delta": 20, "reason": "inbound", "note": "采购入库"})
    assert status == 201, body
    assert (body["on_hand"], body["reserved"], body["available"], body["delta"]) == (20, 0, 20, 20)
    await make_price_list_for(p)
    await make_order(await make_distributor(region="华东"), product=p, qty=6)  # reserves 6
    assert (await adjust({**base, "delta": -10, "reason": "outbound"}))[0] == 201
    before = await world_state()
    status, body = await adjust({**base, "delta": -5, "reason": "stocktake"})  # 10 - 5 < 6 reserved
    assert status == 409 and body["error"]["code"] == "insufficient_stock"
    assert await world_state() == before
    assert (await adjust({**base, "delta": -4, "reason": "stocktake"}))[0] == 201
    row = await Stock.get(warehouse=wh, product=p)
    assert (row.on_hand, row.reserved) == (6, 6)
    for bad, field in [
        ({**base, "delta": 0, "reason": "inbound"}, "delta"),
        ({**base, "delta": -1, "reason": "inbound"}, "delta"),
        ({**base, "delta": 1, "reason": "outbound"}, "delta"),
        ({**base, "delta": 1, "reason": "reserve"}, "reason"),
        ({**base, "delta": 1.5, "reason": "inbound"}, "delta"),
        ({**base, "delta": 10**9, "reason": "inbound"}, "delta"),
        ({**base, "sku": "NOPE", "delta": 1, "reason": "inbound"}, "sku"),
        ({**base, "delta": 1, "reason": "inbound", "on_hand": 5}, "on_hand"),
    ]:
        before = await world_state()
        status, body = await adjust(bad)
        assert status == 400, (bad, body)
        details = body["error"]["details"]
        assert field in [f["field"] for f in details.get("fields", [])] or details.get("field") == field, body
        assert await world_state() == before
    assert await AuditLog.filter(action="stock.inbound").exists()
    # Outside the manager's regions: 404; sales: 403.
    north = await make_warehouse(region="华北")
    assert (await adjust({"warehouse_id": north.id, "sku": p.sku, "delta": 1, "reason": "inbound"}))[0] == 404
    assert (await adjust({**base, "delta": 1, "reason": "inbound"}, await _h(UserRole.SALES)))[0] == 403
    # The list: newest first, manual movements only, within the manager's regions.
    await adjust(
        {"warehouse_id": north.id, "sku": p.sku, "delta": 3, "reason": "inbound"}, await _h(UserRole.ADMIN)
    )
    listed = await (await client.get(f"{API}/admin/stock-adjustments", headers=mgr)).json()
    assert [(x["reason"], x["delta"]) for x in listed["items"]] == [
        ("stocktake", -4),
        ("outbound", -10),
        ("inbound", 20),
    ]
    north_list = await client.get(f"{API}/admin/stock-adjustments?warehouse_id={north.id}", headers=mgr)
    assert north_list.status == 404
    await assert_consistent()


async def make_price_list_for(p: Any) -> None:
    from tests.factories import make_price_list

    await make_price_list({p: "1"})


async def test_thresholds_upsert_partially(client) -> None:
    wh = await make_warehouse(region="华东")
    p = await make_product()
    mgr = await _h(UserRole.MANAGER, regions=["华东"])

    async def put(body: dict) -> tuple[int, Any]:
        resp = await client.put(f"{API}/admin/stock-thresholds", json=body, headers=mgr)
        return resp.status, await resp.json()

    status, body = await put({"warehouse_id": wh.id, "sku": p.sku, "min_qty": 10, "max_qty": 500})
    assert status == 200 and (body["min_qty"], body["max_qty"], body["reorder_point"]) == (10, 500, None)
    status, body = await put({"warehouse_id": wh.id, "sku": p.sku, "reorder_point": 20, "max_qty": None})
    assert (body["min_qty"], body["max_qty"], body["reorder_point"]) == (10, None, 20)
    assert (await put({"warehouse_id": wh.id, "sku": p.sku, "max_qty": 5}))[0] == 400  # below min
    assert (await put({"warehouse_id": wh.id, "sku": p.sku, "min_qty": -1}))[0] == 400
    other = await make_warehouse(region="华北")
    assert (await put({"warehouse_id": other.id, "sku": p.sku, "min_qty": 1}))[0] == 404
    listed = await (await client.get(f"{API}/admin/stock-thresholds", headers=mgr)).json()
    assert [(x["sku"], x["min_qty"], x["cover_days"]) for x in listed["items"]] == [(p.sku, 10, None)]
    assert await StockMovement.all().count() == 0  # thresholds are not stock changes


async def test_verify_ledger_finds_drift(client) -> None:
    wh = await make_warehouse()
    p = await stocked_product(wh, 30)
    await make_order(await make_distributor(), product=p, qty=4, status="shipped")
    assert await verify_ledger() == []
    await Stock.filter(warehouse=wh, product=p).update(on_hand=999)
    [drift] = await verify_ledger()
    assert (drift.warehouse_id, drift.product_id, drift.on_hand, drift.ledger_on_hand) == (
        wh.id,
        p.id,
        999,
        26,
    )
    # A movement whose balance-after lies is drift too, even when the sums agree.
    await Stock.filter(warehouse=wh, product=p).update(on_hand=26)
    last = await StockMovement.filter(product=p).order_by("-id").first()
    await StockMovement.filter(id=last.id).update(on_hand_after=last.on_hand_after + 1)
    assert len(await verify_ledger()) == 1
    orphan_wh = await make_warehouse()
    await StockMovement.create(
        warehouse=orphan_wh,
        product=p,
        reason=MovementReason.INBOUND,
        delta_on_hand=5,
        delta_reserved=0,
        on_hand_after=5,
        reserved_after=0,
    )
    assert {d.warehouse_id for d in await verify_ledger()} == {wh.id, orphan_wh.id}


async def test_cli_stock_verify_exit_codes(client, config) -> None:
    wh = await make_warehouse()
    p = await stocked_product(wh, 7)

    def run():  # type: ignore[no-untyped-def]
        return run_cli(config, "stock", "verify")

    ok = run()
    assert ok.returncode == 0 and "match" in ok.stdout, ok.stderr
    await Stock.filter(warehouse=wh, product=p).update(on_hand=3)
    bad = run()
    assert bad.returncode == 1 and f"DRIFT warehouse={wh.id} product={p.id}" in bad.stdout
