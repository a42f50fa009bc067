"""订单: search with filters, detail (lines, shipments, returns, audit trail), approve and
reject through `handlers.ordering` — the same use-cases and Actor as /api/v1."""

from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from console.framework import Pages, day, done, object_id, positive_int, posted_text, render, text
from console.labels import ORDER_STATUS, label
from console.xlsx import Column, collect, workbook, xlsx_response
from core.errors import ValidationError
from handlers import ordering, returns, workbench
from handlers.actor import Actor
from handlers.order_io import LineIn, ShipmentIn

pages = Pages()
PAGE_SIZE = 20
ORDER_COLUMNS = [
    Column("订单号", lambda o: o.number),
    Column("经销商", lambda o: o.distributor_name),
    Column("状态", lambda o: label(ORDER_STATUS, o.status)),
    Column("件数", lambda o: sum(x.qty + x.free_qty for x in o.lines), "int", total=True),
    Column("订单金额（元）", lambda o: o.total_amount, "money", total=True),
    Column("已发货金额（元）", lambda o: o.shipped_amount, "money", total=True),
    Column("下单时间", lambda o: o.created_at, "time"),
    Column("审核时间", lambda o: o.approved_at, "time"),
    Column("备注", lambda o: o.note),
]


@pages.add("GET", "/orders", name="orders")
async def order_list(request: web.Request, actor: Actor) -> web.StreamResponse:
    q = request.query
    status = q.get("status") or None
    if status is not None and status not in ORDER_STATUS:
        status = None
    filters: dict[str, Any] = {
        "number": text(q.get("number"), "number", "订单号", max_len=20),
        "distributor_id": positive_int(q.get("distributor_id"), "distributor_id", "经销商"),
        "status": status,
        "date_from": day(q.get("date_from"), "date_from", "开始日期"),
        "date_to": day(q.get("date_to"), "date_to", "结束日期"),
    }
    if q.get("format") == "xlsx":
        items = await collect(partial(ordering.list_orders, actor, **filters, page_size=100))
        return xlsx_response("订单", workbook("订单", ORDER_COLUMNS, items))
    page = positive_int(q.get("page"), "page", "页码", 1) or 1
    result = await ordering.list_orders(actor, **filters, page=page, page_size=PAGE_SIZE)
    kept = {k: v for k, v in filters.items() if v is not None}
    pages_total = max(1, -(-result.total // PAGE_SIZE))
    return render(
        request,
        "orders.html",
        {
            "nav": "orders",
            "result": result,
            "filters": filters,
            "statuses": ORDER_STATUS,
            "distributors": await workbench.distributor_choices(actor),
            "page": page,
            "pages_total": pages_total,
            "query_base": urlencode({k: str(v) for k, v in kept.items()}),
        },
    )


async def detail_context(actor: Actor, order_id: int) -> dict[str, Any]:
    order = await ordering.get_order(actor, order_id)
    return {
        "nav": "orders",
        "order": order,
        "audit": await workbench.order_audit(actor, order_id),
        "return_requests": (await returns.list_returns(actor, order_id=order_id, page_size=100)).items,
    }


@pages.add("GET", r"/orders/{id:\d+}", name="order", scope="object")
async def order_detail(request: web.Request, actor: Actor) -> web.StreamResponse:
    return render(request, "order_detail.html", await detail_context(actor, object_id(request)))


@pages.add("POST", r"/orders/{id:\d+}/approve", name="order_approve", scope="object")
async def approve(request: web.Request, actor: Actor) -> web.StreamResponse:
    order_id = object_id(request)
    await ordering.approve_order(actor, order_id)
    ctx = {**await detail_context(actor, order_id), "flash": "订单已审核通过"}
    return done(request, f"/console/orders/{order_id}", "_order_main.html", ctx)


@pages.add("POST", r"/orders/{id:\d+}/reject", name="order_reject", scope="object")
async def reject(request: web.Request, actor: Actor) -> web.StreamResponse:
    order_id = object_id(request)
    reason = await posted_text(request, "reason", "驳回原因")
    await ordering.reject_order(actor, order_id, reason)
    ctx = {**await detail_context(actor, order_id), "flash": "订单已驳回"}
    return done(request, f"/console/orders/{order_id}", "_order_main.html", ctx)


@pages.add("POST", r"/orders/{id:\d+}/ship", name="order_ship", scope="object")
async def ship(request: web.Request, actor: Actor) -> web.StreamResponse:
    """发货: quantities per SKU (fields `qty:<sku>`), carrier and tracking number."""
    order_id = object_id(request)
    form = await request.post()
    lines = []
    for key, value in form.items():
        if not key.startswith("qty:"):
            continue
        qty = positive_int(str(value), key, "发货数量") if str(value).strip() not in ("", "0") else None
        if qty:
            lines.append(LineIn(sku=key.removeprefix("qty:")[:64], qty=qty))
    if not lines:
        raise ValidationError("请至少填写一个商品的发货数量", {"field": "lines"})
    data = ShipmentIn(
        lines=lines,
        carrier=text(str(form.get("carrier", "")), "carrier", "承运商", max_len=64),
        tracking_no=text(str(form.get("tracking_no", "")), "tracking_no", "运单号", max_len=64),
    )
    await ordering.ship_order(actor, order_id, data)
    ctx = {**await detail_context(actor, order_id), "flash": "已发货"}
    return done(request, f"/console/orders/{order_id}", "_order_main.html", ctx)
