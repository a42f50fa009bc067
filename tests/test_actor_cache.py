"""The chat's identity -> Actor lookup is cached in the kv (`auth:idn:<channel>:<account>`,
30 s) and dropped exactly when the user's tokens are: suspension, scope change, a suspended
distributor — also for a chat-only user who holds no token at all."""

from __future__ import annotations

from handlers import admin_distributors, admin_users
from handlers.actor import Actor, Role
from handlers.identity import actor_for_identity
from models.base import IdentityChannel, UserRole
from models.user import Identity, User
from tests.factories import make_distributor, make_user


async def _bound(user: User, account: str) -> None:
    await Identity.create(user=user, channel=IdentityChannel.WECOM, account_id=account)


async def test_actor_for_identity_when_called_twice_is_cached(db) -> None:
    user = await make_user(UserRole.SALES)
    await _bound(user, "rep-1")
    first = await actor_for_identity("wecom", "rep-1")
    assert first is not None and first.user_id == user.id
    # Changed behind the use-cases' back: the cached Actor still answers (no DB read).
    await User.filter(id=user.id).update(display_name="changed")
    second = await actor_for_identity("wecom", "rep-1")
    assert second == first


async def test_actor_cache_when_user_suspended_is_dropped(db) -> None:
    admin = await make_user(UserRole.ADMIN)
    user = await make_user(UserRole.SALES)  # chat only: no token
    await _bound(user, "rep-2")
    assert await actor_for_identity("wecom", "rep-2") is not None
    await admin_users.suspend_user(Actor(user_id=admin.id, role=Role.admin), user.id)
    assert await actor_for_identity("wecom", "rep-2") is None


async def test_actor_cache_when_scope_changes_is_dropped(db) -> None:
    admin = await make_user(UserRole.ADMIN)
    east = await make_distributor(region="华东")
    north = await make_distributor(region="华北")
    manager = await make_user(UserRole.MANAGER, regions=["华东"])
    await _bound(manager, "mgr-1")
    before = await actor_for_identity("wecom", "mgr-1")
    assert before is not None and before.distributor_ids == frozenset({east.id})
    await admin_users.update_user(
        Actor(user_id=admin.id, role=Role.admin), manager.id, admin_users.UserPatch(regions=["华北"])
    )
    after = await actor_for_identity("wecom", "mgr-1")
    assert after is not None and after.distributor_ids == frozenset({north.id})


async def test_actor_cache_when_distributor_suspended_is_dropped(db) -> None:
    admin = await make_user(UserRole.ADMIN)
    dist = await make_distributor()
    user = await make_user(UserRole.DISTRIBUTOR, distributor=dist)
    await _bound(user, "dist-1")
    assert await actor_for_identity("wecom", "dist-1") is not None
    await admin_distributors.suspend_distributor(Actor(user_id=admin.id, role=Role.admin), dist.id)
    assert await actor_for_identity("wecom", "dist-1") is None
