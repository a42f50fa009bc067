"""Use-cases: ordering, stock, leads, commission, contracts, notify, reports, accounts.

Each use-case is an async function taking plain arguments plus an `Actor` and returning
plain data (pydantic models / dataclasses), or raising a `core.errors.DomainError`.
May import models and core only. Defines the ports it needs (Notifier, ChatPusher, ...)
and never imports aiohttp, wechatpy, channels, bot, miniapp_api or scheduler.
"""
