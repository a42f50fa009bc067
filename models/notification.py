"""Outbox notifications (also the in-app inbox), subscribe grants, alert rules, job runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

from models.base import NotificationChannel, NotificationStatus, TimestampMixin, enum_field

if TYPE_CHECKING:
    from models.user import User

CHANNELS = "inbox | wechat_subscribe | wechat_template | wecom | dingtalk_robot | dingtalk_work"


class Notification(TimestampMixin, Model):
    """Outbox row: written in the business transaction, delivered later by outbox_drain."""

    id = fields.BigIntField(primary_key=True)
    recipient: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "qudao.User", related_name="notifications", null=True, on_delete=fields.CASCADE
    )
    recipient_ref = fields.CharField(
        max_length=128, null=True, description="non-user target, e.g. a DingTalk robot name"
    )
    channel = enum_field(NotificationChannel, CHANNELS)
    kind = fields.CharField(max_length=32, description="low_stock, contract_expiry, order_status, ...")
    title = fields.CharField(max_length=200)
    body = fields.TextField()
    payload = fields.JSONField(default=dict, description="template data for the channel")
    dedupe_key = fields.CharField(
        max_length=255, unique=True, description="(job, subject, period, recipient): sent at most once"
    )
    urgent = fields.BooleanField(db_default=False, description="ignores quiet hours")
    status = enum_field(
        NotificationStatus,
        "pending | sending | sent | failed | dead | unknown",
        default=NotificationStatus.PENDING,
    )
    attempts = fields.IntField(db_default=0)
    next_attempt_at = fields.DatetimeField(description="due time for the next delivery attempt")
    claimed_until = fields.DatetimeField(
        null=True, description="a drainer's claim on the row (status sending) expires then"
    )
    last_error = fields.TextField(null=True)
    sent_at = fields.DatetimeField(null=True)
    read_at = fields.DatetimeField(null=True, description="read in the app inbox")

    class Meta:
        table = "notification"
        indexes = (("status", "next_attempt_at"), ("recipient_id", "created_at"))
        constraints = (CheckConstraint(check="attempts >= 0", name="ck_notification_attempts"),)


class NotificationEvent(Model):
    """Outbox row per domain event whose notifications are still to be fanned out: written
    in the business transaction (one row, whatever the number of recipients), turned into
    per-recipient Notification rows by the next drain pass (handlers.fanout)."""

    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=64, description="event name, e.g. order.placed")
    payload = fields.JSONField(default=dict, description="the event's payload (JSON-plain)")
    attempts = fields.IntField(db_default=0, description="failed fan-out attempts")
    last_error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "notification_event"


class SubscriptionGrant(TimestampMixin, Model):
    """Mini-program subscribe-message grants: one accepted prompt = one message."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "qudao.User", related_name="subscription_grants", on_delete=fields.CASCADE
    )
    template_id = fields.CharField(max_length=128)
    remaining = fields.IntField(db_default=0, description="messages that may still be sent")

    class Meta:
        table = "subscription_grant"
        unique_together = (("user", "template_id"),)
        constraints = (CheckConstraint(check="remaining >= 0", name="ck_subscription_grant_remaining"),)


class AlertRule(TimestampMixin, Model):
    """Who gets which scheduled alert through which channel."""

    id = fields.IntField(primary_key=True)
    kind = fields.CharField(max_length=32, description="low_stock, contract_expiry, ...")
    params = fields.JSONField(default=dict, description="thresholds etc. for the kind")
    channel = enum_field(NotificationChannel, CHANNELS)
    recipients = fields.JSONField(default=list, description="user ids and/or robot names")
    active = fields.BooleanField(db_default=True)

    class Meta:
        table = "alert_rule"
        indexes = (("kind",),)


class JobRun(Model):
    """One scheduled or manual job run."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64)
    started_at = fields.DatetimeField()
    finished_at = fields.DatetimeField(null=True)
    result = fields.JSONField(null=True)
    instance = fields.CharField(max_length=128, null=True, description="which server ran it")

    class Meta:
        table = "job_run"
        indexes = (("name", "started_at"),)
