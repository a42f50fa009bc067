"""GET/POST /bot/wechat — Official Account and mini-program message push.

- GET `?signature&timestamp&nonce&echostr`: answer `echostr` when the signature holds.
- POST plaintext: `signature` over (token, timestamp, nonce); XML or mini-program JSON body.
- POST safe mode (`encrypt_type=aes`): `msg_signature` over the envelope's Encrypt; the
  reply is encrypted the same way (same format, same key).
Replies are text messages from the account to the sender; "success" acknowledges silently.
"""

from __future__ import annotations

import json
import time

from aiohttp import web

from bot.message import Kind, Message, Reply
from bot.webhooks.common import (
    bad_payload,
    bad_signature,
    check_fresh,
    claim_nonce,
    clip,
    delivery,
    message_time,
    not_configured,
    plaintext_refused,
    pusher_for,
)
from channels.errors import InvalidPayload, InvalidSignature
from channels.wechat.crypto import Decrypted, WeChatCrypto, check_signature
from channels.wechat.parser import MAX_BODY_BYTES, WeChatMessage, dedupe_key, is_json, parse_message
from channels.wechat.replies import SUCCESS, text_reply
from core.config import WeChatConfig
from core.keys import CONFIG

KINDS: dict[str, Kind] = {
    "text": "text",
    "event": "event",
    "image": "image",
    "voice": "voice",
    "video": "video",
    "shortvideo": "video",
    "location": "location",
    "link": "link",
    "file": "file",
}


def to_message(wx: WeChatMessage, channel: str = "wechat", key: str | None = None) -> Message:
    """A parsed WeChat (or WeCom) push as the channel-neutral Message."""
    kind = KINDS.get(wx.msg_type.lower(), "other")
    text = wx.content or ""
    if kind == "voice":  # the account's speech recognition, when switched on
        recognition = wx.raw.get("Recognition")
        text = recognition if isinstance(recognition, str) else ""
    return Message(
        channel=channel,  # type: ignore[arg-type]
        sender_id=wx.from_user_name,
        chat_id=wx.from_user_name,
        text=text,
        msg_id=wx.msg_id or f"{wx.event or ''}:{wx.event_key or ''}:{wx.create_time}",
        time=message_time(wx.create_time),
        kind=kind,
        event=wx.event,
        event_key=wx.event_key,
        dedupe_key=key if key is not None else dedupe_key(wx),
        recipient=wx.to_user_name,
        raw=wx.raw,
    )


def crypto_of(cfg: WeChatConfig) -> WeChatCrypto | None:
    """None when safe mode is not configured (or the key is malformed)."""
    if not (cfg.token and cfg.encoding_aes_key and cfg.appid):
        return None
    try:
        return WeChatCrypto(
            cfg.token,
            cfg.encoding_aes_key,
            cfg.appid,
            previous_encoding_aes_key=cfg.previous_encoding_aes_key,
        )
    except ValueError:
        return None


async def verify(request: web.Request) -> web.StreamResponse:
    """The console's URL check. It is made live, so its timestamp must be fresh like any
    callback's; its nonce is not remembered: it changes nothing, and the console may check twice."""
    cfg = request.config_dict[CONFIG].wechat
    if not cfg.token:
        return not_configured("wechat")
    q = request.query
    try:
        if not check_signature(cfg.token, q.get("signature", ""), q.get("timestamp", ""), q.get("nonce", "")):
            raise InvalidSignature("signature mismatch")
        check_fresh(q.get("timestamp", ""))
    except InvalidSignature as exc:
        return bad_signature("wechat", exc)
    return web.Response(text=q.get("echostr", ""), content_type="text/plain")


async def receive(request: web.Request) -> web.StreamResponse:
    cfg = request.config_dict[CONFIG].wechat
    if not cfg.token:
        return not_configured("wechat")
    q = request.query
    timestamp, nonce = q.get("timestamp", ""), q.get("nonce", "")
    safe_mode = q.get("encrypt_type", "raw").lower() == "aes"
    if not safe_mode and cfg.encoding_aes_key:
        return plaintext_refused("wechat")
    body = await request.read()
    inbound: Decrypted | None = None
    crypto: WeChatCrypto | None = None
    try:
        check_fresh(timestamp)
        if safe_mode:
            crypto = crypto_of(cfg)
            if crypto is None:
                return not_configured("wechat")
            inbound = crypto.decrypt_message(body, q.get("msg_signature", ""), timestamp, nonce)
            content: str | bytes = inbound.text
            fmt = inbound.fmt
        else:
            if not check_signature(cfg.token, q.get("signature", ""), timestamp, nonce):
                raise InvalidSignature("signature mismatch")
            if len(body) > MAX_BODY_BYTES:
                raise InvalidPayload("body too large")
            content = body
            fmt = "json" if is_json(body) else "xml"
        wx = parse_message(content)
        message = to_message(wx)
        await claim_nonce(request, "wechat", timestamp, nonce, content)
    except InvalidSignature as exc:
        return bad_signature("wechat", exc)
    except InvalidPayload as exc:
        return bad_payload("wechat", exc)
    reply = await delivery(request).deliver(message, pusher_for(request))
    return render(wx, reply, fmt, crypto, inbound)


def render(
    wx: WeChatMessage, reply: Reply, fmt: str, crypto: WeChatCrypto | None, inbound: Decrypted | None
) -> web.Response:
    if not reply.text:
        return web.Response(text=SUCCESS, content_type="text/plain")
    content = clip(reply.text)
    if fmt == "json":
        plain = json.dumps(
            {
                "ToUserName": wx.from_user_name,
                "FromUserName": wx.to_user_name,
                "CreateTime": int(time.time()),
                "MsgType": "text",
                "Content": content,
            },
            ensure_ascii=False,
        )
    else:
        plain = text_reply(wx.from_user_name, wx.to_user_name, content)
    if crypto is not None and inbound is not None:
        plain = crypto.reply(inbound, plain)
    content_type = "application/json" if fmt == "json" else "application/xml"
    return web.Response(text=plain, content_type=content_type)
