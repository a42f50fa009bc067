"""GET/POST /bot/wecom — WeCom (企业微信) app callback; WeChat's AES scheme, receive id = corp_id.

- GET `?msg_signature&timestamp&nonce&echostr`: the echostr is encrypted too; answer its
  plaintext (no quotes, no newline) — WeCom waits 1 s for it.
- POST `<xml><ToUserName/><Encrypt/><AgentID/></xml>`: decrypt, handle, answer with an
  encrypted passive text reply (or "success").
"""

from __future__ import annotations

from aiohttp import web

from bot.webhooks.common import (
    bad_payload,
    bad_signature,
    check_fresh,
    claim_nonce,
    clip,
    delivery,
    not_configured,
    pusher_for,
)
from bot.webhooks.wechat import to_message
from channels.errors import InvalidPayload, InvalidSignature
from channels.wechat.replies import SUCCESS, text_reply
from channels.wecom.crypto import WeComCrypto
from channels.wecom.parser import dedupe_key, parse_message
from core.config import WeComConfig
from core.keys import CONFIG


def crypto_of(cfg: WeComConfig) -> WeComCrypto | None:
    if not (cfg.token and cfg.encoding_aes_key and cfg.corp_id):
        return None
    try:
        return WeComCrypto(cfg.token, cfg.encoding_aes_key, cfg.corp_id)
    except ValueError:
        return None


async def verify(request: web.Request) -> web.StreamResponse:
    """The URL check: fresh timestamp like any callback, nonce not remembered (see wechat.verify)."""
    crypto = crypto_of(request.config_dict[CONFIG].wecom)
    if crypto is None:
        return not_configured("wecom")
    q = request.query
    try:
        check_fresh(q.get("timestamp", ""))
        text = crypto.verify_url(
            q.get("msg_signature", ""), q.get("timestamp", ""), q.get("nonce", ""), q.get("echostr", "")
        )
    except InvalidSignature as exc:
        return bad_signature("wecom", exc)
    except InvalidPayload as exc:
        return bad_payload("wecom", exc)
    return web.Response(text=text, content_type="text/plain")


async def receive(request: web.Request) -> web.StreamResponse:
    crypto = crypto_of(request.config_dict[CONFIG].wecom)
    if crypto is None:
        return not_configured("wecom")
    q = request.query
    timestamp, nonce = q.get("timestamp", ""), q.get("nonce", "")
    body = await request.read()
    try:
        check_fresh(timestamp)
        inbound = crypto.decrypt_message(body, q.get("msg_signature", ""), timestamp, nonce)
        msg = parse_message(inbound.text)
        message = to_message(msg, "wecom", dedupe_key(msg))
        await claim_nonce(request, "wecom", timestamp, nonce, inbound.text)
    except InvalidSignature as exc:
        return bad_signature("wecom", exc)
    except InvalidPayload as exc:
        return bad_payload("wecom", exc)
    reply = await delivery(request).deliver(message, pusher_for(request))
    if not reply.text:
        return web.Response(text=SUCCESS, content_type="text/plain")
    plain = text_reply(msg.from_user_name, msg.to_user_name, clip(reply.text))
    return web.Response(text=crypto.reply(inbound, plain), content_type="application/xml")
