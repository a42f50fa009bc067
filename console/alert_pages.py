"""提醒: the signed-in user's inbox (every push is there, sent or not); mark one or all read."""

from __future__ import annotations

from functools import partial

from aiohttp import web

from console.framework import Pages, done, object_id, positive_int, render
from console.xlsx import Column, collect, workbook, xlsx_response
from handlers import inbox, notify
from handlers.actor import Actor

pages = Pages()


async def _context(request: web.Request, actor: Actor) -> dict[str, object]:
    unread = request.query.get("unread") == "1"
    page = positive_int(request.query.get("page"), "page", "页码", 1) or 1
    result = await notify.list_notifications(actor, page=page, page_size=50, unread=unread)
    return {"nav": "alerts", "result": result, "unread": unread}


ALERT_COLUMNS = [
    Column("时间", lambda n: n.created_at, "time"),
    Column("标题", lambda n: n.title),
    Column("内容", lambda n: n.body),
    Column("紧急", lambda n: "是" if n.urgent else ""),
    Column("推送状态", lambda n: n.status),
    Column("已读时间", lambda n: n.read_at, "time"),
]


@pages.add("GET", "/alerts", name="alerts")
async def alert_list(request: web.Request, actor: Actor) -> web.StreamResponse:
    if request.query.get("format") == "xlsx":
        unread = request.query.get("unread") == "1"
        items = await collect(partial(notify.list_notifications, actor, page_size=100, unread=unread))
        return xlsx_response("提醒", workbook("提醒", ALERT_COLUMNS, items))
    return render(request, "alerts.html", await _context(request, actor))


@pages.add("POST", r"/alerts/{id:\d+}/read", name="alert_read", scope="object")
async def read(request: web.Request, actor: Actor) -> web.StreamResponse:
    await notify.mark_read(actor, object_id(request))
    return done(request, "/console/alerts", "_alerts_main.html", await _context(request, actor))


@pages.add("POST", "/alerts/read-all", name="alert_read_all")
async def read_all(request: web.Request, actor: Actor) -> web.StreamResponse:
    count = await inbox.mark_all_read(actor)
    ctx = {**await _context(request, actor), "flash": f"已将 {count} 条提醒标为已读"}
    return done(request, "/console/alerts", "_alerts_main.html", ctx)
