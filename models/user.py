"""Users, their channel identities, invite codes, login tokens and sales assignments."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

from models.base import IdentityChannel, TimestampMixin, UserRole, UserStatus, enum_field

if TYPE_CHECKING:
    from models.distributor import Distributor


class User(TimestampMixin, Model):
    id = fields.IntField(primary_key=True)
    username = fields.CharField(
        max_length=64, unique=True, null=True, description="login name for password login — NULL if none"
    )
    password_hash = fields.CharField(
        max_length=255, null=True, description="argon2 hash — NULL = no password login"
    )
    display_name = fields.CharField(max_length=100)
    role = enum_field(UserRole, "admin | manager | sales | distributor")
    distributor: fields.ForeignKeyNullableRelation[Distributor] = fields.ForeignKeyField(
        "qudao.Distributor",
        related_name="users",
        null=True,
        on_delete=fields.RESTRICT,
        description="the distributor a distributor-role user belongs to",
    )
    regions = fields.JSONField(default=list, description="regions a manager covers (list of names)")
    status = enum_field(UserStatus, "active | suspended", default=UserStatus.ACTIVE)
    token_version = fields.IntField(
        db_default=0, description="bumped to revoke every token issued to this user"
    )
    failed_logins = fields.IntField(
        db_default=0, description="consecutive failed password logins — reset on success"
    )
    locked_until = fields.DatetimeField(null=True, description="password login refused until then")
    phone = fields.CharField(max_length=32, null=True)

    class Meta:
        table = "app_user"  # "user" is reserved in PostgreSQL
        # (role, status): the managers of a region, on every order awaiting review (handlers.notify)
        indexes = (("distributor_id",), ("role", "status"))

    def __str__(self) -> str:
        return f"User({self.id}, {self.display_name})"


class SalesAssignment(Model):
    """A sales rep's assigned distributors (one row per pair)."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "qudao.User", related_name="sales_assignments", on_delete=fields.CASCADE
    )
    distributor: fields.ForeignKeyRelation[Distributor] = fields.ForeignKeyField(
        "qudao.Distributor", related_name="sales_assignments", on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "sales_assignment"
        unique_together = (("user", "distributor"),)
        indexes = (("distributor_id",),)


class Identity(Model):
    """Links a user to one chat/app account — a user may have several (one per account)."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "qudao.User", related_name="identities", on_delete=fields.CASCADE
    )
    channel = enum_field(IdentityChannel, "wechat | wecom | dingtalk | miniapp")
    account_id = fields.CharField(
        max_length=128, description="openid (wechat/miniapp) or userid (wecom/dingtalk)"
    )
    unionid = fields.CharField(max_length=128, null=True, description="WeChat unionid when known")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "user_identity"
        unique_together = (("channel", "account_id"),)
        indexes = (("user_id",), ("unionid",))


class InviteCode(Model):
    """One-time code an admin issues so a chat account can bind to `user`."""

    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "qudao.User", related_name="invite_codes", on_delete=fields.CASCADE
    )
    created_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "qudao.User", related_name="issued_invite_codes", null=True, on_delete=fields.SET_NULL
    )
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    used_by_identity: fields.ForeignKeyNullableRelation[Identity] = fields.ForeignKeyField(
        "qudao.Identity",
        related_name="invite_codes_used",
        null=True,
        on_delete=fields.SET_NULL,
        description="the identity bound with this code",
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "invite_code"
        indexes = (("user_id",),)


class AuthToken(Model):
    """An API bearer token — only its sha256 is stored."""

    id = fields.IntField(primary_key=True)
    token_hash = fields.CharField(max_length=64, unique=True, description="sha256 hex of the token")
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "qudao.User", related_name="auth_tokens", on_delete=fields.CASCADE
    )
    expires_at = fields.DatetimeField()
    revoked_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "auth_token"
        indexes = (("user_id",), ("expires_at",))
