"""Scheduled alert jobs: low stock, overstock, contract expiry, overdue receivables, daily digest.

Each job scans with plain value queries (no model objects for the big tables), builds one
draft per (subject, recipient) with the dedupe key `job:subject:period:recipient` and hands
them to `handlers.digest.dispatch`, so reruns, second instances and catch-up runs after
downtime never send the same alert twice. Company-wide summaries go to the configured
DingTalk group robots (one per job, period and robot).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from tortoise import connections
from tortoise.transactions import in_transaction

from core.clock import BUSINESS_TZ
from core.clock import now as clock_now
from core.money import ZERO, money
from core.runtime import runtime
from handlers.digest import AlertDraft, Audience, dispatch
from handlers.finance import receivables_aging
from handlers.notify import business_tz
from handlers.outbox import is_postgres
from models.audit import AuditLog
from models.base import ContractStatus, MovementReason, OrderStatus
from models.contract import Contract
from models.distributor import Distributor
from models.notification import Notification
from models.order import Order
from models.product import Product
from models.stock import Stock, Warehouse

SALES_WINDOW_DAYS = 28
ROBOT_SUMMARY_LINES = 15


def business_today() -> date:
    return clock_now().astimezone(business_tz()).date()


def _iso_week(d: date) -> str:
    y, w, _ = d.isocalendar()
    return f"{y}-W{w:02d}"


def _robot_summary(
    job: str, period: str, aud: Audience, kind: str, title: str, lines: list[str]
) -> list[AlertDraft]:
    if not lines or not aud.robots:
        return []
    shown = lines[:ROBOT_SUMMARY_LINES]
    if len(lines) > ROBOT_SUMMARY_LINES:
        shown.append(f"… 共 {len(lines)} 项")
    return [
        AlertDraft(
            kind=kind,
            title=title,
            body="\n".join(f"- {line}" for line in shown),
            dedupe_key=f"{job}:all:{period}:robot:{robot}",
            recipient_ref=robot,
        )
        for robot in aud.robots
    ]


async def _places(warehouse_ids: set[int]) -> tuple[dict[int, tuple], dict[int, tuple]]:
    """Warehouses (code, name, region, distributor_id) and their distributors (name, region)."""
    whs: dict[int, tuple] = {}
    ids = sorted(warehouse_ids)
    for i in range(0, len(ids), 1000):
        for wid, code, name, region, did in await Warehouse.filter(id__in=ids[i : i + 1000]).values_list(
            "id", "code", "name", "region", "distributor_id"
        ):
            whs[wid] = (code, name, region, did)
    dids = sorted({w[3] for w in whs.values() if w[3]})
    dists: dict[int, tuple] = {}
    for i in range(0, len(dids), 1000):
        for did, name, region in await Distributor.filter(id__in=dids[i : i + 1000]).values_list(
            "id", "name", "region"
        ):
            dists[did] = (name, region)
    return whs, dists


async def _products(ids: set[int]) -> dict[int, tuple[str, str]]:
    out: dict[int, tuple[str, str]] = {}
    pids = sorted(ids)
    for i in range(0, len(pids), 1000):
        for pid, sku, name in await Product.filter(id__in=pids[i : i + 1000]).values_list(
            "id", "sku", "name"
        ):
            out[pid] = (sku, name)
    return out


_CANDIDATES_SQL = """
SELECT s.id, s.warehouse_id, s.product_id, s.on_hand - s.reserved, s.min_qty, s.reorder_point,
       s.cover_days, -m.q
FROM stock s
LEFT JOIN (
    SELECT warehouse_id, product_id, SUM(delta_on_hand) AS q
    FROM stock_movement
    WHERE reason = {p1} AND created_at >= {p2}
    GROUP BY warehouse_id, product_id
) m ON m.warehouse_id = s.warehouse_id AND m.product_id = s.product_id
WHERE (s.min_qty IS NOT NULL AND s.on_hand - s.reserved < s.min_qty)
   OR (s.reorder_point IS NOT NULL AND s.on_hand - s.reserved <= s.reorder_point)
   OR m.q < 0
