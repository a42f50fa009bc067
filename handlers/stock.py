"""Stock: what a caller may see, where an order's units come from, and the ledger.

Every change to a Stock row goes through `change()`: a conditional UPDATE
(``filter(id=.., on_hand__gte=F("reserved") + k).update(...)``, row count checked) that can
never break ``0 <= reserved <= on_hand``, plus a StockMovement with the balances after it.
Callers lock the rows first with `lock()` (``SELECT .. FOR UPDATE`` in id order on
PostgreSQL; SQLite runs one write transaction at a time), so balances after are exact and
lock order is the same everywhere: distributor -> order -> stock rows by id.

**Which warehouses an order draws from** (`order_warehouses`), in this order:
1. the company warehouses (no owner) in the distributor's region, by id;
2. the distributor's own warehouses, by id;
3. the other company warehouses, by id.
A line is reserved from the first warehouse that has all of it; if none has, it is split,
taking what each has in that order. Inactive warehouses are never used.

**Who sees which stock** (`GET /stock`): admins all; everyone else the active company
warehouses plus the warehouses owned by distributors in their scope.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StrictInt
from tortoise import timezone
from tortoise.expressions import Q
from tortoise.functions import Max, Sum
from tortoise.transactions import in_transaction

from core.errors import InsufficientStock, NotFound, ValidationError
from core.schema import In, Out, Page, StrictId
from handlers.actor import Actor
from handlers.audit import record, snapshot
from handlers.sql import SqlParams, db_of, fetch, insert_models
from models.base import MovementReason
from models.distributor import Distributor
from models.product import Product
from models.stock import Stock, StockMovement, Warehouse

MAX_QTY = 1_000_000
ADMIN_REASONS = (MovementReason.INBOUND, MovementReason.OUTBOUND, MovementReason.STOCKTAKE)


# --- visibility ---------------------------------------------------------------------------


def visible_warehouses(actor: Actor, prefix: str = "") -> Q:
    """Filter on Warehouse rows the actor may see (`prefix="warehouse__"` from Stock rows)."""
    if actor.sees_all():
        return Q()
    owned = Q(**{f"{prefix}distributor_id__in": list(actor.distributor_ids or ())})
    return Q(**{f"{prefix}active": True}) & (Q(**{f"{prefix}distributor_id__isnull": True}) | owned)


async def order_warehouses(distributor: Distributor | None) -> list[int]:
    """Warehouse ids in the order they are drawn from (see the module docstring).
    `None` (no distributor: staff base view) = every active company warehouse by id."""
    rows = await Warehouse.filter(
        Q(distributor_id__isnull=True) | Q(distributor_id=distributor.id if distributor else -1),
        active=True,
    ).values("id", "region", "distributor_id")
    if distributor is None:
        return sorted(r["id"] for r in rows if r["distributor_id"] is None)

    def rank(r: dict) -> tuple[int, int]:
        if r["distributor_id"] is None and r["region"] == distributor.region:
            return (0, r["id"])
        return (1 if r["distributor_id"] is not None else 2, r["id"])

    return [r["id"] for r in sorted(rows, key=rank)]


async def available_by_product(product_ids: list[int], warehouse_ids: list[int]) -> dict[int, int]:
    """Sum of on_hand - reserved per product over those warehouses."""
    if not product_ids or not warehouse_ids:
        return {}
    rows = await Stock.filter(product_id__in=product_ids, warehouse_id__in=warehouse_ids).values(
        "product_id", "on_hand", "reserved"
    )
    out: dict[int, int] = {}
    for r in rows:
        out[r["product_id"]] = out.get(r["product_id"], 0) + r["on_hand"] - r["reserved"]
    return out


# --- reading stock ------------------------------------------------------------------------


class StockRow(Out):
    sku: str
    product_id: int
    product_name: str
    warehouse_id: int
    warehouse_code: str
    warehouse_name: str
    on_hand: int
    reserved: int
    available: int


# One statement for a page and its total (window count); `visible`/`where` are built below
# from fixed fragments and placeholders only. bench/stock_query.py runs this same statement.
STOCK_PAGE_SQL = (
    'SELECT p."sku" AS sku, s."product_id" AS product_id, p."name" AS product_name,'
    ' s."warehouse_id" AS warehouse_id, w."code" AS warehouse_code, w."name" AS warehouse_name,'
    ' s."on_hand" AS on_hand, s."reserved" AS reserved, COUNT(*) OVER () AS total'
    ' FROM "stock" s JOIN "warehouse" w ON w."id" = s."warehouse_id"'
    ' JOIN "product" p ON p."id" = s."product_id"'
    " WHERE {visible}{where}"
    ' ORDER BY s."product_id", s."warehouse_id" LIMIT {limit} OFFSET {offset}'
)


def _stock_sql(
    dialect: str, actor: Actor, sku: str | None, warehouse_id: int | None, limit: int, offset: int
) -> tuple[str, list[object]]:
    p = SqlParams(dialect)
    if actor.sees_all():
        visible = "1 = 1"
    else:
        owned = p.any_int('w."distributor_id"', sorted(actor.distributor_ids or ()))
        visible = f'w."active" AND (w."distributor_id" IS NULL OR {owned})'
    where = ""
    if sku and sku.strip():  # SKU codes are typed in any case and width (lwg-012, ＬＷＧ－０１２)
        where += f' AND LOWER(p."sku") = {p(unicodedata.normalize("NFKC", sku).strip().lower())}'
    if warehouse_id is not None:
        where += f' AND s."warehouse_id" = {p(warehouse_id)}'
    sql = STOCK_PAGE_SQL.format(visible=visible, where=where, limit=p(limit), offset=p(offset))
    return sql, p.values


async def list_stock(
    actor: Actor,
    *,
    sku: str | None = None,
    warehouse_id: int | None = None,
    page: int = 1,
    page_size: int = 20,
) -> Page[StockRow]:
    """Stock rows the actor may see, by product then warehouse; a warehouse outside its view
    is NotFound."""
    db = db_of(Stock)
    dialect = db.capabilities.dialect
    rows = await db.execute_query_dict(
        *_stock_sql(dialect, actor, sku, warehouse_id, page_size, (page - 1) * page_size)
    )
    if warehouse_id is not None and not rows:
        if not await Warehouse.filter(visible_warehouses(actor), id=warehouse_id).exists():
            raise NotFound("未找到该仓库")
    if rows:
        total = int(rows[0]["total"])
    elif page == 1:
        total = 0
    else:  # past the last page: the total from the first row
        first = await db.execute_query_dict(*_stock_sql(dialect, actor, sku, warehouse_id, 1, 0))
        total = int(first[0]["total"]) if first else 0
    items = [
        StockRow.model_construct(
            sku=r["sku"],
            product_id=r["product_id"],
            product_name=r["product_name"],
            warehouse_id=r["warehouse_id"],
            warehouse_code=r["warehouse_code"],
            warehouse_name=r["warehouse_name"],
            on_hand=r["on_hand"],
            reserved=r["reserved"],
            available=r["on_hand"] - r["reserved"],
        )
        for r in rows
    ]
    return Page[StockRow](items=items, total=total, page=page, page_size=page_size)


# --- changing stock -----------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """What caused a movement: written on every ledger row."""

    type: str
    id: int | str
    actor_id: int | None = None
    note: str | None = None


@dataclass
class Row:
    """A stock row as the writers see it (locked, with its balances)."""

    id: int
    product_id: int
    warehouse_id: int
    on_hand: int
    reserved: int
    region: str = ""
    owner_id: int | None = None  # the warehouse's distributor, None = company


# Raw SQL: these run inside every order admission and shipment (see handlers.pricing).
_LOCK_SQL = (
    "SELECT s.id AS id, s.product_id AS product_id, s.warehouse_id AS warehouse_id, s.on_hand AS on_hand,"
    " s.reserved AS reserved, w.region AS region, w.distributor_id AS owner_id"
    " FROM stock s JOIN warehouse w ON w.id = s.warehouse_id WHERE {where} ORDER BY s.id{lock}"
)
_CHANGE_SQL = (
    "UPDATE stock SET on_hand = on_hand + {do}, reserved = reserved + {dr}, updated_at = {at}"
    " WHERE id = {id} AND on_hand >= reserved + {k}{more} RETURNING on_hand, reserved"
)


async def _select_locked(p: SqlParams, where: str) -> list[Row]:
    db = db_of(Stock)
    sql = _LOCK_SQL.format(where=where, lock=" FOR NO KEY UPDATE OF s" if p.pg else "")
    return [Row(**r) for r in await fetch(db, sql, p.values)]


async def lock(stock_ids: list[int]) -> dict[int, Row]:
    """The rows, locked in id order on PostgreSQL (a plain read inside SQLite's one writer)."""
    if not stock_ids:
        return {}
    p = SqlParams(db_of(Stock).capabilities.dialect)
    rows = await _select_locked(p, p.any_int("s.id", sorted(set(stock_ids))))
    return {r.id: r for r in rows}


async def lock_for_order(distributor: Any, product_ids: list[int]) -> list[Row]:
    """The stock rows an order of `distributor` may draw these products from, locked in id
    order by one statement, returned in the drawing order of `order_warehouses`."""
    p = SqlParams(db_of(Stock).capabilities.dialect)
    where = (
        f"{p.any_int('s.product_id', product_ids)} AND w.active"
        f" AND (w.distributor_id IS NULL OR w.distributor_id = {p(distributor.id)})"
    )
    rows = await _select_locked(p, where)

    def rank(r: Row) -> tuple[int, int]:
        if r.owner_id is None and r.region == distributor.region:
            return (0, r.warehouse_id)
        return (1 if r.owner_id is not None else 2, r.warehouse_id)

    return sorted(rows, key=rank)


async def change(
    stock: Row | Stock, d_on_hand: int, d_reserved: int, reason: MovementReason, ref: Ref
) -> StockMovement:
    """Apply a delta to a (locked) row and return its unsaved ledger row. The conditional
    UPDATE only matches if the result keeps 0 <= reserved <= on_hand (else InsufficientStock);
    the balances after come back from the UPDATE itself."""
    db = db_of(Stock)
    p = SqlParams(db.capabilities.dialect)
    # reserved + dr >= 0 and reserved + dr <= on_hand + do (which also gives on_hand + do >= 0)
    sql = _CHANGE_SQL.format(
        do=p(d_on_hand),
        dr=p(d_reserved),
        at=p(timezone.now()),  # what the ORM's auto_now would write
        id=p(stock.id),
        k=p(d_reserved - d_on_hand),
        more=f" AND reserved >= {p(-d_reserved)}" if d_reserved < 0 else "",
    )
    rows = await fetch(db, sql, p.values)
    if not rows:
        raise InsufficientStock(
            "库存不足",
            {"items": [{"stock_id": stock.id, "on_hand": stock.on_hand, "reserved": stock.reserved}]},
        )
    stock.on_hand, stock.reserved = rows[0]["on_hand"], rows[0]["reserved"]
    return StockMovement(
        warehouse_id=stock.warehouse_id,  # type: ignore[union-attr]
        product_id=stock.product_id,  # type: ignore[union-attr]
        reason=reason,
        ref_type=ref.type,
        ref_id=str(ref.id),
        delta_on_hand=d_on_hand,
        delta_reserved=d_reserved,
        on_hand_after=stock.on_hand,
        reserved_after=stock.reserved,
        actor_id=ref.actor_id or None,
        note=ref.note,
    )


async def save_movements(movements: list[StockMovement]) -> None:
    await insert_models(movements)


# --- admin: adjustments and thresholds ----------------------------------------------------


class AdjustmentIn(In):
    warehouse_id: StrictId
    sku: Annotated[str, Field(min_length=1, max_length=64)]
    delta: Annotated[StrictInt, Field(ge=-MAX_QTY, le=MAX_QTY)]
    reason: Literal["inbound", "outbound", "stocktake"]
    note: Annotated[str, Field(max_length=255)] | None = None


class AdjustmentOut(Out):
    id: int
    warehouse_id: int
    sku: str
    product_id: int
    reason: str
    delta: int
    note: str | None
    on_hand: int
    reserved: int
    available: int
    actor_id: int | None
    created_at: datetime


class ThresholdIn(In):
    warehouse_id: StrictId
    sku: Annotated[str, Field(min_length=1, max_length=64)]
    min_qty: Annotated[StrictInt, Field(ge=0, le=MAX_QTY * 100)] | None = None
    max_qty: Annotated[StrictInt, Field(ge=0, le=MAX_QTY * 100)] | None = None
    reorder_point: Annotated[StrictInt, Field(ge=0, le=MAX_QTY * 100)] | None = None
    cover_days: Annotated[StrictInt, Field(ge=0, le=3650)] | None = None


class ThresholdOut(Out):
    stock_id: int
    warehouse_id: int
    warehouse_code: str
    sku: str
    product_id: int
    on_hand: int
    reserved: int
    available: int
    min_qty: int | None
    max_qty: int | None
    reorder_point: int | None
    cover_days: int | None


def _admin_warehouses(actor: Actor, prefix: str = "") -> Q:
    """Managers administer the warehouses in their regions; admins all."""
    if actor.regions is None:
        return Q()
    return Q(**{f"{prefix}region__in": sorted(actor.regions)})


async def _admin_warehouse(actor: Actor, warehouse_id: int) -> Warehouse:
    wh = await Warehouse.filter(_admin_warehouses(actor), id=warehouse_id).first()
    if wh is None:
        raise NotFound("未找到该仓库")
    return wh


async def _product_by_sku(sku: str, field: str = "sku") -> Product:
    product = await Product.get_or_none(sku=sku)
    if product is None:
        raise ValidationError(f"{field}: 商品编码不存在：{sku}", {"field": field, "sku": sku})
    return product


async def _stock_row(wh: Warehouse, product: Product) -> Stock:
    """The (warehouse, product) row, created empty if missing, locked."""
    await Stock.bulk_create(
        [Stock(warehouse_id=wh.id, product_id=product.id, on_hand=0, reserved=0)], ignore_conflicts=True
    )
    rows = await Stock.filter(warehouse_id=wh.id, product_id=product.id).select_for_update(no_key=True)
    return rows[0]


async def adjust_stock(actor: Actor, data: AdjustmentIn) -> AdjustmentOut:
    """Inbound (delta > 0), outbound (delta < 0) or stocktake (either sign) — never below
    what is reserved (409 insufficient_stock)."""
    if data.delta == 0:
        raise ValidationError("delta: 调整数量不能为 0", {"field": "delta"})
    if data.reason == "inbound" and data.delta < 0:
        raise ValidationError("delta: 入库数量须为正数", {"field": "delta"})
    if data.reason == "outbound" and data.delta > 0:
        raise ValidationError("delta: 出库数量须为负数", {"field": "delta"})
    async with in_transaction():
        wh = await _admin_warehouse(actor, data.warehouse_id)
        product = await _product_by_sku(data.sku)
        stock = await _stock_row(wh, product)
        before = snapshot(stock, ["on_hand", "reserved"])
        ref = Ref("adjustment", f"{wh.id}:{product.id}", actor.user_id, data.note)
        try:
            mv = await change(stock, data.delta, 0, MovementReason(data.reason), ref)
        except InsufficientStock:
            raise InsufficientStock(
                "调整后库存将低于已预留数量",
                {
                    "items": [
                        {
                            "sku": product.sku,
                            "warehouse_id": wh.id,
                            "on_hand": stock.on_hand,
                            "reserved": stock.reserved,
                            "delta": data.delta,
                        }
                    ]
                },
            ) from None
        await mv.save()
        await record(
            actor, f"stock.{data.reason}", "stock", stock.id, before, snapshot(stock, ["on_hand", "reserved"])
        )
    return _adjustment_out(mv, product.sku, stock)


def _adjustment_out(mv: StockMovement, sku: str, stock: Stock | None = None) -> AdjustmentOut:
    return AdjustmentOut(
        id=mv.id,
        warehouse_id=mv.warehouse_id,  # type: ignore[attr-defined]
        sku=sku,
        product_id=mv.product_id,  # type: ignore[attr-defined]
        reason=str(mv.reason),
        delta=mv.delta_on_hand,
        note=mv.note,
        on_hand=mv.on_hand_after,
        reserved=mv.reserved_after,
        available=mv.on_hand_after - mv.reserved_after,
        actor_id=mv.actor_id,  # type: ignore[attr-defined]
        created_at=mv.created_at,
    )


async def list_adjustments(
    actor: Actor,
    *,
    warehouse_id: int | None = None,
    sku: str | None = None,
    page: int = 1,
    page_size: int = 20,
) -> Page[AdjustmentOut]:
    qs = StockMovement.filter(_admin_warehouses(actor, "warehouse__"), reason__in=list(ADMIN_REASONS))
    if warehouse_id is not None:
        await _admin_warehouse(actor, warehouse_id)
        qs = qs.filter(warehouse_id=warehouse_id)
    if sku:
        qs = qs.filter(product__sku=sku)
    total = await qs.count()
    rows = (
        await qs.order_by("-id").offset((page - 1) * page_size).limit(page_size).prefetch_related("product")
    )
    items = [_adjustment_out(mv, mv.product.sku) for mv in rows]
    return Page[AdjustmentOut](items=items, total=total, page=page, page_size=page_size)


THRESHOLD_FIELDS = ("min_qty", "max_qty", "reorder_point", "cover_days")


async def set_thresholds(actor: Actor, data: ThresholdIn) -> ThresholdOut:
    """Upsert the alert thresholds of one (warehouse, sku); omitted fields stay, null clears."""
    given = [f for f in THRESHOLD_FIELDS if f in data.model_fields_set]
    async with in_transaction():
        wh = await _admin_warehouse(actor, data.warehouse_id)
        product = await _product_by_sku(data.sku)
        stock = await _stock_row(wh, product)
        before = snapshot(stock, list(THRESHOLD_FIELDS))
        for f in given:
            setattr(stock, f, getattr(data, f))
        if stock.min_qty is not None and stock.max_qty is not None and stock.min_qty > stock.max_qty:
            raise ValidationError("max_qty: 最高库存不能小于最低库存（min_qty）", {"field": "max_qty"})
        if given:
            await Stock.filter(id=stock.id).update(**{f: getattr(stock, f) for f in given})
        await record(
            actor, "stock.thresholds", "stock", stock.id, before, snapshot(stock, list(THRESHOLD_FIELDS))
        )
    return _threshold_out(stock, wh.code, product.sku)


def _threshold_out(stock: Stock, warehouse_code: str, sku: str) -> ThresholdOut:
    return ThresholdOut(
        stock_id=stock.id,
        warehouse_id=stock.warehouse_id,  # type: ignore[attr-defined]
        warehouse_code=warehouse_code,
        sku=sku,
        product_id=stock.product_id,  # type: ignore[attr-defined]
        on_hand=stock.on_hand,
        reserved=stock.reserved,
        available=stock.on_hand - stock.reserved,
        min_qty=stock.min_qty,
        max_qty=stock.max_qty,
        reorder_point=stock.reorder_point,
        cover_days=stock.cover_days,
    )


async def list_thresholds(
    actor: Actor,
    *,
    warehouse_id: int | None = None,
    sku: str | None = None,
    page: int = 1,
    page_size: int = 20,
) -> Page[ThresholdOut]:
    any_set = (
        Q(min_qty__isnull=False)
        | Q(max_qty__isnull=False)
        | Q(reorder_point__isnull=False)
        | Q(cover_days__isnull=False)
    )
    qs = Stock.filter(any_set, _admin_warehouses(actor, "warehouse__"))
    if warehouse_id is not None:
        await _admin_warehouse(actor, warehouse_id)
        qs = qs.filter(warehouse_id=warehouse_id)
    if sku:
        qs = qs.filter(product__sku=sku)
    total = await qs.count()
    rows = (
        await qs.order_by("id")
        .offset((page - 1) * page_size)
        .limit(page_size)
        .prefetch_related("warehouse", "product")
    )
    items = [_threshold_out(s, s.warehouse.code, s.product.sku) for s in rows]
    return Page[ThresholdOut](items=items, total=total, page=page, page_size=page_size)


# --- ledger check -------------------------------------------------------------------------


class LedgerDrift(Out):
    warehouse_id: int
    product_id: int
    on_hand: int | None  # None: movements exist but no stock row
    reserved: int | None
    ledger_on_hand: int
    ledger_reserved: int
    last_on_hand_after: int | None
    last_reserved_after: int | None


async def verify_ledger() -> list[LedgerDrift]:
    """Recompute every balance from the movements. A row drifts when the sums of the deltas
    differ from on_hand/reserved, or the last movement's balances-after differ from them."""
    sums = (
        await StockMovement.annotate(oh=Sum("delta_on_hand"), rs=Sum("delta_reserved"))
        .group_by("warehouse_id", "product_id")
        .values("warehouse_id", "product_id", "oh", "rs")
    )
    ledger = {(r["warehouse_id"], r["product_id"]): (int(r["oh"] or 0), int(r["rs"] or 0)) for r in sums}
    lasts = (
        await StockMovement.annotate(last=Max("id"))
        .group_by("warehouse_id", "product_id")
        .values_list("last", flat=True)
    )
    after: dict[tuple[int, int], tuple[int, int]] = {}
    for chunk_start in range(0, len(lasts), 500):
        chunk = lasts[chunk_start : chunk_start + 500]
        for r in await StockMovement.filter(id__in=chunk).values(
            "warehouse_id", "product_id", "on_hand_after", "reserved_after"
        ):
            after[(r["warehouse_id"], r["product_id"])] = (r["on_hand_after"], r["reserved_after"])
    drift: list[LedgerDrift] = []
    seen: set[tuple[int, int]] = set()
    for s in await Stock.all().values("warehouse_id", "product_id", "on_hand", "reserved"):
        key = (s["warehouse_id"], s["product_id"])
        seen.add(key)
        oh, rs = ledger.get(key, (0, 0))
        last = after.get(key)
        ok = (oh, rs) == (s["on_hand"], s["reserved"]) and (last is None or last == (oh, rs))
        if not ok:
            drift.append(_drift(key, s["on_hand"], s["reserved"], (oh, rs), last))
    for key, (oh, rs) in ledger.items():
        if key not in seen and (oh, rs) != (0, 0):
            drift.append(_drift(key, None, None, (oh, rs), after.get(key)))
    return drift


def _drift(
    key: tuple[int, int],
    on_hand: int | None,
    reserved: int | None,
    ledger: tuple[int, int],
    last: tuple[int, int] | None,
) -> LedgerDrift:
    return LedgerDrift(
        warehouse_id=key[0],
        product_id=key[1],
        on_hand=on_hand,
        reserved=reserved,
        ledger_on_hand=ledger[0],
        ledger_reserved=ledger[1],
        last_on_hand_after=last[0] if last else None,
        last_reserved_after=last[1] if last else None,
    )
