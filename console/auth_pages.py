"""Sign in and out of the console: the API's password login (same check, same lock-out),
refused for roles other than manager and admin."""

from __future__ import annotations

from aiohttp import web

from console.framework import Pages, redirect, render
from console.session import clear_session, set_session
from core.errors import DomainError, RateLimited
from core.web import client_ip
from handlers import accounts
from handlers.actor import Actor
from handlers.auth import authenticate_token

pages = Pages()
STAFF_ONLY = "此账号无权使用管理后台（仅限经理和管理员）"


def _next(value: str | None) -> str:
    """Only a console path: never an open redirect."""
    if value and value.startswith("/console/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/console/"


@pages.add("GET", "/login", name="login", auth=False)
async def login_form(request: web.Request) -> web.StreamResponse:
    return render(request, "login.html", {"next": _next(request.query.get("next"))})


@pages.add("POST", "/login", name="login_submit", auth=False)
async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    username = str(form.get("username", "")).strip()[:64]
    password = str(form.get("password", ""))[:256]
    target = _next(str(form.get("next", "")))
    ctx = {"next": target, "username": username}
    if not username or not password:
        return render(request, "login.html", {**ctx, "error": "请输入用户名和密码"}, status=400)
    try:
        session = await accounts.password_login(username, password, client_ip(request))
        assert session.token is not None
        actor = await authenticate_token(session.token)
    except RateLimited as exc:
        resp = render(request, "login.html", {**ctx, "error": exc.message}, status=429)
        resp.headers["Retry-After"] = str(exc.retry_after)
        return resp
    except DomainError as exc:
        return render(request, "login.html", {**ctx, "error": exc.message}, status=exc.status)
    if not actor.is_staff:
        await accounts.logout(actor)
        return render(request, "login.html", {**ctx, "error": STAFF_ONLY}, status=403)
    resp = redirect(target)
    set_session(request, resp, session.token)
    return resp


@pages.add("POST", "/logout", name="logout")
async def logout(request: web.Request, actor: Actor) -> web.StreamResponse:
    await accounts.logout(actor)
    if request.headers.get("HX-Request") == "true":
        resp = web.Response(status=204, headers={"HX-Redirect": "/console/login"})
    else:
        resp = redirect("/console/login")
    clear_session(resp)
    return resp
