"""Parse DingTalk enterprise robot callbacks and decrypted event-subscription bodies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from channels.errors import InvalidPayload
from channels.wechat.parser import MAX_EPOCH_S, parse_json

MAX_EPOCH_MS = MAX_EPOCH_S * 1000


@dataclass(frozen=True, slots=True)
class DingTalkMessage:
    """A message @-ed (group) or sent (single chat) to an enterprise robot."""

    msg_id: str
    msgtype: str
    text: str  # stripped: group messages start with a space after the @mention
    # The org user id. `senderId` is an opaque per-robot id — never key users on it. None for
    # people outside the org (external contacts in a group): treat them as unbound.
    sender_staff_id: str | None
    sender_nick: str | None
    conversation_id: str
    conversation_type: str  # "1" single chat, "2" group
    conversation_title: str | None
    session_webhook: str | None
    session_webhook_expired_time: int | None  # ms; about 90 min after create_at
    robot_code: str | None
    create_at: int  # ms
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_group(self) -> bool:
        return self.conversation_type == "2"


def _optional_text(raw: Mapping[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidPayload(f"field {name} must be a string")
    return value


def _required_text(raw: Mapping[str, Any], name: str) -> str:
    value = _optional_text(raw, name)
    if not value:
        raise InvalidPayload(f"missing field {name}")
    return value


def _optional_millis(raw: Mapping[str, Any], name: str) -> int | None:
    value = raw.get(name)
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_EPOCH_MS
    ):
        raise InvalidPayload(f"field {name} must be a timestamp in milliseconds (before 2100)")
    return value


def _required_millis(raw: Mapping[str, Any], name: str) -> int:
    value = _optional_millis(raw, name)
    if value is None:
        raise InvalidPayload(f"missing field {name}")
    return value


def _content_text(raw: Mapping[str, Any], msgtype: str) -> str:
    """The text a user typed or said; "" for pictures, files and other types."""
    if msgtype == "text":
        text = raw.get("text")
        if not isinstance(text, dict) or not isinstance(text.get("content"), str):
            raise InvalidPayload("text message without text.content")
        return text["content"].strip()
    content = raw.get("content")
    if not isinstance(content, dict):
        return ""
    if msgtype == "richText" and isinstance(content.get("richText"), list):
        parts = [p.get("text") for p in content["richText"] if isinstance(p, dict)]
        return "".join(p for p in parts if isinstance(p, str)).strip()
    if msgtype == "audio" and isinstance(content.get("recognition"), str):
        return content["recognition"].strip()  # DingTalk's own speech-to-text
    return ""


def parse_robot_message(data: str | bytes | Mapping[str, Any]) -> DingTalkMessage:
    """Parse the JSON body of a robot callback; a bad shape raises InvalidPayload."""
    raw = data if isinstance(data, Mapping) else parse_json(data)
    msgtype = _required_text(raw, "msgtype")
    return DingTalkMessage(
        msg_id=_required_text(raw, "msgId"),
        msgtype=msgtype,
        text=_content_text(raw, msgtype),
        sender_staff_id=_optional_text(raw, "senderStaffId") or None,
        sender_nick=_optional_text(raw, "senderNick"),
        conversation_id=_required_text(raw, "conversationId"),
        conversation_type=_conversation_type(raw),
        conversation_title=_optional_text(raw, "conversationTitle"),
        session_webhook=_optional_text(raw, "sessionWebhook"),
        session_webhook_expired_time=_optional_millis(raw, "sessionWebhookExpiredTime"),
        robot_code=_optional_text(raw, "robotCode"),
        create_at=_required_millis(raw, "createAt"),
        raw=raw,
    )


def _conversation_type(raw: Mapping[str, Any]) -> str:
    value = raw.get("conversationType")
    if value not in ("1", "2"):
        raise InvalidPayload('conversationType must be "1" or "2"')
    return value


def dedupe_key(msg: DingTalkMessage) -> str:
    """msgId: the robot sign covers only the timestamp, so replays are caught here."""
    return msg.msg_id


@dataclass(frozen=True, slots=True)
class DingTalkEvent:
    """A decrypted event-subscription body, e.g. {"EventType": "check_url"}."""

    event_type: str
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


def parse_event(plaintext: str | bytes) -> DingTalkEvent:
    raw = parse_json(plaintext)
    event_type = raw.get("EventType")
    if not isinstance(event_type, str) or not event_type:
        raise InvalidPayload("event without EventType")
    return DingTalkEvent(event_type, raw)
