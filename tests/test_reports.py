"""Reports over HTTP: numbers, scope per role, and ?format=xlsx equal to the JSON rows."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from openpyxl import load_workbook

from core.clock import now
from handlers import words
from handlers.statements import close_period
from miniapp_api.xlsx import _cell
from models.base import Beneficiary, MovementReason, OrderStatus, ReceivableKind
from models.stock import StockMovement
from tests.factories import make_product, make_stock, make_world
from tests.factories_commission import (
    at,
    complete,
    fast_passwords,
    make_order,
    make_receivable,
    make_return,
    make_rule,
    returned,
)


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    fast_passwords(monkeypatch)


async def _get(client, path: str, headers: dict[str, str], **params: Any) -> Any:  # type: ignore[no-untyped-def]
    async with client.get(f"/api/v1/reports/{path}", params=params, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def _xlsx_matches(client, path: str, headers: dict[str, str], **params: Any) -> None:  # type: ignore[no-untyped-def]
    """The workbook opens with openpyxl and holds exactly the JSON's columns and rows."""
    report = await _get(client, path, headers, **params)
    async with client.get(
        f"/api/v1/reports/{path}", params={**params, "format": "xlsx"}, headers=headers
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/vnd.openxmlformats")
        data = await resp.read()
    wb = load_workbook(io.BytesIO(data), read_only=True)
    rows = list(wb.worksheets[0].iter_rows(values_only=True))
    wb.close()
    sheet = f"{path}-report"
    cols = report["columns"]
    assert list(rows[0]) == [words.header(c, sheet, report["params"]) for c in cols]
    n = len(report["rows"])
    got = [[_plain(v) for v in r] for r in rows[1 : 1 + n]]
    assert got == [[_plain(_cell(row[c], c, sheet)[0]) for c in cols] for row in report["rows"]]
    assert rows[-1][0] == "合计" and all(r[0] in ("小计", "合计") for r in rows[1 + n :])
    assert report["rows"], "compare a non-empty report"


def _plain(v: Any) -> Any:
    """Numbers compare by value (money is written as a number and may read back as a float)."""
    if isinstance(v, int | float | Decimal) and not isinstance(v, bool):
        return Decimal(str(v)).normalize()
    return v


async def _sales_world(w) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    wire = await make_product(category="线材", name="线材 HPB300")
    a = await make_order(
        w.east.distributor, [(w.product, 10, "100.00"), (wire, 5, "20.00")], completed_at=at("2026-03-10")
    )
    await make_return(a, {0: 2})
    b = await make_order(
        w.east.child, [(w.product, 3, "100.00")], status=OrderStatus.SHIPPED, completed_at=at("2026-03-20")
    )
    c = await make_order(
        w.north.distributor, [(wire, 10, "20.00")], status=OrderStatus.RECEIVED, completed_at=at("2026-04-02")
    )
    await make_order(
        w.east.distributor, [(w.product, 99, "100.00")], status=OrderStatus.PENDING_REVIEW, shipped=False
    )
    await make_order(
        w.east.distributor, [(w.product, 99, "100.00")], status=OrderStatus.CANCELLED, shipped=False
    )
    return {"a": a, "b": b, "c": c, "wire": wire}


RANGE = {"date_from": "2026-03-01", "date_to": "2026-04-30"}


async def test_sales_report_groups_and_scope(client) -> None:
    w = await make_world()
    await _sales_world(w)
    admin = w.headers("", "admin")
    rep = await _get(client, "sales", admin, group_by="distributor", **RANGE)
    assert [(r["key"], r["gross"], r["returns"], r["net"], r["qty"], r["orders"]) for r in rep["rows"]] == [
        (w.east.distributor.id, "1100.00", "200.00", "900.00", 13, 1),
        (w.east.child.id, "300.00", "0.00", "300.00", 3, 1),
        (w.north.distributor.id, "200.00", "0.00", "200.00", 10, 1),
    ]
    assert rep["totals"] == {
        "orders": 3,
        "qty": 26,
        "qty_by_unit": {"吨": 26},
        "gross": "1600.00",
        "returns": "200.00",
        "net": "1400.00",
    }
    months = await _get(client, "sales", admin, group_by="month", **RANGE)
    assert [(r["key"], r["net"]) for r in months["rows"]] == [("2026-03", "1200.00"), ("2026-04", "200.00")]
    cats = await _get(client, "sales", admin, group_by="category", **RANGE)
    assert {r["key"]: r["net"] for r in cats["rows"]} == {"螺纹钢": "1100.00", "线材": "300.00"}
    regions = await _get(client, "sales", admin, group_by="region", **RANGE)
    assert {r["key"]: r["net"] for r in regions["rows"]} == {"华东": "1200.00", "华北": "200.00"}
    products = await _get(
        client, "sales", admin, group_by="product", date_from="2026-04-01", date_to="2026-04-30"
    )
    assert [(r["label"], r["net"]) for r in products["rows"]] == [("线材 HPB300", "200.00")]
    seen = {
        who: {r["key"] for r in (await _get(client, "sales", w.headers(*who), **RANGE))["rows"]}
        for who in (
            ("east", "distributor"),
            ("east", "child"),
            ("east", "sales"),
            ("east", "manager"),
            ("north", "manager"),
        )
    }
    east, child, north = w.east.distributor.id, w.east.child.id, w.north.distributor.id
    assert seen == {
        ("east", "distributor"): {east, child},
        ("east", "child"): {child},
        ("east", "sales"): {east, child},
        ("east", "manager"): {east, child},
        ("north", "manager"): {north},
    }
    await _xlsx_matches(client, "sales", admin, group_by="distributor", **RANGE)
    for bad in (
        {"group_by": "colour"},
        {"date_from": "2026-05-01", "date_to": "2026-04-01"},
        {"format": "pdf"},
    ):
        async with client.get("/api/v1/reports/sales", params=bad, headers=admin) as resp:
            assert resp.status == 400


async def test_inventory_report_turnover_and_slow_movers(client) -> None:
    w = await make_world()
    fast, idle = await make_product(name="快销品"), await make_product(name="呆滞品")
    await make_stock(w.company_warehouse, fast, on_hand=56)
    await make_stock(w.company_warehouse, idle, on_hand=10)
    for delta, days_ago in ((-20, 3), (-8, 27), (-50, 40)):  # 28 units in the window; 50 too old
        mv = await StockMovement.create(
            warehouse=w.company_warehouse,
            product=fast,
            reason=MovementReason.SHIP,
            delta_on_hand=delta,
            delta_reserved=0,
            on_hand_after=56,
            reserved_after=0,
        )
        await StockMovement.filter(id=mv.id).update(created_at=now() - timedelta(days=days_ago))
    admin = w.headers("", "admin")
    rep = await _get(client, "inventory", admin)
    rows = {(r["warehouse_id"], r["sku"]): r for r in rep["rows"]}
    row = rows[(w.company_warehouse.id, fast.sku)]
    assert (row["shipped_28d"], row["turnover_days"], row["slow_mover"]) == (28, "56.0", False)
    row = rows[(w.company_warehouse.id, idle.sku)]
    assert (row["shipped_28d"], row["turnover_days"], row["slow_mover"]) == (0, None, True)
    slow = await _get(client, "inventory", admin, slow_only="true", slow_days=30)
    assert {r["sku"] for r in slow["rows"]} == {idle.sku, fast.sku, w.product.sku}  # 56 days > 30
    mine = await _get(client, "inventory", w.headers("east", "distributor"))
    assert {r["warehouse_id"] for r in mine["rows"]} == {w.company_warehouse.id, w.east.warehouse.id}
    await _xlsx_matches(client, "inventory", admin)


async def test_receivables_report_aging_and_scope(client) -> None:
    w = await make_world()
    e, n = w.east.distributor, w.north.distributor
    await make_receivable(e, ReceivableKind.SHIPMENT, "1000.00", at("2026-02-01"), due_at=at("2026-03-01"))
    await make_receivable(e, ReceivableKind.SHIPMENT, "500.00", at("2026-05-20"), due_at=at("2026-06-20"))
    await make_receivable(e, ReceivableKind.SHIPMENT, "200.00", at("2026-06-15"), due_at=at("2026-07-15"))
    await make_receivable(e, ReceivableKind.PAYMENT, "-300.00", at("2026-06-01"))
    await make_receivable(n, ReceivableKind.SHIPMENT, "100.00", at("2026-04-15"), due_at=at("2026-05-15"))
    admin = w.headers("", "admin")
    rep = await _get(client, "receivables", admin, as_of="2026-06-30")
    rows = {r["distributor_id"]: r for r in rep["rows"]}
    assert {k: rows[e.id][k] for k in ("balance", "current", "d1_30", "d31_60", "d61_90", "d90_plus")} == {
        "balance": "1400.00",
        "current": "200.00",
        "d1_30": "500.00",
        "d31_60": "0.00",
        "d61_90": "0.00",
        "d90_plus": "700.00",  # the payment settled the oldest debt first
    }
    assert rows[n.id]["d31_60"] == "100.00" and rep["totals"]["balance"] == "1500.00"
    for who, expected in (
        (("east", "manager"), {e.id}),
        (("east", "child"), set()),
        (("north", "distributor"), {n.id}),
    ):
        got = await _get(client, "receivables", w.headers(*who), as_of="2026-06-30")
        assert {r["distributor_id"] for r in got["rows"]} == expected, who
    await _xlsx_matches(client, "receivables", admin, as_of="2026-06-30")


async def test_commissions_report_and_dashboard(client) -> None:
    w = await make_world()
    await make_rule(scope_region="华东", rate="0.02")
    await make_rule(scope_region="华东", beneficiary=Beneficiary.DISTRIBUTOR, rate="0.01")
    order = await make_order(w.east.distributor, [(w.product, 10, "100.00")], completed_at=at("2026-03-10"))
    await complete(order)
    await returned(order, await make_return(order, {0: 1}))
    await close_period("2026-03")
    admin = w.headers("", "admin")
    rep = await _get(client, "commissions", admin, period_from="2026-03")
    assert [
        (r["beneficiary_type"], r["accrual"], r["reversal"], r["total"], r["statement_status"])
        for r in rep["rows"]
    ] == [
        ("distributor", "10.00", "-1.00", "9.00", "open"),
        ("user", "20.00", "-2.00", "18.00", "open"),
    ]
    seen = {
        who: [
            r["beneficiary_type"]
            for r in (await _get(client, "commissions", w.headers(*who), period_from="2026-03"))["rows"]
        ]
        for who in (
            ("east", "manager"),
            ("east", "sales"),
            ("east", "distributor"),
            ("north", "manager"),
            ("north", "sales"),
        )
    }
    assert seen == {
        ("east", "manager"): ["distributor", "user"],
        ("east", "sales"): ["user"],
        ("east", "distributor"): ["distributor"],
        ("north", "manager"): [],
        ("north", "sales"): [],
    }
    await _xlsx_matches(client, "commissions", admin, period_from="2026-01", period_to="2026-03")
    async with client.get("/api/v1/reports/dashboard", headers=w.headers("east", "manager")) as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        page = await resp.text()
    assert page.count("<svg") == 3 and "应收账龄" in page
    async with client.get("/api/v1/reports/dashboard", headers=w.headers("east", "sales")) as resp:
        assert resp.status == 403


async def test_reports_with_dates_at_the_edges_of_the_calendar_are_400(client) -> None:
    """Dates are bounded at parse time (core.schema.Day): ranges reaching 0001-01-01 or
    9999-12-31 would overflow in the time-zone conversion or the +1 day; a 400 naming the
    field, never a 500."""
    w = await make_world()
    admin = w.headers("", "admin")
    for path, params, field in (
        ("sales", {"date_from": "0001-01-01", "date_to": "0001-01-02"}, "date_from"),
        ("sales", {"date_from": "9999-12-30", "date_to": "9999-12-31"}, "date_to"),
        ("sales", {"date_to": "0001-01-01"}, "date_to"),
        ("sales", {"date_from": "1999-12-31", "date_to": "2000-01-01"}, "date_from"),
        ("receivables", {"as_of": "9999-12-31"}, "as_of"),
        ("receivables", {"as_of": "0001-01-01"}, "as_of"),
    ):
        for fmt in ("json", "xlsx"):
            async with client.get(
                f"/api/v1/reports/{path}", params={**params, "format": fmt}, headers=admin
            ) as resp:
                body = await resp.json()
                assert resp.status == 400, (path, params, resp.status, body)
                assert body["error"]["code"] == "validation_error"
                assert field in [f["field"] for f in body["error"]["details"]["fields"]], body
    # the edges of the business calendar themselves work
    await _get(client, "sales", admin, date_from="2000-01-01", date_to="2000-01-31")
    await _get(client, "sales", admin, date_from="2999-12-01", date_to="2999-12-31")
    await _get(client, "receivables", admin, as_of="2999-12-31")
