"""Bulk import of products, stock and distributors from CSV or XLSX (CLI and admin API).

All or nothing: every row is validated first; if any row is bad, nothing is written and the
error lists each bad row (spreadsheet numbering: the header is row 1) with its reasons. Good
files are written in one transaction with bulk inserts/updates in chunks, so 10,000 rows take
seconds. One audit entry per import (counts and the first keys).

Columns (header names are case-insensitive; the Chinese names work too):
- products: sku, name, category, unit, [spec] — an existing SKU is updated (upsert).
- stock: warehouse (code), sku, on_hand, [reason: stocktake|inbound, default stocktake] — sets
  on_hand; every changed row writes a stock movement (delta, balance after). `inbound` may
  only raise stock. on_hand may not go below what is reserved.
- distributors: name, uscc, level (1|2), region, [parent_uscc (needed for level 2), sales_rep
  (username), credit_limit, payment_terms, status (applying|active), contact, phone, address]
  — new distributors only; an existing USCC is an error.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticError
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core.errors import InvalidState, ValidationError
from core.pydantic_zh import zh_message
from core.schema import Out
from handlers.actor import Actor
from handlers.admin_catalog import Sku, product_values
from handlers.admin_common import NO_CTRL, MoneyIn, in_regions, require_admin, require_staff
from handlers.audit import record
from handlers.auth import refresh_user_scope
from handlers.product_match import catalogue_changed
from handlers.sheets import MAX_COLUMNS, csv_rows, xlsx_rows
from handlers.uscc import is_valid_uscc, normalize_uscc
from models.base import DistributorStatus, MovementReason, UserRole
from models.distributor import Distributor
from models.product import Product
from models.stock import Stock, StockMovement, Warehouse
from models.user import User

ImportKind = Literal["products", "stock", "distributors"]
KINDS: tuple[str, ...] = ("products", "stock", "distributors")
MAX_ROWS = 100_000
MAX_REPORTED = 1000  # bad rows listed in the error; the count covers all of them
CHUNK = 1000
Progress = Callable[[str, int, int], None]  # (phase, done, total)

ALIASES = {
    "编码": "sku",
    "商品编码": "sku",
    "名称": "name",
    "商品名称": "name",
    "品名": "name",
    "分类": "category",
    "类别": "category",
    "单位": "unit",
    "规格": "spec",
    "仓库": "warehouse",
    "仓库编码": "warehouse",
    "warehouse_code": "warehouse",
    "库存": "on_hand",
    "数量": "on_hand",
    "qty": "on_hand",
    "原因": "reason",
    "经销商名称": "name",
    "统一社会信用代码": "uscc",
    "级别": "level",
    "区域": "region",
    "上级信用代码": "parent_uscc",
    "业务员": "sales_rep",
    "信用额度": "credit_limit",
    "账期": "payment_terms",
    "状态": "status",
    "联系人": "contact",
    "电话": "phone",
    "地址": "address",
}


class RowError(Out):
    row: int
    errors: list[str]


class ImportReport(Out):
    kind: str
    import_id: str
    rows: int
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    movements: int = 0


class ImportRejected(ValidationError):
    """Some rows are bad: nothing was imported. details: {rows, rejected, errors: [...]}."""


# --- reading files ------------------------------------------------------------------------------------


@dataclass
class Table:
    header: list[str]
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (spreadsheet row no, values)


def read_table(data: bytes, filename: str | None = None) -> Table:
    """CSV (UTF-8, with or without BOM, or GB18030 as Excel writes it in China) or XLSX, read
    lazily (handlers/sheets.py bounds memory and columns): reading stops at the row cap.
    CPU-bound: call it off the event loop (`import_file` does)."""
    if data[:4] == b"PK\x03\x04" or (filename or "").lower().endswith(".xlsx"):
        return _table(xlsx_rows(data))
    return _table(csv_rows(data))


def _header(cells: list[Any]) -> list[str]:
    names = []
    for c in cells:
        name = str(c or "").strip().lower().replace(" ", "_")
        names.append(ALIASES.get(name, name))
    return names


def _blank(cells: list[Any]) -> bool:
    return not any(str(c).strip() for c in cells if c is not None)


def _table(rows: Iterator[tuple[int, list[Any]]]) -> Table:
    first = next((cells for _, cells in rows if not _blank(cells)), None)
    if first is None:
        raise ValidationError("文件是空的（没有表头行）")
    if len(first) > MAX_COLUMNS:
        raise ValidationError(f"表头超过 {MAX_COLUMNS} 列", {"row": 1, "max_columns": MAX_COLUMNS})
    table = Table(_header(first))
    for number, cells in rows:
        if _blank(cells):
            continue
        if len(table.rows) >= MAX_ROWS:  # while reading: the rest of the file is never read
            raise ValidationError(f"行数太多：每次最多导入 {MAX_ROWS} 行", {"max_rows": MAX_ROWS})
        values = {n: _text(cells[i]) if i < len(cells) else None for i, n in enumerate(table.header) if n}
        if len(cells) > len(table.header) and any(str(c).strip() for c in cells[len(table.header) :] if c):
            values["__extra__"] = True
        table.rows.append((number, values))
    return table


# --- row models ---------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """A cell as trimmed text (None if empty); whole numbers from spreadsheets become their
    digits ("10001", not "10001.0")."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


