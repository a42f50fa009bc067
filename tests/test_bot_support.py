"""Shared pieces of the bot tests: platform secrets in the config, a fake platform API that
records pushes, and `Chat`, which talks to the real server the way each platform does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from bot.simulator import DingTalkSimulator, SimRequest, WeChatSimulator, WeComSimulator
from handlers.identity import issue_invite_code
from models.user import User
from tests import factories
from tests.bola import cached_hash

# PLATFORMS.md sample values (WeChat mini-program guide, WeCom callback guide).
WX_TOKEN, WX_KEY, WX_APPID = "AAAAA", "A" * 43, "wxba5fad812f8e6fb9"
WECOM_TOKEN, WECOM_KEY = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo", "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
WECOM_CORP = "ww1436e0e65a779aee"
DT_SECRET = "dingtalk-app-secret-for-tests"


def bot_overrides(platform_url: str | None = None) -> dict[str, Any]:
    over: dict[str, Any] = {
        "wechat": {"token": WX_TOKEN, "encoding_aes_key": WX_KEY, "appid": WX_APPID, "secret": "wx-secret"},
        "wecom": {
            "token": WECOM_TOKEN,
            "encoding_aes_key": WECOM_KEY,
            "corp_id": WECOM_CORP,
            "agent_id": 1000002,
            "secret": "wecom-secret",
        },
        "dingtalk": {"app_key": "dingappkey", "app_secret": DT_SECRET, "robot_code": "dingrobotdemo"},
    }
    if platform_url:
        over["wechat"]["api_base"] = platform_url
        over["wecom"]["api_base"] = platform_url
        over["dingtalk"]["oapi_base"] = platform_url
    return over


@pytest.fixture(autouse=True)
def fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 once per password, not once per user: make_world() gets ~10x faster.
    Importing this fixture into a test module turns it on there."""
    monkeypatch.setattr(factories, "hash_password", cached_hash)


@dataclass
class FakePlatform:
    """Stand-in for api.weixin.qq.com / qyapi / oapi.dingtalk.com: hands out tokens and
    records every message it is asked to send."""

    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    url: str = ""

    def app(self) -> web.Application:
        app = web.Application()

        async def stable_token(request: web.Request) -> web.Response:
            return web.json_response({"access_token": "wx-token", "expires_in": 7200})

        async def gettoken(request: web.Request) -> web.Response:
            return web.json_response({"errcode": 0, "access_token": "wecom-token", "expires_in": 7200})

        def recorder(name: str):  # type: ignore[no-untyped-def]
            async def record(request: web.Request) -> web.Response:
                self.sent.append((name, await request.json()))
                return web.json_response({"errcode": 0, "errmsg": "ok"})

            return record

        app.router.add_post("/cgi-bin/stable_token", stable_token)
        app.router.add_get("/cgi-bin/gettoken", gettoken)
        app.router.add_post("/cgi-bin/message/custom/send", recorder("wechat"))
        app.router.add_post("/cgi-bin/message/send", recorder("wecom"))
        app.router.add_post("/robot/sendBySession", recorder("dingtalk"))
        return app


class Chat:
    """Talk to the server as a platform would: build, post, verify and decrypt the reply."""

    def __init__(self, client, channel: str = "wechat", **kw: Any) -> None:  # type: ignore[no-untyped-def]
        self.client = client
        self.channel = channel
        if channel == "wechat":
            self.sim: Any = WeChatSimulator(WX_TOKEN, WX_KEY, WX_APPID, **kw)
        elif channel == "wecom":
            self.sim = WeComSimulator(WECOM_TOKEN, WECOM_KEY, WECOM_CORP)
        else:
            self.sim = DingTalkSimulator(DT_SECRET, **kw)

    async def post(self, req: SimRequest) -> tuple[int, str]:
        resp = await self.client.request(
            req.method, req.path, params=req.params, data=req.body.encode(), headers=req.headers
        )
        return resp.status, await resp.text()

    async def send(self, req: SimRequest) -> str | None:
        status, body = await self.post(req)
        return self.sim.read_reply(status, body)

    async def say(self, user: str, text: str, **kw: Any) -> str:
        reply = await self.send(self.sim.text(user, text, **kw))
        assert reply is not None, f"no reply to {text!r}"
        return reply

    async def bind(self, user: str, account: User) -> str:
        invite = await issue_invite_code(None, account.id)
        reply = await self.say(user, f"绑定 {invite.code}")
        assert "绑定成功" in reply, reply
        return reply
