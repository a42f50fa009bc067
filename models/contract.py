"""Distributor contracts (dates, targets, price policy)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

from models.base import ContractStatus, TimestampMixin, enum_field, money_field

if TYPE_CHECKING:
    from models.distributor import Distributor


class Contract(TimestampMixin, Model):
    id = fields.IntField(primary_key=True)
    distributor: fields.ForeignKeyRelation[Distributor] = fields.ForeignKeyField(
        "qudao.Distributor", related_name="contracts", on_delete=fields.RESTRICT
    )
    number = fields.CharField(max_length=64, unique=True)
    start_date = fields.DateField()
    end_date = fields.DateField(description="last day in force — expiry alerts count from it")
    target_amount = money_field(null=True, description="sales target for the contract term")
    price_policy = fields.TextField(null=True)
    status = enum_field(ContractStatus, "draft | active | expired | terminated", default=ContractStatus.DRAFT)

    class Meta:
        table = "contract"
        indexes = (("end_date",), ("distributor_id",))
        constraints = (CheckConstraint(check="end_date >= start_date", name="ck_contract_dates"),)
