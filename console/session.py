"""Console sessions: the token from `accounts.password_login` (same check and lock-out as
POST /auth/password-login) kept in an HttpOnly, SameSite=Lax cookie; the Actor comes from the
same `authenticate_token` as a Bearer header. Writes carry a CSRF token derived from the
session token (HMAC with `[auth] secret`): header `X-CSRF-Token` (htmx `hx-headers`) or
form field `csrf_token`."""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from core.errors import DomainError, Forbidden
from core.keys import CONFIG
from handlers.actor import Actor
from handlers.auth import authenticate_token

COOKIE = "qudao_console"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
ACTOR: web.RequestKey[Actor] = web.RequestKey("console_actor", Actor)
TOKEN: web.RequestKey[str] = web.RequestKey("console_token", str)


def csrf_for(request: web.Request, token: str) -> str:
    secret = request.config_dict[CONFIG].auth.secret.encode()
    return hmac.new(secret, b"console-csrf:" + token.encode(), hashlib.sha256).hexdigest()


async def current_actor(request: web.Request) -> Actor | None:
    token = request.cookies.get(COOKIE, "")
    if not token or len(token) > 256:
        return None
    try:
        actor = await authenticate_token(token)
    except DomainError:
        return None
    request[ACTOR] = actor
    request[TOKEN] = token
    return actor


async def check_csrf(request: web.Request) -> None:
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        sent = str((await request.post()).get(CSRF_FIELD, ""))
    if not sent or not hmac.compare_digest(sent, csrf_for(request, request[TOKEN])):
        raise Forbidden("页面已过期或请求来源不可信（CSRF 校验失败），请刷新页面后重试")


def set_session(request: web.Request, resp: web.StreamResponse, token: str) -> None:
    resp.set_cookie(
        COOKIE,
        token,
        path="/console",
        httponly=True,
        samesite="Lax",
        secure=request.secure,
        max_age=request.config_dict[CONFIG].auth.token_ttl_s,
    )


def clear_session(resp: web.StreamResponse) -> None:
    resp.del_cookie(COOKIE, path="/console")
