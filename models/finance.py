"""Payments and the receivables ledger per distributor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

from models.base import ReceivableKind, enum_field, money_field

if TYPE_CHECKING:
    from models.distributor import Distributor
    from models.user import User


class Payment(Model):
    id = fields.IntField(primary_key=True)
    distributor: fields.ForeignKeyRelation[Distributor] = fields.ForeignKeyField(
        "qudao.Distributor", related_name="payments", on_delete=fields.RESTRICT
    )
    amount = money_field()
    paid_at = fields.DatetimeField()
    ref = fields.CharField(max_length=64, description="bank/transfer reference — unique per distributor")
    created_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "qudao.User", related_name="recorded_payments", null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "payment"
        unique_together = (("distributor", "ref"),)
        constraints = (CheckConstraint(check="CAST(amount AS NUMERIC) > 0", name="ck_payment_amount"),)


class ReceivableEntry(Model):
    """Receivables ledger — the balance a distributor owes is the sum of `amount`."""

    id = fields.BigIntField(primary_key=True)
    distributor: fields.ForeignKeyRelation[Distributor] = fields.ForeignKeyField(
        "qudao.Distributor", related_name="receivable_entries", on_delete=fields.RESTRICT
    )
    kind = enum_field(ReceivableKind, "shipment | payment | return | adjustment")
    amount = money_field(description="signed: + increases what the distributor owes")
    ref_type = fields.CharField(max_length=32, description="e.g. shipment, payment, order_return")
    ref_id = fields.CharField(max_length=64)
    due_at = fields.DatetimeField(null=True, description="when it falls due (payment terms)")
    occurred_at = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "receivable_entry"
        indexes = (("distributor_id", "occurred_at"), ("ref_type", "ref_id"))
