"""Signing in and out: password login (with lock-out), mini-program and DingTalk login,
binding a channel account with an invite code, logout, and "who am I".

Platform calls go through the `LoginProvider` port (implemented in channels/wechat/login.py
and channels/dingtalk/login.py, wired by core.app into `runtime().ports["login"]`). The
provider raises DomainErrors for platform refusals (bad code 400, quota 429, high-risk user
403, platform busy `PlatformUnavailable` 503); it never returns the session_key."""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import Field
from tortoise.expressions import F

from core.clock import now
from core.errors import DomainError, RateLimited, Unauthenticated, ValidationError
from core.kv import KVUnavailable
from core.runtime import runtime
from core.schema import In, Out
from handlers.actor import Actor
from handlers.auth import build_actor, issue_token, revoke_token, revoke_user_tokens
from handlers.identity import bind_identity, user_for_identity
from handlers.passwords import check_password
from handlers.throttle import HOUR, address_key, count_attempt, refund, throttle
from models.base import UserStatus
from models.user import Identity, SalesAssignment, User

BIND_TICKET_TTL = 600  # seconds a {bound: false} answer's ticket stays usable


class PlatformUnavailable(DomainError):
    """The platform answered busy (-1), 5xx or timed out: try again later."""

    code, status = "platform_unavailable", 503
    default_message = "登录平台暂时不可用，请稍后重试"


# --- the port -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlatformAccount:
    """Who the platform says logged in. `account_id` is the openid / DingTalk userid."""

    channel: str  # IdentityChannel value: "miniapp" | "dingtalk"
    account_id: str
    unionid: str | None = None
    name: str | None = None


class LoginProvider(Protocol):
    async def miniapp_session(self, code: str) -> PlatformAccount:
        """WeChat mini-program `wx.login` code -> openid (jscode2session)."""
        ...

    async def dingtalk_user(self, auth_code: str) -> PlatformAccount:
        """DingTalk micro-app auth code -> userid (gettoken + user/getuserinfo)."""
        ...


def login_provider() -> LoginProvider:
    provider = runtime().ports.get("login")
    if provider is None:
        raise PlatformUnavailable("暂未开通该平台登录，请使用其他方式登录")
    return provider  # type: ignore[no-any-return]


# --- schemas ----------------------------------------------------------------------------------


class PasswordLoginIn(In):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class WechatLoginIn(In):
    code: str = Field(min_length=1, max_length=256)


class DingtalkLoginIn(In):
    auth_code: str = Field(min_length=1, max_length=256)


class BindIn(In):
    bind_ticket: str = Field(min_length=1, max_length=128)
    invite_code: str = Field(min_length=1, max_length=32)


class LogoutIn(In):
    all: bool = False


class UserOut(Out):
    id: int
    username: str | None
    display_name: str
    role: str
    status: str
    distributor_id: int | None = None
    distributor_ids: list[int] = []  # a sales rep's assigned distributors
    regions: list[str] = []  # a manager's regions
    phone: str | None = None
    created_at: datetime | None = None


class IdentityOut(Out):
    channel: str
    account_id: str


class MeOut(UserOut):
    scope_distributor_ids: list[int] | None  # None = all (admin)
    identities: list[IdentityOut] = []


class LoginOut(Out):
    """Either a session (`token`, `user`) or, for an unbound platform account,
    `bound: false` with a short-lived `bind_ticket` for POST /auth/bind."""

    bound: bool = True
    token: str | None = None
    expires_at: datetime | None = None
    user: UserOut | None = None
    bind_ticket: str | None = None


class LogoutOut(Out):
    revoked: int


async def user_out(user: User, assignments: list[int] | None = None) -> UserOut:
    if assignments is None and user.role == "sales":
        assignments = sorted(
            await SalesAssignment.filter(user_id=user.id).values_list("distributor_id", flat=True)
        )
    return UserOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=str(user.role),
        status=str(user.status),
        distributor_id=user.distributor_id,  # type: ignore[attr-defined]
        distributor_ids=assignments or [],
        regions=list(user.regions or []),
        phone=user.phone,
        created_at=user.created_at,
    )