"""


async def low_stock_candidates() -> list[tuple]:
    """Stock rows that may be low: under a threshold, or sold in the last 28 days (for days of
    cover). One SQL statement, so 100k rows never become Python objects."""
    since = (clock_now() - timedelta(days=SALES_WINDOW_DAYS)).astimezone(UTC)
    conn = connections.get("default")
    if is_postgres():
        sql, values = _CANDIDATES_SQL.format(p1="$1", p2="$2"), [str(MovementReason.SHIP), since]
    else:  # SQLite keeps datetimes as ISO text in UTC, as tortoise writes them
        sql, values = (
            _CANDIDATES_SQL.format(p1="?", p2="?"),
            [str(MovementReason.SHIP), since.isoformat(sep=" ")],
        )
    _, rows = await conn.execute_query(sql, values)
    return [tuple(r) for r in rows]


# --- stock ------------------------------------------------------------------------------------


async def _stock_alerts(
    job: str, kind: str, label: str, findings: list[tuple[int, int, int, str, int]]
) -> dict:
    """findings: (stock id, warehouse id, product id, reason text, available)."""
    today = business_today()
    period = today.isoformat() if job == "low_stock" else _iso_week(today)
    whs, dists = await _places({f[1] for f in findings})
    products = await _products({f[2] for f in findings})
    aud = await Audience.load(kind, {w[3] for w in whs.values() if w[3]})
    drafts: list[AlertDraft] = []
    robot_lines: list[str] = []
    for stock_id, wid, pid, reason, available in findings:
        code, wname, wregion, did = whs[wid]
        sku, pname = products[pid]
        region = dists[did][1] if did else wregion
        owner = f"{dists[did][0]} " if did else ""
        title = f"{label}：{pname}"
        body = f"{owner}{wname}（{code}）{sku} {pname}：{reason}"
        line = f"{code} {sku} {pname}：{reason}"
        robot_lines.append(line)
        payload = {"stock_id": stock_id, "warehouse_id": wid, "product_id": pid, "available": available}
        for uid, channel in aud.users(region, did):
            drafts.append(
                AlertDraft(
                    kind=kind,
                    title=title,
                    body=body,
                    line=line,
                    dedupe_key=f"{job}:{stock_id}:{period}:{uid}",
                    recipient_id=uid,
                    payload=payload,
                    channel=channel,
                )
            )
    drafts += _robot_summary(job, period, aud, kind, f"{label}汇总（{len(findings)} 项）", robot_lines)
    result = await dispatch(job, period, drafts, label=label)
    return {"period": period, "findings": len(findings), **result.as_dict()}


async def job_low_stock(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Available below min_qty, at/below reorder_point, or days of cover (last 28 days' ship
    movements) below the row's cover_days or alerts.low_stock_cover_days."""
    default_cover = runtime().config.alerts.low_stock_cover_days
    aud = await Audience.load("low_stock")
    default_cover = int(aud.param("cover_days", default_cover))
    findings: list[tuple[int, int, int, str, int]] = []
    for sid, wid, pid, available, min_qty, reorder, cover_days, sold in await low_stock_candidates():
        reasons = []
        if min_qty is not None and available < min_qty:
            reasons.append(f"可用 {available} 低于下限 {min_qty}")
        if reorder is not None and available <= reorder:
            reasons.append(f"可用 {available} 已到补货点 {reorder}")
        threshold = cover_days if cover_days is not None else default_cover
        if threshold and sold and sold > 0:
            cover = available / (sold / SALES_WINDOW_DAYS)
            if cover < threshold:
                reasons.append(f"按近{SALES_WINDOW_DAYS}天销量仅够 {cover:.1f} 天（目标 {threshold} 天）")
        if reasons:
            findings.append((sid, wid, pid, "；".join(reasons), available))
    checked = await Stock.all().count()
    return {"checked": checked, **await _stock_alerts("low_stock", "low_stock", "库存预警", findings)}


