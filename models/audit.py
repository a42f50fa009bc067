"""Audit log: who changed what, for every admin write and state transition."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.user import User


class AuditLog(Model):
    id = fields.BigIntField(primary_key=True)
    actor: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "qudao.User", related_name="audit_logs", null=True, on_delete=fields.SET_NULL
    )
    action = fields.CharField(max_length=64, description="e.g. order.approve, distributor.create")
    entity = fields.CharField(max_length=64, description="model/table name")
    entity_id = fields.CharField(max_length=64)
    before = fields.JSONField(null=True)
    after = fields.JSONField(null=True)
    request_id = fields.CharField(max_length=64, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "audit_log"
        indexes = (("entity", "entity_id"), ("created_at",), ("actor_id",))