async def _session(user: User) -> LoginOut:
    await build_actor(user)  # refuses suspended users and users of suspended distributors
    token, row = await issue_token(user)
    return LoginOut(bound=True, token=token, expires_at=row.expires_at, user=await user_out(user))


# --- password login -------------------------------------------------------------------------------


def _fail_key(username: str) -> str:
    return f"auth:fail:{username.strip().lower()}"


def _ip_fail_key(client_ip: str, username: str) -> str:
    return f"auth:fail:ip:{client_ip}:{username.strip().lower()}"


async def password_login(username: str, password: str, client_ip: str) -> LoginOut:
    """Username + password -> session. Each attempt is counted BEFORE the (slow) hash check,
    so even concurrent guesses get at most `limits.login_failures_before_lock` tries per
    lock window; after that, 429 with Retry-After until the window ends. The same counter
    applies to unknown usernames, so lock-out reveals nothing about which names exist.

    One client address feeds that count at most `limits.login_failures_per_ip` times per
    username and window (and never the whole of it), then gets 429 itself: so one address
    cannot keep an account (say `admin`) locked, while guesses spread over many addresses
    still lock it. `limits.password_logins_per_ip_per_min` slows one address spraying many
    usernames."""
    kv = runtime().kv
    limits = runtime().config.limits
    client_ip = address_key(client_ip)
    limit = limits.login_failures_before_lock
    lock_s = limits.login_lock_s  # counted from the last allowed failure
    await throttle(
        f"auth:pw:ip:{client_ip}", limits.password_logins_per_ip_per_min, 60.0, "登录尝试过于频繁，请稍后再试"
    )
    key = _fail_key(username)
    user = await User.get_or_none(username=username)
    if user is not None and user.locked_until is not None:
        if user.locked_until > now():
            raise RateLimited("登录失败次数过多，请稍后再试", (user.locked_until - now()).total_seconds())
        # The lock has run out: the username starts afresh (the one request that clears it).
        if await User.filter(id=user.id, locked_until=user.locked_until).update(locked_until=None):
            with contextlib.suppress(KVUnavailable):
                await kv.delete(key)
    ip_key = _ip_fail_key(client_ip, username)
    per_ip = max(1, min(limits.login_failures_per_ip, limit - 1))
    await count_attempt(ip_key, per_ip, lock_s, "该地址登录失败次数过多，请稍后再试")
    try:
        attempt = await kv.incr(key, ttl=lock_s)
        if attempt > limit:
            raise RateLimited("登录失败次数过多，请稍后再试", await kv.ttl(key) or lock_s)
    except KVUnavailable:
        if not kv.may_fail_open():
            raise
        # kv down (for a bounded time): the user's own counter in the database still locks
        attempt = (user.failed_logins + 1) if user is not None else 1
    ok, upgraded = await check_password(user.password_hash if user else None, password)
    if not ok:
        if user is not None:
            fields: dict[str, object] = {"failed_logins": F("failed_logins") + 1}
            if attempt >= limit:
                fields["locked_until"] = now() + timedelta(seconds=lock_s)
            await User.filter(id=user.id).update(**fields)
        raise Unauthenticated("用户名或密码错误")
    assert user is not None
    with contextlib.suppress(KVUnavailable):
        await kv.delete(key, ip_key)
    if user.failed_logins or user.locked_until:
        await User.filter(id=user.id).update(failed_logins=0, locked_until=None)
    if upgraded is not None:  # only if the password did not change meanwhile
        await User.filter(id=user.id, password_hash=user.password_hash).update(password_hash=upgraded)
    return await _session(user)


# --- platform logins -----------------------------------------------------------------------------


def _ticket_key(ticket: str) -> str:
    return f"auth:bind:{ticket}"


async def _before_platform_call(client_ip: str) -> None:
    """The WeChat / DingTalk login APIs are quota-limited per app: every code, even a bogus
    one, costs a call. Limit per client address, then for all addresses together."""
    limits = runtime().config.limits
    client_ip = address_key(client_ip)
    message = "登录请求过于频繁，请稍后再试"
    await throttle(f"auth:platform:ip:{client_ip}", limits.platform_logins_per_ip_per_min, 60.0, message)
    await throttle("auth:platform:all", limits.platform_logins_per_min, 60.0, message)


