"""Distributors (经销商): the companies that order from us."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

from models.base import DistributorStatus, PaymentTerms, TimestampMixin, enum_field, money_field

if TYPE_CHECKING:
    from models.user import User


class Distributor(TimestampMixin, Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200)
    uscc = fields.CharField(
        max_length=18, unique=True, description="统一社会信用代码 (18 chars, check digit validated)"
    )
    level = fields.IntField(description="1 = 一级, 2 = 二级 (under a 一级 parent)")
    region = fields.CharField(max_length=64)
    parent: fields.ForeignKeyNullableRelation[Distributor] = fields.ForeignKeyField(
        "qudao.Distributor",
        related_name="children",
        null=True,
        on_delete=fields.RESTRICT,
        description="the 一级 distributor a 二级 one sits under",
    )
    sales_rep: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "qudao.User",
        related_name="rep_distributors",
        null=True,
        on_delete=fields.SET_NULL,
        description="the sales rep in charge (commission goes to this user)",
    )
    credit_limit = money_field(db_default=0, description="max receivables + open orders — ignored for prepay")
    exposure = money_field(
        db_default=0,
        description="receivables balance + open orders' unshipped value, kept with every change"
        " (handlers.finance), recomputed by `qudao finance verify`",
    )
    payment_terms = enum_field(PaymentTerms, "prepay | monthly | quarterly")
    status = enum_field(
        DistributorStatus, "applying | active | suspended", default=DistributorStatus.APPLYING
    )
    contact = fields.CharField(max_length=64, null=True)
    phone = fields.CharField(max_length=32, null=True)
    address = fields.CharField(max_length=255, null=True)

    class Meta:
        table = "distributor"
        indexes = (("region",), ("parent_id",), ("sales_rep_id",))
        constraints = (
            CheckConstraint(check="level IN (1, 2)", name="ck_distributor_level"),
            CheckConstraint(check="CAST(credit_limit AS NUMERIC) >= 0", name="ck_distributor_credit_limit"),
        )

    def __str__(self) -> str:
        return f"Distributor({self.id}, {self.name})"
