"""Push a chat reply after the webhook has already answered (the reply took longer than the
platform's deadline): WeChat customer-service message, WeCom app message, DingTalk
sessionWebhook.

Access tokens come from the shared `channels.tokens.TokenProvider` (kv-cached, one
refresher at a time, refresh-once on 40001/42001); the HTTP calls reuse the notification
clients. A DingTalk sessionWebhook comes from the callback body, which the robot sign does
not cover, so it is only ever posted to the configured DingTalk host (no SSRF by replay).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from channels.errors import ChannelError
from channels.tokens import TokenProvider, errcode_of
from channels.wechat.client import WeChatClient
from channels.wecom.client import WeComClient
from core.config import Config
from core.kv import KV

DINGTALK_TEXT_MAX = 5000


class PushFailed(ChannelError):
    code = "push_failed"


@dataclass(frozen=True, slots=True)
class PushTarget:
    channel: str  # wechat | wecom | dingtalk
    to: str  # openid / WeCom userid / DingTalk staff id
    session_webhook: str | None = None
    session_webhook_expires_ms: int | None = None
    mention: bool = False  # DingTalk group chats: @ the sender


class ChatPusher:
    def __init__(
        self, config: Config, http: aiohttp.ClientSession, kv: KV, tokens: TokenProvider | None = None
    ) -> None:
        self.config = config
        self.http = http
        self.tokens = tokens or TokenProvider(config, http, kv)

    async def push_text(self, target: PushTarget, text: str) -> None:
        """Deliver `text` or raise PushFailed (the caller logs it: a chat reply has no outbox)."""
        if target.channel == "wechat":
            data = await WeChatClient(self.config, self.http, self.tokens).send_custom_text(target.to, text)
        elif target.channel == "wecom":
            data = await WeComClient(self.config, self.http, self.tokens).send_text(target.to, text)
        elif target.channel == "dingtalk":
            data = await self._session_webhook(target, text)
        else:
            raise PushFailed(f"unknown channel {target.channel!r}")
        code = errcode_of(data)
        if code != 0:
            errmsg = data.get("errmsg", "") if isinstance(data, dict) else ""
            raise PushFailed(f"{target.channel} push refused: errcode {code} {errmsg}".strip())

    def allowed_webhook(self, url: str) -> bool:
        """Only the configured DingTalk API host (https in production) may receive a reply."""
        want, got = urlsplit(self.config.dingtalk.oapi_base), urlsplit(url)
        return bool(got.netloc) and (got.scheme, got.netloc) == (want.scheme, want.netloc)

    async def _session_webhook(self, target: PushTarget, text: str) -> Any:
        url = target.session_webhook
        if not url:
            raise PushFailed("dingtalk message has no sessionWebhook")
        if not self.allowed_webhook(url):
            raise PushFailed("sessionWebhook is not on the configured DingTalk host")
        expires = target.session_webhook_expires_ms
        if expires is not None and expires <= time.time() * 1000:
            raise PushFailed("sessionWebhook expired")
        body: dict[str, Any] = {"msgtype": "text", "text": {"content": text[:DINGTALK_TEXT_MAX]}}
        if target.mention:
            body["at"] = {"atUserIds": [target.to]}
        try:
            async with self.http.post(url, json=body) as resp:
                if resp.status >= 400:
                    raise PushFailed(f"sessionWebhook answered HTTP {resp.status}")
                return await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise PushFailed(f"sessionWebhook call failed: {type(exc).__name__}") from None
