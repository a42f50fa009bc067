"""Fake messaging endpoints: access tokens and every push API Qudao calls.

Recorded kinds (GET /_fake/messages?kind=...):
  wechat.token, wecom.token (dingtalk.gettoken lives in login.py)
  wechat.subscribe, wechat.template, wechat.custom, wecom.message, dingtalk.robot,
  dingtalk.work, dingtalk.robot_batch — messages actually delivered;
  wecom.duplicate, dingtalk.robot_duplicate, dingtalk.work_dropped — re-sends the real
  platform swallows (WeCom duplicate check, robot msgUuid, DingTalk's same-content rule).

Behaviour like the real platforms:
- a token not handed out (or expired with POST /_fake/tokens/expire) -> 40001 / 42001;
- subscribe data checked against the value limits per type -> 47003 naming the field;
- group robots: sign verified for robots registered with POST /_fake/robots
  {access_token, secret, per_min?, window_s?} (310000 on mismatch), at most `per_min`
  messages per `window_s` (default 20/60 s) then 130101; the same msgUuid twice is delivered
  once; unregistered robots accept anything (demos) and are recorded with verified=false;
- WeCom recipients named `invalid*` come back in `invaliduser` (all invalid -> 81013).
Faults (POST /_fake/faults) apply to all of these, e.g. `{"match": "/subscribe/send",
"errcode": 40001, "count": 1}` rejects the token once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from channels.fake.state import FAKE_STATE, FakeState

routes = web.RouteTableDef()

SUBSCRIBE_LIMITS = {
    "thing": 20,
    "number": 32,
    "letter": 32,
    "symbol": 5,
    "character_string": 32,
    "phrase": 5,
    "phone_number": 17,
    "car_number": 8,
    "name": 20,
    "amount": 14,
    "time": 20,
    "date": 20,
}


@dataclass
class RobotConf:
    secret: str = ""
    per_min: int = 20
    window_s: float = 60.0
    sent_at: list[float] = field(default_factory=list)
    throttled_until: float = 0.0
    uuids: set[str] = field(default_factory=set)


@dataclass
class MessagingState:
    stable_token: str | None = None
    expired: set[str] = field(default_factory=set)
    robots: dict[str, RobotConf] = field(default_factory=dict)  # access_token -> conf
    wecom_seen: dict[tuple[str, str], float] = field(default_factory=dict)
    work_seen: set[tuple[str, str, str]] = field(default_factory=set)  # (day, user, content)


def messaging_state(state: FakeState) -> MessagingState:
    ms = state.extra.get("messaging")
    if not isinstance(ms, MessagingState):
        ms = state.extra["messaging"] = MessagingState()
    return ms


def register_robot(state: FakeState, access_token: str, secret: str = "", **kw: Any) -> None:
    messaging_state(state).robots[access_token] = RobotConf(secret=secret, **kw)


def delivered(state: FakeState, kind: str) -> list[dict[str, Any]]:
    return [c for c in state.calls if c["kind"] == kind]


def _err(errcode: int, errmsg: str, **extra: Any) -> web.Response:
    return web.json_response({"errcode": errcode, "errmsg": errmsg, **extra})


async def _body(request: web.Request) -> dict[str, Any] | None:
    try:
        data = await request.json(loads=json.loads)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _issue(state: FakeState, platform: str, prefix: str) -> str:
    token = f"{prefix}-{secrets.token_hex(12)}"
    state.tokens.setdefault(platform, set()).add(token)
    return token


def _token_error(state: FakeState, platform: str, token: str | None) -> web.Response | None:
    ms = messaging_state(state)
    if token and token in ms.expired:
        return _err(42001, "access_token expired")
    if not token or token not in state.tokens.get(platform, set()):
        return _err(40001, "invalid credential, access_token is invalid or not latest")
    return None


# --- tokens -------------------------------------------------------------------------------------


@routes.post("/cgi-bin/stable_token")
async def stable_token(request: web.Request) -> web.Response:
    state = request.app[FAKE_STATE]
    body = await _body(request) or {}
    state.record("wechat.token", request, {k: v for k, v in body.items() if k != "secret"})
    if body.get("grant_type") != "client_credential" or not body.get("appid") or not body.get("secret"):
        return _err(40002, "invalid grant_type or missing appid/secret")
    ms = messaging_state(state)
    if ms.stable_token is None or body.get("force_refresh") or ms.stable_token in ms.expired:
        ms.stable_token = _issue(state, "wechat", "fake-wx")
    return web.json_response({"access_token": ms.stable_token, "expires_in": 7200})


@routes.get("/cgi-bin/token")
async def wechat_token(request: web.Request) -> web.Response:
    state = request.app[FAKE_STATE]
    q = request.query
    state.record("wechat.token", request, None)
    if q.get("grant_type") != "client_credential" or not q.get("appid") or not q.get("secret"):
        return _err(40002, "invalid grant_type or missing appid/secret")
    return web.json_response({"access_token": _issue(state, "wechat", "fake-wx"), "expires_in": 7200})


@routes.get("/cgi-bin/gettoken")
async def wecom_token(request: web.Request) -> web.Response:
    state = request.app[FAKE_STATE]
    state.record("wecom.token", request, None)
    if not request.query.get("corpid") or not request.query.get("corpsecret"):
        return _err(40013, "invalid corpid")
    token = _issue(state, "wecom", "fake-wc")
    return web.json_response({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200})


@routes.post("/_fake/tokens/expire")
async def expire_tokens(request: web.Request) -> web.Response:
    """Expire every token handed out (or one platform's): the next use answers 42001."""
    state = request.app[FAKE_STATE]
    body = await _body(request) or {}
    platforms = [body["platform"]] if body.get("platform") else list(state.tokens)
    ms = messaging_state(state)
    count = 0
    for p in platforms:
        tokens = state.tokens.pop(p, set())
        ms.expired.update(tokens)
        count += len(tokens)
    return web.json_response({"ok": True, "expired": count})


@routes.post("/_fake/robots")
async def add_robot(request: web.Request) -> web.Response:
    body = await _body(request) or {}
    if not body.get("access_token"):
        raise web.HTTPBadRequest(text="access_token required")
    kw = {k: body[k] for k in ("per_min", "window_s") if k in body}
    register_robot(request.app[FAKE_STATE], str(body["access_token"]), str(body.get("secret", "")), **kw)
    return web.json_response({"ok": True})


# --- WeChat -------------------------------------------------------------------------------------


def _check_subscribe_data(data: Any) -> str | None:
    if not isinstance(data, dict) or not data:
        return "data"
    for key, item in data.items():
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(value, str) or not value:
            return f"data.{key}.value"
        limit = SUBSCRIBE_LIMITS.get(key.rstrip("0123456789"))
        if limit is not None and len(value) > limit:
            return f"data.{key}.value"
    return None


async def _wechat_send(request: web.Request, kind: str, required: tuple[str, ...]) -> web.Response:
    state = request.app[FAKE_STATE]
    if (denied := _token_error(state, "wechat", request.query.get("access_token"))) is not None:
        return denied
    body = await _body(request)
    if body is None:
        return _err(47001, "data format error")
    for name in required:
        if not body.get(name):
            return _err(40003 if name == "touser" else 40037, f"invalid {name}")
    if kind == "wechat.subscribe" and (bad := _check_subscribe_data(body.get("data"))) is not None:
        return _err(47003, f"argument invalid! {bad} invalid")
    state.record(kind, request, body)
    extra = {"msgid": len(state.calls)} if kind != "wechat.subscribe" else {}
    return _err(0, "ok", **extra)


@routes.post("/cgi-bin/message/subscribe/send")
async def subscribe_send(request: web.Request) -> web.Response:
    return await _wechat_send(request, "wechat.subscribe", ("touser", "template_id"))


@routes.post("/cgi-bin/message/template/send")
async def template_send(request: web.Request) -> web.Response:
    return await _wechat_send(request, "wechat.template", ("touser", "template_id"))


@routes.post("/cgi-bin/message/custom/send")
async def custom_send(request: web.Request) -> web.Response:
    return await _wechat_send(request, "wechat.custom", ("touser",))


# --- WeCom --------------------------------------------------------------------------------------


@routes.post("/cgi-bin/message/send")
async def wecom_send(request: web.Request) -> web.Response:
    state = request.app[FAKE_STATE]
    if (denied := _token_error(state, "wecom", request.query.get("access_token"))) is not None:
        return denied
    body = await _body(request)
    if body is None:
        return _err(40058, "invalid json")
    users = [u for u in str(body.get("touser", "")).split("|") if u]
    invalid = [u for u in users if u.startswith("invalid")]
    if not users or len(invalid) == len(users):
        return _err(81013, "user & party & tag all invalid", invaliduser="|".join(invalid))
    content = str((body.get("text") or {}).get("content", ""))
    ms = messaging_state(state)
    now = time.time()
    key = (body.get("touser", ""), content)
    interval = float(body.get("duplicate_check_interval") or 1800)
    if body.get("enable_duplicate_check") and now - ms.wecom_seen.get(key, -1e18) < interval:
        state.record("wecom.duplicate", request, body)
        return _err(0, "ok", invaliduser="|".join(invalid), msgid="dup")
    ms.wecom_seen[key] = now
    state.record("wecom.message", request, body)
    return _err(0, "ok", invaliduser="|".join(invalid), msgid=f"wc{len(state.calls)}")


# --- DingTalk -----------------------------------------------------------------------------------


def _sign_ok(secret: str, timestamp: str, sign: str) -> bool:
    if not timestamp.isdigit() or abs(time.time() * 1000 - int(timestamp)) > 3_600_000:
        return False
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64encode(digest).decode(), sign)


