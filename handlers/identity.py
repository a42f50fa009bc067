"""Channel identities: which user a WeChat openid / WeCom or DingTalk userid belongs to, and
binding one with a one-time invite code. Shared by the mini-app login and the chat bot."""

from __future__ import annotations

import contextlib
import secrets
from datetime import timedelta

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core.clock import now
from core.errors import InvalidState, NotFound, Unauthenticated, ValidationError
from core.kv import KVUnavailable
from core.runtime import runtime
from handlers.actor import Actor
from handlers.audit import record
from handlers.auth import ACTOR_CACHE_TTL, actor_from_json, actor_to_json, build_actor, identity_cache_key
from handlers.throttle import HOUR, count_attempt, refund
from models.base import IdentityChannel, UserStatus
from models.user import Identity, InviteCode, User

# Unambiguous characters: no 0/O, 1/I/L, so codes survive being read aloud or retyped.
INVITE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
INVITE_LEN = 8


async def user_for_identity(channel: str, account_id: str) -> User | None:
    ident = await Identity.get_or_none(
        channel=IdentityChannel(channel), account_id=account_id
    ).select_related("user")
    return ident.user if ident is not None else None


async def actor_for_identity(channel: str, account_id: str) -> Actor | None:
    """The Actor of a bound, active chat/app account; None if unbound (or suspended, or of a
    suspended distributor). Cached in the kv like a token's Actor (`ACTOR_CACHE_TTL`) and
    dropped with it (`handlers.auth.revoke_user_tokens` / `refresh_user_scope`); only bound
    accounts are cached, so a new binding answers at once."""
    kv = runtime().kv
    key = identity_cache_key(channel, account_id)
    try:
        cached = await kv.get_json(key)
    except KVUnavailable:
        cached = None  # the cache is a shortcut: the database still answers
    if cached is not None:
        return actor_from_json(cached)
    user = await user_for_identity(channel, account_id)
    if user is None or user.status != UserStatus.ACTIVE:
        return None
    try:
        actor = await build_actor(user)
    except Unauthenticated:
        return None
    with contextlib.suppress(KVUnavailable):
        await kv.set_json(key, actor_to_json(actor), ttl=ACTOR_CACHE_TTL)
    return actor


async def issue_invite_code(actor: Actor | None, user_id: int) -> InviteCode:
    user = await User.get_or_none(id=user_id)
    if user is None:
        raise NotFound("未找到该用户")
    ttl = runtime().config.auth.invite_ttl_s
    code = "".join(secrets.choice(INVITE_ALPHABET) for _ in range(INVITE_LEN))
    invite = await InviteCode.create(
        code=code,
        user=user,
        created_by_id=actor.user_id if actor and actor.user_id else None,
        expires_at=now() + timedelta(seconds=ttl),
    )
    await record(actor, "invite_code.issue", "user", user.id, after={"expires_at": invite.expires_at})
    return invite


async def bind_identity(channel: str, account_id: str, invite_code: str, unionid: str | None = None) -> User:
    """Link a channel account to the invite code's user. The code works once, before it
    expires; an account already bound to someone else is refused. Failed attempts count per
    channel account (`limits.bind_failures_per_account_per_hour`, then 429), for the chat's
    绑定 and the mini-app's bind alike, so invite codes cannot be guessed at leisure."""
    code = invite_code.strip().upper()
    if not code or len(code) > 32:
        raise ValidationError("invite_code: 请填写邀请码", {"field": "invite_code"})
    key = f"auth:bindfail:acct:{channel}:{account_id}"
    limit = runtime().config.limits.bind_failures_per_account_per_hour
    await count_attempt(key, limit, HOUR, "邀请码错误次数过多，请稍后再试")
    user = await _claim_and_bind(channel, account_id, code, unionid)
    await refund(HOUR, key)
    return user


async def _claim_and_bind(channel: str, account_id: str, code: str, unionid: str | None) -> User:
    async with in_transaction():
        # Conditional update = claim: of two concurrent binds with one code, one wins.
        claimed = await InviteCode.filter(code=code, used_at__isnull=True, expires_at__gt=now()).update(
            used_at=now()
        )
        if claimed != 1:
            raise ValidationError("invite_code: 邀请码无效、已过期或已被使用", {"field": "invite_code"})
        invite = await InviteCode.get(code=code).select_related("user")
        user: User = invite.user
        if user.status != UserStatus.ACTIVE:
            raise InvalidState("该账号已停用")
        existing = await Identity.get_or_none(channel=IdentityChannel(channel), account_id=account_id)
        if existing is not None and existing.user_id != user.id:  # type: ignore[attr-defined]
            raise InvalidState("该账号已绑定其他用户")
        if existing is None:
            try:
                existing = await Identity.create(
                    user=user, channel=IdentityChannel(channel), account_id=account_id, unionid=unionid
                )
            except IntegrityError:
                raise InvalidState("该账号已绑定其他用户") from None
        invite.used_by_identity = existing
        await invite.save(update_fields=["used_by_identity_id"])
        await record(
            Actor(user_id=user.id, role=user.role),
            "identity.bind",
            "user",
            user.id,  # type: ignore[arg-type]
            after={"channel": channel, "account_id": account_id},
        )
    return user
