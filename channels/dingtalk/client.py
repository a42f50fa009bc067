"""DingTalk outbound calls: group robot webhooks, work notifications, robot OpenAPI.

- Group robot: `POST /robot/send?access_token=&timestamp=&sign=` (signed with the robot's
  secret), body with `msgUuid` — DingTalk's idempotency key: we pass the outbox id, so a
  re-send after a timeout never shows twice. HTTP 200 even on errors: read `errcode`.
- Work notification: `POST /topapi/message/corpconversation/asyncsend_v2`. DingTalk silently
  drops the same content to the same person twice a day, so alert text carries a date and
  sequence number (`stamp()`); a re-send of the same outbox row repeats the same text and is
  dropped, which makes it idempotent too.
- Robot OpenAPI `POST /v1.0/robot/oToMessages/batchSend` (api.dingtalk.com): one-to-one
  robot messages; header `x-acs-dingtalk-access-token`.

Scheduled alerts never use a chat's `sessionWebhook` (it expires ~90 min after the message).
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from channels.dingtalk.crypto import webhook_sign

if TYPE_CHECKING:
    import aiohttp

    from channels.tokens import TokenProvider
    from core.config import Config, DingTalkRobot

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")


def stamp(seq: int | str, at: datetime | None) -> str:
    """`[11-23 15:01 #123]`: makes every alert's text unique (DingTalk drops repeats)."""
    at = (at or datetime.now(BUSINESS_TZ)).astimezone(BUSINESS_TZ)
    return f"[{at:%m-%d %H:%M} #{seq}]"


def split_webhook(webhook: str) -> tuple[str, dict[str, str]]:
    """A robot webhook URL -> (URL without query, its query params e.g. access_token)."""
    parts = urlsplit(webhook)
    base = urlunsplit(parts._replace(query="", fragment=""))
    return base, dict(parse_qsl(parts.query))


async def _json_or_error(resp: aiohttp.ClientResponse) -> Any:
    if resp.status >= 500:
        return {"errcode": -1, "errmsg": f"HTTP {resp.status}", "_http_status": resp.status}
    return await resp.json(content_type=None)


class DingTalkClient:
    def __init__(self, config: Config, http: aiohttp.ClientSession, tokens: TokenProvider) -> None:
        self.config = config
        self.http = http
        self.tokens = tokens

    def robot(self, name: str) -> DingTalkRobot | None:
        return next((r for r in self.config.dingtalk.robots if r.name == name), None)

    async def robot_send(
        self,
        robot: DingTalkRobot,
        *,
        title: str,
        text: str,
        msg_uuid: str,
        markdown: bool = True,
        at_mobiles: list[str] | None = None,
        now_ms: int | None = None,
    ) -> Any:
        base, params = split_webhook(robot.webhook)
        if robot.secret:
            signed = webhook_sign(robot.secret, now_ms if now_ms is not None else int(time.time() * 1000))
            params["timestamp"] = signed.timestamp
            params["sign"] = signed.sign  # raw: aiohttp encodes params itself
        body: dict[str, Any]
        if markdown:
            body = {"msgtype": "markdown", "markdown": {"title": title[:64], "text": text}}
        else:
            body = {"msgtype": "text", "text": {"content": text}}
        body["at"] = {"atMobiles": at_mobiles or [], "isAtAll": False}
        body["msgUuid"] = msg_uuid
        async with self.http.post(base, params=params, json=body) as resp:
            return await _json_or_error(resp)

    async def work_notify(self, userids: list[str], content: str) -> Any:
        """Work notification (text) to up to 100 users of our agent."""
        url = self.config.dingtalk.oapi_base.rstrip("/") + "/topapi/message/corpconversation/asyncsend_v2"
        body = {
            "agent_id": self.config.dingtalk.agent_id,
            "userid_list": ",".join(userids),
            "msg": {"msgtype": "text", "text": {"content": content}},
        }

        async def call(token: str) -> Any:
            async with self.http.post(url, params={"access_token": token}, json=body) as resp:
                return await _json_or_error(resp)

        return await self.tokens.call("dingtalk", call)

    async def robot_batch_send(self, userids: list[str], title: str, text: str) -> Any:
        """Robot one-to-one messages through the OpenAPI (sampleMarkdown)."""
        url = self.config.dingtalk.api_base.rstrip("/") + "/v1.0/robot/oToMessages/batchSend"
        body = {
            "robotCode": self.config.dingtalk.robot_code,
            "userIds": userids,
            "msgKey": "sampleMarkdown",
            "msgParam": json.dumps({"title": title, "text": text}, ensure_ascii=False),
        }

        async def call(token: str) -> Any:
            headers = {"x-acs-dingtalk-access-token": token}
            async with self.http.post(url, json=body, headers=headers) as resp:
                data = await resp.json(content_type=None)
                if resp.status >= 400 and isinstance(data, dict):
                    # The new API answers HTTP errors with {code, message}; map token expiry.
                    code = str(data.get("code", ""))
                    if resp.status == 401 or "token" in code.lower():
                        return {"errcode": 40001, "errmsg": data.get("message", code)}
                    return {"errcode": -1 if resp.status >= 500 else 400, "errmsg": data.get("message", code)}
                return data

        return await self.tokens.call("dingtalk", call)