async def _platform_login(account: PlatformAccount) -> LoginOut:
    user = await user_for_identity(account.channel, account.account_id)
    if user is not None:
        if user.status != UserStatus.ACTIVE:
            raise Unauthenticated("账号已停用，请联系管理员")
        return await _session(user)
    ticket = secrets.token_urlsafe(24)
    await runtime().kv.set_json(
        _ticket_key(ticket),
        {"channel": account.channel, "account_id": account.account_id, "unionid": account.unionid},
        ttl=BIND_TICKET_TTL,
    )
    return LoginOut(bound=False, bind_ticket=ticket)


async def wechat_login(code: str, client_ip: str) -> LoginOut:
    """Mini-program code -> session if the openid is bound, else a bind ticket."""
    await _before_platform_call(client_ip)
    return await _platform_login(await login_provider().miniapp_session(code))


async def dingtalk_login(auth_code: str, client_ip: str) -> LoginOut:
    """DingTalk micro-app auth code -> session if the userid is bound, else a bind ticket."""
    await _before_platform_call(client_ip)
    return await _platform_login(await login_provider().dingtalk_user(auth_code))


def _ticket_gone() -> ValidationError:
    return ValidationError("bind_ticket: 绑定已过期，请重新登录", {"field": "bind_ticket"})


async def bind_with_ticket(bind_ticket: str, invite_code: str, client_ip: str) -> LoginOut:
    """Bind the ticket's platform account to the invite code's user and sign in. A mistyped
    code may be retried, but a ticket takes at most `limits.bind_failures_per_ticket` tries
    and is dropped then (and once used). Failures also count per platform account and per
    client address (`bind_failures_per_account_per_hour`, `bind_failures_per_ip_per_hour`;
    429 beyond), so fresh tickets do not buy fresh guesses."""
    kv = runtime().kv
    limits = runtime().config.limits
    ticket_key = _ticket_key(bind_ticket)
    data = await kv.get_json(ticket_key)
    if not isinstance(data, dict):
        raise _ticket_gone()
    ip_key = f"auth:bindfail:ip:{address_key(client_ip)}"  # the platform account's count: bind_identity
    await count_attempt(ip_key, limits.bind_failures_per_ip_per_hour, HOUR, "邀请码错误次数过多，请稍后再试")
    tries_key = f"auth:bindtry:{bind_ticket}"
    tries = await kv.incr(tries_key, ttl=BIND_TICKET_TTL)
    if tries > limits.bind_failures_per_ticket:
        await kv.delete(ticket_key)
        raise _ticket_gone()
    try:
        user = await bind_identity(
            data["channel"], data["account_id"], invite_code, unionid=data.get("unionid")
        )
    except DomainError:
        if tries >= limits.bind_failures_per_ticket:
            await kv.delete(ticket_key)
        raise
    await kv.delete(ticket_key, tries_key)
    await refund(HOUR, ip_key)
    return await _session(user)


# --- session --------------------------------------------------------------------------------------


async def logout(actor: Actor, everywhere: bool = False) -> LogoutOut:
    if everywhere:
        return LogoutOut(revoked=await revoke_user_tokens([actor.user_id]))
    if actor.token_id is not None:
        await revoke_token(actor.token_id)
        return LogoutOut(revoked=1)
    return LogoutOut(revoked=0)


async def get_me(actor: Actor) -> MeOut:
    user = await User.get_or_none(id=actor.user_id)
    if user is None:
        raise Unauthenticated("账号已不存在，请联系管理员")
    base = await user_out(user)
    idents = await Identity.filter(user_id=user.id).order_by("id")
    return MeOut(
        **base.model_dump(),
        scope_distributor_ids=None if actor.distributor_ids is None else sorted(actor.distributor_ids),
        identities=[IdentityOut(channel=str(i.channel), account_id=i.account_id) for i in idents],
    )


__all__ = [
    "BindIn",
    "DingtalkLoginIn",
    "LoginOut",
    "LoginProvider",
    "LogoutIn",
    "MeOut",
    "PasswordLoginIn",
    "PlatformAccount",
    "PlatformUnavailable",
    "UserOut",
    "WechatLoginIn",
    "bind_with_ticket",
    "dingtalk_login",
    "get_me",
    "logout",
    "password_login",
    "user_out",
    "wechat_login",
]
