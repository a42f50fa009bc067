"""The /bot sub-application: one webhook per platform (added by bot.webhooks)."""

from __future__ import annotations

from aiohttp import web


def create_bot_app() -> web.Application:
    app = web.Application()
    return app
