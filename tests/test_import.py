"""Bulk import (admin API and CLI): all or nothing, row-numbered rejects, stock movements
that keep the ledger balanced, 10,000-row files with a progress bar."""

from __future__ import annotations

import asyncio
import io
import subprocess
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from aiohttp import FormData
from openpyxl import Workbook

from core.errors import DomainError, ValidationError
from handlers import importer
from handlers.stock import verify_ledger
from miniapp_api.xlsx import XLSX_TYPE
from models.audit import AuditLog
from models.base import MovementReason
from models.distributor import Distributor
from models.product import Product
from models.stock import Stock, StockMovement
from tests import factories
from tests.bola import cached_hash
from tests.cli_run import run_cli
from tests.factories import make_product, make_stock, make_warehouse, make_world, uscc

URL = "/api/v1/admin/import"
CSV = {"Content-Type": "text/csv"}


@pytest.fixture(autouse=True)
def _fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factories, "hash_password", cached_hash)


def csv_bytes(header: str, rows: list[str]) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def xlsx_bytes(rows: list[list[object]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


async def post(client, kind: str, data: bytes, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    return await client.post(f"{URL}/{kind}", data=data, headers={**headers, **CSV})


# --- products ----------------------------------------------------------------------------------------


async def test_import_products_csv_creates_then_upserts(client) -> None:
    world = await make_world()
    h = world.headers("", "admin")
    data = csv_bytes("sku,name,category,unit", ["P-1,螺纹钢 HRB400E Φ12,螺纹钢,吨", "P-2,盘螺,盘螺,吨"])
    resp = await post(client, "products", data, h)
    assert resp.status == 201, await resp.text()
    report = await resp.json()
    assert (report["rows"], report["created"], report["updated"]) == (2, 2, 0)
    p = await Product.get(sku="P-1")
    assert p.initials.startswith("lwg")
    again = csv_bytes("编码,名称,分类,单位", ["P-1,螺纹钢 HRB400E Φ12,螺纹钢,吨", "P-2,盘螺新名,盘螺,吨"])
    report = await (await post(client, "products", again, h)).json()
    assert (report["created"], report["updated"], report["unchanged"]) == (0, 1, 1)
    assert (await Product.get(sku="P-2")).name == "盘螺新名"
    log = await AuditLog.filter(action="import.products").order_by("-id").first()
    assert log is not None and log.actor_id == world.admin.id  # type: ignore[attr-defined]


async def test_imported_products_reach_the_chat_matcher_at_once(client) -> None:
    """Bulk writes send no save signals: the import itself tells the matcher's index."""
    from handlers.product_match import match_products

    world = await make_world()
    h = world.headers("", "admin")
    await post(client, "products", csv_bytes("sku,name,category,unit", ["P-1,盘螺 Φ8,盘螺,吨"]), h)
    assert (await match_products("盘螺8")).best is not None
    await post(client, "products", csv_bytes("sku,name,category,unit", ["P-1,盘圆 Φ8,盘圆,吨"]), h)
    assert [h.name for h in (await match_products("盘螺8")).hits] in ([], ["盘圆 Φ8"])
    result = await match_products("盘圆8")
    assert result.best is not None and result.best.name == "盘圆 Φ8"


async def test_import_products_xlsx_multipart(client) -> None:
    world = await make_world()
    data = xlsx_bytes([["SKU", "Name", "Category", "Unit", "Spec"], [10001, "角钢", "角钢", "吨", "40×4"]])
    form = FormData()
    form.add_field("file", data, filename="p.xlsx")
    resp = await client.post(f"{URL}/products", data=form, headers=world.headers("", "admin"))
    assert resp.status == 201, await resp.text()
    assert (await Product.get(sku="10001")).spec == "40×4"


async def test_import_products_by_manager_is_403(client) -> None:
    world = await make_world()
    data = csv_bytes("sku,name,category,unit", ["P-9,x,y,z"])
    resp = await post(client, "products", data, world.headers("east", "manager"))
    assert resp.status == 403
    resp = await post(client, "products", data, world.headers("east", "distributor"))
    assert resp.status == 403


async def test_import_bad_rows_reports_every_row_and_imports_nothing(client) -> None:
    world = await make_world()
    rows = ["OK-1,好,类,件", ",缺编码,类,件", "OK-2,,类,件", "OK-1,重复,类,件", "OK-3,多,类,件,extra"]
    resp = await post(
        client, "products", csv_bytes("sku,name,category,unit", rows), world.headers("", "admin")
    )
    assert resp.status == 400
    err = (await resp.json())["error"]
    assert err["code"] == "validation_error"
    by_row = {e["row"]: e["errors"] for e in err["details"]["errors"]}
    assert sorted(by_row) == [3, 4, 5, 6]
    assert "sku" in by_row[3][0] and "name" in by_row[4][0] and "与第 2 行重复" in by_row[5][0]
    assert not await Product.filter(sku__startswith="OK-").exists()


async def test_import_bad_header_and_bad_files_are_400(client) -> None:
    world = await make_world()
    h = world.headers("", "admin")
    resp = await post(client, "products", csv_bytes("sku,nmae,category,unit", ["a,b,c,d"]), h)
    assert resp.status == 400
    details = (await resp.json())["error"]["details"]
    assert details["missing"] == ["name"] and details["unknown"] == ["nmae"]
    for data in (b"", b"sku,name,category,unit\n", b"PK\x03\x04garbage", b"\x00\x01\x02"):
        resp = await client.post(f"{URL}/products", data=data, headers=h)
        assert resp.status == 400, data
    assert (await client.post(f"{URL}/widgets", data=b"a", headers=h)).status == 404


async def test_import_10000_garbage_rows_clear_report_nothing_imported(client) -> None:
    world = await make_world()
    rows = [f"bad sku {i},,类,{'x' * 20}" for i in range(10_000)]
    before = await Product.all().count()
    t0 = time.perf_counter()
    resp = await post(
        client, "products", csv_bytes("sku,name,category,unit", rows), world.headers("", "admin")
    )
    elapsed = time.perf_counter() - t0
    assert resp.status == 400
    err = (await resp.json())["error"]
    assert err["message"].startswith("10000 行中有 10000 行有误，未导入任何数据")
    d = err["details"]
    assert d["rows"] == 10_000 and d["rejected"] == 10_000 and len(d["errors"]) == 1000 and d["more"] == 9000
    assert d["errors"][0]["row"] == 2 and len(d["errors"][0]["errors"]) == 3  # sku, name, unit
    assert await Product.all().count() == before
    assert elapsed < 30


# --- stock -------------------------------------------------------------------------------------------


async def test_import_stock_sets_on_hand_and_writes_movements(client) -> None:
    world = await make_world()
    wh, p = world.east.warehouse, world.product
    p2 = await make_product()
    stock = await Stock.get(warehouse=wh, product=p)
    stock.reserved = 10
    await stock.save()
    await StockMovement.create(
        warehouse=wh,
        product=p,
        reason=MovementReason.RESERVE,
        delta_on_hand=0,
        delta_reserved=10,
        on_hand_after=50,
        reserved_after=10,
    )
    data = csv_bytes(
        "warehouse,sku,on_hand,reason",
        [
            f"{wh.code},{p.sku},80,inbound",
            f"{wh.code},{p2.sku},7,",
            f"{world.company_warehouse.code},{p.sku},100,",
        ],
    )
    resp = await post(client, "stock", data, world.headers("", "admin"))
    assert resp.status == 201, await resp.text()
    report = await resp.json()
    assert (report["created"], report["updated"], report["unchanged"], report["movements"]) == (1, 1, 1, 2)
    await stock.refresh_from_db()
    assert (stock.on_hand, stock.reserved) == (80, 10)
    last = await StockMovement.filter(warehouse=wh, product=p).order_by("-id").first()
    assert last is not None and last.reason == MovementReason.INBOUND and last.delta_on_hand == 30
    assert (last.on_hand_after, last.reserved_after, last.ref_type) == (80, 10, "import")
    assert (await Stock.get(warehouse=wh, product=p2)).on_hand == 7
    assert await verify_ledger() == []


async def test_import_stock_rejects_below_reserved_inbound_decrease_and_unknowns(client) -> None:
    world = await make_world()
    wh, p = world.east.warehouse, world.product
    await Stock.filter(warehouse=wh, product=p).update(reserved=20)
    rows = [
        f"{wh.code},{p.sku},5,stocktake",  # below the 20 reserved
        f"{world.company_warehouse.code},{p.sku},10,inbound",  # 100 -> 10 is not inbound
        f"NOPE,{p.sku},1,",
        f"{wh.code},NOPE,1,",
        f"{wh.code},{p.sku},-1,",
        f"{wh.code},{p.sku},1.5,",
    ]
    resp = await post(
        client, "stock", csv_bytes("warehouse,sku,on_hand,reason", rows), world.headers("", "admin")
    )
    assert resp.status == 400
    errs = {e["row"]: " ".join(e["errors"]) for e in (await resp.json())["error"]["details"]["errors"]}
    assert sorted(errs) == [2, 3, 4, 5, 6, 7]
    assert "已预留" in errs[2] and "入库" in errs[3] and "warehouse" in errs[4] and "sku" in errs[5]
    assert (await Stock.get(warehouse=wh, product=p)).on_hand == 50


async def test_import_stock_by_manager_only_its_warehouses(client) -> None:
    world = await make_world()
    data = csv_bytes("warehouse,sku,on_hand", [f"{world.north.warehouse.code},{world.product.sku},9"])
    resp = await post(client, "stock", data, world.headers("east", "manager"))
    assert resp.status == 400 and "仓库不存在" in (await resp.json())["error"]["message"]
    data = csv_bytes("warehouse,sku,on_hand", [f"{world.east.warehouse.code},{world.product.sku},9"])
    assert (await post(client, "stock", data, world.headers("east", "manager"))).status == 201


# --- distributors ------------------------------------------------------------------------------------


async def test_import_distributors_with_parents_in_the_same_file(client) -> None:
    world = await make_world()
    parent, child = uscc(), uscc()
    rows = [
        f"二级甲,{child},2,华东,{parent},{world.east.rep.username},5000,monthly",
        f"一级乙,{parent},1,华东,,,100000.00,prepay",
        f"二级丙,{uscc()},2,华东,{world.east.distributor.uscc},,0,quarterly",
    ]
    header = "name,uscc,level,region,parent_uscc,sales_rep,credit_limit,payment_terms"
    resp = await post(client, "distributors", csv_bytes(header, rows), world.headers("", "admin"))
    assert resp.status == 201, await resp.text()
    c = await Distributor.get(uscc=child)
    p = await Distributor.get(uscc=parent)
    assert c.parent_id == p.id and c.sales_rep_id == world.east.rep.id  # type: ignore[attr-defined]
    assert str(c.credit_limit) == "5000.00" and str(c.status) == "applying"


async def test_import_distributors_bad_rows(client) -> None:
    world = await make_world()
    rows = [
        f"重复,{world.east.distributor.uscc},1,华东",
        "坏码,911100000000000000,1,华东",
        f"无上级,{uscc()},2,华东",
        f"跨区,{uscc()},2,华北",
    ]
    resp = await post(
        client, "distributors", csv_bytes("name,uscc,level,region", rows), world.headers("", "admin")
    )
    assert resp.status == 400
    assert [e["row"] for e in (await resp.json())["error"]["details"]["errors"]] == [2, 3, 4, 5]
    assert await Distributor.all().count() == 4


# --- CLI ---------------------------------------------------------------------------------------------


def _cli(config, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return run_cli(config, "import", *args, timeout=240)


@pytest.mark.slow
async def test_cli_imports_10000_products_and_stock_quickly_with_progress(db, config, tmp_path: Path) -> None:
    wh = await make_warehouse(code="WH-BIG")
    old = await make_product(sku="OLD-1")
    await make_stock(wh, old, on_hand=5)
    products = tmp_path / "products.csv"
    products.write_bytes(
        csv_bytes(
            "sku,name,category,unit", [f"BIG-{i:05d},螺纹钢 HRB400E Φ{i},螺纹钢,吨" for i in range(10_000)]
        )
    )
    t0 = time.perf_counter()
    p = _cli(config, "products", str(products))
    assert p.returncode == 0, p.stderr
    assert "10000 rows, 10000 created" in p.stdout
    assert "validate" in p.stderr and "write" in p.stderr and "100%" in p.stderr  # tqdm bars
    assert await Product.filter(sku__startswith="BIG-").count() == 10_000

    stock = tmp_path / "stock.xlsx"
    stock.write_bytes(
        xlsx_bytes(
            [["warehouse", "sku", "on_hand"], ["WH-BIG", "OLD-1", 6]]
            + [["WH-BIG", f"BIG-{i:05d}", i % 50] for i in range(9_999)]
        )
    )
    s = _cli(config, "stock", str(stock))
    elapsed = time.perf_counter() - t0
    assert s.returncode == 0, s.stderr
    assert "10000 rows" in s.stdout and "100%" in s.stderr
    assert await Stock.filter(warehouse=wh).count() == 10_000
    assert await StockMovement.filter(ref_type="import").count() == 1 + sum(1 for i in range(9_999) if i % 50)
    assert await verify_ledger() == []
    assert elapsed < 120, elapsed


async def test_cli_import_rejects_print_rows_and_exit_1(db, config, tmp_path: Path) -> None:
    f = tmp_path / "bad.csv"
    f.write_bytes(csv_bytes("sku,name,category,unit", ["A-1,a,b,c", ",x,y,z"]))
    p = _cli(config, "products", str(f), "--no-progress")
    assert p.returncode == 1
    assert "1 of 2 rows rejected" in p.stderr and "row 3: sku: " in p.stderr
    assert not await Product.filter(sku="A-1").exists()


# --- hostile workbooks ---------------------------------------------------------------------------------

_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_CT = "http://schemas.openxmlformats.org/package/2006/content-types"
_SHEET_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"


def _row(number: int, values: list[object], strings: list[str]) -> str:
    """A sheet row as Excel writes it: texts in the shared-strings table."""
    cells = []
    for i, v in enumerate(values):
        ref = f"{chr(65 + i)}{number}"
        if isinstance(v, str):
            strings.append(v)
            cells.append(f'<c r="{ref}" t="s"><v>{len(strings) - 1}</v></c>')
        else:
            cells.append(f'<c r="{ref}"><v>{v}</v></c>')
    return f'<row r="{number}">{"".join(cells)}</row>'


def hand_xlsx(rows: str, strings: list[str], dimension: str = "A1:D2", pad_mb: int = 0) -> bytes:
    """A workbook zipped by hand (so it can lie): `rows` is the <sheetData> content; `pad_mb`
    MB of blanks inside the sheet (they deflate ~1000:1)."""
    sst = "".join(f"<si><t>{s}</t></si>" for s in strings)
    parts = {
        "[Content_Types].xml": (
            f'<Types xmlns="{_CT}"><Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_SHEET_CT}"/>'
            '<Override PartName="/xl/sharedStrings.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
            "</Types>"
        ),
        "_rels/.rels": (
            f'<Relationships xmlns="{_RELS}"><Relationship Id="rId1" '
            f'Type="{_DOC}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            f'<workbook xmlns="{_NS}" xmlns:r="{_DOC}"><sheets>'
            '<sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            f'<Relationships xmlns="{_RELS}">'
            f'<Relationship Id="rId1" Type="{_DOC}/worksheet" Target="worksheets/sheet1.xml"/>'
            f'<Relationship Id="rId2" Type="{_DOC}/sharedStrings" Target="sharedStrings.xml"/>'
            "</Relationships>"
        ),
        "xl/sharedStrings.xml": f'<sst xmlns="{_NS}" count="{len(strings)}">{sst}</sst>',
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in parts.items():
            z.writestr(name, text)
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as f:
            f.write(f'<worksheet xmlns="{_NS}"><dimension ref="{dimension}"/><sheetData>'.encode())
            blank = b" " * 2**20
            for _ in range(pad_mb):
                f.write(blank)
            f.write(f"{rows}</sheetData></worksheet>".encode())
    return buf.getvalue()


def _products(rows: list[tuple[int, list[object]]]) -> bytes:
    strings: list[str] = []
    xml = _row(1, ["sku", "name", "category", "unit"], strings)
    xml += "".join(_row(n, values, strings) for n, values in rows)
    return hand_xlsx(xml, strings, dimension="A1:XFD10001")


def _measured(fn, *args):  # type: ignore[no-untyped-def]
    """(result or the exception, seconds, peak traced memory in MB)."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        result = fn(*args)
    except Exception as exc:
        result = exc
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, elapsed, peak


def test_dimension_bomb_reads_only_the_rows_that_exist() -> None:
    """The report: a 3 KB workbook with <dimension ref="A1:XFD10001"/> and a row 10001 (read-only
    openpyxl padded every row between to 16,384 cells: 24 s, +1.2 GB). Now: the two rows."""
    data = _products([(2, ["B-1", "螺纹钢", "钢", "吨"]), (10001, ["B-2", "盘螺", "钢", "吨"])])
    assert len(data) < 3000
    table, elapsed, peak = _measured(importer.read_table, data, "bomb.xlsx")
    assert isinstance(table, importer.Table), table
    assert table.header == ["sku", "name", "category", "unit"]
    assert [(n, r["sku"]) for n, r in table.rows] == [(2, "B-1"), (10001, "B-2")]
    assert peak < 10 and elapsed < 5, (peak, elapsed)  # (before: >1 GB and ~24 s)


def test_wide_rows_and_far_rows_are_bounded() -> None:
    strings: list[str] = []
    header = _row(1, ["sku", "name", "category", "unit"], strings)
    # 200,000 empty (styled) cells after the data: skipped, never held
    wide = _row(2, ["W-1", "宽", "类", "件"], strings).replace("</row>", '<c s="1"/>' * 200_000 + "</row>")
    table, _, peak = _measured(importer.read_table, hand_xlsx(header + wide, strings), None)
    assert isinstance(table, importer.Table), table
    assert [r["sku"] for _, r in table.rows] == ["W-1"]
    assert peak < 20, peak
    # a value right of the column cap, a row beyond Excel's last row: clear errors
    far_right = _row(2, ["W-1", "宽", "类", "件"], strings).replace("</row>", '<c r="BM2"><v>1</v></c></row>')
    err, _, _ = _measured(importer.read_table, hand_xlsx(header + far_right, strings), None)
    assert isinstance(err, ValidationError) and "64" in err.message, err
    far_down = header + '<row r="1048577"><c r="A1048577"><v>1</v></c></row>'
    err, _, _ = _measured(importer.read_table, hand_xlsx(far_down, strings), None)
    assert isinstance(err, ValidationError) and err.status == 400, err


def test_row_cap_stops_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the row cap the rest of the file is never read (not read, then counted)."""
    monkeypatch.setattr(importer, "MAX_ROWS", 100)
    drawn = 0
    real = importer.xlsx_rows

    def counting(data: bytes):  # type: ignore[no-untyped-def]
        nonlocal drawn
        for row in real(data):
            drawn += 1
            yield row

    monkeypatch.setattr(importer, "xlsx_rows", counting)
    data = _products([(n, [f"C-{n}", "名", "类", "件"]) for n in range(2, 5002)])
    with pytest.raises(ValidationError, match="行数太多"):
        importer.read_table(data, None)
    assert drawn <= 102, drawn


async def test_zip_bomb_is_refused_before_inflating(client, db, config, tmp_path: Path) -> None:
    """A sheet that inflates to 200 MB (from ~200 KB): 413 before anything is inflated, over
    HTTP and in the CLI; nothing imported."""
    world = await make_world()
    strings: list[str] = []
    rows = _row(1, ["sku", "name", "category", "unit"], strings) + _row(2, ["Z-1", "炸", "类", "件"], strings)
    data = hand_xlsx(rows, strings, pad_mb=200)
    assert len(data) < 1_000_000
    tracemalloc.start()
    t0 = time.perf_counter()
    resp = await client.post(f"{URL}/products", data=data, headers=world.headers("", "admin"))
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    body = await resp.json()
    assert resp.status == 413, body
    assert body["error"]["code"] == "payload_too_large" and "XLSX" in body["error"]["message"]
    assert peak < 30 and elapsed < 10, (peak, elapsed)
    f = tmp_path / "bomb.xlsx"
    f.write_bytes(data)
    p = _cli(config, "products", str(f), "--no-progress")
    assert p.returncode == 1 and "payload_too_large" in p.stderr, p.stderr
    assert not await Product.filter(sku="Z-1").exists()


async def test_import_runs_off_the_event_loop(client) -> None:
    """While a 10,000-row workbook (with the dimension bomb) is read and validated, /healthz
    keeps answering: parsing and validation run in a worker thread."""
    world = await make_world()
    data = _products([(n, [f"H-{n:05d}", f"螺纹钢 {n}", "螺纹钢", "吨"]) for n in range(2, 10_002)])
    headers = {**world.headers("", "admin"), "Content-Type": XLSX_TYPE}
    started = time.perf_counter()
    task = asyncio.create_task(client.post(f"{URL}/products", data=data, headers=headers))
    # the longest stretch without an answered health check (a blocked loop answers none;
    # timing each request alone would miss a block that falls between two of them)
    worst, polls, last = 0.0, 0, time.perf_counter()
    while not task.done():
        async with client.get("/healthz") as health:
            assert health.status == 200
        now = time.perf_counter()
        worst, last = max(worst, now - last), now
        polls += 1
        await asyncio.sleep(0.02)
    resp = await task
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["created"] == 10_000
    total = time.perf_counter() - started
    # before: one stretch of ~24 s, nearly the whole import; now well under a second when the
    # machine is idle (bounds leave room for a loaded CI machine)
    assert polls >= 3 and worst < 5.0 and worst < total / 3, (polls, worst, total)


def test_xlsx_cell_kinds_and_a_shared_strings_bomb() -> None:
    """Rich text (phonetic runs left out), inline strings, booleans, cached formula results,
    whole and decimal numbers; a shared-strings table over its cap is a 413 before reading."""
    from handlers.sheets import XLSX_MAX_STRINGS, xlsx_rows

    strings = ["sku", "<r><t>螺纹</t></r><r><t>钢</t></r><rPh><t>luowen</t></rPh>"]
    row = (
        '<row r="1"><c r="A1" t="s"><v>0</v></c></row>'
        '<row r="3"><c r="A3" t="s"><v>1</v></c><c r="B3" t="inlineStr"><is><t>内联</t></is></c>'
        '<c r="C3" t="b"><v>1</v></c><c r="D3" t="str"><f>A1&amp;"x"</f><v>skux</v></c>'
        '<c r="E3"><v>10001</v></c><c r="F3"><v>2.5</v></c></row>'
    )
    data = hand_xlsx(row, [])
    sst = "".join(f"<si>{s if s.startswith('<') else f'<t>{s}</t>'}</si>" for s in strings)  # raw
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "xl/sharedStrings.xml":
                body = f'<sst xmlns="{_NS}">{sst}</sst>'.encode()
            dst.writestr(info.filename, body)
    assert list(xlsx_rows(buf.getvalue())) == [
        (1, ["sku"]),
        (3, ["螺纹钢", "内联", True, "skux", 10001, 2.5]),
    ]
    big = hand_xlsx(row, ["x" * 1000] * (XLSX_MAX_STRINGS // 1000 + 1))
    with pytest.raises(DomainError) as caught:
        list(xlsx_rows(big))
    assert caught.value.status == 413 and caught.value.code == "payload_too_large"
