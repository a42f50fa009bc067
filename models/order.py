"""Orders with frozen lines, shipments, after-sales returns, numbering and idempotency keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

from models.base import (
    IdempotencyState,
    OrderStatus,
    ReturnStatus,
    TimestampMixin,
    enum_field,
    money_field,
)

if TYPE_CHECKING:
    from models.distributor import Distributor
    from models.product import Product
    from models.stock import Warehouse
    from models.user import User


class Order(TimestampMixin, Model):
    id = fields.IntField(primary_key=True)
    number = fields.CharField(max_length=20, unique=True, description="SOyyyymmddNNNN")
    distributor: fields.ForeignKeyRelation[Distributor] = fields.ForeignKeyField(
        "qudao.Distributor", related_name="orders", on_delete=fields.RESTRICT
    )
    placed_by: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "qudao.User", related_name="placed_orders", on_delete=fields.RESTRICT
    )
    status = enum_field(
        OrderStatus,
        "pending_review -> approved -> shipped -> received -> completed, or rejected | cancelled",
        default=OrderStatus.PENDING_REVIEW,
    )
    total_amount = money_field(description="sum of line amounts, after discounts")
    discount_amount = money_field(db_default=0, description="sum of line discounts")
    shipped_amount = money_field(
        db_default=0, description="value of the units shipped so far (already in receivables)"
    )
    ship_to = fields.JSONField(null=True, description="{contact, phone, address}")
    note = fields.TextField(null=True)
    reject_reason = fields.TextField(null=True)
    cancel_reason = fields.TextField(null=True)
    approved_at = fields.DatetimeField(null=True)
    shipped_at = fields.DatetimeField(null=True, description="when fully shipped")
    received_at = fields.DatetimeField(null=True)
    completed_at = fields.DatetimeField(null=True)
    cancelled_at = fields.DatetimeField(null=True)

    lines: fields.ReverseRelation[OrderLine]
    shipments: fields.ReverseRelation[Shipment]
    returns: fields.ReverseRelation[OrderReturn]
    return_requests: fields.ReverseRelation[ReturnRequest]

    class Meta:
        table = "sales_order"  # "order" is reserved in SQL
        indexes = (("distributor_id", "status"), ("status", "received_at"), ("created_at",))
        constraints = (
            CheckConstraint(
                check="CAST(total_amount AS NUMERIC) >= 0 AND CAST(discount_amount AS NUMERIC) >= 0",
                name="ck_sales_order_amounts",
            ),
        )

    def __str__(self) -> str:
        return f"Order({self.number})"


class OrderLine(Model):
    """A line frozen at admission: sku, name and prices are copies, not live references."""

    id = fields.IntField(primary_key=True)
    order: fields.ForeignKeyRelation[Order] = fields.ForeignKeyField(
        "qudao.Order", related_name="lines", on_delete=fields.CASCADE
    )
    product: fields.ForeignKeyRelation[Product] = fields.ForeignKeyField(
        "qudao.Product", related_name="order_lines", on_delete=fields.RESTRICT
    )
    sku = fields.CharField(max_length=64)
    name = fields.CharField(max_length=200)
    warehouse: fields.ForeignKeyRelation[Warehouse] = fields.ForeignKeyField(
        "qudao.Warehouse",
        related_name="order_lines",
        on_delete=fields.RESTRICT,
        description="where the units are reserved and shipped from",
    )
    qty = fields.IntField(description="units ordered (paid)")
    unit_price = money_field(description="price list price at admission")
    discount = money_field(db_default=0, description="line discount from promotions")
    amount = money_field(description="qty * unit_price - discount")
    shipped_qty = fields.IntField(db_default=0, description="units shipped so far (paid + free)")
    returned_qty = fields.IntField(db_default=0, description="units returned after sale")
    free_qty = fields.IntField(db_default=0, description="free units from buy-N-get-M")

    class Meta:
        table = "order_line"
        indexes = (("order_id",), ("product_id",))
        constraints = (
            CheckConstraint(check="qty > 0", name="ck_order_line_qty"),
            CheckConstraint(
                check="shipped_qty >= 0 AND returned_qty >= 0 AND free_qty >= 0",
                name="ck_order_line_counts",
            ),
            CheckConstraint(check="shipped_qty <= qty + free_qty", name="ck_order_line_shipped"),
            CheckConstraint(check="returned_qty <= shipped_qty", name="ck_order_line_returned"),
        )


class OrderCounter(Model):
    """Per-day sequence for order numbers: bump `last_number` atomically, format SO{day}{n:04d}.

    (Not `last`: tortoise reserves that name for `Model.last()`.)
    """

    day = fields.CharField(max_length=8, primary_key=True, description="yyyymmdd (business tz)")
    last_number = fields.IntField(db_default=0, description="last number issued that day")

    class Meta:
        table = "order_counter"


class Shipment(Model):
    id = fields.IntField(primary_key=True)
    order: fields.ForeignKeyRelation[Order] = fields.ForeignKeyField(
        "qudao.Order", related_name="shipments", on_delete=fields.RESTRICT
    )
    carrier = fields.CharField(max_length=64, null=True)
    tracking_no = fields.CharField(max_length=64, null=True)
    shipped_at = fields.DatetimeField()
    received_at = fields.DatetimeField(
        null=True, description="when the distributor confirmed this shipment arrived (签收)"
    )
    created_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "qudao.User", related_name="created_shipments", null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    lines: fields.ReverseRelation[ShipmentLine]

    class Meta:
        table = "shipment"
        indexes = (("order_id",),)


class ShipmentLine(Model):
    id = fields.IntField(primary_key=True)
    shipment: fields.ForeignKeyRelation[Shipment] = fields.ForeignKeyField(
        "qudao.Shipment", related_name="lines", on_delete=fields.CASCADE
    )
    order_line: fields.ForeignKeyRelation[OrderLine] = fields.ForeignKeyField(
        "qudao.OrderLine", related_name="shipment_lines", on_delete=fields.RESTRICT
    )
    qty = fields.IntField()

    class Meta:
        table = "shipment_line"
        indexes = (("shipment_id",), ("order_line_id",))
        constraints = (CheckConstraint(check="qty > 0", name="ck_shipment_line_qty"),)


class OrderReturn(Model):
    """Goods of a return request received back into stock: the credit (stock movements,
    receivable credit note, commission reversal) hangs off this row."""

    id = fields.IntField(primary_key=True)
    order: fields.ForeignKeyRelation[Order] = fields.ForeignKeyField(
        "qudao.Order", related_name="returns", on_delete=fields.RESTRICT
    )
    reason = fields.TextField()
    amount = money_field(description="money credited back (sum of line amounts)")
    created_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "qudao.User", related_name="created_returns", null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    lines: fields.ReverseRelation[OrderReturnLine]

    class Meta:
        table = "order_return"
        indexes = (("order_id",),)
        constraints = (CheckConstraint(check="CAST(amount AS NUMERIC) >= 0", name="ck_order_return_amount"),)


class OrderReturnLine(Model):
    id = fields.IntField(primary_key=True)
    order_return: fields.ForeignKeyRelation[OrderReturn] = fields.ForeignKeyField(
        "qudao.OrderReturn", related_name="lines", on_delete=fields.CASCADE
    )
    order_line: fields.ForeignKeyRelation[OrderLine] = fields.ForeignKeyField(
        "qudao.OrderLine", related_name="return_lines", on_delete=fields.RESTRICT
    )
    qty = fields.IntField()
    amount = money_field()

    class Meta:
        table = "order_return_line"
        indexes = (("order_return_id",), ("order_line_id",))
        constraints = (
            CheckConstraint(check="qty > 0", name="ck_order_return_line_qty"),
            CheckConstraint(check="CAST(amount AS NUMERIC) >= 0", name="ck_order_return_line_amount"),
        )


class ReturnRequest(TimestampMixin, Model):
    """An after-sales return request (申请退货): reviewed by staff, then received into stock.
    Units asked for by open (requested/approved) requests count against what may still be
    returned; only at receipt does an OrderReturn (the credit) get written."""

    id = fields.IntField(primary_key=True)
    order: fields.ForeignKeyRelation[Order] = fields.ForeignKeyField(
        "qudao.Order", related_name="return_requests", on_delete=fields.RESTRICT
    )
    distributor: fields.ForeignKeyRelation[Distributor] = fields.ForeignKeyField(
        "qudao.Distributor",
        related_name="return_requests",
        on_delete=fields.RESTRICT,
        description="the order's distributor (copied, for scope filters)",
    )
    status = enum_field(
        ReturnStatus, "requested -> approved -> received, or rejected", default=ReturnStatus.REQUESTED
    )
    reason = fields.TextField()
    requested_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "qudao.User", related_name="requested_returns", null=True, on_delete=fields.SET_NULL
    )
    reviewed_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "qudao.User", related_name="reviewed_returns", null=True, on_delete=fields.SET_NULL
    )
    reviewed_at = fields.DatetimeField(null=True)
    review_note = fields.TextField(null=True, description="the approval note or the rejection reason")
    received_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "qudao.User", related_name="received_returns", null=True, on_delete=fields.SET_NULL
    )
    received_at = fields.DatetimeField(null=True)
    amount = money_field(null=True, description="money credited at receipt (null before)")
    order_return: fields.ForeignKeyNullableRelation[OrderReturn] = fields.ForeignKeyField(
        "qudao.OrderReturn",
        related_name="requests",
        null=True,
        on_delete=fields.RESTRICT,
        description="the credit written at receipt",
    )

    lines: fields.ReverseRelation[ReturnRequestLine]

    class Meta:
        table = "return_request"
        indexes = (("order_id",), ("distributor_id", "status"), ("status", "created_at"))


class ReturnRequestLine(Model):
    id = fields.IntField(primary_key=True)
    request: fields.ForeignKeyRelation[ReturnRequest] = fields.ForeignKeyField(
        "qudao.ReturnRequest", related_name="lines", on_delete=fields.CASCADE
    )
    order_line: fields.ForeignKeyRelation[OrderLine] = fields.ForeignKeyField(
        "qudao.OrderLine", related_name="return_request_lines", on_delete=fields.RESTRICT
    )
    qty = fields.IntField()

    class Meta:
        table = "return_request_line"
        indexes = (("request_id",), ("order_line_id",))
        constraints = (CheckConstraint(check="qty > 0", name="ck_return_request_line_qty"),)


class IdempotencyRecord(Model):
    """One row per (user, Idempotency-Key): claimed in_progress, then done with the response."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "qudao.User", related_name="idempotency_records", on_delete=fields.CASCADE
    )
    key = fields.CharField(max_length=255, description="the Idempotency-Key header")
    request_hash = fields.CharField(max_length=64, description="sha256 hex of the canonical body")
    state = enum_field(IdempotencyState, "in_progress | done", default=IdempotencyState.IN_PROGRESS)
    status_code = fields.IntField(null=True, description="HTTP status of the stored response")
    response = fields.JSONField(null=True, description="response body to replay")
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField(description="kept at least 24 h")

    class Meta:
        table = "idempotency_record"
        unique_together = (("user", "key"),)
        indexes = (("expires_at",),)
