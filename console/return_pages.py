"""退货审核: the return requests in scope; approve, reject (reason) and receive (入库) through
`handlers.returns`. Actions answer with the order's detail, where the request is listed."""

from __future__ import annotations

from functools import partial

from aiohttp import web

from console.framework import Pages, done, object_id, positive_int, posted_text, render
from console.labels import RETURN_STATUS, label
from console.order_pages import detail_context
from console.xlsx import Column, collect, workbook, xlsx_response
from handlers import returns
from handlers.actor import Actor

pages = Pages()
RETURN_COLUMNS = [
    Column("订单号", lambda r: r.order_number),
    Column("状态", lambda r: label(RETURN_STATUS, r.status)),
    Column("原因", lambda r: r.reason),
    Column("件数", lambda r: sum(q.qty for q in r.lines), "int", total=True),
    Column("金额（元）", lambda r: r.amount, "money", total=True),
    Column("申请时间", lambda r: r.created_at, "time"),
    Column("审核时间", lambda r: r.reviewed_at, "time"),
    Column("审核意见", lambda r: r.review_note),
]


@pages.add("GET", "/returns", name="returns")
async def return_list(request: web.Request, actor: Actor) -> web.StreamResponse:
    status = request.query.get("status", "requested")
    if status not in RETURN_STATUS:
        status = ""
    if request.query.get("format") == "xlsx":
        items = await collect(partial(returns.list_returns, actor, status=status or None, page_size=100))
        return xlsx_response("退货申请", workbook("退货申请", RETURN_COLUMNS, items))
    page = positive_int(request.query.get("page"), "page", "页码", 1) or 1
    result = await returns.list_returns(actor, status=status or None, page=page, page_size=50)
    ctx = {"nav": "returns", "result": result, "status": status, "statuses": RETURN_STATUS}
    return render(request, "returns.html", ctx)


async def _answer(request: web.Request, actor: Actor, order_id: int, flash: str) -> web.StreamResponse:
    ctx = {**await detail_context(actor, order_id), "flash": flash}
    return done(request, f"/console/orders/{order_id}", "_order_main.html", ctx)


@pages.add("POST", r"/returns/{id:\d+}/approve", name="return_approve", scope="object")
async def approve(request: web.Request, actor: Actor) -> web.StreamResponse:
    out = await returns.approve_return(actor, object_id(request))
    return await _answer(request, actor, out.order_id, "已同意退货，收到退货后请确认入库")


@pages.add("POST", r"/returns/{id:\d+}/reject", name="return_reject", scope="object")
async def reject(request: web.Request, actor: Actor) -> web.StreamResponse:
    request_id = object_id(request)
    reason = await posted_text(request, "reason", "驳回原因")
    out = await returns.reject_return(actor, request_id, reason)
    return await _answer(request, actor, out.order_id, "已驳回退货申请")


@pages.add("POST", r"/returns/{id:\d+}/receive", name="return_receive", scope="object")
async def receive(request: web.Request, actor: Actor) -> web.StreamResponse:
    out = await returns.receive_return(actor, object_id(request))
    return await _answer(request, actor, out.order_id, "退货已入库，金额已冲减应收")
