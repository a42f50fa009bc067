"""The fake platform: a local stand-in for the WeChat, WeCom and DingTalk HTTP APIs.

Run it with `qudao fake-platform --port 9000` and point `wechat.api_base`, `wecom.api_base`,
`dingtalk.api_base` and `dingtalk.oapi_base` at `http://127.0.0.1:9000`; tests start it with
`create_fake_app(state)` on an aiohttp TestServer. It records every call it is sent.

How to extend it (one module per platform area, like `channels/fake/login.py`):

1. Write `channels/fake/<area>.py` with `routes = web.RouteTableDef()` and handlers that
   answer exactly like the real platform (HTTP 200 + `errcode` on errors where the platform
   does that). Reach the shared state with `state = request.app[FAKE_STATE]`; call
   `state.record("<kind>", request, body)` for every call worth asserting on; keep per-area
   data in `state.extra["<area>"]` (or add a field to `FakeState` in `state.py`).
2. Append the module to `FAKE_ROUTE_MODULES` below. Nothing else: the generic endpoints and
   fault injection apply to every route.

Generic endpoints (under `/_fake/`, never recorded, never faulted):
- `GET  /_fake/messages?kind=` recorded calls (all, or one kind), oldest first.
- `POST /_fake/faults` `{match, errcode?, status?, delay?, count}`: the next `count` calls
  whose path contains `match` sleep `delay` seconds, then answer HTTP `status`, or HTTP 200
  with `{"errcode": errcode, "errmsg"}`; with neither they proceed normally (slow platform).
- `POST /_fake/codes` `{wechat?: {code: {openid, unionid?}}, dingtalk?: {code: {userid, name?}}}`
  adds login-code mappings (single use, like the real codes).
- `POST /_fake/reset` forgets calls, codes, faults and tokens.

Default codes (no set-up needed, reusable, for demos): a mini-program `js_code` or a DingTalk
`authCode` of the form `demo-<id>` logs in as openid / userid `<id>` (e.g. `demo-alice`).
"""

from __future__ import annotations

import asyncio
import json
from types import ModuleType

from aiohttp import web

from channels.fake import login, messaging
from channels.fake.state import FAKE_STATE, FakeState, Fault

FAKE_ROUTE_MODULES: list[ModuleType] = [login, messaging]

__all__ = ["FAKE_ROUTE_MODULES", "FAKE_STATE", "FakeState", "Fault", "create_fake_app"]


@web.middleware
async def _faults(request: web.Request, handler):  # type: ignore[no-untyped-def]
    if request.path.startswith("/_fake/"):
        return await handler(request)
    state = request.app[FAKE_STATE]
    fault = state.take_fault(request.path)
    if fault is None:
        return await handler(request)
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if fault.status is not None or fault.errcode is not None:
        state.record("fault", request, None, status=fault.status, errcode=fault.errcode)
        body = {"errcode": fault.errcode if fault.errcode is not None else -1, "errmsg": fault.errmsg}
        return web.json_response(body, status=fault.status or 200)
    return await handler(request)


async def _json(request: web.Request) -> dict:  # type: ignore[type-arg]
    try:
        data = await request.json(loads=json.loads)
    except ValueError:
        raise web.HTTPBadRequest(text="body is not JSON") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return data


async def messages(request: web.Request) -> web.Response:
    state = request.app[FAKE_STATE]
    kind = request.query.get("kind")
    items = [c for c in state.calls if kind is None or c["kind"] == kind]
    return web.json_response({"items": items, "total": len(items)})


async def add_fault(request: web.Request) -> web.Response:
    data = await _json(request)
    try:
        fault = Fault(
            match=str(data["match"]),
            count=int(data.get("count", 1)),
            errcode=None if data.get("errcode") is None else int(data["errcode"]),
            status=None if data.get("status") is None else int(data["status"]),
            delay=float(data.get("delay", 0.0)),
            errmsg=str(data.get("errmsg", Fault.errmsg)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise web.HTTPBadRequest(text=f"bad fault: {exc}") from None
    request.app[FAKE_STATE].faults.append(fault)
    return web.json_response({"ok": True, "pending": len(request.app[FAKE_STATE].faults)})


async def add_codes(request: web.Request) -> web.Response:
    data = await _json(request)
    state = request.app[FAKE_STATE]
    for code, ident in (data.get("wechat") or {}).items():
        if isinstance(ident, str):
            ident = {"openid": ident}
        state.wechat_codes[str(code)] = {k: str(v) for k, v in ident.items()}
        state.used_codes.discard(str(code))
    for code, ident in (data.get("dingtalk") or {}).items():
        if isinstance(ident, str):
            ident = {"userid": ident}
        state.dingtalk_codes[str(code)] = {k: str(v) for k, v in ident.items()}
        state.used_codes.discard(str(code))
    return web.json_response({"ok": True})


async def reset(request: web.Request) -> web.Response:
    request.app[FAKE_STATE].reset()
    return web.json_response({"ok": True})


def create_fake_app(state: FakeState | None = None) -> web.Application:
    app = web.Application(middlewares=[_faults])
    app[FAKE_STATE] = state if state is not None else FakeState()
    app.router.add_get("/_fake/messages", messages)
    app.router.add_post("/_fake/faults", add_fault)
    app.router.add_post("/_fake/codes", add_codes)
    app.router.add_post("/_fake/reset", reset)
    for module in FAKE_ROUTE_MODULES:
        app.router.add_routes(module.routes)
    return app
