"""Shared model pieces: the timestamp mixin and every status/kind enum (stored with CharEnumField).

Enums are ``StrEnum`` (``str, Enum`` whose ``str()`` is the value), so a member compares equal
to its value and serialises as it.
CharEnumFields that use them pass an explicit ``max_length`` and ``description`` so adding a
member later changes no column (the automatic ones would, and on SQLite any column change
rebuilds the table).
"""

from __future__ import annotations

from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any, TypeVar

from tortoise import fields

E = TypeVar("E", bound=Enum)

# Column sizes shared by all modules.
MONEY = {"max_digits": 14, "decimal_places": 2}
RATE = {"max_digits": 7, "decimal_places": 4}
ENUM_LEN = 24


class TimestampMixin:
    """created_at / updated_at, aware datetimes (the config sets use_tz)."""

    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)


def money_field(**kwargs: Any) -> fields.Field[Decimal]:
    """DecimalField for money: 14 digits, 2 places."""
    return fields.DecimalField(**MONEY, **kwargs)


def rate_field(**kwargs: Any) -> fields.Field[Decimal]:
    """DecimalField for rates: 7 digits, 4 places (0.0250 = 2.5%)."""
    return fields.DecimalField(**RATE, **kwargs)


def enum_field(enum_type: type[E], description: str, **kwargs: Any) -> fields.Field[E]:
    """CharEnumField with a fixed width, so a new member needs no migration."""
    return fields.CharEnumField(enum_type, description=description, max_length=ENUM_LEN, **kwargs)


# --- user -------------------------------------------------------------------------------------


class UserRole(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    SALES = "sales"
    DISTRIBUTOR = "distributor"


class UserStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class IdentityChannel(StrEnum):
    WECHAT = "wechat"
    WECOM = "wecom"
    DINGTALK = "dingtalk"
    MINIAPP = "miniapp"


# --- distributor ------------------------------------------------------------------------------


class PaymentTerms(StrEnum):
    PREPAY = "prepay"
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"


class DistributorStatus(StrEnum):
    APPLYING = "applying"
    ACTIVE = "active"
    SUSPENDED = "suspended"


# --- product ----------------------------------------------------------------------------------


class ProductStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


class PromotionKind(StrEnum):
    DISCOUNT = "discount"
    BUY_N_GET_M = "buy_n_get_m"


# --- stock ------------------------------------------------------------------------------------


class MovementReason(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    STOCKTAKE = "stocktake"
    RESERVE = "reserve"
    RELEASE = "release"
    SHIP = "ship"
    RETURN = "return"
    ADJUST = "adjust"


# --- order ------------------------------------------------------------------------------------


class OrderStatus(StrEnum):
    PENDING_REVIEW = "pending_review"
    APPROVED = "approved"
    SHIPPED = "shipped"
    RECEIVED = "received"
    COMPLETED = "completed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class ReturnStatus(StrEnum):
    """An after-sales return request: requested -> approved -> received, or rejected."""

    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    RECEIVED = "received"


class IdempotencyState(StrEnum):
    IN_PROGRESS = "in_progress"
    DONE = "done"


# --- finance ----------------------------------------------------------------------------------


class ReceivableKind(StrEnum):
    SHIPMENT = "shipment"
    PAYMENT = "payment"
    RETURN = "return"
    ADJUSTMENT = "adjustment"


# --- lead / contract --------------------------------------------------------------------------


class LeadStatus(StrEnum):
    PROTECTED = "protected"
    PENDING_REVIEW = "pending_review"
    REJECTED = "rejected"
    EXPIRED = "expired"
    WON = "won"


class ContractStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    EXPIRED = "expired"
    TERMINATED = "terminated"


# --- commission -------------------------------------------------------------------------------


class Beneficiary(StrEnum):
    SALES = "sales"
    DISTRIBUTOR = "distributor"


class CommissionMode(StrEnum):
    FLAT = "flat"
    TIERED_MARGINAL = "tiered_marginal"
    TIERED_WHOLE = "tiered_whole"


class CommissionPeriod(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"


class CommissionEntryKind(StrEnum):
    ACCRUAL = "accrual"
    REVERSAL = "reversal"
    ADJUSTMENT = "adjustment"


class StatementKind(StrEnum):
    COMMISSION = "commission"
    RECEIVABLES = "receivables"


class StatementStatus(StrEnum):
    OPEN = "open"
    CONFIRMED = "confirmed"
    DISPUTED = "disputed"


# --- notification -----------------------------------------------------------------------------


class NotificationChannel(StrEnum):
    INBOX = "inbox"
    WECHAT_SUBSCRIBE = "wechat_subscribe"
    WECHAT_TEMPLATE = "wechat_template"
    WECOM = "wecom"
    DINGTALK_ROBOT = "dingtalk_robot"
    DINGTALK_WORK = "dingtalk_work"


class NotificationStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    DEAD = "dead"
    UNKNOWN = "unknown"
