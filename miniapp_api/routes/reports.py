"""Reports: sales, inventory, receivables aging, commissions (JSON or ?format=xlsx), and a
small manager dashboard (HTML with inline SVG bars)."""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from aiohttp import web

from handlers import reports
from handlers.reports import (
    CommissionReportQuery,
    InventoryQuery,
    ReceivablesQuery,
    ReportOut,
    SalesQuery,
)
from miniapp_api.framework import Api, Ctx
from miniapp_api.xlsx import xlsx_response

api = Api()
TAGS = ("reports",)


async def _answer(ctx: Ctx, build: Callable[[Any, Any], Awaitable[ReportOut]]) -> ReportOut | web.Response:
    out = await build(ctx.me, ctx.query)
    if ctx.query.format == "xlsx":
        return xlsx_response(
            out.rows,
            f"{out.report}-report",
            out.columns,
            params=out.params,
            totals=reports.export_totals(out),
        )
    return out


@api.route("GET", "/reports/sales", query=SalesQuery, response=ReportOut, tags=TAGS)
async def sales(ctx: Ctx) -> ReportOut | web.Response:
    """Sales net of returns, grouped by distributor | product | category | region | month."""
    return await _answer(ctx, reports.sales_report)


@api.route("GET", "/reports/inventory", query=InventoryQuery, response=ReportOut, tags=TAGS)
async def inventory(ctx: Ctx) -> ReportOut | web.Response:
    """Stock per warehouse and sku, 28-day turnover and slow movers."""
    return await _answer(ctx, reports.inventory_report)


@api.route("GET", "/reports/receivables", query=ReceivablesQuery, response=ReportOut, tags=TAGS)
async def receivables(ctx: Ctx) -> ReportOut | web.Response:
    """Receivables aging per distributor (by due date)."""
    return await _answer(ctx, reports.receivables_report)


@api.route("GET", "/reports/commissions", query=CommissionReportQuery, response=ReportOut, tags=TAGS)
async def commissions(ctx: Ctx) -> ReportOut | web.Response:
    """Commission per beneficiary per month, with the statement status."""
    return await _answer(ctx, reports.commissions_report)


# --- dashboard --------------------------------------------------------------------------------


def _bars(title: str, items: list[tuple[str, Decimal]]) -> str:
    """A horizontal bar chart as inline SVG (no scripts, no external assets)."""
    width, row, label_w = 640, 26, 150
    top = max((v for _, v in items), default=Decimal(0)) or Decimal(1)
    parts = [f"<h2>{html.escape(title)}</h2>"]
    if not items:
        return parts[0] + "<p>暂无数据</p>"
    height = row * len(items) + 10
    parts.append(f'<svg width="{width}" height="{height}" role="img" aria-label="{html.escape(title)}">')
    for i, (label, value) in enumerate(items):
        y = i * row + 5
        bar = int((width - label_w - 110) * max(value, Decimal(0)) / top)
        parts.append(
            f'<text x="0" y="{y + 16}" font-size="13">{html.escape(label[:20])}</text>'
            f'<rect x="{label_w}" y="{y}" width="{bar}" height="{row - 8}" fill="#3b82f6"></rect>'
            f'<text x="{label_w + bar + 6}" y="{y + 16}" font-size="13">¥{value:,.2f}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _net_by_label(rows: list[dict[str, Any]]) -> list[tuple[str, Decimal]]:
    """Money adds up across units: one bar per group (rows are per group and unit)."""
    out: dict[str, Decimal] = {}
    for r in rows:
        out[r["label"]] = out.get(r["label"], Decimal(0)) + Decimal(r["net"])
    return list(out.items())


@api.route(
    "GET",
    "/reports/dashboard",
    roles={"admin", "manager"},
    raw=True,
    tags=TAGS,
    content={"text/html": {"schema": {"type": "string"}}},
)
async def dashboard(ctx: Ctx) -> web.Response:
    """Manager dashboard (HTML): sales by month and receivables aging in the caller's scope."""
    by_month = await reports.sales_report(ctx.me, SalesQuery(group_by="month"))
    by_dist = await reports.sales_report(ctx.me, SalesQuery(group_by="distributor"))
    aging = await reports.receivables_report(ctx.me, ReceivablesQuery())
    buckets = [
        ("未到期", "current"),
        ("1-30天", "d1_30"),
        ("31-60天", "d31_60"),
        ("61-90天", "d61_90"),
        ("90天以上", "d90_plus"),
    ]
    body = "".join(
        [
            "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><title>渠道看板</title>",
            "<style>body{font-family:sans-serif;margin:24px;color:#111}h2{margin-top:28px}</style></head><body>",
            f"<h1>渠道看板</h1><p>{html.escape(by_month.params['date_from'])} — "
            f"{html.escape(by_month.params['date_to'])}，"
            f"净销售额 ¥{Decimal(by_month.totals['net']):,.2f}</p>",
            _bars("月度净销售额", _net_by_label(by_month.rows)),
            _bars("经销商净销售额 Top 10", sorted(_net_by_label(by_dist.rows), key=lambda kv: -kv[1])[:10]),
            _bars("应收账龄", [(name, Decimal(aging.totals[key])) for name, key in buckets]),
            "</body></html>",
        ]
    )
    return web.Response(text=body, content_type="text/html", charset="utf-8")