class Row(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ProductRow(Row):
    sku: Sku
    name: str = Field(min_length=1, pattern=NO_CTRL, max_length=200)
    category: str = Field(min_length=1, pattern=NO_CTRL, max_length=64)
    unit: str = Field(min_length=1, pattern=NO_CTRL, max_length=16)
    spec: str | None = Field(None, pattern=NO_CTRL, max_length=200)


class StockRow(Row):
    warehouse: str = Field(min_length=1, pattern=NO_CTRL, max_length=32)
    sku: str = Field(min_length=1, pattern=NO_CTRL, max_length=64)
    on_hand: int = Field(ge=0, le=1_000_000_000)
    reason: Literal["stocktake", "inbound"] = "stocktake"

    @field_validator("on_hand", mode="before")
    @classmethod
    def _whole(cls, v: Any) -> Any:
        if isinstance(v, str) and v.lstrip("-").isdigit():
            return int(v)
        if v is None:
            return v
        raise ValueError("应为整数")


class DistributorRow(Row):
    name: str = Field(min_length=1, pattern=NO_CTRL, max_length=200)
    uscc: str = Field(min_length=18, max_length=18, pattern=NO_CTRL)
    level: Literal[1, 2]
    region: str = Field(min_length=1, pattern=NO_CTRL, max_length=64)
    parent_uscc: str | None = Field(None, pattern=NO_CTRL, max_length=18)
    sales_rep: str | None = Field(None, pattern=NO_CTRL, max_length=64)
    credit_limit: MoneyIn = Decimal("0.00")
    payment_terms: Literal["prepay", "monthly", "quarterly"] = "prepay"
    status: Literal["applying", "active"] = "applying"
    contact: str | None = Field(None, pattern=NO_CTRL, max_length=64)
    phone: str | None = Field(None, pattern=NO_CTRL, max_length=32)
    address: str | None = Field(None, pattern=NO_CTRL, max_length=255)

    @field_validator("level", mode="before")
    @classmethod
    def _level(cls, v: Any) -> Any:
        return int(v) if isinstance(v, str) and v.isdigit() else v

    @field_validator("uscc", "parent_uscc")
    @classmethod
    def _uscc(cls, v: str | None) -> str | None:
        if v is None:
            return v
        code = normalize_uscc(v)
        if not is_valid_uscc(code):
            raise ValueError("统一社会信用代码无效（校验位不符）")
        return code


ROW_MODELS: dict[str, type[Row]] = {"products": ProductRow, "stock": StockRow, "distributors": DistributorRow}


class Errors:
    def __init__(self) -> None:
        self.by_row: dict[int, list[str]] = {}

    def add(self, row: int, message: str) -> None:
        self.by_row.setdefault(row, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.by_row)

    def raise_if_any(self, total: int) -> None:
        if not self.by_row:
            return
        rows = sorted(self.by_row)
        listed = [RowError(row=r, errors=self.by_row[r]).model_dump() for r in rows[:MAX_REPORTED]]
        first = rows[0]
        raise ImportRejected(
            f"{total} 行中有 {len(rows)} 行有误，未导入任何数据"
            f"（第一处：第 {first} 行：{self.by_row[first][0]}）",
            {
                "rows": total,
                "rejected": len(rows),
                "errors": listed,
                "more": max(0, len(rows) - MAX_REPORTED),
            },
        )


def _validate(kind: str, table: Table, errors: Errors, progress: Progress | None) -> list[tuple[int, Any]]:
    model = ROW_MODELS[kind]
    allowed = set(model.model_fields)
    unknown = [h for h in table.header if h and h not in allowed]
    missing = [n for n, f in model.model_fields.items() if f.is_required() and n not in table.header]
    if unknown or missing:
        parts = []
        if missing:
            parts.append("缺少列：" + "、".join(missing))
        if unknown:
            parts.append("无法识别的列：" + "、".join(unknown))
        raise ValidationError(
            "；".join(parts) + f"（可用的列：{'、'.join(allowed)}）",
            {"row": 1, "missing": missing, "unknown": unknown},
        )
    out: list[tuple[int, Any]] = []
    for i, (number, values) in enumerate(table.rows, start=1):
        if values.pop("__extra__", False):
            errors.add(number, "单元格比表头的列多")
        try:
            out.append((number, model.model_validate({k: v for k, v in values.items() if v is not None})))
        except PydanticError as exc:
            for e in exc.errors(include_url=False, include_input=False):
                where = ".".join(str(p) for p in e["loc"]) or "row"
                errors.add(number, f"{where}: {zh_message(e)}")
        if progress and (i % 500 == 0 or i == len(table.rows)):
            progress("validate", i, len(table.rows))
    return out


def _dupes(rows: list[tuple[int, Any]], key: Callable[[Any], Any], what: str, errors: Errors) -> None:
    seen: dict[Any, int] = {}
    for number, row in rows:
        k = key(row)
        if k in seen:
            errors.add(number, f"{what} {k} 与第 {seen[k]} 行重复")
        else:
            seen[k] = number


def _chunks(items: list[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


async def _in_chunks(model: Any, column: str, values: list[Any], *fields: str) -> list[Any]:
    out: list[Any] = []
    for part in _chunks(sorted(set(values))):
        out += await model.filter(**{f"{column}__in": part}).values_list(*fields)
    return out


# --- the use-case -------------------------------------------------------------------------------------


async def import_file(
    actor: Actor, kind: str, data: bytes, filename: str | None = None, progress: Progress | None = None
) -> ImportReport:
    """Validate every row, then write all of them in one transaction — or nothing."""
    if kind not in KINDS:
        raise ValidationError(f"kind: 应为以下之一：{'、'.join(KINDS)}", {"field": "kind"})
    require_staff(actor)
    if kind == "products":
        require_admin(actor)
    # parsing and validating are CPU-bound (seconds for 100,000 rows): off the event loop, so
    # the server keeps answering (health checks, other requests) while a big file is read
    table = await asyncio.to_thread(read_table, data, filename)
    if not table.rows:
        raise ValidationError("文件只有表头，没有数据行")
    errors = Errors()
    rows = await asyncio.to_thread(_validate, kind, table, errors, progress)
    report = ImportReport(kind=kind, import_id=secrets.token_hex(6), rows=len(table.rows))
    writer = {"products": _products, "stock": _stock, "distributors": _distributors}[kind]
    try:
        await writer(actor, rows, errors, report, progress, len(table.rows))
    except IntegrityError:
        raise InvalidState("导入期间数据有变化（出现了重复），未导入任何数据") from None
    if kind == "products":  # bulk writes send no save signals
        await catalogue_changed()
    return report


async def _products(
    actor: Actor,
    rows: list[tuple[int, ProductRow]],
    errors: Errors,
    report: ImportReport,
    progress: Progress | None,
    total: int,
) -> None:
    _dupes(rows, lambda r: r.sku, "sku", errors)
    errors.raise_if_any(total)
    # pinyin of every name: CPU-bound (~0.2 ms a name), so off the event loop as well
    computed = await asyncio.to_thread(
        lambda: [product_values(r.sku, r.name, r.category, r.unit, r.spec) for _, r in rows]
    )
    async with in_transaction():
        existing = {
            p.sku: p for part in _chunks([r.sku for _, r in rows]) for p in await Product.filter(sku__in=part)
        }
        new: list[Product] = []
        changed: list[Product] = []
        for (_, r), values in zip(rows, computed, strict=True):
            p = existing.get(r.sku)
            if p is None:
                new.append(Product(**values))
            elif any(getattr(p, k) != v for k, v in values.items()):
                p.update_from_dict(values)
                changed.append(p)
            else:
                report.unchanged += 1
        done = 0
        for part in _chunks(new):
            await Product.bulk_create(part)
            done += len(part)
            if progress:
                progress("write", done, len(new) + len(changed))
        for part in _chunks(changed, 500):
            await Product.bulk_update(part, ["name", "pinyin", "initials", "category", "unit", "spec"])
            done += len(part)
            if progress:
                progress("write", done, len(new) + len(changed))
        report.created, report.updated = len(new), len(changed)
        await record(
            actor,
            "import.products",
            "import",
            report.import_id,
            after=_summary(report, [p.sku for p in new + changed]),
        )


async def _stock(
    actor: Actor,
    rows: list[tuple[int, StockRow]],
    errors: Errors,
    report: ImportReport,
    progress: Progress | None,
    total: int,
) -> None:
    _dupes(rows, lambda r: (r.warehouse, r.sku), "warehouse+sku", errors)
    warehouses = {
        code: (wid, region, did)
        for code, wid, region, did in await _in_chunks(
            Warehouse, "code", [r.warehouse for _, r in rows], "code", "id", "region", "distributor_id"
        )
    }
    scope_ids = (
        None
        if actor.is_admin
        else set(
            await Distributor.filter(region__in=sorted(actor.regions or [])).values_list("id", flat=True)
        )
    )
    products = dict(await _in_chunks(Product, "sku", [r.sku for _, r in rows], "sku", "id"))
    good: list[tuple[int, StockRow]] = []
    for number, r in rows:
        wh = warehouses.get(r.warehouse)
        known = True
        if wh is None or not (scope_ids is None or in_regions(actor, wh[1]) or wh[2] in scope_ids):
            errors.add(number, f"warehouse: 仓库不存在：{r.warehouse}")
            known = False
        if r.sku not in products:
            errors.add(number, f"sku: 商品编码不存在：{r.sku}")
            known = False
        if known:
            good.append((number, r))
    rows = good  # the balance checks below run on these; every error is reported at once
    async with in_transaction():
        keys = {(warehouses[r.warehouse][0], products[r.sku]) for _, r in rows}
        current: dict[tuple[int, int], Stock] = {}
        for part in _chunks(sorted({w for w, _ in keys})):
            for s in await Stock.filter(warehouse_id__in=part).order_by("id").select_for_update():
                key = (s.warehouse_id, s.product_id)  # type: ignore[attr-defined]
                if key in keys:
                    current[key] = s
        new: list[Stock] = []
        changed: list[Stock] = []
        moves: list[StockMovement] = []
        for number, r in rows:
            key = (warehouses[r.warehouse][0], products[r.sku])
            s = current.get(key)
            old, reserved = (s.on_hand, s.reserved) if s else (0, 0)
            if r.on_hand < reserved:
                errors.add(number, f"on_hand: {r.on_hand} 低于订单已预留的 {reserved}")
                continue
            if r.reason == "inbound" and r.on_hand < old:
                errors.add(number, f"reason: 入库不能减少库存（{old} → {r.on_hand}），请用盘点（stocktake）")
                continue
            if r.on_hand == old and s is not None:
                report.unchanged += 1
                continue
            if s is None:
                new.append(Stock(warehouse_id=key[0], product_id=key[1], on_hand=r.on_hand, reserved=0))
            else:
                s.on_hand = r.on_hand
                changed.append(s)
            if r.on_hand != old:
                moves.append(
                    StockMovement(
                        warehouse_id=key[0],
                        product_id=key[1],
                        reason=MovementReason(r.reason),
                        ref_type="import",
                        ref_id=report.import_id,
                        delta_on_hand=r.on_hand - old,
                        delta_reserved=0,
                        on_hand_after=r.on_hand,
                        reserved_after=reserved,
                        actor_id=actor.user_id or None,
                    )
                )
        errors.raise_if_any(total)  # rolls back: nothing written yet anyway
        done, todo = 0, len(new) + len(changed) + len(moves)
        for model, items, update in (
            (Stock, new, None),
            (Stock, changed, ["on_hand"]),
            (StockMovement, moves, None),
        ):
            for part in _chunks(items, 500 if update else CHUNK):
                if update:
                    await model.bulk_update(part, update)
                else:
                    await model.bulk_create(part)
                done += len(part)
                if progress:
                    progress("write", done, todo)
        report.created, report.updated, report.movements = len(new), len(changed), len(moves)
        await record(actor, "import.stock", "import", report.import_id, after=_summary(report, []))


async def _distributors(
    actor: Actor,
    rows: list[tuple[int, DistributorRow]],
    errors: Errors,
    report: ImportReport,
    progress: Progress | None,
    total: int,
) -> None:
    _dupes(rows, lambda r: r.uscc, "uscc", errors)
    usccs = [r.uscc for _, r in rows] + [r.parent_uscc for _, r in rows if r.parent_uscc]
    known = {
        u: (i, lvl, reg)
        for u, i, lvl, reg in await _in_chunks(Distributor, "uscc", usccs, "uscc", "id", "level", "region")
    }
    in_file = {r.uscc: r for _, r in rows}
    reps = dict(
        await _in_chunks(
            User.filter(role=UserRole.SALES),
            "username",
            [r.sales_rep for _, r in rows if r.sales_rep],
            "username",
            "id",
        )
    )
    for number, r in rows:
        if r.uscc in known:
            errors.add(number, f"uscc: {r.uscc} 已存在")
        if not in_regions(actor, r.region):
            errors.add(number, f"region: {r.region} 不在您的管辖范围内")
        if r.level == 1 and r.parent_uscc:
            errors.add(number, "parent_uscc: 一级经销商不能有上级")
        if r.level == 2:
            parent = in_file.get(r.parent_uscc or "") or known.get(r.parent_uscc or "")
            if not r.parent_uscc or parent is None:
                errors.add(number, "parent_uscc: 二级经销商须指定已有的一级经销商作为上级")
            else:
                p_level, p_region = (
                    (parent.level, parent.region) if isinstance(parent, DistributorRow) else parent[1:]
                )
                if p_level != 1 or p_region != r.region:
                    errors.add(number, "parent_uscc: 上级必须是同一区域的一级经销商")
        if r.sales_rep and r.sales_rep not in reps:
            errors.add(number, f"sales_rep: 没有这个业务员：{r.sales_rep}")
    errors.raise_if_any(total)
    async with in_transaction():
        ordered = [r for _, r in rows if r.level == 1] + [r for _, r in rows if r.level == 2]
        ids = {u: v[0] for u, v in known.items()}
        done = 0
        for level in (1, 2):
            batch = [r for r in ordered if r.level == level]
            for part in _chunks(batch):
                await Distributor.bulk_create(
                    [
                        Distributor(
                            name=r.name,
                            uscc=r.uscc,
                            level=r.level,
                            region=r.region,
                            parent_id=ids.get(r.parent_uscc) if r.parent_uscc else None,
                            sales_rep_id=reps.get(r.sales_rep) if r.sales_rep else None,
                            credit_limit=r.credit_limit,
                            payment_terms=r.payment_terms,
                            status=DistributorStatus(r.status),
                            contact=r.contact,
                            phone=r.phone,
                            address=r.address,
                        )
                        for r in part
                    ]
                )
                ids.update(await _in_chunks_dict(Distributor, "uscc", [r.uscc for r in part], "uscc", "id"))
                done += len(part)
                if progress:
                    progress("write", done, len(ordered))
        report.created = len(ordered)
        await record(
            actor,
            "import.distributors",
            "import",
            report.import_id,
            after=_summary(report, [r.uscc for r in ordered]),
        )
    managers = [
        u.id
        for u in await User.filter(role=UserRole.MANAGER)
        if set(u.regions or []) & {r.region for r in ordered}
    ]
    await refresh_user_scope(managers + list(reps.values()))


async def _in_chunks_dict(model: Any, column: str, values: list[Any], *fields: str) -> dict[Any, Any]:
    return dict(await _in_chunks(model, column, values, *fields))


def _summary(report: ImportReport, keys: list[str]) -> dict[str, Any]:
    return {**report.model_dump(), "keys": keys[:100], "more_keys": max(0, len(keys) - 100)}
