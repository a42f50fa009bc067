"""Issue 18, exports and reports: "xlsx headers and enum values in English (`d1_30`, `monthly`),
money as text (Excel can't SUM), UTC times, no totals row, ids without names; the sales report
adds tons, bags and sheets together"."""

from __future__ import annotations

import io
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from openpyxl import load_workbook

from models.base import PaymentTerms, ReceivableKind
from models.distributor import Distributor
from tests.factories import make_product, make_stock, make_world
from tests.factories_commission import at, fast_passwords, make_order, make_receivable

API = "/api/v1"
MONEY_FORMAT = "#,##0.00"


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    fast_passwords(monkeypatch)


async def _json(client, path: str, headers: dict[str, str], **params: Any) -> Any:  # type: ignore[no-untyped-def]
    async with client.get(f"{API}{path}", params=params, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def _sheet(client, path: str, headers: dict[str, str], **params: Any):  # type: ignore[no-untyped-def]
    async with client.get(f"{API}{path}", params={**params, "format": "xlsx"}, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        data = await resp.read()
    return load_workbook(io.BytesIO(data)).worksheets[0]


def _rows(ws) -> list[list[Any]]:  # type: ignore[no-untyped-def]
    return [list(r) for r in ws.iter_rows(values_only=True)]


def _column(ws, header: str) -> list[Any]:  # type: ignore[no-untyped-def]
    rows = list(ws.iter_rows())
    i = [c.value for c in rows[0]].index(header)
    return [r[i] for r in rows[1:]]


async def _mixed_units(w) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """One distributor buys rebar by the ton, cement by the bag and board by the sheet."""
    cement = await make_product(name="海螺水泥 P.O 42.5 50kg", category="水泥", unit="袋")
    board = await make_product(name="石膏板 9.5mm", category="板材", unit="张")
    await make_order(
        w.east.distributor,
        [(w.product, 10, "3800.00"), (cement, 200, "22.50"), (board, 50, "28.00")],
        completed_at=at("2026-03-10"),
    )
    await make_order(w.east.distributor, [(w.product, 5, "3800.00")], completed_at=at("2026-03-20"))
    return {"cement": cement, "board": board}


RANGE = {"date_from": "2026-03-01", "date_to": "2026-03-31"}


async def test_sales_report_never_adds_tons_bags_and_sheets(client) -> None:
    w = await make_world()
    await _mixed_units(w)
    rep = await _json(client, "/reports/sales", w.headers("", "admin"), group_by="distributor", **RANGE)
    assert "unit" in rep["columns"]
    by_unit = {r["unit"]: r for r in rep["rows"] if r["key"] == w.east.distributor.id}
    assert {u: r["qty"] for u, r in by_unit.items()} == {"吨": 15, "袋": 200, "张": 50}
    assert by_unit["吨"]["net"] == "57000.00" and by_unit["袋"]["net"] == "4500.00"
    assert rep["totals"]["qty"] is None  # 265 of what?
    assert rep["totals"]["qty_by_unit"] == {"吨": 15, "袋": 200, "张": 50}
    assert rep["totals"]["net"] == "62900.00"
    months = await _json(client, "/reports/sales", w.headers("", "admin"), group_by="month", **RANGE)
    assert sorted((r["key"], r["unit"], r["qty"]) for r in months["rows"]) == [
        ("2026-03", "吨", 15),
        ("2026-03", "张", 50),
        ("2026-03", "袋", 200),
    ]


async def test_sales_xlsx_chinese_headers_money_numbers_subtotals_per_unit(client) -> None:
    w = await make_world()
    await _mixed_units(w)
    ws = await _sheet(client, "/reports/sales", w.headers("", "admin"), group_by="distributor", **RANGE)
    rows = _rows(ws)
    header = rows[0]
    assert header[:3] == ["经销商ID", "经销商", "单位"]
    assert {"数量", "销售额", "退货额", "净销售额", "订单数"} <= set(header)
    net = header.index("净销售额")
    cells = _column(ws, "净销售额")
    assert all(c.number_format == MONEY_FORMAT for c in cells)
    body = [r for r in rows[1:] if r[0] not in ("小计", "合计")]
    assert all(isinstance(r[net], int | float | Decimal) for r in body)  # Excel can SUM them
    subtotals = {r[2]: r for r in rows if r[0] == "小计"}
    assert set(subtotals) == {"吨", "袋", "张"}
    qty = header.index("数量")
    assert subtotals["吨"][qty] == 15 and subtotals["袋"][qty] == 200
    [total] = [r for r in rows if r[0] == "合计"]
    assert total == rows[-1]
    assert Decimal(str(total[net])) == Decimal("62900.00")
    assert total[qty] is None  # tons and bags are not added together
    assert "25" + "5" not in str(total)  # (15 + 200 + 50 = 265 must not appear)


async def test_receivables_xlsx_buckets_in_chinese_with_totals(client) -> None:
    w = await make_world()
    e = w.east.distributor
    await make_receivable(e, ReceivableKind.SHIPMENT, "1000.00", at("2026-02-01"), due_at=at("2026-03-01"))
    await make_receivable(e, ReceivableKind.SHIPMENT, "1234.50", at("2026-05-20"), due_at=at("2026-06-20"))
    ws = await _sheet(client, "/reports/receivables", w.headers("", "admin"), as_of="2026-06-30")
    rows = _rows(ws)
    assert "1-30天" in rows[0] and "d1_30" not in rows[0] and "90天以上" in rows[0]
    assert rows[0][:2] == ["经销商ID", "经销商"]
    col = rows[0].index("1-30天")
    [mine] = [r for r in rows[1:] if r[0] == e.id]
    assert mine[1] == e.name and mine[col] == pytest.approx(1234.50)
    assert rows[-1][0] == "合计" and rows[-1][rows[0].index("余额")] == pytest.approx(2234.50)
    assert all(c.number_format == MONEY_FORMAT for c in _column(ws, "1-30天"))


async def test_distributor_export_reads_in_chinese_with_names_and_beijing_time(client) -> None:
    w = await make_world()
    admin = w.headers("", "admin")
    d = w.east.distributor
    await Distributor.filter(id=d.id).update(
        payment_terms=PaymentTerms.MONTHLY, sales_rep_id=w.east.rep.id, credit_limit=Decimal("100000.00")
    )
    ws = await _sheet(client, "/admin/distributors", admin)
    rows = _rows(ws)
    header = rows[0]
    assert "payment_terms" not in header and "付款方式" in header
    [mine] = [r for r in rows[1:] if r[0] == d.id]
    assert mine[header.index("付款方式")] == "月结"
    assert mine[header.index("级别")] == "一级"
    # names next to ids
    rep_col = header.index("业务员ID")
    assert header[rep_col + 1] == "业务员" and mine[rep_col + 1] == w.east.rep.display_name
    [child] = [r for r in rows[1:] if r[0] == w.east.child.id]
    parent_col = header.index("上级经销商ID")
    assert header[parent_col + 1] == "上级经销商" and child[parent_col + 1] == d.name
    # money is a number Excel can SUM, shown with thousands separators
    credit = _column(ws, "信用额度")
    assert credit[0].number_format == MONEY_FORMAT and isinstance(credit[0].value, int | float | Decimal)
    # times in Beijing time, as Excel dates
    created_header = next(h for h in header if h.startswith("创建时间"))
    assert "北京时间" in created_header
    fresh = await Distributor.get(id=d.id)
    shown = mine[header.index(created_header)]
    assert isinstance(shown, datetime)
    local = fresh.created_at.astimezone(at("2026-01-01").tzinfo).replace(tzinfo=None, microsecond=0)
    assert shown.replace(microsecond=0) == local
    # a totals row
    assert rows[-1][0] == "合计"
    total_credit = rows[-1][header.index("信用额度")]
    all_credit = sum(Decimal(str(x)) for x in await Distributor.all().values_list("credit_limit", flat=True))
    assert Decimal(str(total_credit)) == all_credit


async def test_user_export_names_the_distributor_and_role_in_chinese(client) -> None:
    w = await make_world()
    ws = await _sheet(client, "/admin/users", w.headers("", "admin"))
    rows = _rows(ws)
    header = rows[0]
    assert "display_name" not in header and "姓名" in header and "角色" in header
    [buyer] = [r for r in rows[1:] if r[0] == w.east.dist_user.id]
    assert buyer[header.index("角色")] == "经销商" and buyer[header.index("状态")] == "正常"
    col = header.index("经销商ID")
    assert header[col + 1] == "经销商" and buyer[col + 1] == w.east.distributor.name


async def test_inventory_totals_per_unit(client) -> None:
    w = await make_world()
    cement = await make_product(name="海螺水泥 P.O 42.5 50kg", category="水泥", unit="袋")
    await make_stock(w.company_warehouse, cement, on_hand=400)
    rep = await _json(
        client, "/reports/inventory", w.headers("", "admin"), warehouse_id=w.company_warehouse.id
    )
    assert "unit" in rep["columns"]
    assert {r["sku"]: r["unit"] for r in rep["rows"]} == {w.product.sku: "吨", cement.sku: "袋"}
    assert rep["totals"]["on_hand_by_unit"] == {"吨": 100, "袋": 400}
    assert rep["totals"]["on_hand"] is None
    ws = await _sheet(
        client, "/reports/inventory", w.headers("", "admin"), warehouse_id=w.company_warehouse.id
    )
    rows = _rows(ws)
    assert "库存数量" in rows[0] and "慢销" in rows[0]
    flags = {
        r[rows[0].index("SKU")]: r[rows[0].index("慢销")] for r in rows[1:] if r[0] not in ("小计", "合计")
    }
    assert set(flags.values()) <= {"是", "否"}
    assert {r[rows[0].index("单位")] for r in rows if r[0] == "小计"} == {"吨", "袋"}


async def test_price_list_export_reads_as_items_and_dates(client) -> None:
    w = await make_world()
    ws = await _sheet(client, "/admin/price-lists", w.headers("", "admin"))
    rows = _rows(ws)
    header = rows[0]
    assert "明细" in header and "生效日期" in header
    items = [r[header.index("明细")] for r in rows[1:] if r[0] != "合计"]
    assert any(f"{w.product.sku} 100.00" in str(i) for i in items), items
    assert all("{" not in str(i) for i in items)  # not JSON
    starts = [r[header.index("生效日期")] for r in rows[1:] if r[0] != "合计"]
    assert all(isinstance(d, datetime) for d in starts)  # an Excel date
