"""Fake login endpoints: WeChat mini-program `jscode2session`, DingTalk `gettoken` and
`topapi/v2/user/getuserinfo` — the same parameters, answers and errcodes as the platforms."""

from __future__ import annotations

import base64
import json
import secrets

from aiohttp import web

from channels.fake.state import FAKE_STATE, FakeState

routes = web.RouteTableDef()
DEMO_PREFIX = "demo-"


def _err(errcode: int, errmsg: str) -> web.Response:
    return web.json_response({"errcode": errcode, "errmsg": errmsg})


def _claim(state: FakeState, table: dict[str, dict[str, str]], code: str, key: str) -> dict[str, str] | None:
    """A registered code works once; `demo-<id>` codes always work (for demos)."""
    if code in table:
        if code in state.used_codes:
            return None
        state.used_codes.add(code)
        return table[code]
    if code.startswith(DEMO_PREFIX) and len(code) > len(DEMO_PREFIX):
        return {key: code[len(DEMO_PREFIX) :]}
    return None


@routes.get("/sns/jscode2session")
async def jscode2session(request: web.Request) -> web.Response:
    state = request.app[FAKE_STATE]
    q = request.query
    state.record("wechat.jscode2session", request)
    if not q.get("appid") or not q.get("secret"):
        return _err(41002, "appid missing")
    if q.get("grant_type") != "authorization_code":
        return _err(40002, "invalid grant_type")
    ident = _claim(state, state.wechat_codes, q.get("js_code", ""), "openid")
    if ident is None:
        return _err(40029, "invalid code")
    body = {"openid": ident["openid"], "session_key": base64.b64encode(secrets.token_bytes(16)).decode()}
    if ident.get("unionid"):
        body["unionid"] = ident["unionid"]
    return web.json_response(body)


@routes.get("/gettoken")
async def dingtalk_gettoken(request: web.Request) -> web.Response:
    state = request.app[FAKE_STATE]
    state.record("dingtalk.gettoken", request)
    if not request.query.get("appkey") or not request.query.get("appsecret"):
        return _err(40089, "不合法的corpid或corpsecret")
    token = "fake-dt-" + secrets.token_hex(12)
    state.tokens.setdefault("dingtalk", set()).add(token)
    return web.json_response({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200})


@routes.post("/topapi/v2/user/getuserinfo")
async def dingtalk_getuserinfo(request: web.Request) -> web.Response:
    state = request.app[FAKE_STATE]
    try:
        body = json.loads(await request.text() or "{}")
    except ValueError:
        body = {}
    state.record("dingtalk.getuserinfo", request, body)
    if request.query.get("access_token") not in state.tokens.get("dingtalk", set()):
        return _err(40014, "不合法的access_token")
    code = str(body.get("code", "")) if isinstance(body, dict) else ""
    ident = _claim(state, state.dingtalk_codes, code, "userid")
    if ident is None:
        return _err(40078, "不存在的临时授权码")
    userid = ident["userid"]
    result = {
        "userid": userid,
        "name": ident.get("name", userid),
        "unionid": ident.get("unionid", f"union-{userid}"),
        "device_id": "fake-device",
        "sys": False,
        "sys_level": 0,
        "associated_unionid": "",
    }
    return web.json_response(
        {"errcode": 0, "errmsg": "ok", "result": result, "request_id": secrets.token_hex(8)}
    )
