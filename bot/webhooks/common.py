"""What every webhook shares: the Delivery in the bot app, refusals, pushes, text limits."""

from __future__ import annotations

from functools import partial

from aiohttp import web

from bot.dedupe import Delivery, PushFn
from bot.message import Message, Reply
from channels.chat_push import ChatPusher, PushTarget
from core.keys import CONFIG, HTTP, KV_STORE
from core.logging import get_logger
from core.web import error_response

log = get_logger("qudao.bot.webhook")

DELIVERY: web.AppKey[Delivery] = web.AppKey("bot_delivery")

# WeChat and WeCom passive replies hold at most 2048 bytes of text.
PASSIVE_TEXT_MAX_BYTES = 2000


def delivery(request: web.Request) -> Delivery:
    return request.config_dict[DELIVERY]


def not_configured(channel: str) -> web.Response:
    """Empty secrets refuse everything: an empty token would let anyone sign."""
    return error_response(403, "not_configured", f"the {channel} webhook is not configured")


def bad_signature(channel: str, exc: Exception) -> web.Response:
    log.warning("bot_bad_signature", channel=channel, reason=str(exc))
    return error_response(401, "invalid_signature", "signature check failed")


def bad_payload(channel: str, exc: Exception) -> web.Response:
    log.warning("bot_bad_payload", channel=channel, reason=str(exc))
    return error_response(400, "invalid_payload", "payload cannot be read")


def clip(text: str, limit: int = PASSIVE_TEXT_MAX_BYTES) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode(errors="ignore") + "…"


def pusher_for(request: web.Request) -> PushFn:
    pusher = ChatPusher(request.config_dict[CONFIG], request.config_dict[HTTP], request.config_dict[KV_STORE])
    return partial(push_reply, pusher)


async def push_reply(pusher: ChatPusher, message: Message, reply: Reply) -> None:
    if not reply.text:
        return
    target = PushTarget(
        channel=message.channel,
        to=message.sender_id or message.chat_id,
        session_webhook=message.session_webhook,
        session_webhook_expires_ms=message.session_webhook_expires_ms,
        mention=message.is_group and bool(message.sender_id),
    )
    await pusher.push_text(target, reply.text)
    log.info("bot_reply_pushed", channel=message.channel, msg_id=message.msg_id)
