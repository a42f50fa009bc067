"""Reports: sales, inventory, receivables aging and commissions — each scoped by the Actor.

Every report returns the same shape, `{report, params, columns, rows, totals}`: `rows` are flat
dicts (money as strings with two places, quantities as ints) in `columns` order, so the
`?format=xlsx` export (miniapp_api/xlsx.py) writes exactly the JSON's rows.

- **sales**: lines of shipped / received / completed orders, net of returns (any return, even
  after the range), dated by when the order was fully shipped (or created, if no shipment
  date is recorded), grouped by distributor | product | category | region | month
  (business time zone), one row per group and unit: tons, bags and sheets are never added
  together (`totals.qty_by_unit`; `totals.qty` is null when several units are in the report).
  Default range: the last 12 calendar months up to today.
- **inventory**: stock per warehouse and sku with the units shipped in the last 28 days
  (ship movements), turnover days = on_hand / (shipped_28d / 28), and slow movers (stock but
  nothing shipped in 28 days, or more than `slow_days` of cover); rows carry the unit, totals
  `on_hand_by_unit` (`on_hand` null when several units).
- **receivables**: aging per distributor as of a business day (handlers.finance.receivables_aging:
  payments and returns settle the oldest debts first; buckets by days past the due date:
  current = not yet due, 1-30, 31-60, 61-90, 90+) — the same due/overdue the
  `receivables_overdue` job pushes and the receivables statements show.
- **commissions**: per beneficiary per month: accruals, reversals, adjustments, total, and
  the month's statement status.

Scope: a distributor user sees its distributor (and its 二级 children if it is 一级), a rep its
distributors (and only its own commissions), a manager its regions (and the reps serving
them), an admin everything; warehouses as in GET /stock (company + own).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field
from tortoise.expressions import Q, Subquery

from core.clock import BUSINESS_TZ, now, today
from core.errors import ValidationError
from core.money import money
from core.schema import Day, Id, Out, Query
from handlers.actor import Actor, Role
from handlers.commission_reads import reps_in_scope
from handlers.finance import receivables_aging
from handlers.periods import current_month, month_range, parse_month
from handlers.scope import scoped
from handlers.stock import visible_warehouses
from models.base import CommissionEntryKind, MovementReason, OrderStatus, StatementKind
from models.commission import CommissionEntry, Statement
from models.distributor import Distributor
from models.order import Order, OrderLine, OrderReturnLine
from models.stock import Stock, StockMovement
from models.user import User

SOLD = (OrderStatus.SHIPPED, OrderStatus.RECEIVED, OrderStatus.COMPLETED)
TURNOVER_WINDOW_DAYS = 28
MAX_RANGE_DAYS = 3 * 366


class ReportQuery(Query):
    format: Literal["json", "xlsx"] = "json"


class SalesQuery(ReportQuery):
    group_by: Literal["distributor", "product", "category", "region", "month"] = "distributor"
    date_from: Day | None = None
    date_to: Day | None = None


class InventoryQuery(ReportQuery):
    warehouse_id: Id | None = None
    sku: str | None = Field(None, min_length=1, max_length=64)
    slow_only: bool = False
    slow_days: int = Field(90, ge=1, le=3650)


class ReceivablesQuery(ReportQuery):
    as_of: Day | None = None


class CommissionReportQuery(ReportQuery):
    period_from: str | None = Field(None, max_length=7, description="YYYY-MM (default: this month)")
    period_to: str | None = Field(None, max_length=7, description="YYYY-MM (default: period_from)")


class ReportOut(Out):
    report: str
    params: dict[str, Any]
    columns: list[str]
    rows: list[dict[str, Any]]
    totals: dict[str, Any]


def _m(value: Decimal) -> str:
    return str(money(value))


def _utc(day: date) -> datetime:
    return datetime.combine(day, time(0), BUSINESS_TZ).astimezone(UTC)


# --- sales ------------------------------------------------------------------------------------

SALES_COLUMNS = ["key", "label", "unit", "orders", "qty", "gross", "returns", "net"]


def _range(query: SalesQuery) -> tuple[date, date]:
    date_to = query.date_to or today()
    if query.date_from is not None:
        date_from = query.date_from
    else:
        year, month = date_to.year, date_to.month - 11
        if month < 1:
            year, month = year - 1, month + 12
        date_from = date(year, month, 1)
    if date_from > date_to:
        raise ValidationError("date_from: 开始日期不能晚于结束日期", {"field": "date_from"})
    if (date_to - date_from).days > MAX_RANGE_DAYS:
        raise ValidationError("date_from: 日期范围最多 3 年", {"field": "date_from"})
    return date_from, date_to


async def sales_report(actor: Actor, query: SalesQuery) -> ReportOut:
    date_from, date_to = _range(query)
    start, end = _utc(date_from), _utc(date_to + timedelta(days=1))
    orders_qs = scoped(Order.filter(status__in=list(SOLD)), actor).filter(
        Q(shipped_at__gte=start, shipped_at__lt=end)
        | Q(shipped_at__isnull=True, created_at__gte=start, created_at__lt=end)
    )
    orders = {
        o["id"]: o
        for o in await orders_qs.values(
            "id", "distributor_id", "distributor__name", "distributor__region", "shipped_at", "created_at"
        )
    }
    ids_q = Subquery(orders_qs.values("id"))
    lines = await OrderLine.filter(order_id__in=ids_q).values(
        "id", "order_id", "sku", "name", "qty", "returned_qty", "amount", "product__category", "product__unit"
    )
    returned: dict[int, Decimal] = defaultdict(Decimal)
    for r in await OrderReturnLine.filter(order_line__order_id__in=ids_q).values("order_line_id", "amount"):
        returned[r["order_line_id"]] += Decimal(r["amount"])
    groups: dict[Any, dict[str, Any]] = {}
    for ln in lines:
        o = orders.get(ln["order_id"])
        if o is None:
            continue
        key, label = _sales_key(query.group_by, o, ln)
        unit = ln["product__unit"] or ""
        g = groups.setdefault(
            (key, unit),
            {
                "key": key,
                "label": label,
                "unit": unit,
                "orders": set(),
                "qty": 0,
                "gross": Decimal(0),
                "returns": Decimal(0),
            },
        )
        g["orders"].add(o["id"])
        g["qty"] += ln["qty"] - ln["returned_qty"]
        g["gross"] += Decimal(ln["amount"])
        g["returns"] += returned[ln["id"]]
    rows = [
        {
            "key": g["key"],
            "label": g["label"],
            "unit": g["unit"],
            "orders": len(g["orders"]),
            "qty": g["qty"],
            "gross": _m(g["gross"]),
            "returns": _m(g["returns"]),
            "net": _m(g["gross"] - g["returns"]),
        }
        for g in groups.values()
    ]
    if query.group_by == "month":
        rows.sort(key=lambda r: (str(r["key"]), r["unit"]))
    else:
        rows.sort(key=lambda r: (-Decimal(r["net"]), str(r["key"]), r["unit"]))
    by_unit = per_unit(rows, "qty")
    totals = {
        "orders": len({ln["order_id"] for ln in lines if ln["order_id"] in orders}),
        "qty": _one_unit(by_unit),
        "qty_by_unit": by_unit,
        **{k: _m(sum((Decimal(r[k]) for r in rows), Decimal(0))) for k in ("gross", "returns", "net")},
    }
    params = {"group_by": query.group_by, "date_from": date_from.isoformat(), "date_to": date_to.isoformat()}
    return ReportOut(report="sales", params=params, columns=SALES_COLUMNS, rows=rows, totals=totals)


def per_unit(rows: list[dict[str, Any]], col: str) -> dict[str, int]:
    """{unit: sum of `col`} — quantities are only ever added within one unit."""
    out: dict[str, int] = defaultdict(int)
    for r in rows:
        out[r["unit"]] += r[col]
    return dict(sorted(out.items()))


def _one_unit(by_unit: dict[str, int]) -> int | None:
    """The plain sum when every row has the same unit; None (not a number of mixed things) else."""
    if len(by_unit) > 1:
        return None
    return sum(by_unit.values())


def _sales_key(group_by: str, o: dict[str, Any], ln: dict[str, Any]) -> tuple[Any, str]:
    if group_by == "distributor":
        return o["distributor_id"], o["distributor__name"]
    if group_by == "product":
        return ln["sku"], ln["name"]
    if group_by == "category":
        return ln["product__category"], ln["product__category"]
    if group_by == "region":
        return o["distributor__region"], o["distributor__region"]
    when = (o["shipped_at"] or o["created_at"]).astimezone(BUSINESS_TZ)
    month = f"{when.year:04d}-{when.month:02d}"
    return month, month


# --- inventory --------------------------------------------------------------------------------

INVENTORY_COLUMNS = [
    "warehouse_id",
    "warehouse_code",
    "warehouse",
    "sku",
    "name",
    "category",
    "unit",
    "on_hand",
    "reserved",
    "available",
    "shipped_28d",
    "turnover_days",
    "slow_mover",
]


async def inventory_report(actor: Actor, query: InventoryQuery) -> ReportOut:
    qs = Stock.filter(visible_warehouses(actor, "warehouse__"))
    if query.warehouse_id is not None:
        qs = qs.filter(warehouse_id=query.warehouse_id)
    if query.sku is not None:
        qs = qs.filter(product__sku=query.sku)
    stocks = await qs.order_by("warehouse__code", "product__sku").values(
        "warehouse_id",
        "product_id",
        "warehouse__code",
        "warehouse__name",
        "product__sku",
        "product__name",
        "product__category",
        "product__unit",
        "on_hand",
        "reserved",
    )
    since = now() - timedelta(days=TURNOVER_WINDOW_DAYS)
    shipped: dict[tuple[int, int], int] = defaultdict(int)
    warehouse_ids = sorted({s["warehouse_id"] for s in stocks})
    if warehouse_ids:
        for mv in await StockMovement.filter(
            reason=MovementReason.SHIP, created_at__gte=since, warehouse_id__in=warehouse_ids
        ).values("warehouse_id", "product_id", "delta_on_hand"):
            shipped[(mv["warehouse_id"], mv["product_id"])] += -mv["delta_on_hand"]
    rows = []
    for s in stocks:
        out = max(shipped[(s["warehouse_id"], s["product_id"])], 0)
        days = (Decimal(s["on_hand"]) * TURNOVER_WINDOW_DAYS / out).quantize(Decimal("0.1")) if out else None
        slow = (out == 0 and s["on_hand"] > 0) or (days is not None and days > query.slow_days)
        if query.slow_only and not slow:
            continue
        rows.append(
            {
                "warehouse_id": s["warehouse_id"],
                "warehouse_code": s["warehouse__code"],
                "warehouse": s["warehouse__name"],
                "sku": s["product__sku"],
                "name": s["product__name"],
                "category": s["product__category"],
                "unit": s["product__unit"] or "",
                "on_hand": s["on_hand"],
                "reserved": s["reserved"],
                "available": s["on_hand"] - s["reserved"],
                "shipped_28d": out,
                "turnover_days": None if days is None else str(days),
                "slow_mover": slow,
            }
        )
    on_hand, shipped_28d = per_unit(rows, "on_hand"), per_unit(rows, "shipped_28d")
    totals = {
        "rows": len(rows),
        "on_hand": _one_unit(on_hand),
        "on_hand_by_unit": on_hand,
        "shipped_28d": _one_unit(shipped_28d),
        "shipped_28d_by_unit": shipped_28d,
        "slow_movers": sum(1 for r in rows if r["slow_mover"]),
    }
    params = {
        "warehouse_id": query.warehouse_id,
        "sku": query.sku,
        "slow_only": query.slow_only,
        "slow_days": query.slow_days,
        "window_days": TURNOVER_WINDOW_DAYS,
    }
    return ReportOut(report="inventory", params=params, columns=INVENTORY_COLUMNS, rows=rows, totals=totals)


# --- receivables ------------------------------------------------------------------------------

AGING = ["balance", "current", "d1_30", "d31_60", "d61_90", "d90_plus", "overdue"]
RECEIVABLES_COLUMNS = ["distributor_id", "distributor", "region", *AGING, "oldest_due"]


async def receivables_report(actor: Actor, query: ReceivablesQuery) -> ReportOut:
    as_of = query.as_of or today()
    ids = None if actor.distributor_ids is None else sorted(actor.distributor_ids)
    aging = await receivables_aging(ids, as_of)
    names = {
        d["id"]: d
        for d in await Distributor.filter(id__in=[a.distributor_id for a in aging]).values(
            "id", "name", "region"
        )
    }
    rows = []
    for a in aging:
        d = names.get(a.distributor_id, {"name": "", "region": ""})
        row: dict[str, Any] = {
            "distributor_id": a.distributor_id,
            "distributor": d["name"],
            "region": d["region"],
        }
        row.update({k: _m(getattr(a, k)) for k in AGING})
        row["oldest_due"] = a.oldest_due.isoformat() if a.oldest_due else None
        rows.append(row)
    rows.sort(key=lambda r: (-Decimal(r["overdue"]), -Decimal(r["balance"]), r["distributor_id"]))
    totals = {k: _m(sum((Decimal(r[k]) for r in rows), Decimal(0))) for k in AGING}
    return ReportOut(
        report="receivables",
        params={"as_of": as_of.isoformat()},
        columns=RECEIVABLES_COLUMNS,
        rows=rows,
        totals=totals,
    )


# --- commissions ------------------------------------------------------------------------------

COMMISSION_COLUMNS = [
    "period",
    "beneficiary_type",
    "beneficiary_id",
    "beneficiary",
    "accrual",
    "reversal",
    "adjustment",
    "total",
    "entries",
    "statement_status",
]


async def _subject_filter(actor: Actor) -> Q | None:
    """None = every subject (admin)."""
    if actor.role == Role.admin or actor.distributor_ids is None:
        return None
    dists = [f"distributor:{d}" for d in sorted(actor.distributor_ids)]
    if actor.role == Role.manager:
        reps = [f"user:{u}" for u in sorted(await reps_in_scope(actor) or [])]
        return Q(subject_key__in=[*reps, *dists])
    if actor.role == Role.sales:
        return Q(subject_key=f"user:{actor.user_id}")
    return Q(subject_key__in=dists)


async def commissions_report(actor: Actor, query: CommissionReportQuery) -> ReportOut:
    first = parse_month(query.period_from) if query.period_from else current_month()
    last = parse_month(query.period_to) if query.period_to else first
    if last < first:
        raise ValidationError("period_to: 结束期间不能早于开始期间", {"field": "period_to"})
    months = month_range(first, last)
    if len(months) > 36:
        raise ValidationError("period_to: 一次最多查询 36 个月", {"field": "period_to"})
    qs = CommissionEntry.filter(period__in=months)
    subjects = await _subject_filter(actor)
    if subjects is not None:
        qs = qs.filter(subjects)
    sums: dict[tuple[str, str], dict[str, Any]] = {}
    for e in await qs.values("subject_key", "period", "kind", "amount"):
        g = sums.setdefault(
            (e["subject_key"], e["period"]),
            {k: Decimal(0) for k in CommissionEntryKind} | {"entries": 0},
        )
        g[CommissionEntryKind(e["kind"])] += Decimal(e["amount"])
        g["entries"] += 1
    status = {
        (s["subject_key"], s["period"]): s["status"]
        for s in await Statement.filter(
            kind=StatementKind.COMMISSION, period__in=months, subject_key__in=sorted({k for k, _ in sums})
        ).values("subject_key", "period", "status")
    }
    names = await _subject_names({k for k, _ in sums})
    rows = []
    for (key, period), g in sorted(sums.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        kind, _, ident = key.partition(":")
        amounts = [g[k] for k in CommissionEntryKind]
        rows.append(
            {
                "period": period,
                "beneficiary_type": kind,
                "beneficiary_id": int(ident),
                "beneficiary": names.get(key, ""),
                "accrual": _m(g[CommissionEntryKind.ACCRUAL]),
                "reversal": _m(g[CommissionEntryKind.REVERSAL]),
                "adjustment": _m(g[CommissionEntryKind.ADJUSTMENT]),
                "total": _m(sum(amounts, Decimal(0))),
                "entries": g["entries"],
                "statement_status": str(status[(key, period)]) if (key, period) in status else None,
            }
        )
    totals = {
        k: _m(sum((Decimal(r[k]) for r in rows), Decimal(0)))
        for k in ("accrual", "reversal", "adjustment", "total")
    }
    return ReportOut(
        report="commissions",
        params={"period_from": first, "period_to": last},
        columns=COMMISSION_COLUMNS,
        rows=rows,
        totals=totals,
    )


async def _subject_names(keys: set[str]) -> dict[str, str]:
    users = sorted(int(k[5:]) for k in keys if k.startswith("user:"))
    dists = sorted(int(k[12:]) for k in keys if k.startswith("distributor:"))
    out: dict[str, str] = {}
    for uid, name in await User.filter(id__in=users).values_list("id", "display_name") if users else []:
        out[f"user:{uid}"] = str(name)
    for did, name in await Distributor.filter(id__in=dists).values_list("id", "name") if dists else []:
        out[f"distributor:{did}"] = str(name)
    return out


# --- export totals ----------------------------------------------------------------------------

_SUMMED = {
    "sales": ("orders", "qty", "gross", "returns", "net"),
    "inventory": ("on_hand", "reserved", "available", "shipped_28d"),
    "receivables": tuple(AGING),
    "commissions": ("accrual", "reversal", "adjustment", "total", "entries"),
}


def export_totals(out: ReportOut) -> list[dict[str, Any]]:
    """The rows under a report's table in the workbook: 小计 per unit when the report holds
    several units, then 合计 (quantities only where they share one unit; money always)."""
    if not out.columns:
        return []
    first = out.columns[0]
    cols = _SUMMED.get(out.report, ())
    units = sorted({r["unit"] for r in out.rows}) if "unit" in out.columns else []
    rows: list[dict[str, Any]] = []
    if len(units) > 1:
        for unit in units:
            mine = [r for r in out.rows if r["unit"] == unit]
            sub: dict[str, Any] = {first: "小计", "unit": unit}
            for c in cols:
                if c != "orders":
                    sub[c] = _sum(mine, c)
            rows.append(sub)
    total: dict[str, Any] = {first: "合计"}
    if len(units) == 1:
        total["unit"] = units[0]
    for c in cols:
        if c in ("qty", "on_hand", "reserved", "available", "shipped_28d") and len(units) > 1:
            total[c] = None  # tons and bags are not added together
        elif c in out.totals and c not in ("qty", "on_hand", "shipped_28d"):
            total[c] = out.totals[c]
        else:
            total[c] = _sum(out.rows, c)
    rows.append(total)
    return rows


def _sum(rows: list[dict[str, Any]], col: str) -> Any:
    values = [r.get(col) for r in rows if r.get(col) is not None]
    if any(isinstance(v, str) for v in values):  # money as strings
        return _m(sum((Decimal(v) for v in values), Decimal(0)))
    return sum(values)
