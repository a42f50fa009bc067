"""Parse decrypted WeCom callback XML (the WeChat fields plus AgentID)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from channels.wechat.parser import WeChatMessage, int_field, message_kwargs, parse_body


@dataclass(frozen=True, slots=True)
class WeComMessage(WeChatMessage):
    """ToUserName is the corp_id, FromUserName the member's userid."""

    agent_id: int | None = None


def parse_message(data: str | bytes) -> WeComMessage:
    raw = parse_body(data)
    return WeComMessage(**message_kwargs(raw), agent_id=int_field(raw, "AgentID"))


def dedupe_key(msg: WeComMessage) -> str:
    """The WeChat key (ToUserName, FromUserName, CreateTime, MsgId or Event+EventKey) plus AgentID:
    one corp's apps share ToUserName, and the same event can reach two apps in one second."""
    tail = msg.msg_id if msg.msg_id else f"{msg.event or ''}:{msg.event_key or ''}"
    parts = [msg.to_user_name, msg.agent_id, msg.from_user_name, msg.create_time, tail]
    return json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
