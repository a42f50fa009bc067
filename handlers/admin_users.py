"""User administration: create, read, update, list, suspend/activate, invite codes.

Admins manage everyone. A manager sees distributor users of distributors in its regions and
sales reps serving there, and changes their in-region assignments; it may not create admins
or managers (403) and never sees users outside its scope (404). Account-level changes
(password, username, profile, invite codes, suspend/activate) follow one rule,
`require_whole_user`: only for users whose whole scope lies inside the manager's regions,
else 403, so a manager can never sign in as someone who also works elsewhere. Suspending a user or
changing its password ends its sessions; changing assignments/regions/distributor refreshes
its cached scope."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from core.errors import Forbidden, InvalidState, NotFound, ValidationError
from core.schema import Id, In, Out, Page
from handlers.accounts import UserOut, user_out
from handlers.actor import Actor
from handlers.admin_common import (
    NO_CTRL,
    ListQuery,
    Region,
    duplicate,
    get_or_404,
    manager_regions,
    page_of,
    staff_distributor_ids,
)
from handlers.audit import record, snapshot
from handlers.auth import refresh_user_scope, revoke_user_tokens, user_scope
from handlers.identity import issue_invite_code
from handlers.passwords import hash_password_async
from models.base import UserRole, UserStatus
from models.distributor import Distributor
from models.user import SalesAssignment, User

Username = Annotated[str, Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")]
Password = Annotated[str, Field(min_length=8, max_length=128)]
FIELDS = ["username", "display_name", "role", "status", "distributor_id", "regions", "phone"]


class UserIn(In):
    username: Username | None = None
    password: Password | None = None
    display_name: str = Field(min_length=1, pattern=NO_CTRL, max_length=100)
    role: Literal["admin", "manager", "sales", "distributor"]
    distributor_id: Id | None = None
    distributor_ids: list[Id] | None = Field(None, max_length=500)
    regions: list[Region] | None = Field(None, max_length=50)
    phone: Annotated[str, Field(pattern=NO_CTRL, max_length=32)] | None = None


class UserPatch(In):
    """The role is fixed once created; status changes through /suspend and /activate."""

    username: Username | None = None
    password: Password | None = None
    display_name: str | None = Field(None, min_length=1, pattern=NO_CTRL, max_length=100)
    distributor_id: Id | None = None
    distributor_ids: list[Id] | None = Field(None, max_length=500)
    regions: list[Region] | None = Field(None, max_length=50)
    phone: Annotated[str, Field(pattern=NO_CTRL, max_length=32)] | None = None


class UserQuery(ListQuery):
    q: str | None = Field(None, max_length=100, description="username or display name contains")
    role: Literal["admin", "manager", "sales", "distributor"] | None = None
    status: Literal["active", "suspended"] | None = None
    distributor_id: Id | None = None


class InviteCodeOut(Out):
    code: str
    expires_at: datetime
    user_id: int


async def staff_users(actor: Actor) -> QuerySet[User]:
    """Users the caller may manage: all for an admin; for a manager its distributors' users,
    reps assigned to (or in charge of) them, and itself."""
    ids = await staff_distributor_ids(actor)
    if ids is None:
        return User.all()
    reps = set(await SalesAssignment.filter(distributor_id__in=ids).values_list("user_id", flat=True))
    reps |= {r for r in await Distributor.filter(id__in=ids).values_list("sales_rep_id", flat=True) if r}
    return User.filter(
        Q(role=UserRole.DISTRIBUTOR, distributor_id__in=ids)
        | Q(role=UserRole.SALES, id__in=sorted(reps))
        | Q(id=actor.user_id)
    )


async def require_whole_user(actor: Actor, user: User) -> None:
    """The one rule for account-level changes of another user: credentials (password,
    username, invite codes), status and profile. A manager may make them only when the
    user's whole scope lies inside its regions (a rep's distributors, a distributor user's
    distributor and children, a manager's regions; never an admin): whoever holds the
    credentials acts everywhere the user does. A user partly in scope stays visible, so the
    refusal is 403, not 404. Call it with the user row locked, so the scope is current."""
    regions = manager_regions(actor)
    if regions is None:
        return
    if user.role == UserRole.MANAGER:
        inside = set(user.regions or []) <= set(regions)
    else:
        scope = await user_scope(user)
        inside = scope is not None and scope <= set(await staff_distributor_ids(actor) or [])
    if not inside:
        raise Forbidden(
            "该用户也在您管辖以外的区域工作，只有管理员可以修改其账号",
            {"reason": "user_outside_your_regions"},
        )


async def _assignments(user_ids: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {uid: [] for uid in user_ids}
    rows = (
        await SalesAssignment.filter(user_id__in=user_ids)
        .order_by("distributor_id")
        .values_list("user_id", "distributor_id")
    )
    for uid, did in rows:
        out[uid].append(did)
    return out


async def _many(rows: list[User]) -> list[UserOut]:
    assigned = await _assignments([u.id for u in rows if u.role == UserRole.SALES])
    return [await user_out(u, assigned.get(u.id, [])) for u in rows]


async def _check_role_fields(actor: Actor, role: str, data: dict[str, Any]) -> None:
    """Which scope fields fit which role, and that a manager stays inside its scope."""
    managing = manager_regions(actor) is not None
    if managing and role in ("admin", "manager"):
        raise Forbidden("经理不能管理管理员或其他经理")
    if data.get("distributor_id") is not None and role != "distributor":
        raise ValidationError("distributor_id: 仅经销商角色可填写", {"field": "distributor_id"})
    if data.get("distributor_ids") and role != "sales":
        raise ValidationError("distributor_ids: 仅销售角色可填写", {"field": "distributor_ids"})
    if data.get("regions") and role != "manager":
        raise ValidationError("regions: 仅经理角色可填写", {"field": "regions"})
    in_scope = await staff_distributor_ids(actor)
    wanted = [data["distributor_id"]] if data.get("distributor_id") is not None else []
    wanted += data.get("distributor_ids") or []
    if wanted:
        existing = set(await Distributor.filter(id__in=wanted).values_list("id", flat=True))
        visible = existing if in_scope is None else existing & set(in_scope)
        missing = sorted(set(wanted) - visible)
        if missing:
            raise NotFound("未找到该经销商", {"field": "distributor_id(s)", "ids": missing})


async def create_user(actor: Actor, data: UserIn) -> UserOut:
    values = data.model_dump()
    await _check_role_fields(actor, data.role, values)
    if data.role == "distributor" and data.distributor_id is None:
        raise ValidationError("distributor_id: 经销商角色须指定经销商", {"field": "distributor_id"})
    if data.password and not data.username:
        raise ValidationError("username: 设置密码时须填写用户名", {"field": "username"})
    pw_hash = await hash_password_async(data.password) if data.password else None
    try:
        async with in_transaction():
            user = await User.create(
                username=data.username,
                password_hash=pw_hash,
                display_name=data.display_name,
                role=UserRole(data.role),
                distributor_id=data.distributor_id,
                regions=sorted(set(data.regions or [])),
                phone=data.phone,
            )
            for did in sorted(set(data.distributor_ids or [])):
                await SalesAssignment.create(user_id=user.id, distributor_id=did)
            after = {**snapshot(user, FIELDS), "distributor_ids": sorted(set(data.distributor_ids or []))}
            await record(actor, "user.create", "user", user.id, after=after)
    except IntegrityError:
        raise duplicate("username", data.username) from None
    return await user_out(user)


async def get_user(actor: Actor, user_id: int) -> UserOut:
    return await user_out(await get_or_404(await staff_users(actor), user_id, "user"))


async def list_users(actor: Actor, query: UserQuery, *, export: bool = False) -> Page[UserOut]:
    qs = await staff_users(actor)
    if query.q:
        qs = qs.filter(Q(username__icontains=query.q) | Q(display_name__icontains=query.q))
    for name in ("role", "status", "distributor_id"):
        value = getattr(query, name)
        if value is not None:
            qs = qs.filter(**{name: value})
    return await page_of(qs, query, _many, export=export)


async def update_user(actor: Actor, user_id: int, data: UserPatch) -> UserOut:
    changes = data.model_dump(exclude_unset=True)
    if changes.get("display_name", "") is None:
        raise ValidationError("display_name: 不能为空", {"field": "display_name"})
    user = await get_or_404(await staff_users(actor), user_id, "user")
    await _check_role_fields(actor, str(user.role), changes)
    if "password" in changes and not (changes.get("username") or user.username):
        raise ValidationError("username: 设置密码时须填写用户名", {"field": "username"})
    pw_hash = await hash_password_async(changes["password"]) if changes.get("password") else None
    scope_changed = bool({"distributor_id", "distributor_ids", "regions"} & changes.keys())
    try:
        async with in_transaction():
            user = await User.select_for_update().get(id=user.id)
            if changes.keys() - {"distributor_ids"}:  # a rep's in-region assignments are the region's own
                await require_whole_user(actor, user)
            before = {**snapshot(user, FIELDS), "distributor_ids": (await _assignments([user.id]))[user.id]}
            for name in ("username", "display_name", "distributor_id", "phone"):
                if name in changes:
                    setattr(user, name, changes[name])
            if "regions" in changes:
                user.regions = sorted(set(changes["regions"] or []))
            if "password" in changes:
                user.password_hash = pw_hash
            if user.role == UserRole.DISTRIBUTOR and user.distributor_id is None:  # type: ignore[attr-defined]
                raise ValidationError(
                    "distributor_id: 经销商角色须指定经销商", {"field": "distributor_id"}
                )
            await user.save()
            if "distributor_ids" in changes:
                await _replace_assignments(actor, user.id, changes["distributor_ids"] or [])
            after = {**snapshot(user, FIELDS), "distributor_ids": (await _assignments([user.id]))[user.id]}
            if "password" in changes:
                after["password"] = "changed" if changes["password"] else "removed"  # never the hash
            await record(actor, "user.update", "user", user.id, before=before, after=after)
    except IntegrityError:
        raise duplicate("username", changes.get("username")) from None
    if "password" in changes:
        await revoke_user_tokens([user.id])
    elif scope_changed:
        await refresh_user_scope([user.id])
    return await user_out(user)


async def _replace_assignments(actor: Actor, user_id: int, wanted: list[int]) -> None:
    """Set a rep's assignments. A manager changes only those inside its scope; assignments
    in other regions stay as they are."""
    in_scope = await staff_distributor_ids(actor)
    current = SalesAssignment.filter(user_id=user_id)
    if in_scope is not None:
        current = current.filter(distributor_id__in=in_scope)
    await current.exclude(distributor_id__in=wanted).delete()
    have = set(await SalesAssignment.filter(user_id=user_id).values_list("distributor_id", flat=True))
    for did in sorted(set(wanted) - have):
        await SalesAssignment.create(user_id=user_id, distributor_id=did)


async def _set_status(actor: Actor, user_id: int, status: UserStatus) -> User:
    user = await get_or_404(await staff_users(actor), user_id, "user")
    if user.id == actor.user_id and status == UserStatus.SUSPENDED:
        raise InvalidState("不能停用自己的账号")
    async with in_transaction():
        user = await User.select_for_update().get(id=user.id)
        await require_whole_user(actor, user)
        if user.status != status:
            before = snapshot(user, FIELDS)
            user.status = status
            await user.save(update_fields=["status", "updated_at"])
            verb = "suspend" if status == UserStatus.SUSPENDED else "activate"
            await record(actor, f"user.{verb}", "user", user.id, before=before, after=snapshot(user, FIELDS))
    return user


async def suspend_user(actor: Actor, user_id: int) -> UserOut:
    """Suspend and end every session of the user at once."""
    user = await _set_status(actor, user_id, UserStatus.SUSPENDED)
    await revoke_user_tokens([user.id])
    return await user_out(user)


async def activate_user(actor: Actor, user_id: int) -> UserOut:
    user = await _set_status(actor, user_id, UserStatus.ACTIVE)
    await User.filter(id=user.id).update(failed_logins=0, locked_until=None)
    return await user_out(user)


async def create_invite_code(actor: Actor, user_id: int) -> InviteCodeOut:
    """A one-time code the user types (chat: 绑定 <code>) or enters in the mini-app to bind
    an account. Valid for `auth.invite_ttl_s`."""
    user = await get_or_404(await staff_users(actor), user_id, "user")
    if user.status != UserStatus.ACTIVE:
        raise InvalidState("该用户已停用")
    async with in_transaction():
        await require_whole_user(actor, await User.select_for_update().get(id=user.id))
        invite = await issue_invite_code(actor, user.id)
    return InviteCodeOut(code=invite.code, expires_at=invite.expires_at, user_id=user.id)


__all__ = [
    "InviteCodeOut",
    "UserIn",
    "UserPatch",
    "UserQuery",
    "activate_user",
    "create_invite_code",
    "create_user",
    "get_user",
    "list_users",
    "require_whole_user",
    "staff_users",
    "suspend_user",
    "update_user",
]
