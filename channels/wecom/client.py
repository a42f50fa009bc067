"""WeCom (企业微信) outbound calls: app messages through /cgi-bin/message/send.

`enable_duplicate_check` makes a re-send of the same content to the same members within
`duplicate_check_interval` seconds a no-op, so an outbox retry after a timeout is harmless.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aiohttp

    from channels.tokens import TokenProvider
    from core.config import Config

DUPLICATE_CHECK_S = 1800
TEXT_MAX_BYTES = 2048  # WeCom's limit for text content


def clip_bytes(text: str, limit: int = TEXT_MAX_BYTES) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode(errors="ignore") + "…"


class WeComClient:
    def __init__(self, config: Config, http: aiohttp.ClientSession, tokens: TokenProvider) -> None:
        self.config = config
        self.http = http
        self.tokens = tokens
        self.base = config.wecom.api_base.rstrip("/")

    async def send_text(self, touser: str | list[str], content: str) -> Any:
        """POST /cgi-bin/message/send; `invaliduser` lists members that were skipped."""
        users = touser if isinstance(touser, str) else "|".join(touser)
        body = {
            "touser": users,
            "msgtype": "text",
            "agentid": self.config.wecom.agent_id,
            "text": {"content": clip_bytes(content)},
            "enable_duplicate_check": 1,
            "duplicate_check_interval": DUPLICATE_CHECK_S,
        }
        url = self.base + "/cgi-bin/message/send"

        async def call(token: str) -> Any:
            async with self.http.post(url, params={"access_token": token}, json=body) as resp:
                if resp.status >= 500:
                    return {"errcode": -1, "errmsg": f"HTTP {resp.status}", "_http_status": resp.status}
                return await resp.json(content_type=None)

        return await self.tokens.call("wecom", call)
