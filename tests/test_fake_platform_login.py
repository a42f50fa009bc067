"""The fake platform (login part): generic endpoints, fault injection, login endpoints and the
`qudao fake-platform` command."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from channels.fake.app import FAKE_ROUTE_MODULES, create_fake_app
from channels.fake.state import FakeState

ROOT = Path(__file__).resolve().parent.parent
Q = {"appid": "wx1", "secret": "s", "grant_type": "authorization_code"}


@pytest.fixture
async def fake(aiohttp_client):  # type: ignore[no-untyped-def]
    state = FakeState()
    client = await aiohttp_client(create_fake_app(state))
    return state, client


async def test_jscode2session_codes_demo_and_single_use(fake) -> None:
    _state, client = fake
    resp = await client.post("/_fake/codes", json={"wechat": {"c1": {"openid": "o1", "unionid": "u1"}}})
    assert resp.status == 200
    first = await (await client.get("/sns/jscode2session", params={**Q, "js_code": "c1"})).json()
    assert first["openid"] == "o1" and first["unionid"] == "u1" and first["session_key"]
    reused = await (await client.get("/sns/jscode2session", params={**Q, "js_code": "c1"})).json()
    assert reused["errcode"] == 40029
    demo = await (await client.get("/sns/jscode2session", params={**Q, "js_code": "demo-bob"})).json()
    assert demo["openid"] == "bob" and "unionid" not in demo
    again = await (await client.get("/sns/jscode2session", params={**Q, "js_code": "demo-bob"})).json()
    assert again["openid"] == "bob"  # demo codes are reusable
    missing = await (await client.get("/sns/jscode2session", params={"js_code": "demo-x"})).json()
    assert missing["errcode"] == 41002
    calls = await (await client.get("/_fake/messages", params={"kind": "wechat.jscode2session"})).json()
    assert calls["total"] == 5 and calls["items"][0]["query"]["js_code"] == "c1"


async def test_faults_errcode_status_delay_and_count(fake) -> None:
    _state, client = fake
    await client.post("/_fake/faults", json={"match": "jscode2session", "errcode": 45011, "count": 2})
    for _ in range(2):
        body = await (await client.get("/sns/jscode2session", params={**Q, "js_code": "demo-a"})).json()
        assert body["errcode"] == 45011
    assert (
        "openid" in await (await client.get("/sns/jscode2session", params={**Q, "js_code": "demo-a"})).json()
    )
    await client.post("/_fake/faults", json={"match": "/gettoken", "status": 503})
    resp = await client.get("/gettoken", params={"appkey": "k", "appsecret": "s"})
    assert resp.status == 503
    await client.post("/_fake/faults", json={"match": "/gettoken", "delay": 0.3})
    t0 = time.perf_counter()
    resp = await client.get("/gettoken", params={"appkey": "k", "appsecret": "s"})
    assert resp.status == 200 and (await resp.json())["access_token"]
    assert time.perf_counter() - t0 >= 0.3
    assert (await client.post("/_fake/faults", json={"count": 1})).status == 400  # no match
    kinds = {c["kind"] for c in (await (await client.get("/_fake/messages")).json())["items"]}
    assert {"fault", "wechat.jscode2session", "dingtalk.gettoken"} <= kinds


async def test_dingtalk_token_and_userinfo(fake) -> None:
    _state, client = fake
    await client.post("/_fake/codes", json={"dingtalk": {"ac1": {"userid": "u-1", "name": "张三"}}})
    bad = await (
        await client.post("/topapi/v2/user/getuserinfo", params={"access_token": "x"}, json={"code": "ac1"})
    ).json()
    assert bad["errcode"] == 40014
    token = (await (await client.get("/gettoken", params={"appkey": "k", "appsecret": "s"})).json())[
        "access_token"
    ]
    ok = await (
        await client.post("/topapi/v2/user/getuserinfo", params={"access_token": token}, json={"code": "ac1"})
    ).json()
    assert ok["errcode"] == 0 and ok["result"]["userid"] == "u-1" and ok["result"]["name"] == "张三"
    used = await (
        await client.post("/topapi/v2/user/getuserinfo", params={"access_token": token}, json={"code": "ac1"})
    ).json()
    assert used["errcode"] == 40078
    demo = await (
        await client.post(
            "/topapi/v2/user/getuserinfo", params={"access_token": token}, json={"code": "demo-u9"}
        )
    ).json()
    assert demo["result"]["userid"] == "u9"


async def test_reset_forgets_everything(fake) -> None:
    state, client = fake
    await client.post("/_fake/codes", json={"wechat": {"c": "o"}})
    await client.post("/_fake/faults", json={"match": "x", "errcode": 1})
    await client.get("/sns/jscode2session", params={**Q, "js_code": "demo-a"})
    assert (await client.post("/_fake/reset")).status == 200
    assert state.calls == [] and state.faults == [] and state.wechat_codes == {}


def test_route_modules_are_listed() -> None:
    from channels.fake import login

    assert login in FAKE_ROUTE_MODULES


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_cli_fake_platform_serves_demo_codes() -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUDAO_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "core",
        "fake-platform",
        "--port",
        str(port),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(
                        f"http://127.0.0.1:{port}/sns/jscode2session", params={**Q, "js_code": "demo-alice"}
                    ) as resp:
                        body = await resp.json(content_type=None)
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("fake platform did not start")
        assert body["openid"] == "alice"
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
