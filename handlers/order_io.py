"""Order use-cases' inputs and outputs (shared by admission and the lifecycle).

Input rules: 1-100 lines; ``qty`` a JSON integer 1..1,000,000; **duplicate SKUs are merged**
(`merge_lines`: their quantities added, the merged line must stay within the bound). Errors
are 400s naming the field (``lines.<i>.qty``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, StrictInt
from pydantic import ValidationError as PydanticError

from core.errors import ValidationError
from core.pydantic_zh import zh_fields
from core.schema import In, Money, Out, StrictId
from models.base import OrderStatus
from models.order import Order, OrderLine

MAX_QTY = 1_000_000
MAX_LINES = 100
Qty = Annotated[StrictInt, Field(ge=1, le=MAX_QTY)]

# how order statuses read in messages people see (errors, chat)
ORDER_STATUS_ZH = {
    OrderStatus.PENDING_REVIEW: "待审核",
    OrderStatus.APPROVED: "已审核",
    OrderStatus.SHIPPED: "已发货",
    OrderStatus.RECEIVED: "已收货",
    OrderStatus.COMPLETED: "已完成",
    OrderStatus.REJECTED: "已驳回",
    OrderStatus.CANCELLED: "已取消",
}


class LineIn(In):
    sku: Annotated[str, Field(min_length=1, max_length=64)]
    qty: Qty


class ShipToIn(In):
    contact: Annotated[str, Field(min_length=1, max_length=64)]
    phone: Annotated[str, Field(min_length=1, max_length=32)]
    address: Annotated[str, Field(min_length=1, max_length=255)]


class OrderCreate(In):
    distributor_id: StrictId | None = None
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=MAX_LINES)]
    ship_to: ShipToIn | None = None
    note: Annotated[str, Field(max_length=500)] | None = None


class RejectIn(In):
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class CancelIn(In):
    reason: Annotated[str, Field(max_length=500)] | None = None


class ShipmentIn(In):
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=MAX_LINES)]
    carrier: Annotated[str, Field(max_length=64)] | None = None
    tracking_no: Annotated[str, Field(max_length=64)] | None = None


class ReturnIn(In):
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=MAX_LINES)]
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class OrderLineOut(Out):
    id: int
    sku: str
    name: str
    warehouse_id: int
    qty: int
    free_qty: int
    unit_price: Money
    discount: Money
    amount: Money
    shipped_qty: int
    returned_qty: int


class QtyOut(Out):
    sku: str
    qty: int


class ShipmentOut(Out):
    id: int
    carrier: str | None
    tracking_no: str | None
    shipped_at: datetime
    received_at: datetime | None = None  # 签收: confirmed per shipment, or all at /receive
    amount: Money
    lines: list[QtyOut]


class ReturnOut(Out):
    id: int
    reason: str
    amount: Money
    created_at: datetime
    lines: list[QtyOut]


class OrderOut(Out):
    id: int
    number: str
    distributor_id: int
    distributor_name: str
    placed_by_id: int
    status: str
    partially_shipped: bool
    lines: list[OrderLineOut]
    total_amount: Money
    discount_amount: Money
    shipped_amount: Money
    ship_to: dict[str, Any] | None
    note: str | None
    reject_reason: str | None
    cancel_reason: str | None
    created_at: datetime
    approved_at: datetime | None
    shipped_at: datetime | None
    received_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    shipments: list[ShipmentOut] | None = None  # filled by get_order and shipment/return answers
    returns: list[ReturnOut] | None = None


def parse_in(model: type[BaseModel], data: Any) -> Any:
    """A model from a plain dict, with errors as a 400 naming each field."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except PydanticError as exc:
        fields = zh_fields(exc)
        raise ValidationError(f"{fields[0]['field']}: {fields[0]['message']}", {"fields": fields}) from None


def status_zh(status: str) -> str:
    """An order status as people read it ("pending_review" -> "待审核")."""
    return ORDER_STATUS_ZH.get(status, status)  # type: ignore[call-overload]


def field_error(field: str, message: str) -> ValidationError:
    return ValidationError(f"{field}: {message}", {"fields": [{"field": field, "message": message}]})


@dataclass
class Wanted:
    """A requested line after merging duplicate SKUs."""

    sku: str
    qty: int
    index: int  # first position in the request, for error field names


def merge_lines(lines: list[LineIn]) -> list[Wanted]:
    merged: OrderedDict[str, Wanted] = OrderedDict()
    for i, line in enumerate(lines):
        sku = line.sku.strip()
        if sku in merged:
            merged[sku].qty += line.qty
            if merged[sku].qty > MAX_QTY:
                raise field_error(f"lines.{i}.qty", f"商品 {sku} 合计数量超过 {MAX_QTY}")
        else:
            merged[sku] = Wanted(sku, line.qty, i)
    return list(merged.values())


def order_out(
    order: Order,
    lines: list[OrderLine],
    shipments: list[ShipmentOut] | None = None,
    returns: list[ReturnOut] | None = None,
    *,
    distributor_name: str,
) -> OrderOut:
    lines = sorted(lines, key=lambda x: x.id)
    shipped_any = any(x.shipped_qty for x in lines)
    return OrderOut(
        id=order.id,
        number=order.number,
        distributor_id=order.distributor_id,  # type: ignore[attr-defined]
        distributor_name=distributor_name,
        placed_by_id=order.placed_by_id,  # type: ignore[attr-defined]
        status=str(order.status),
        partially_shipped=order.status == OrderStatus.APPROVED and shipped_any,
        lines=[
            OrderLineOut(
                id=x.id,
                sku=x.sku,
                name=x.name,
                warehouse_id=x.warehouse_id,  # type: ignore[attr-defined]
                qty=x.qty,
                free_qty=x.free_qty,
                unit_price=x.unit_price,
                discount=x.discount,
                amount=x.amount,
                shipped_qty=x.shipped_qty,
                returned_qty=x.returned_qty,
            )
            for x in lines
        ],
        total_amount=order.total_amount,
        discount_amount=order.discount_amount,
        shipped_amount=order.shipped_amount,
        ship_to=order.ship_to,
        note=order.note,
        reject_reason=order.reject_reason,
        cancel_reason=order.cancel_reason,
        created_at=order.created_at,
        approved_at=order.approved_at,
        shipped_at=order.shipped_at,
        received_at=order.received_at,
        completed_at=order.completed_at,
        cancelled_at=order.cancelled_at,
        shipments=shipments,
        returns=returns,
    )
