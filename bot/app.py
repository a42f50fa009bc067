"""The /bot sub-application: one webhook per platform, one Delivery (dedupe, deadline,
push) and one intent router behind them.

Background tasks (replies that outlive the platform deadline) are tracked here and drained
on shutdown — before the parent app's cleanup closes the database and the HTTP session."""

from __future__ import annotations

from aiohttp import web

from bot.dedupe import BackgroundTasks, Delivery
from bot.dispatcher import Dispatcher
from bot.router import root_router
from bot.webhooks import dingtalk, wechat, wecom
from bot.webhooks.common import DELIVERY

TASKS: web.AppKey[BackgroundTasks] = web.AppKey("bot_tasks")


def create_bot_app() -> web.Application:
    app = web.Application()
    tasks = BackgroundTasks()
    app[TASKS] = tasks
    app[DELIVERY] = Delivery(Dispatcher(root_router()), tasks)
    app.router.add_get("/wechat", wechat.verify)
    app.router.add_post("/wechat", wechat.receive)
    app.router.add_get("/wecom", wecom.verify)
    app.router.add_post("/wecom", wecom.receive)
    app.router.add_post("/dingtalk", dingtalk.receive)
    app.on_shutdown.append(_drain)
    return app


async def _drain(app: web.Application) -> None:
    await app[TASKS].drain()
