"""Leads (客户报备): a customer registered by a rep or distributor, protected for a while."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

from models.base import LeadStatus, TimestampMixin, enum_field, money_field

if TYPE_CHECKING:
    from models.distributor import Distributor
    from models.user import User


class Lead(TimestampMixin, Model):
    id = fields.IntField(primary_key=True)
    customer_name = fields.CharField(max_length=200)
    name_normalized = fields.CharField(
        max_length=200, description="name with width, spaces and 有限公司 variants normalised"
    )
    phone = fields.CharField(max_length=32, null=True)
    phone_digits = fields.CharField(max_length=20, null=True, description="phone, digits only")
    uscc = fields.CharField(max_length=18, null=True)
    project = fields.CharField(max_length=200, null=True)
    region = fields.CharField(max_length=64, null=True)
    amount = money_field(null=True, description="expected deal size")
    owner: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "qudao.User", related_name="leads", on_delete=fields.RESTRICT
    )
    distributor: fields.ForeignKeyNullableRelation[Distributor] = fields.ForeignKeyField(
        "qudao.Distributor", related_name="leads", null=True, on_delete=fields.RESTRICT
    )
    status = enum_field(LeadStatus, "protected | pending_review | rejected | expired | won")
    protected_until = fields.DatetimeField(null=True)
    reject_reason = fields.TextField(null=True)
    reviewed_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "qudao.User", related_name="reviewed_leads", null=True, on_delete=fields.SET_NULL
    )

    class Meta:
        table = "lead"
        indexes = (
            ("name_normalized",),
            ("phone_digits",),
            ("uscc",),
            ("owner_id",),
            ("status", "protected_until"),
        )
