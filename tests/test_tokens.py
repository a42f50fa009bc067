"""TokenProvider: one fetch shared by every instance, invalidate-if-same, retry once only."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import aiohttp
import pytest
from aiohttp import web

from channels.tokens import TokenError, TokenProvider
from core.config import Config
from core.kv import KV, open_kv


class TokenServer:
    """A tiny token endpoint: counts calls, hands out numbered tokens, can be slow or fail."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.seq = 0
        self.delay = 0.0
        self.expires_in = 7200
        self.fail_with: int | None = None
        self.stable: str | None = None  # stable_token keeps answering this until forced
        self.bodies: list[dict] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/cgi-bin/stable_token", self.stable_token)
        app.router.add_get("/cgi-bin/gettoken", self.gettoken)
        app.router.add_get("/gettoken", self.gettoken)
        return app

    async def _issue(self, name: str) -> web.Response:
        self.calls[name] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_with is not None:
            return web.json_response({"errcode": self.fail_with, "errmsg": "nope"})
        self.seq += 1
        return web.json_response(
            {"errcode": 0, "access_token": f"{name}-tok-{self.seq}", "expires_in": self.expires_in}
        )

    async def stable_token(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        if self.stable is not None and not body.get("force_refresh"):
            self.calls["stable"] += 1
            return web.json_response({"access_token": self.stable, "expires_in": self.expires_in})
        return await self._issue("stable")

    async def gettoken(self, request: web.Request) -> web.Response:
        name = "wecom" if request.path.startswith("/cgi-bin") else "dingtalk"
        return await self._issue(name)


@pytest.fixture
async def token_env(aiohttp_server, backend):  # type: ignore[no-untyped-def]
    fake = TokenServer()
    server = await aiohttp_server(fake.app())
    base = str(server.make_url("")).rstrip("/")
    config = Config().with_overrides(
        {
            "wechat": {"appid": "wx1", "secret": "s1", "api_base": base},
            "wecom": {"corp_id": "ww1", "secret": "s2", "agent_id": 7, "api_base": base},
            "dingtalk": {"app_key": "dk1", "app_secret": "s3", "oapi_base": base},
        }
    )
    kv = open_kv(backend.kv_url, namespace=f"tok-{uuid.uuid4().hex[:10]}")
    async with aiohttp.ClientSession() as http:
        yield fake, config, http, kv
    await kv.flush_namespace()
    await kv.close()


def providers(config: Config, http: aiohttp.ClientSession, kv: KV, n: int = 1) -> list[TokenProvider]:
    return [TokenProvider(config, http, kv) for _ in range(n)]


@pytest.mark.parametrize("platform", ["wechat", "wecom", "dingtalk"])
async def test_token_concurrent_gets_fetch_once_across_instances(token_env, platform):  # type: ignore[no-untyped-def]
    fake, config, http, kv = token_env
    fake.delay = 0.05
    instances = providers(config, http, kv, 3)
    tokens = await asyncio.gather(*(instances[i % 3].get(platform) for i in range(30)))
    assert len(set(tokens)) == 1
    assert sum(fake.calls.values()) == 1
    # cached: later calls don't hit the platform
    assert await instances[0].get(platform) == tokens[0]
    assert sum(fake.calls.values()) == 1


async def test_token_ttl_is_expires_in_minus_margin(token_env):  # type: ignore[no-untyped-def]
    _fake, config, http, kv = token_env
    p = TokenProvider(config, http, kv, margin_s=300)
    await p.get("wecom")
    ttl = await kv.ttl(p.cache_key("wecom"))
    assert ttl is not None and 7200 - 300 - 5 < ttl <= 7200 - 300


async def test_token_stable_token_request_shape(token_env):  # type: ignore[no-untyped-def]
    fake, config, http, kv = token_env
    await TokenProvider(config, http, kv).get("wechat")
    assert fake.bodies == [
        {"grant_type": "client_credential", "appid": "wx1", "secret": "s1", "force_refresh": False}
    ]


async def test_token_invalidate_drops_only_the_same_token(token_env):  # type: ignore[no-untyped-def]
    fake, config, http, kv = token_env
    a, b = providers(config, http, kv, 2)
    old = await a.get("wecom")
    assert await a.invalidate("wecom", old) is True
    new = await b.get("wecom")
    assert new != old
    # a late invalidation of the old token must not drop the new one
    assert await a.invalidate("wecom", old) is False
    assert await a.get("wecom") == new
    assert fake.calls["wecom"] == 2


@pytest.mark.parametrize("errcode", [40001, 40014, 42001])
async def test_token_call_retries_once_on_token_error(token_env, errcode):  # type: ignore[no-untyped-def]
    fake, config, http, kv = token_env
    p = TokenProvider(config, http, kv)
    seen: list[str] = []

    async def send(token: str) -> dict:
        seen.append(token)
        return {"errcode": errcode if len(seen) == 1 else 0}

    assert (await p.call("dingtalk", send))["errcode"] == 0
    assert len(seen) == 2 and seen[0] != seen[1]
    assert fake.calls["dingtalk"] == 2


async def test_token_call_never_loops_when_the_token_keeps_failing(token_env):  # type: ignore[no-untyped-def]
    fake, config, http, kv = token_env
    p = TokenProvider(config, http, kv)
    calls = 0

    async def send(token: str) -> dict:
        nonlocal calls
        calls += 1
        return {"errcode": 40001, "errmsg": "invalid credential"}

    data = await p.call("wecom", send)
    assert data["errcode"] == 40001
    assert calls == 2
    assert fake.calls["wecom"] == 2


async def test_token_concurrent_rejections_refresh_once(token_env):  # type: ignore[no-untyped-def]
    """Many senders see 40001 on the same token at once: one refetch, not one each."""
    fake, config, http, kv = token_env
    instances = providers(config, http, kv, 2)
    first = await instances[0].get("wecom")

    async def send(token: str) -> dict:
        await asyncio.sleep(0.01)
        return {"errcode": 40001 if token == first else 0}

    results = await asyncio.gather(*(instances[i % 2].call("wecom", send) for i in range(20)))
    assert all(r["errcode"] == 0 for r in results)
    assert fake.calls["wecom"] == 2


async def test_token_stable_token_same_bad_token_forces_refresh(token_env):  # type: ignore[no-untyped-def]
    fake, config, http, kv = token_env
    fake.stable = "stuck"
    p = TokenProvider(config, http, kv)

    async def send(token: str) -> dict:
        return {"errcode": 40001 if token == "stuck" else 0}

    assert (await p.call("wechat", send))["errcode"] == 0
    assert fake.bodies[-1]["force_refresh"] is True


async def test_token_fetch_errors_are_classified(token_env):  # type: ignore[no-untyped-def]
    fake, config, http, kv = token_env
    p = TokenProvider(config, http, kv)
    fake.fail_with = 40013
    with pytest.raises(TokenError) as bad:
        await p.get("wecom")
    assert bad.value.retryable is False and bad.value.errcode == 40013
    fake.fail_with = -1
    with pytest.raises(TokenError) as busy:
        await p.get("wecom")
    assert busy.value.retryable is True
    unconfigured = TokenProvider(Config(), http, kv)
    with pytest.raises(TokenError) as missing:
        await unconfigured.get("wechat")
    assert missing.value.retryable is False