async def job_overstock(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """On hand above max_qty (weekly reminder)."""
    rows = await Stock.filter(max_qty__isnull=False).values_list(
        "id", "warehouse_id", "product_id", "on_hand", "reserved", "max_qty"
    )
    findings = [
        (sid, wid, pid, f"在库 {on_hand} 高于上限 {max_qty}", on_hand - reserved)
        for sid, wid, pid, on_hand, reserved, max_qty in rows
        if on_hand > max_qty
    ]
    result = await _stock_alerts("overstock", "overstock", "库存积压", findings)
    return {"checked": len(rows), **result}


# --- contracts --------------------------------------------------------------------------------


def contract_stage(days_left: int, stages: list[int]) -> str | None:
    """The most urgent stage that applies: "d30", "d7", "d1", "expired" (past end_date) or None."""
    if days_left < 0:
        return "expired"
    applicable = [s for s in stages if days_left <= s]
    return f"d{min(applicable)}" if applicable else None


async def job_contract_expiry(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """30/7/1 days before end_date and on expiry; after downtime only the most urgent stage not
    yet sent goes out, never two at once. Expired contracts become status `expired`."""
    aud = await Audience.load("contract_expiry")
    stages = sorted(
        {int(s) for s in aud.param("days", runtime().config.alerts.contract_expiry_days)}, reverse=True
    )
    today = business_today()
    horizon = today + timedelta(days=max(stages, default=0))
    rows = await Contract.filter(status=ContractStatus.ACTIVE, end_date__lte=horizon).values_list(
        "id", "number", "distributor_id", "end_date"
    )
    dids = {r[2] for r in rows}
    if dids:
        await aud.load_reps(dids)
    dists: dict[int, tuple[str, str]] = {}
    ids = sorted(dids)
    for i in range(0, len(ids), 1000):
        for did, name, region in await Distributor.filter(id__in=ids[i : i + 1000]).values_list(
            "id", "name", "region"
        ):
            dists[did] = (name, region)
    drafts: list[AlertDraft] = []
    robot_lines: list[str] = []
    expired: list[tuple[int, str]] = []
    for cid, number, did, end in rows:
        days_left = (end - today).days
        stage = contract_stage(days_left, stages)
        if stage is None:
            continue
        name, region = dists.get(did, ("?", ""))
        if stage == "expired":
            expired.append((cid, number))
            title = f"合同已到期：{number}"
            text = f"{name} 合同 {number} 已于 {end.isoformat()} 到期"
        else:
            title = f"合同即将到期：{number}"
            text = f"{name} 合同 {number} 将于 {end.isoformat()} 到期（剩余 {days_left} 天）"
        robot_lines.append(text)
        payload = {"contract_id": cid, "end_date": end.isoformat(), "stage": stage}
        for uid, channel in aud.users(region, did):
            drafts.append(
                AlertDraft(
                    kind="contract_expiry",
                    title=title,
                    body=text,
                    line=text,
                    dedupe_key=f"contract_expiry:{cid}:{end.isoformat()}:{stage}:{uid}",
                    recipient_id=uid,
                    payload=payload,
                    channel=channel,
                    urgent=False,
                )
            )
    period = today.isoformat()
    drafts += _robot_summary(
        "contract_expiry",
        period,
        aud,
        "contract_expiry",
        f"合同到期提醒（{len(robot_lines)} 份）",
        robot_lines,
    )
    result = await dispatch("contract_expiry", period, drafts, label="合同到期提醒")
    marked = await expire_contracts(expired)
    return {"contracts": len(rows), "expired": marked, **result.as_dict()}


async def expire_contracts(contracts: list[tuple[int, str]]) -> int:
    """Active contracts past their end date -> `expired`, with an audit row each (batched)."""
    marked = 0
    for i in range(0, len(contracts), 500):
        chunk = dict(contracts[i : i + 500])
        async with in_transaction():
            qs = Contract.filter(id__in=list(chunk), status=ContractStatus.ACTIVE)
            if is_postgres():
                qs = qs.select_for_update()
            ids = list(await qs.values_list("id", flat=True))
            if not ids:
                continue
            await Contract.filter(id__in=ids).update(status=ContractStatus.EXPIRED)
            await AuditLog.bulk_create(
                [
                    AuditLog(
                        action="contract.expire",
                        entity="contract",
                        entity_id=str(cid),
                        before={"status": "active"},
                        after={"status": "expired", "number": chunk[cid]},
                    )
                    for cid in ids
                ]
            )
            marked += len(ids)
    return marked


# --- receivables ------------------------------------------------------------------------------


async def overdue_by_distributor(at: datetime | None = None) -> dict[int, tuple[Decimal, Decimal]]:
    """distributor id -> (overdue, balance) on the business day of `at` (default now): exactly
    what the receivables report shows that day (`handlers.finance.receivables_aging`, one
    definition of due and overdue)."""
    as_of = (at or clock_now()).astimezone(BUSINESS_TZ).date()
    return {
        row.distributor_id: (row.overdue, row.balance)
        for row in await receivables_aging(None, as_of)
        if row.balance > 0 and row.overdue > 0
    }


async def job_receivables_overdue(params: dict[str, Any] | None = None) -> dict[str, Any]:
    overdue = await overdue_by_distributor()
    aud = await Audience.load("receivables_overdue", set(overdue))
    today = business_today()
    period = today.isoformat()
    dists = {
        did: (name, region)
        for did, name, region in await Distributor.filter(id__in=list(overdue)).values_list(
            "id", "name", "region"
        )
    }
    drafts: list[AlertDraft] = []
    robot_lines: list[str] = []
    for did, (amount, bal) in sorted(overdue.items()):
        name, region = dists.get(did, ("?", ""))
        text = f"{name} 逾期应收 ¥{amount}（应收余额 ¥{bal}）"
        robot_lines.append(text)
        for uid, channel in aud.users(region, did):
            drafts.append(
                AlertDraft(
                    kind="receivables_overdue",
                    title=f"应收逾期：{name}",
                    body=text,
                    line=text,
                    dedupe_key=f"receivables_overdue:{did}:{period}:{uid}",
                    recipient_id=uid,
                    payload={"distributor_id": did, "overdue": str(amount), "balance": str(bal)},
                    channel=channel,
                )
            )
    drafts += _robot_summary(
        "receivables_overdue",
        period,
        aud,
        "receivables_overdue",
        f"逾期应收（{len(overdue)} 家）",
        robot_lines,
    )
    result = await dispatch("receivables_overdue", period, drafts, label="逾期应收提醒")
    return {"distributors": len(overdue), **result.as_dict()}


# --- daily digest -----------------------------------------------------------------------------


async def job_daily_digest(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """One summary per manager per day: orders in their regions and today's alerts."""
    aud = await Audience.load("daily_digest")
    today = business_today()
    # UTC: tortoise does not convert query parameters on SQLite (stored values are UTC)
    start = datetime.combine(today, datetime.min.time(), tzinfo=business_tz()).astimezone(UTC)
    region_of = dict(await Distributor.all().values_list("id", "region"))
    placed: dict[str, list[Decimal]] = defaultdict(list)
    for did, amount in await Order.filter(created_at__gte=start).values_list(
        "distributor_id", "total_amount"
    ):
        placed[region_of.get(did, "")].append(money(Decimal(str(amount))))
    pending: dict[str, int] = defaultdict(int)
    for (did,) in await Order.filter(status=OrderStatus.PENDING_REVIEW).values_list("distributor_id"):
        pending[region_of.get(did, "")] += 1
    alerts: dict[int, int] = defaultdict(int)
    for (uid,) in (
        await Notification.filter(created_at__gte=start, recipient_id__isnull=False)
        .exclude(kind="daily_digest")
        .values_list("recipient_id")
    ):
        alerts[uid] += 1
    drafts = []
    for uid, regions in aud.managers:
        orders = [a for r in regions for a in placed.get(r, [])]
        waiting = sum(pending.get(r, 0) for r in regions)
        body = (
            f"今日新订单 {len(orders)} 笔，金额 ¥{money(sum(orders, ZERO))}；待审核订单 {waiting} 笔；"
            f"今日提醒 {alerts.get(uid, 0)} 条。"
        )
        drafts.append(
            AlertDraft(
                kind="daily_digest",
                title=f"{today.isoformat()} 每日汇总",
                body=body,
                dedupe_key=f"daily_digest:{uid}:{today.isoformat()}",
                recipient_id=uid,
                payload={"orders": len(orders), "pending_review": waiting},
            )
        )
    result = await dispatch("daily_digest", today.isoformat(), drafts, label="每日汇总")
    return {"managers": len(aud.managers), **result.as_dict()}
