"""Builders and helpers for the push / outbox / scheduler tests (issue 7).

The fake platform runs in-process on a real port (aiohttp_server); `push_overrides(base)`
points every adapter at it and configures templates, WeCom, DingTalk and one signed robot."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import aiohttp

from channels.fake.app import create_fake_app
from channels.fake.messaging import register_robot
from channels.fake.state import FakeState, Fault
from core.config import Config
from models.base import IdentityChannel
from models.notification import Notification, SubscriptionGrant
from models.user import Identity, User

ROBOT = "ops"
ROBOT_TOKEN = "ops-robot-token"
ROBOT_SECRET = "SECthis-is-secret"
TEMPLATES = {
    "low_stock": "tpl-low-stock",
    "contract_expiry": "tpl-contract",
    "order_status": "tpl-order",
    "commission": "tpl-commission",
    "statement": "tpl-statement",
}
PUSH_KINDS = ("wechat.subscribe", "wechat.template", "wecom.message", "dingtalk.robot", "dingtalk.work")


@dataclass
class Fake:
    state: FakeState
    base: str

    def calls(self, kind: str) -> list[dict[str, Any]]:
        return [c for c in self.state.calls if c["kind"] == kind]

    def count(self, kind: str) -> int:
        return len(self.calls(kind))

    def fault(self, match: str, **kw: Any) -> None:
        self.state.faults.append(Fault(match=match, **kw))

    def delivered_titles(self) -> Counter[str]:
        """How many times each notification title reached a user (give test rows unique titles)."""
        seen: Counter[str] = Counter()
        for c in self.state.calls:
            if c["kind"] in PUSH_KINDS:
                seen[title_of(c)] += 1
        return seen


def title_of(call: dict[str, Any]) -> str:
    body = call["body"] or {}
    if call["kind"] == "wechat.subscribe":
        return str(body["data"]["thing1"]["value"])
    if call["kind"] == "wechat.template":
        return str(body["data"]["first"]["value"])
    if call["kind"] == "dingtalk.robot":
        return str(body["markdown"]["title"])
    if call["kind"] == "wecom.message":
        return str(body["text"]["content"]).split("\n", 1)[0]
    return str(body["msg"]["text"]["content"]).split("\n", 1)[0]


async def start_fake(aiohttp_server: Any, *, robot_window_s: float = 60.0) -> Fake:
    state = FakeState()
    register_robot(state, ROBOT_TOKEN, ROBOT_SECRET, window_s=robot_window_s)
    server = await aiohttp_server(create_fake_app(state))
    return Fake(state, str(server.make_url("")).rstrip("/"))


def push_config(config: Config, base: str, **alerts: Any) -> Config:
    webhook = f"{base}/robot/send?access_token={ROBOT_TOKEN}"
    return config.with_overrides(
        {
            "wechat": {"appid": "wx-test", "secret": "wx-secret", "api_base": base, "templates": TEMPLATES},
            "wecom": {"corp_id": "ww-test", "agent_id": 1000002, "secret": "wc-secret", "api_base": base},
            "dingtalk": {
                "app_key": "dk-test",
                "app_secret": "dk-secret",
                "agent_id": 3001,
                "robot_code": "dk-robot",
                "api_base": base,
                "oapi_base": base,
                "robots": [{"name": ROBOT, "webhook": webhook, "secret": ROBOT_SECRET}],
            },
            "alerts": alerts,
        }
    )


def http_session(total: float = 5.0) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=total, connect=2))


async def bind(user: User, channel: IdentityChannel | str, account: str | None = None) -> Identity:
    ch = IdentityChannel(channel)
    return await Identity.create(user=user, channel=ch, account_id=account or f"{ch}-{user.id}")


async def grant(user: User, template_id: str, remaining: int = 1) -> SubscriptionGrant:
    return await SubscriptionGrant.create(user=user, template_id=template_id, remaining=remaining)


async def statuses() -> Counter[str]:
    return Counter(str(s) for s in await Notification.all().values_list("status", flat=True))


_n = 0


async def quick_user(role: str = "sales", **kw: Any) -> User:
    """A user without a password (tests.factories.make_user hashes one with argon2: ~0.3 s each)."""
    global _n
    _n += 1
    return await User.create(display_name=kw.pop("display_name", f"{role} q{_n}"), role=role, **kw)