@routes.post("/robot/send")
async def robot_send(request: web.Request) -> web.Response:
    state = request.app[FAKE_STATE]
    ms = messaging_state(state)
    q = request.query
    token = q.get("access_token", "")
    body = await _body(request)
    if body is None or body.get("msgtype") not in ("text", "markdown", "link", "actionCard", "feedCard"):
        return _err(40035, "缺少参数 json")
    conf = ms.robots.get(token)
    verified = False
    if conf is not None:
        if conf.secret:
            # aiohttp decoded the query: `sign` is the raw base64 again here
            if not _sign_ok(conf.secret, q.get("timestamp", ""), q.get("sign", "")):
                state.record("dingtalk.robot_rejected", request, body)
                return _err(
                    310000, "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]"
                )
            verified = True
        now = time.time()
        if now < conf.throttled_until:
            return _err(130101, "send too fast, exceed 20 times per minute")
        uuid = str(body.get("msgUuid") or "")
        if uuid and uuid in conf.uuids:
            state.record("dingtalk.robot_duplicate", request, body)
            return _err(0, "ok")
        conf.sent_at = [t for t in conf.sent_at if t > now - conf.window_s]
        if len(conf.sent_at) >= conf.per_min:
            conf.throttled_until = now + 600
            state.record("dingtalk.robot_throttled", request, body)
            return _err(130101, "send too fast, exceed 20 times per minute")
        conf.sent_at.append(now)
        if uuid:
            conf.uuids.add(uuid)
    state.record("dingtalk.robot", request, body, verified=verified)
    return _err(0, "ok")


