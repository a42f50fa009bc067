"""What every webhook shares: the Delivery in the bot app, refusals, freshness and replay
checks, pushes, text limits."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import partial

from aiohttp import web

from bot.dedupe import Delivery, PushFn
from bot.message import Message, Reply
from channels.chat_push import ChatPusher, PushTarget
from channels.errors import InvalidPayload, InvalidSignature, Replayed, StaleTimestamp
from channels.wechat.crypto import TIMESTAMP_WINDOW_S, check_timestamp
from core.clock import now
from core.keys import CONFIG, HTTP, KV_STORE
from core.kv import KV, KVUnavailable
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


def plaintext_refused(channel: str) -> web.Response:
    """Safe mode is configured: a plaintext push's signature covers token+timestamp+nonce but
    not the body, so anyone holding one real query string could write any message."""
    log.warning("bot_plaintext_refused", channel=channel)
    return error_response(403, "plaintext_refused", "已配置消息加密（安全模式），不接受明文消息")


def bad_signature(channel: str, exc: InvalidSignature) -> web.Response:
    log.warning("bot_bad_signature", channel=channel, code=exc.code, reason=str(exc))
    if isinstance(exc, StaleTimestamp):
        minutes = TIMESTAMP_WINDOW_S // 60
        return error_response(401, exc.code, f"请求的时间戳与当前时间相差超过 {minutes} 分钟（或格式不对）")
    if isinstance(exc, Replayed):
        return error_response(401, exc.code, "这个 timestamp 和 nonce 已被另一条消息用过")
    return error_response(401, "invalid_signature", "signature check failed")


def check_fresh(timestamp: str) -> None:
    """StaleTimestamp unless the callback's query `timestamp` is within 5 minutes of now."""
    check_timestamp(timestamp, now_s=now().timestamp())


def content_digest(content: str | bytes) -> str:
    return hashlib.sha256(content.encode() if isinstance(content, str) else content).hexdigest()


class NonceMemory:
    """Each (timestamp, nonce) of a signed callback is used by one message, across instances.

    Kept in the kv store (SET NX) for twice the timestamp window: a pair is accepted only while
    its timestamp is within the window of now, so it cannot come back once forgotten.

    What is remembered is the pair *and the message it carried*: the same message again under
    the same pair is let through. That is a platform retry (WeChat and WeCom re-send a message
    they got no answer for within 5 s, up to 3 times; whether or not the retry reuses the query,
    it carries the same message), and refusing it would show the user "该公众号暂时无法提供服务"
    — the delivery dedupe answers it with the first reply instead, acting once. Only another
    message under a used pair is refused (`Replayed`): in plaintext mode the signature does not
    cover the body, so that is a forgery on a captured query string.
    """

    PREFIX = "chat:nonce"

    def __init__(self, kv: KV, window_s: int = TIMESTAMP_WINDOW_S) -> None:
        self.kv = kv
        self.ttl_s = 2.0 * window_s

    def key(self, channel: str, timestamp: str, nonce: str) -> str:
        pair = hashlib.sha256(f"{timestamp}\n{nonce}".encode("utf-8", "surrogatepass")).hexdigest()[:40]
        return f"{self.PREFIX}:{channel}:{pair}"

    async def claim(self, channel: str, timestamp: str, nonce: str, content: str | bytes) -> None:
        """Record the pair for `content` (the plaintext message); Replayed if another used it."""
        key, digest = self.key(channel, timestamp, nonce), content_digest(content)
        for _ in range(2):  # the second round only if the record expired between SET and GET
            if await self.kv.set(key, digest, self.ttl_s, nx=True):
                return
            seen = await self.kv.get(key)
            if seen is not None:
                if seen.decode() == digest:
                    return  # the same message again: a retry, for the delivery dedupe
                raise Replayed("timestamp and nonce already used by another message")
        raise Replayed("timestamp and nonce already used")


async def claim_nonce(
    request: web.Request, channel: str, timestamp: str, nonce: str, content: str | bytes
) -> None:
    kv: KV = request.config_dict[KV_STORE]
    try:
        await NonceMemory(kv).claim(channel, timestamp, nonce, content)
    except KVUnavailable:
        # Redis away: remember pairs in this instance (as the delivery dedupe does) rather than
        # refuse every chat message; the signature and the 5-minute window still hold.
        log.warning("bot_nonce_memory_local", channel=channel)
        await NonceMemory(kv.local).claim(channel, timestamp, nonce, content)


def bad_payload(channel: str, exc: Exception) -> web.Response:
    log.warning("bot_bad_payload", channel=channel, reason=str(exc))
    return error_response(400, "invalid_payload", "payload cannot be read")


def message_time(seconds: float) -> datetime:
    """A platform's message time; InvalidPayload (400) when no datetime can hold it. The parsers
    bound these already: this keeps an OverflowError from ever becoming a 500."""
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, ValueError, OSError):
        raise InvalidPayload("message time out of range") from None


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
