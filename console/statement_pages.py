"""对账单: statements in scope (filter by month, kind, status), the detail with its lines and
the dispute, and the staff's answer to a dispute (`handlers.statement_disputes`)."""

from __future__ import annotations

import re

from aiohttp import web

from console.framework import Pages, done, object_id, positive_int, posted_text, render, text
from console.labels import STATEMENT_KIND, STATEMENT_STATUS, label
from console.xlsx import Column, collect, workbook, xlsx_response
from core.errors import ValidationError
from handlers import statement_disputes, statements, workbench
from handlers.actor import Actor
from handlers.statements import StatementQuery

pages = Pages()
_MONTH = re.compile(r"^\d{4}-\d{2}$")
STATEMENT_COLUMNS = [
    Column("月份", lambda s: s.period),
    Column("类型", lambda s: label(STATEMENT_KIND, s.kind)),
    Column("对象", lambda s: s.beneficiary.name),
    Column("金额（元）", lambda s: s.total, "money", total=True),
    Column("状态", lambda s: label(STATEMENT_STATUS, s.status)),
    Column("异议原因", lambda s: s.dispute_reason if s.status == "disputed" else None),
    Column("确认时间", lambda s: s.confirmed_at, "time"),
]


@pages.add("GET", "/statements", name="statements")
async def statement_list(request: web.Request, actor: Actor) -> web.StreamResponse:
    q = request.query
    period = text(q.get("period"), "period", "月份", max_len=7)
    if period is not None and not _MONTH.match(period):
        raise ValidationError("月份格式应为 年-月（如 2026-11）", {"field": "period"})
    kind = q.get("kind") if q.get("kind") in STATEMENT_KIND else None
    status = q.get("status") if q.get("status") in STATEMENT_STATUS else None
    if q.get("format") == "xlsx":

        async def fetch(page: int) -> object:
            query = StatementQuery(period=period, kind=kind, status=status, page=page, page_size=100)
            return await statements.list_statements(actor, query)

        return xlsx_response("对账单", workbook("对账单", STATEMENT_COLUMNS, await collect(fetch)))
    page = positive_int(q.get("page"), "page", "页码", 1) or 1
    query = StatementQuery(period=period, kind=kind, status=status, page=page, page_size=50)
    result = await statements.list_statements(actor, query)
    ctx = {
        "nav": "statements",
        "result": result,
        "filters": {"period": period, "kind": kind, "status": status},
        "kinds": STATEMENT_KIND,
        "statuses": STATEMENT_STATUS,
    }
    return render(request, "statements.html", ctx)


async def detail_context(actor: Actor, statement_id: int) -> dict[str, object]:
    return {
        "nav": "statements",
        "st": await statements.get_statement(actor, statement_id),
        "audit": await workbench.statement_audit(actor, statement_id),
    }


@pages.add("GET", r"/statements/{id:\d+}", name="statement", scope="object")
async def statement_detail(request: web.Request, actor: Actor) -> web.StreamResponse:
    return render(request, "statement_detail.html", await detail_context(actor, object_id(request)))


@pages.add("POST", r"/statements/{id:\d+}/resolve", name="statement_resolve", scope="object")
async def resolve(request: web.Request, actor: Actor) -> web.StreamResponse:
    statement_id = object_id(request)
    note = await posted_text(request, "note", "处理说明")
    await statement_disputes.resolve_dispute(actor, statement_id, note)
    ctx = {**await detail_context(actor, statement_id), "flash": "异议已处理，对账单已重新开放待确认"}
    return done(request, f"/console/statements/{statement_id}", "_statement_main.html", ctx)