@routes.post("/topapi/message/corpconversation/asyncsend_v2")
async def work_notify(request: web.Request) -> web.Response:
    state = request.app[FAKE_STATE]
    if (denied := _token_error(state, "dingtalk", request.query.get("access_token"))) is not None:
        return denied
    body = await _body(request)
    if body is None or not body.get("agent_id") or not body.get("userid_list"):
        return _err(400002, "参数错误: agent_id / userid_list")
    content = json.dumps(body.get("msg"), ensure_ascii=False, sort_keys=True)
    day = time.strftime("%Y-%m-%d")
    ms = messaging_state(state)
    fresh = []
    for user in str(body["userid_list"]).split(","):
        key = (day, user, content)
        if key not in ms.work_seen:
            ms.work_seen.add(key)
            fresh.append(user)
    # DingTalk answers ok and silently drops the same content to the same person in one day.
    state.record("dingtalk.work" if fresh else "dingtalk.work_dropped", request, body)
    return _err(0, "ok", task_id=len(state.calls), request_id=secrets.token_hex(8))


@routes.post("/v1.0/robot/oToMessages/batchSend")
async def robot_batch_send(request: web.Request) -> web.Response:
    state = request.app[FAKE_STATE]
    token = request.headers.get("x-acs-dingtalk-access-token")
    if not token or token not in state.tokens.get("dingtalk", set()):
        return web.json_response(
            {"code": "InvalidAuthentication", "message": "不合法的access_token"}, status=401
        )
    body = await _body(request)
    if body is None or not body.get("robotCode") or not body.get("userIds") or not body.get("msgKey"):
        return web.json_response(
            {"code": "MissingParameter", "message": "robotCode/userIds/msgKey"}, status=400
        )
    state.record("dingtalk.robot_batch", request, body)
    return web.json_response(
        {"processQueryKey": secrets.token_hex(8), "invalidStaffIdList": [], "flowControlledStaffIdList": []}
    )
