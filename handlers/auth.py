"""Tokens and Actors: issue, authenticate, revoke.

A token is 32 random bytes; only its sha256 is stored. Authenticating builds the caller's
Actor (role + distributor scope) and caches it in the kv store for a short time, so a busy
endpoint does not rebuild scope on every request; the chat caches a channel identity's Actor
the same way (`auth:idn:<channel>:<account>`, `handlers.identity`). Revocation (logout,
suspension, scope change) deletes the cache entries it affects — the users' tokens and their
identities, even for a chat-only user without a token — on every instance, since they share
the kv.
With the kv store down, authentication reads the database (the cache is only a shortcut);
revocation still needs the kv to drop cached Actors, so it answers 503 until it is back."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from datetime import timedelta

from core.clock import now
from core.errors import Unauthenticated
from core.kv import KVUnavailable
from core.runtime import runtime
from handlers.actor import Actor, Role
from models.base import DistributorStatus, UserStatus
from models.distributor import Distributor
from models.user import AuthToken, Identity, SalesAssignment, User

ACTOR_CACHE_TTL = 30.0


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _cache_key(digest: str) -> str:
    return f"auth:tok:{digest}"


def identity_cache_key(channel: str, account_id: str) -> str:
    return f"auth:idn:{channel}:{account_id}"


async def _identity_keys(user_ids: list[int]) -> list[str]:
    rows = await Identity.filter(user_id__in=user_ids).values_list("channel", "account_id")
    return [identity_cache_key(str(getattr(c, "value", c)), a) for c, a in rows]


async def issue_token(user: User) -> tuple[str, AuthToken]:
    token = secrets.token_urlsafe(32)
    ttl = runtime().config.auth.token_ttl_s
    row = await AuthToken.create(
        token_hash=token_hash(token), user=user, expires_at=now() + timedelta(seconds=ttl)
    )
    return token, row


async def authenticate_token(token: str) -> Actor:
    """Bearer token -> Actor, or Unauthenticated (unknown, expired, revoked, suspended)."""
    if len(token) > 256:
        raise Unauthenticated("登录已失效，请重新登录")
    digest = token_hash(token)
    kv = runtime().kv
    try:
        cached = await kv.get_json(_cache_key(digest))
    except KVUnavailable:
        cached = None  # the cache is a shortcut: the database still answers
    if cached is not None:
        return actor_from_json(cached)
    row = await AuthToken.get_or_none(token_hash=digest).select_related("user")
    if row is None or row.revoked_at is not None or row.expires_at <= now():
        raise Unauthenticated("登录已失效，请重新登录")
    user: User = row.user
    actor = await build_actor(user, token_id=row.id)
    ttl = min(ACTOR_CACHE_TTL, (row.expires_at - now()).total_seconds())
    if ttl > 0:
        with contextlib.suppress(KVUnavailable):
            await kv.set_json(_cache_key(digest), actor_to_json(actor), ttl=ttl)
    return actor


async def build_actor(user: User, token_id: int | None = None) -> Actor:
    """The caller's role and the distributors it may see. Suspended users (or users of a
    suspended distributor) have no Actor at all."""
    if user.status != UserStatus.ACTIVE:
        raise Unauthenticated("账号已停用，请联系管理员")
    role = Role(user.role)
    own: int | None = None
    dist: Distributor | None = None
    if role == Role.distributor:
        own = user.distributor_id  # type: ignore[attr-defined]
        dist = await Distributor.get_or_none(id=own) if own else None
        if dist is None or dist.status == DistributorStatus.SUSPENDED:
            raise Unauthenticated("所属经销商已停用或不存在，请联系管理员")
    return Actor(
        user_id=user.id,
        role=role,
        display_name=user.display_name,
        distributor_id=own,
        distributor_ids=await user_scope(user, dist),
        regions=frozenset(user.regions or []) if role == Role.manager else None,
        token_id=token_id,
    )


async def user_scope(user: User, dist: Distributor | None = None) -> frozenset[int] | None:
    """The distributors a user's role reaches, whatever its status (None = all, for admins):
    a manager's regions, a rep's assignments and the distributors it is in charge of, a
    distributor user's own distributor and (for a 一级) its children. `dist` is the
    distributor user's distributor when the caller already has it."""
    role = Role(user.role)
    if role == Role.admin:
        return None
    if role == Role.manager:
        regions = list(user.regions or [])
        return frozenset(await Distributor.filter(region__in=regions).values_list("id", flat=True))
    if role == Role.sales:
        assigned = await SalesAssignment.filter(user_id=user.id).values_list("distributor_id", flat=True)
        as_rep = await Distributor.filter(sales_rep_id=user.id).values_list("id", flat=True)
        return frozenset([*assigned, *as_rep])
    own = user.distributor_id  # type: ignore[attr-defined]
    if dist is None and own:
        dist = await Distributor.get_or_none(id=own)
    if dist is None:
        return frozenset()
    children = await Distributor.filter(parent_id=own).values_list("id", flat=True) if dist.level == 1 else []
    return frozenset([own, *children])


def actor_to_json(actor: Actor) -> dict[str, object]:
    return {
        "user_id": actor.user_id,
        "role": actor.role.value,
        "display_name": actor.display_name,
        "distributor_id": actor.distributor_id,
        "distributor_ids": None if actor.distributor_ids is None else sorted(actor.distributor_ids),
        "regions": None if actor.regions is None else sorted(actor.regions),
        "token_id": actor.token_id,
    }


def actor_from_json(data: dict) -> Actor:  # type: ignore[type-arg]
    ids = data["distributor_ids"]
    regions = data["regions"]
    return Actor(
        user_id=data["user_id"],
        role=Role(data["role"]),
        display_name=data["display_name"],
        distributor_id=data["distributor_id"],
        distributor_ids=None if ids is None else frozenset(ids),
        regions=None if regions is None else frozenset(regions),
        token_id=data["token_id"],
    )


async def revoke_token(token_id: int) -> None:
    row = await AuthToken.get_or_none(id=token_id)
    if row is None:
        return
    if row.revoked_at is None:
        row.revoked_at = now()
        await row.save(update_fields=["revoked_at"])
    await runtime().kv.delete(_cache_key(row.token_hash))


async def revoke_user_tokens(user_ids: list[int]) -> int:
    """End every live token of these users (logout all, suspension)."""
    rows = await AuthToken.filter(user_id__in=user_ids, revoked_at__isnull=True)
    if rows:
        await AuthToken.filter(id__in=[r.id for r in rows]).update(revoked_at=now())
    keys = [_cache_key(r.token_hash) for r in rows] + await _identity_keys(user_ids)
    if keys:
        await runtime().kv.delete(*keys)
    return len(rows)


async def refresh_user_scope(user_ids: list[int]) -> None:
    """Drop cached Actors after a scope change (assignment, region, parent): the next request
    rebuilds them from the database."""
    rows = await AuthToken.filter(user_id__in=user_ids, revoked_at__isnull=True).values_list(
        "token_hash", flat=True
    )
    keys = [_cache_key(h) for h in rows] + await _identity_keys(user_ids)
    if keys:
        await runtime().kv.delete(*keys)
