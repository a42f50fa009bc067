"""What the fake platform remembers: every call it was sent, login-code mappings, faults.

Route modules read it from `request.app[FAKE_STATE]`; tests may build one, pre-fill it and
pass it to `create_fake_app(state)` to inspect it directly afterwards."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Fault:
    """Applied by the fault middleware to the next `count` calls whose path contains `match`.

    `delay` (seconds) is slept first; then `status` answers that HTTP status, or `errcode`
    answers HTTP 200 with `{"errcode", "errmsg"}` (what the platforms do); with neither, the
    call proceeds normally after the delay (a slow platform)."""

    match: str
    count: int = 1
    errcode: int | None = None
    status: int | None = None
    delay: float = 0.0
    errmsg: str = "fault injected by the fake platform"


@dataclass
class FakeState:
    calls: list[dict[str, Any]] = field(default_factory=list)
    # mini-program login: js_code -> {"openid": ..., "unionid": ...?}; single-use like the real one
    wechat_codes: dict[str, dict[str, str]] = field(default_factory=dict)
    # DingTalk micro-app login: auth code -> {"userid": ..., "name": ...?}
    dingtalk_codes: dict[str, dict[str, str]] = field(default_factory=dict)
    used_codes: set[str] = field(default_factory=set)
    faults: list[Fault] = field(default_factory=list)
    # access tokens handed out, per platform ("dingtalk", "wechat", "wecom", ...)
    tokens: dict[str, set[str]] = field(default_factory=dict)
    # free room for route modules added later (e.g. messaging: subscribe grants, robot counters)
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self, kind: str, request: web.Request, body: Any = None, **info: Any) -> dict[str, Any]:
        """Remember one call; `kind` is what GET /_fake/messages?kind= filters on."""
        entry = {
            "kind": kind,
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "body": body,
            "at": time.time(),
            **info,
        }
        self.calls.append(entry)
        return entry

    def take_fault(self, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.match in path and fault.count > 0:
                fault.count -= 1
                if fault.count == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def reset(self) -> None:
        self.calls.clear()
        self.wechat_codes.clear()
        self.dingtalk_codes.clear()
        self.used_codes.clear()
        self.faults.clear()
        self.tokens.clear()
        self.extra.clear()


FAKE_STATE: web.AppKey[FakeState] = web.AppKey("fake_state", FakeState)
