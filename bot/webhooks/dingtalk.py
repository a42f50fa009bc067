"""POST /bot/dingtalk — DingTalk enterprise robot (HTTP callback mode).

Headers `timestamp` (ms) and `sign` = base64(HMAC-SHA256(app_secret, f"{timestamp}\\n{app_secret}")),
refused when wrong or more than 1 h off. The sign covers only the timestamp, so replays are
caught by the msgId dedupe. With `[dingtalk] robot_code` configured, a body naming another
robot (or none) is refused (403) and does nothing. The reply goes in the response body
(`{"msgtype": "text", "text": {"content": ...}}`, @-ing the sender in groups), or, when it
took too long, to the message's sessionWebhook.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.message import Kind, Message, Reply
from bot.webhooks.common import bad_payload, bad_signature, delivery, message_time, not_configured, pusher_for
from channels.dingtalk.crypto import verify_robot_callback
from channels.dingtalk.parser import DingTalkMessage, dedupe_key, parse_robot_message
from channels.errors import InvalidPayload, InvalidSignature
from core.clock import now
from core.keys import CONFIG
from core.logging import get_logger
from core.web import error_response

log = get_logger("qudao.bot.webhook")

KINDS: dict[str, Kind] = {
    "text": "text",
    "richText": "text",
    "audio": "voice",
    "picture": "image",
    "video": "video",
    "file": "file",
}
TEXT_MAX = 5000


def to_message(dt: DingTalkMessage) -> Message:
    kind = KINDS.get(dt.msgtype, "other")
    return Message(
        channel="dingtalk",
        sender_id=dt.sender_staff_id,
        chat_id=dt.conversation_id,
        text=dt.text,
        msg_id=dt.msg_id,
        time=message_time(dt.create_at / 1000),
        kind=kind,
        dedupe_key=f"{dt.robot_code or ''}:{dedupe_key(dt)}",
        is_group=dt.is_group,
        recipient=dt.robot_code or "",
        session_webhook=dt.session_webhook,
        session_webhook_expires_ms=dt.session_webhook_expired_time,
        raw=dt.raw,
    )


async def receive(request: web.Request) -> web.StreamResponse:
    cfg = request.config_dict[CONFIG].dingtalk
    if not cfg.app_secret:
        return not_configured("dingtalk")
    now_ms = int(now().timestamp() * 1000)
    try:
        verify_robot_callback(
            request.headers.get("timestamp", ""),
            request.headers.get("sign", ""),
            cfg.app_secret,
            now_ms=now_ms,
        )
    except InvalidSignature as exc:
        return bad_signature("dingtalk", exc)
    try:
        dt = parse_robot_message(await request.read())
        message = to_message(dt)
    except InvalidPayload as exc:
        return bad_payload("dingtalk", exc)
    if cfg.robot_code and dt.robot_code != cfg.robot_code:
        # The sign proves the app, not the robot: an app with several robots (or a callback
        # meant for another one) must not act through this one.
        log.warning("bot_robot_mismatch", channel="dingtalk", robot_code=dt.robot_code)
        return error_response(403, "robot_mismatch", "robotCode 与配置的机器人不一致")
    reply = await delivery(request).deliver(message, pusher_for(request))
    return web.json_response(render(message, reply))


def render(message: Message, reply: Reply) -> dict[str, Any]:
    if not reply.text:
        return {}
    body: dict[str, Any] = {"msgtype": "text", "text": {"content": reply.text[:TEXT_MAX]}}
    if message.is_group and message.sender_id:
        body["at"] = {"atUserIds": [message.sender_id]}
    return body
