"""One Message in, one Reply out: middlewares around the intent router.

A middleware is `async def mw(handler, ctx) -> Reply` (aiogram's contract with one typed
context instead of a dict). The chain, outermost first: errors (domain errors -> text, in
one place; anything else -> a polite apology and a log line), rate limit per sender,
identity (the sender's Actor, so every intent runs with the API's scope rules), one message
at a time per sender (conversation state stays consistent), then the router."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

from bot.conversation import Conversation
from bot.errors import FALLBACK, user_text
from bot.message import Message, Reply
from bot.router import ChatContext, Router
from core.errors import DomainError
from core.kv import KVUnavailable
from core.logging import get_logger
from core.outage import outage_of
from core.runtime import runtime
from handlers.identity import actor_for_identity

log = get_logger("qudao.bot")

Next = Callable[[ChatContext], Awaitable[Reply]]
Middleware = Callable[[Next, ChatContext], Awaitable[Reply]]

SENDER_LOCK_LEASE_S = 30.0
SENDER_LOCK_WAIT_S = 10.0
RATE_WINDOW_S = 60.0
RATE_TEXT = "您发消息太快了，请一分钟后再试。"
BUSY_TEXT = "上一条消息还在处理中，请稍候再发。"
DB_DOWN_TEXT = "系统暂时无法访问数据库，请稍后再试。"


async def errors_middleware(handler: Next, ctx: ChatContext) -> Reply:
    try:
        return await handler(ctx)
    except DomainError as exc:
        return Reply(user_text(exc))
    except Exception as exc:
        if outage_of(exc) == "database":  # logged once per outage, not a traceback per message
            runtime().db_outage.failed(exc)
            return Reply(DB_DOWN_TEXT)
        msg = ctx.message
        log.exception("bot_intent_failed", channel=msg.channel, msg_id=msg.msg_id, kind=msg.kind)
        return Reply(FALLBACK)


async def rate_limit_middleware(handler: Next, ctx: ChatContext) -> Reply:
    msg = ctx.message
    if msg.kind == "event":
        return await handler(ctx)
    limit = runtime().config.limits.chat_per_sender_per_min
    who = msg.sender_id or msg.chat_id
    result = await runtime().kv.rate_limit(f"chat:{msg.channel}:{who}", limit, RATE_WINDOW_S)
    if not result.allowed:
        return Reply(RATE_TEXT)
    return await handler(ctx)


async def identity_middleware(handler: Next, ctx: ChatContext) -> Reply:
    sender = ctx.message.sender_id
    if sender:
        ctx.actor = await actor_for_identity(ctx.message.channel, sender)
    return await handler(ctx)


async def sender_lock_middleware(handler: Next, ctx: ChatContext) -> Reply:
    msg = ctx.message
    name = f"chat:sender:{msg.channel}:{msg.sender_id or msg.chat_id}"
    kv = runtime().kv
    try:
        handle = await kv.acquire_lock(name, SENDER_LOCK_LEASE_S, blocking_timeout=SENDER_LOCK_WAIT_S)
    except KVUnavailable:  # the shared store is down: one at a time within this instance
        handle = await kv.local.acquire_lock(name, SENDER_LOCK_LEASE_S, blocking_timeout=SENDER_LOCK_WAIT_S)
    if handle is None:
        return Reply(BUSY_TEXT)
    try:
        ctx.state = await ctx.conversation.get() if ctx.actor is not None else None
        return await handler(ctx)
    finally:
        with contextlib.suppress(KVUnavailable):
            if not await handle.release():
                log.warning("chat_sender_lock_expired", lock=name, lease_s=SENDER_LOCK_LEASE_S)


DEFAULT_MIDDLEWARES: tuple[Middleware, ...] = (
    errors_middleware,
    rate_limit_middleware,
    identity_middleware,
    sender_lock_middleware,
)


class Dispatcher:
    def __init__(self, router: Router, middlewares: Sequence[Middleware] = DEFAULT_MIDDLEWARES) -> None:
        self.router = router
        self.middlewares = tuple(middlewares)

    async def handle(self, message: Message) -> Reply:
        """Never raises: every failure becomes text (or an acknowledgement)."""
        sender = message.sender_id or f"chat-{message.chat_id}"
        ctx = ChatContext(message=message, conversation=Conversation(runtime().kv, message.channel, sender))
        handler: Next = self.router.dispatch
        for mw in reversed(self.middlewares):
            handler = partial(mw, handler)
        try:
            return await handler(ctx)
        except Exception:  # a middleware itself failed (kv down): still answer something
            log.exception("bot_dispatch_failed", channel=message.channel, msg_id=message.msg_id)
            return Reply(FALLBACK)
