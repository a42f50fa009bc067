"""Commission rules, the commission ledger, and monthly statements (对账单)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

from models.base import (
    Beneficiary,
    CommissionEntryKind,
    CommissionMode,
    CommissionPeriod,
    StatementKind,
    StatementStatus,
    TimestampMixin,
    enum_field,
    money_field,
    rate_field,
)

if TYPE_CHECKING:
    from models.distributor import Distributor
    from models.order import Order
    from models.user import User


class CommissionRule(TimestampMixin, Model):
    """Who earns what on which sales — NULL scope fields match anything."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100)
    beneficiary = enum_field(Beneficiary, "sales (the distributor's rep) | distributor")
    mode = enum_field(CommissionMode, "flat | tiered_marginal | tiered_whole")
    rate = rate_field(null=True, description="flat rate, e.g. 0.0200 = 2%")
    tiers = fields.JSONField(
        null=True, description='tiered modes: [{"from": "0", "rate": "0.02"}, ...] by period volume'
    )
    scope_category = fields.CharField(max_length=64, null=True)
    scope_sku = fields.CharField(max_length=64, null=True)
    scope_region = fields.CharField(max_length=64, null=True)
    scope_level = fields.IntField(null=True)
    period = enum_field(CommissionPeriod, "month | quarter: the volume window for tiers")
    valid_from = fields.DateField()
    valid_to = fields.DateField(null=True)
    priority = fields.IntField(db_default=0, description="higher wins among overlapping rules")
    active = fields.BooleanField(db_default=True)

    class Meta:
        table = "commission_rule"
        constraints = (
            CheckConstraint(
                check="valid_to IS NULL OR valid_to >= valid_from", name="ck_commission_rule_dates"
            ),
            CheckConstraint(check="mode <> 'flat' OR rate IS NOT NULL", name="ck_commission_rule_flat_rate"),
            CheckConstraint(
                check="rate IS NULL OR (CAST(rate AS NUMERIC) >= 0 AND CAST(rate AS NUMERIC) <= 1)",
                name="ck_commission_rule_rate",
            ),
        )


class Statement(TimestampMixin, Model):
    """A period statement for one subject (a beneficiary user or a distributor).

    `subject_key` ("user:<id>" or "distributor:<id>") carries the uniqueness: a unique
    (kind, beneficiary, distributor, period) would not hold because NULLs never collide.
    """

    id = fields.IntField(primary_key=True)
    kind = enum_field(StatementKind, "commission | receivables")
    beneficiary: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "qudao.User", related_name="statements", null=True, on_delete=fields.RESTRICT
    )
    distributor: fields.ForeignKeyNullableRelation[Distributor] = fields.ForeignKeyField(
        "qudao.Distributor", related_name="statements", null=True, on_delete=fields.RESTRICT
    )
    subject_key = fields.CharField(
        max_length=32, description='"user:<id>" or "distributor:<id>" — unique with (kind, period)'
    )
    period = fields.CharField(max_length=7, description='"YYYY-MM" or "YYYY-Qn"')
    total = money_field()
    status = enum_field(StatementStatus, "open | confirmed | disputed", default=StatementStatus.OPEN)
    dispute_reason = fields.TextField(null=True)
    confirmed_at = fields.DatetimeField(null=True)
    lines = fields.JSONField(default=list, description="the statement lines as shown to the subject")
    summary = fields.JSONField(
        null=True, description="receivables: opening, shipped, payments, returns, adjustments, closing"
    )

    entries: fields.ReverseRelation[CommissionEntry]

    class Meta:
        table = "statement"
        unique_together = (("kind", "subject_key", "period"),)
        indexes = (("beneficiary_id", "period"), ("distributor_id", "period"))
        constraints = (
            CheckConstraint(
                check="beneficiary_id IS NOT NULL OR distributor_id IS NOT NULL",
                name="ck_statement_subject",
            ),
        )


class CommissionEntry(Model):
    """Commission ledger: accruals at completion, reversals on returns, tier adjustments."""

    id = fields.BigIntField(primary_key=True)
    beneficiary: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "qudao.User", related_name="commission_entries", on_delete=fields.RESTRICT
    )
    rule: fields.ForeignKeyRelation[CommissionRule] = fields.ForeignKeyField(
        "qudao.CommissionRule", related_name="entries", on_delete=fields.RESTRICT
    )
    order: fields.ForeignKeyNullableRelation[Order] = fields.ForeignKeyField(
        "qudao.Order", related_name="commission_entries", null=True, on_delete=fields.RESTRICT
    )
    kind = enum_field(CommissionEntryKind, "accrual | reversal | adjustment")
    period = fields.CharField(max_length=7, description='"YYYY-MM" or "YYYY-Qn"')
    base = money_field(description="in-scope net amount the rate applies to")
    rate = rate_field()
    amount = money_field(description="signed — reversals are negative")
    detail = fields.JSONField(default=dict, description="how it was computed (tier, split, ...)")
    statement: fields.ForeignKeyNullableRelation[Statement] = fields.ForeignKeyField(
        "qudao.Statement", related_name="entries", null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    # Added by the commission feature (handlers/commission.py explains the ledger).
    beneficiary_distributor: fields.ForeignKeyNullableRelation[Distributor] = fields.ForeignKeyField(
        "qudao.Distributor",
        related_name="rebate_entries",
        null=True,
        on_delete=fields.RESTRICT,
        description="distributor rules: the distributor earning the rebate (beneficiary = its user)",
    )
    subject_key = fields.CharField(
        max_length=32, null=True, description='"user:<id>" (sales) or "distributor:<id>" (rebates)'
    )
    tier_period = fields.CharField(
        max_length=7, null=True, description='the volume window of the rule: "YYYY-MM" or "YYYY-Qn"'
    )
    source_ref = fields.CharField(
        max_length=40, null=True, description='"order:<id>", "return:<id>" or "tier:<period>"'
    )

    class Meta:
        table = "commission_entry"
        indexes = (
            ("beneficiary_id", "period"),
            ("order_id",),
            ("statement_id",),
            ("subject_key", "period"),
            ("subject_key", "rule_id", "tier_period"),
        )
