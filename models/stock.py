"""Warehouses, stock per (warehouse, product) and the stock movement ledger."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

from models.base import MovementReason, TimestampMixin, enum_field

if TYPE_CHECKING:
    from models.distributor import Distributor
    from models.product import Product
    from models.user import User


class Warehouse(TimestampMixin, Model):
    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    name = fields.CharField(max_length=100)
    region = fields.CharField(max_length=64)
    distributor: fields.ForeignKeyNullableRelation[Distributor] = fields.ForeignKeyField(
        "qudao.Distributor",
        related_name="warehouses",
        null=True,
        on_delete=fields.RESTRICT,
        description="owner if distributor-owned — NULL = company warehouse",
    )
    active = fields.BooleanField(db_default=True)

    class Meta:
        table = "warehouse"
        indexes = (("region",), ("distributor_id",))


class Stock(Model):
    """On-hand and reserved units of one product in one warehouse — available = on_hand - reserved.

    Change it only with conditional updates (``filter(...).update(F(...))``) and write a
    StockMovement for every change. The CHECKs make overselling impossible even if a handler
    gets it wrong.
    """

    id = fields.IntField(primary_key=True)
    warehouse: fields.ForeignKeyRelation[Warehouse] = fields.ForeignKeyField(
        "qudao.Warehouse", related_name="stocks", on_delete=fields.RESTRICT
    )
    product: fields.ForeignKeyRelation[Product] = fields.ForeignKeyField(
        "qudao.Product", related_name="stocks", on_delete=fields.RESTRICT
    )
    on_hand = fields.IntField(db_default=0, description="units physically in the warehouse")
    reserved = fields.IntField(db_default=0, description="units promised to admitted orders")
    min_qty = fields.IntField(null=True, description="low-stock alert below this available qty")
    max_qty = fields.IntField(null=True, description="overstock alert above this on_hand qty")
    reorder_point = fields.IntField(null=True, description="reorder alert at/below this")
    cover_days = fields.IntField(
        null=True, description="alert when days of cover (last 28 days' sales) fall below this"
    )
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "stock"
        unique_together = (("warehouse", "product"),)
        indexes = (("product_id",),)
        constraints = (
            CheckConstraint(check="on_hand >= 0", name="ck_stock_on_hand"),
            CheckConstraint(check="reserved >= 0", name="ck_stock_reserved"),
            CheckConstraint(check="reserved <= on_hand", name="ck_stock_reserved_le_on_hand"),
            CheckConstraint(
                check="(min_qty IS NULL OR min_qty >= 0) AND (max_qty IS NULL OR max_qty >= 0)"
                " AND (reorder_point IS NULL OR reorder_point >= 0)"
                " AND (cover_days IS NULL OR cover_days >= 0)",
                name="ck_stock_thresholds",
            ),
        )


class StockMovement(Model):
    """Ledger row: one per stock change, with the balances after it."""

    id = fields.BigIntField(primary_key=True)
    warehouse: fields.ForeignKeyRelation[Warehouse] = fields.ForeignKeyField(
        "qudao.Warehouse", related_name="movements", on_delete=fields.RESTRICT
    )
    product: fields.ForeignKeyRelation[Product] = fields.ForeignKeyField(
        "qudao.Product", related_name="stock_movements", on_delete=fields.RESTRICT
    )
    reason = enum_field(
        MovementReason, "inbound | outbound | stocktake | reserve | release | ship | return | adjust"
    )
    ref_type = fields.CharField(max_length=32, null=True, description="what caused it, e.g. order")
    ref_id = fields.CharField(max_length=64, null=True, description="id of ref_type's row")
    delta_on_hand = fields.IntField()
    delta_reserved = fields.IntField()
    on_hand_after = fields.IntField()
    reserved_after = fields.IntField()
    actor: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "qudao.User", related_name="stock_movements", null=True, on_delete=fields.SET_NULL
    )
    note = fields.CharField(max_length=255, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "stock_movement"
        indexes = (("warehouse_id", "product_id", "id"), ("ref_type", "ref_id"), ("created_at",))
