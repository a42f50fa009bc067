"""提醒: the signed-in user's inbox (every push is there, sent or not); mark one or all read."""

from __future__ import annotations

from aiohttp import web

from console.framework import Pages, done, object_id, positive_int, render
from handlers import inbox, notify
from handlers.actor import Actor

pages = Pages()


async def _context(request: web.Request, actor: Actor) -> dict[str, object]:
    unread = request.query.get("unread") == "1"
    page = positive_int(request.query.get("page"), "page", "页码", 1) or 1
    result = await notify.list_notifications(actor, page=page, page_size=50, unread=unread)
    return {"nav": "alerts", "result": result, "unread": unread}


@pages.add("GET", "/alerts", name="alerts")
async def alert_list(request: web.Request, actor: Actor) -> web.StreamResponse:
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
