"""Build platform payloads exactly as WeChat, WeCom and DingTalk build them, and read the
replies back: for `qudao chat` (the terminal simulator), the tests and the benchmark.

Each simulator turns (user, text) into a `SimRequest` (method, path, query, body, headers)
signed/encrypted with the configured secrets, and `read_reply(status, body)` verifies and
decrypts the answer into the text the user would see (None for "success"/empty)."""

from __future__ import annotations

import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from channels.dingtalk.crypto import robot_sign
from channels.errors import InvalidPayload
from channels.wechat.crypto import BizMsgCrypto, WeChatCrypto, cdata, random_nonce, sha1_signature
from channels.wechat.parser import is_json, parse_body, parse_json
from channels.wecom.crypto import WeComCrypto

_seq = itertools.count(int(time.time() * 1000) % 10**9)


def _next_id() -> str:
    return f"{int(time.time())}{next(_seq):09d}"


@dataclass(frozen=True)
class SimRequest:
    method: str
    path: str
    params: dict[str, str]
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)


def _xml(fields: dict[str, Any]) -> str:
    parts = []
    for k, v in fields.items():
        inner = str(v) if isinstance(v, int) else cdata(str(v))
        parts.append(f"<{k}>{inner}</{k}>")
    return "<xml>" + "".join(parts) + "</xml>"


class WeChatSimulator:
    """An Official Account (XML) or mini-program (JSON) push, plaintext or safe mode."""

    path = "/bot/wechat"

    def __init__(
        self,
        token: str,
        encoding_aes_key: str = "",
        appid: str = "",
        *,
        account: str = "gh_qudao_demo",
        encrypted: bool = True,
        fmt: Literal["xml", "json"] = "xml",
    ) -> None:
        self.token = token
        self.account = account
        self.fmt = fmt
        self.encrypted = encrypted
        self.crypto: BizMsgCrypto | None = (
            WeChatCrypto(token, encoding_aes_key, appid) if encrypted and encoding_aes_key else None
        )
        if encrypted and self.crypto is None:
            raise ValueError("safe mode needs encoding_aes_key and appid")

    def fields(self, user: str, msg_type: str = "text", create_time: int | None = None, **extra: Any) -> dict:
        data: dict[str, Any] = {
            "ToUserName": self.account,
            "FromUserName": user,
            "CreateTime": create_time if create_time is not None else int(time.time()),
            "MsgType": msg_type,
        }
        data.update(extra)
        return data

    def text(
        self, user: str, content: str, *, msg_id: str | None = None, create_time: int | None = None
    ) -> SimRequest:
        return self.build(self.fields(user, "text", create_time, Content=content, MsgId=msg_id or _next_id()))

    def event(self, user: str, event: str, event_key: str | None = None) -> SimRequest:
        extra = {"Event": event} | ({"EventKey": event_key} if event_key is not None else {})
        return self.build(self.fields(user, "event", **extra))

    def image(self, user: str) -> SimRequest:
        return self.build(self.fields(user, "image", PicUrl="http://example.invalid/p.jpg", MsgId=_next_id()))

    def plain_body(self, fields: dict[str, Any]) -> str:
        return json.dumps(fields, ensure_ascii=False) if self.fmt == "json" else _xml(fields)

    def build(
        self, fields: dict[str, Any], *, timestamp: str | None = None, nonce: str | None = None
    ) -> SimRequest:
        ts, nonce = timestamp or str(int(time.time())), nonce or random_nonce()
        params = {"signature": sha1_signature(self.token, ts, nonce), "timestamp": ts, "nonce": nonce}
        plain = self.plain_body(fields)
        if self.crypto is None:
            return SimRequest("POST", self.path, params, plain)
        encrypt = self.crypto.encrypt(plain)
        params |= {
            "openid": str(fields.get("FromUserName", "")),
            "encrypt_type": "aes",
            "msg_signature": self.crypto.sign(ts, nonce, encrypt),
        }
        if self.fmt == "json":
            body = json.dumps({"ToUserName": self.account, "Encrypt": encrypt})
        else:
            body = _xml({"ToUserName": self.account, "Encrypt": encrypt})
        return SimRequest("POST", self.path, params, body)

    def verify_url(self, echostr: str = "4375120948345356249") -> SimRequest:
        ts, nonce = str(int(time.time())), random_nonce()
        params = {"signature": sha1_signature(self.token, ts, nonce), "timestamp": ts, "nonce": nonce}
        return SimRequest("GET", self.path, params | {"echostr": echostr})

    def read_reply(self, status: int, body: str) -> str | None:
        return _read_biz_reply(self.crypto, status, body)


