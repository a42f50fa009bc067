"""Bulk import (admin API and CLI): all or nothing, row-numbered rejects, stock movements
that keep the ledger balanced, 10,000-row files with a progress bar."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import FormData
from openpyxl import Workbook

from handlers.stock import verify_ledger
from models.audit import AuditLog
from models.base import MovementReason
from models.distributor import Distributor
from models.product import Product
from models.stock import Stock, StockMovement
from tests import factories
from tests.bola import cached_hash
from tests.factories import make_product, make_stock, make_warehouse, make_world, uscc

ROOT = Path(__file__).resolve().parent.parent
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
    assert "sku" in by_row[3][0] and "name" in by_row[4][0] and "repeats row 2" in by_row[5][0]
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
    assert err["message"].startswith("10000 of 10000 rows rejected, nothing imported")
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
    assert "reserved" in errs[2] and "inbound" in errs[3] and "warehouse" in errs[4] and "sku" in errs[5]
    assert (await Stock.get(warehouse=wh, product=p)).on_hand == 50


async def test_import_stock_by_manager_only_its_warehouses(client) -> None:
    world = await make_world()
    data = csv_bytes("warehouse,sku,on_hand", [f"{world.north.warehouse.code},{world.product.sku},9"])
    resp = await post(client, "stock", data, world.headers("east", "manager"))
    assert resp.status == 400 and "no warehouse" in (await resp.text())
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
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUDAO_")}
    env.update(
        QUDAO_DATABASE__URL=config.database.url,
        QUDAO_KV__URL=config.kv.url,
        QUDAO_KV__NAMESPACE=config.kv.namespace,
        QUDAO_LOGGING__LEVEL="WARNING",
    )
    return subprocess.run(
        [sys.executable, "-m", "core", "import", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=240,
    )


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
    assert "1 of 2 rows rejected" in p.stderr and "row 3: sku" in p.stderr
    assert not await Product.filter(sku="A-1").exists()
