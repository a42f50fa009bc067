"""The one channel-neutral message type past the webhooks, and the reply to it.

Each webhook turns its platform's payload into a `Message` and renders a `Reply` back;
nothing after that point knows which platform a message came from, beyond the `channel`
name used for identities and pushes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Channel = Literal["wechat", "wecom", "dingtalk"]
Kind = Literal["text", "event", "image", "voice", "video", "file", "location", "link", "other"]


@dataclass(frozen=True, slots=True)
class Message:
    channel: Channel
    sender_id: str | None  # openid / WeCom userid / DingTalk senderStaffId; None: outside the org
    chat_id: str  # where to answer: the sender for 1:1 chats, the conversation for groups
    text: str  # what the user typed (or said, when the platform recognised speech); "" otherwise
    msg_id: str
    time: datetime
    kind: Kind = "text"
    event: str | None = None  # for kind == "event": subscribe, unsubscribe, CLICK, ...
    event_key: str | None = None
    dedupe_key: str = ""  # the platform's "same delivery" key (see channels parser dedupe_key)
    is_group: bool = False
    recipient: str = ""  # our side: the OA's ToUserName, the corp id, the robot code
    # DingTalk: where a late reply can still be posted (expires ~90 min after the message).
    session_webhook: str | None = None
    session_webhook_expires_ms: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Reply:
    """Text to answer with; `text=None` acknowledges without a message ("success")."""

    text: str | None = None

    @property
    def silent(self) -> bool:
        return not self.text

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reply:
        text = data.get("text")
        return cls(text if isinstance(text, str) else None)


ACK = Reply(None)