class WeComSimulator:
    path = "/bot/wecom"

    def __init__(self, token: str, encoding_aes_key: str, corp_id: str, agent_id: int = 1000002) -> None:
        self.crypto = WeComCrypto(token, encoding_aes_key, corp_id)
        self.corp_id = corp_id
        self.agent_id = agent_id

    def text(
        self, user: str, content: str, *, msg_id: str | None = None, create_time: int | None = None
    ) -> SimRequest:
        return self.build(
            {
                "ToUserName": self.corp_id,
                "FromUserName": user,
                "CreateTime": create_time if create_time is not None else int(time.time()),
                "MsgType": "text",
                "Content": content,
                "MsgId": msg_id or _next_id(),
                "AgentID": self.agent_id,
            }
        )

    def build(
        self, fields: dict[str, Any], *, timestamp: str | None = None, nonce: str | None = None
    ) -> SimRequest:
        ts, nonce = timestamp or str(int(time.time())), nonce or random_nonce()
        encrypt = self.crypto.encrypt(_xml(fields))
        params = {"msg_signature": self.crypto.sign(ts, nonce, encrypt), "timestamp": ts, "nonce": nonce}
        body = _xml({"ToUserName": self.corp_id, "Encrypt": encrypt, "AgentID": self.agent_id})
        return SimRequest("POST", self.path, params, body)

    def verify_url(self, plaintext: str = "1288432023552776189") -> SimRequest:
        ts, nonce = str(int(time.time())), random_nonce()
        echostr = self.crypto.encrypt(plaintext)
        params = {"msg_signature": self.crypto.sign(ts, nonce, echostr), "timestamp": ts, "nonce": nonce}
        return SimRequest("GET", self.path, params | {"echostr": echostr})

    def read_reply(self, status: int, body: str) -> str | None:
        return _read_biz_reply(self.crypto, status, body)


class DingTalkSimulator:
    path = "/bot/dingtalk"

    def __init__(
        self, app_secret: str, robot_code: str = "dingrobotdemo", session_webhook_base: str | None = None
    ) -> None:
        self.app_secret = app_secret
        self.robot_code = robot_code
        self.session_webhook_base = session_webhook_base

    def text(
        self,
        staff_id: str,
        content: str,
        *,
        msg_id: str | None = None,
        group: bool = False,
        timestamp_ms: int | None = None,
    ) -> SimRequest:
        now_ms = int(time.time() * 1000)
        body: dict[str, Any] = {
            "msgtype": "text",
            "text": {"content": (" " + content) if group else content},
            "msgId": msg_id or f"msg{secrets.token_hex(12)}",
            "createAt": now_ms,
            "conversationType": "2" if group else "1",
            "conversationId": f"cid{'group' if group else staff_id}",
            "senderId": f"$:LWCP_v1:${secrets.token_hex(8)}",
            "senderNick": staff_id,
            "senderStaffId": staff_id,
            "chatbotUserId": "$:LWCP_v1:$robot",
            "robotCode": self.robot_code,
            "isAdmin": False,
        }
        if self.session_webhook_base:
            body["sessionWebhook"] = (
                f"{self.session_webhook_base}/robot/sendBySession?session={secrets.token_hex(8)}"
            )
            body["sessionWebhookExpiredTime"] = now_ms + 90 * 60 * 1000
        return self.sign(json.dumps(body, ensure_ascii=False), timestamp_ms=timestamp_ms)

    def sign(self, body: str, *, timestamp_ms: int | None = None) -> SimRequest:
        ts = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
        headers = {
            "timestamp": ts,
            "sign": robot_sign(self.app_secret, ts),
            "Content-Type": "application/json",
        }
        return SimRequest("POST", self.path, {}, body, headers)

    def read_reply(self, status: int, body: str) -> str | None:
        if status != 200:
            raise InvalidPayload(f"HTTP {status}: {body[:200]}")
        if not body.strip():
            return None
        data = parse_json(body)
        text = data.get("text")
        return text.get("content") if isinstance(text, dict) else None


def _read_biz_reply(crypto: BizMsgCrypto | None, status: int, body: str) -> str | None:
    """A WeChat/WeCom passive reply as the user sees it; signatures are checked."""
    if status != 200:
        raise InvalidPayload(f"HTTP {status}: {body[:200]}")
    if body.strip() in ("", "success"):
        return None
    fields = parse_body(body)
    if "Encrypt" in fields:
        if crypto is None:
            raise InvalidPayload("encrypted reply to a plaintext request")
        sign, ts, nonce = (str(fields.get(k, "")) for k in ("MsgSignature", "TimeStamp", "Nonce"))
        plain = crypto.verify_and_decrypt(sign, ts, nonce, str(fields["Encrypt"])).text
        fields = parse_json(plain) if is_json(plain) else parse_body(plain)
    content = fields.get("Content")
    return content if isinstance(content, str) else None
