"""Sign-in routes: password, WeChat mini-program and DingTalk micro-app login, binding an
account with an invite code, logout and /me."""

from __future__ import annotations

from core.web import client_ip
from handlers import accounts
from handlers.accounts import (
    BindIn,
    DingtalkLoginIn,
    LoginOut,
    LogoutIn,
    LogoutOut,
    MeOut,
    PasswordLoginIn,
    WechatLoginIn,
)
from miniapp_api.framework import Api, Ctx

api = Api()
TAGS = ("auth",)


@api.route("POST", "/auth/password-login", body=PasswordLoginIn, response=LoginOut, auth=False, tags=TAGS)
async def password_login(ctx: Ctx) -> LoginOut:
    """Username + password -> {token, user}; locked for a while after repeated failures (and
    one client address gets only a few tries per username: 429)."""
    return await accounts.password_login(ctx.body.username, ctx.body.password, client_ip(ctx.request))


@api.route("POST", "/auth/wechat-login", body=WechatLoginIn, response=LoginOut, auth=False, tags=TAGS)
async def wechat_login(ctx: Ctx) -> LoginOut:
    """Mini-program wx.login code -> {token, user}, or {bound: false, bind_ticket}; rate-limited
    per client address and globally before the platform is called (429)."""
    return await accounts.wechat_login(ctx.body.code, client_ip(ctx.request))


@api.route("POST", "/auth/dingtalk-login", body=DingtalkLoginIn, response=LoginOut, auth=False, tags=TAGS)
async def dingtalk_login(ctx: Ctx) -> LoginOut:
    """DingTalk micro-app auth code -> {token, user}, or {bound: false, bind_ticket}; rate-limited
    per client address and globally before the platform is called (429)."""
    return await accounts.dingtalk_login(ctx.body.auth_code, client_ip(ctx.request))


@api.route("POST", "/auth/bind", body=BindIn, response=LoginOut, auth=False, tags=TAGS)
async def bind(ctx: Ctx) -> LoginOut:
    """Bind the ticket's platform account with a one-time invite code -> {token, user}. A ticket
    takes a few tries, then is dropped; failures also count per account and address (429)."""
    return await accounts.bind_with_ticket(ctx.body.bind_ticket, ctx.body.invite_code, client_ip(ctx.request))


@api.route("POST", "/auth/logout", body=LogoutIn, response=LogoutOut, tags=TAGS)
async def logout(ctx: Ctx) -> LogoutOut:
    """End this token, or with {"all": true} every token of the caller."""
    return await accounts.logout(ctx.me, everywhere=ctx.body.all)


@api.route("GET", "/me", response=MeOut, tags=TAGS)
async def me(ctx: Ctx) -> MeOut:
    """The caller: user, role, scope and bound accounts."""
    return await accounts.get_me(ctx.me)
