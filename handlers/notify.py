"""Notifications: the outbox writer, channel choice, the inbox and subscribe grants.

`notify(...)` writes one outbox row in the caller's transaction; a second call with the same
`dedupe_key` does nothing (the unique index decides, even across instances) and returns None.
Delivery happens later in `handlers.outbox` (the drain), never inside a business transaction.

Channel choice (when the caller does not force one): the best channel the recipient has —
a WeChat subscribe message when a grant exists for the kind's template id, else a WeCom app
message, else a DingTalk work notification, else an Official Account template message (a
user bound only on the OA), else inbox only. Every notification is in the
recipient's inbox (GET /notifications) whatever happens to the push.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import Field
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from core.clock import now as clock_now
from core.errors import NotFound, ValidationError
from core.runtime import runtime
from core.schema import Out, Page
from handlers.actor import Actor
from handlers.sql import insert_models, json_value, params
from models.base import IdentityChannel, NotificationChannel, NotificationStatus, UserRole, UserStatus
from models.notification import Notification, SubscriptionGrant
from models.user import Identity, User

Channel = NotificationChannel
PUSH_CHANNELS = frozenset(c for c in Channel if c != Channel.INBOX)

# Notification kind -> the [wechat.templates] key whose subscribe template carries it.
KIND_TEMPLATE = {
    "low_stock": "low_stock",
    "overstock": "low_stock",
    "low_stock_digest": "low_stock",
    "contract_expiry": "contract_expiry",
    "order_status": "order_status",
    "commission": "commission",
    "statement": "statement",
    "receivables_overdue": "statement",
}
TITLE_MAX = 200
DEDUPE_MAX = 255


# --- quiet hours --------------------------------------------------------------------------------


def business_tz() -> ZoneInfo:
    return ZoneInfo(runtime().config.scheduler.timezone)


def quiet_until(at: datetime | None = None, spec: str | None = None) -> datetime | None:
    """When quiet hours ("22:00-08:00", business timezone) end, if `at` falls inside them."""
    spec = runtime().config.alerts.quiet_hours if spec is None else spec
    if not spec:
        return None
    at = at or clock_now()
    start_s, end_s = spec.split("-")
    start = time(int(start_s[:2]), int(start_s[3:]))
    end = time(int(end_s[:2]), int(end_s[3:]))
    if start == end:
        return None
    local = at.astimezone(business_tz())
    t = local.timetz().replace(tzinfo=None)
    if start < end:
        inside = start <= t < end
        end_day = local.date()
    else:  # spans midnight
        inside = t >= start or t < end
        end_day = local.date() + timedelta(days=1) if t >= start else local.date()
    if not inside:
        return None
    return datetime.combine(end_day, end, tzinfo=local.tzinfo)


# --- channel choice -----------------------------------------------------------------------------


def template_for(kind: str) -> str:
    key = KIND_TEMPLATE.get(kind, kind)
    return str(getattr(runtime().config.wechat.templates, key, "") or "")


@dataclass
class RecipientBook:
    """Identities and subscribe grants of a set of users, loaded in two queries (jobs notify
    thousands of rows; one query per row would dominate the run)."""

    accounts: dict[tuple[int, str], str] = field(default_factory=dict)  # (user, channel) -> account
    grants: dict[tuple[int, str], int] = field(default_factory=dict)  # (user, template) -> remaining

    @classmethod
    async def load(cls, user_ids: Iterable[int]) -> RecipientBook:
        ids = sorted(set(user_ids))
        book = cls()
        for chunk in _chunks(ids, 500):  # raw: runs inside every order event (handlers.sql)
            p = params(Identity)
            sql = (
                "SELECT user_id, channel, account_id FROM user_identity"
                f" WHERE {p.any_int('user_id', chunk)} ORDER BY id"
            )
            for r in await p.fetch(sql):
                book.accounts.setdefault((r["user_id"], str(r["channel"])), r["account_id"])
            p = params(SubscriptionGrant)
            sql = (
                "SELECT user_id, template_id, remaining FROM subscription_grant"
                f" WHERE {p.any_int('user_id', chunk)} AND remaining > 0"
            )
            for r in await p.fetch(sql):
                book.grants[(r["user_id"], r["template_id"])] = r["remaining"]
        return book

    def account(self, user_id: int, channel: Channel) -> str | None:
        """The platform account a push on `channel` goes to."""
        if channel == Channel.WECHAT_SUBSCRIBE:
            prefs = (IdentityChannel.MINIAPP, IdentityChannel.WECHAT)
        elif channel == Channel.WECHAT_TEMPLATE:
            prefs = (IdentityChannel.WECHAT, IdentityChannel.MINIAPP)
        elif channel == Channel.WECOM:
            prefs = (IdentityChannel.WECOM,)
        elif channel == Channel.DINGTALK_WORK:
            prefs = (IdentityChannel.DINGTALK,)
        else:
            return None
        for p in prefs:
            acc = self.accounts.get((user_id, str(p)))
            if acc:
                return acc
        return None

    def choose(self, user_id: int, kind: str, *, skip_subscribe: bool = False) -> Channel:
        cfg = runtime().config
        tid = template_for(kind)
        if (
            not skip_subscribe
            and tid
            and self.grants.get((user_id, tid), 0) > 0
            and self.account(user_id, Channel.WECHAT_SUBSCRIBE)
        ):
            return Channel.WECHAT_SUBSCRIBE
        if cfg.wecom.corp_id and self.account(user_id, Channel.WECOM):
            return Channel.WECOM
        if cfg.dingtalk.app_key and cfg.dingtalk.agent_id and self.account(user_id, Channel.DINGTALK_WORK):
            return Channel.DINGTALK_WORK
        if cfg.wechat.appid and self.accounts.get((user_id, str(IdentityChannel.WECHAT))):
            # Bound only on the Official Account (reps chatting there): an OA template message.
            return Channel.WECHAT_TEMPLATE
        return Channel.INBOX


async def choose_channel(user_id: int, kind: str) -> Channel:
    return (await RecipientBook.load([user_id])).choose(user_id, kind)


# --- writing ------------------------------------------------------------------------------------


def safe_dedupe_key(key: str) -> str:
    if len(key) <= DEDUPE_MAX:
        return key
    return key[: DEDUPE_MAX - 41] + "#" + hashlib.sha1(key.encode()).hexdigest()


def _initial_status(channel: Channel, urgent: bool, at: datetime) -> dict[str, Any]:
    if channel == Channel.INBOX:
        # Nothing to push: delivered to the inbox at once.
        return {"status": NotificationStatus.SENT, "sent_at": at, "next_attempt_at": at}
    due = None if urgent else quiet_until(at)
    return {"status": NotificationStatus.PENDING, "next_attempt_at": due or at}


def build_row(
    *,
    recipient_id: int | None,
    recipient_ref: str | None,
    kind: str,
    title: str,
    body: str,
    payload: dict[str, Any] | None,
    dedupe_key: str,
    urgent: bool,
    channel: Channel,
    at: datetime,
) -> Notification:
    data = dict(payload or {})
    if channel == Channel.WECHAT_SUBSCRIBE and "template_id" not in data:
        data["template_id"] = template_for(kind)
    return Notification(
        recipient_id=recipient_id,
        recipient_ref=recipient_ref,
        channel=channel,
        kind=kind[:32],
        title=title[:TITLE_MAX],
        body=body,
        payload=data,
        dedupe_key=safe_dedupe_key(dedupe_key),
        urgent=urgent,
        attempts=0,
        **_initial_status(channel, urgent, at),
    )


async def notify(
    *,
    recipient_id: int | None = None,
    recipient_ref: str | None = None,
    kind: str,
    title: str,
    body: str,
    payload: dict[str, Any] | None = None,
    dedupe_key: str,
    urgent: bool = False,
    channel: Channel | str | None = None,
    book: RecipientBook | None = None,
) -> Notification | None:
    """Write one outbox row in the caller's transaction (insert-or-ignore on `dedupe_key`).

    `recipient_id` is a user; `recipient_ref` a non-user target (a DingTalk robot name, which
    implies channel dingtalk_robot). Returns the row, or None when the key already exists.
    """
    if (recipient_id is None) == (recipient_ref is None):
        raise ValueError("notify needs exactly one of recipient_id and recipient_ref")
    if channel is not None:
        ch = Channel(channel)
    elif recipient_ref is not None:
        ch = Channel.DINGTALK_ROBOT
    else:
        assert recipient_id is not None
        ch = (book or await RecipientBook.load([recipient_id])).choose(recipient_id, kind)
    row = build_row(
        recipient_id=recipient_id,
        recipient_ref=recipient_ref,
        kind=kind,
        title=title,
        body=body,
        payload=payload,
        dedupe_key=dedupe_key,
        urgent=urgent,
        channel=ch,
        at=clock_now(),
    )
    # The same write as every batch (insert_rows): insert-or-ignore on the unique key, so a
    # concurrent writer of the same key makes this wait, then skip.
    written = await insert_models([row], returning="id", ignore_conflict_on="dedupe_key")
    if not written:
        return None
    row.id = written[0]["id"]
    row._saved_in_db = True
    return row


async def existing_keys(keys: Iterable[str]) -> set[str]:
    """Which of these dedupe keys are already taken (one query per 500 keys)."""
    found: set[str] = set()
    for chunk in _chunks(sorted({safe_dedupe_key(k) for k in keys}), 500):
        found.update(await Notification.filter(dedupe_key__in=chunk).values_list("dedupe_key", flat=True))
    return found


async def insert_rows(rows: list[Notification]) -> int:
    """Insert-or-ignore in one statement per 500 rows: rows whose dedupe key is taken (or
    repeated in `rows`) are skipped by the database. Returns how many were written."""
    return len(await insert_models(rows, returning="id", ignore_conflict_on="dedupe_key"))


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --- recipients ---------------------------------------------------------------------------------


async def active_managers() -> list[tuple[int, frozenset[str]]]:
    p = params(User)
    sql = (
        f"SELECT id, regions FROM app_user WHERE role = {p(UserRole.MANAGER.value)}"
        f" AND status = {p(UserStatus.ACTIVE.value)}"
    )
    return [(r["id"], frozenset(json_value(r["regions"]) or [])) for r in await p.fetch(sql)]


async def managers_of_region(region: str | None) -> list[int]:
    return sorted(uid for uid, regions in await active_managers() if region and region in regions)


async def distributor_users(distributor_id: int) -> list[int]:
    p = params(User)
    sql = (
        f"SELECT id FROM app_user WHERE distributor_id = {p(distributor_id)}"
        f" AND role = {p(UserRole.DISTRIBUTOR.value)} AND status = {p(UserStatus.ACTIVE.value)} ORDER BY id"
    )
    return [r["id"] for r in await p.fetch(sql)]


# --- inbox --------------------------------------------------------------------------------------


class NotificationOut(Out):
    id: int
    kind: str
    title: str
    body: str
    payload: dict[str, Any]
    channel: str
    status: str
    urgent: bool
    created_at: datetime
    sent_at: datetime | None
    read_at: datetime | None
    delivery_note: str | None = Field(None, description="why a push failed, or a note (e.g. digest)")

    @classmethod
    def of(cls, n: Notification) -> NotificationOut:
        payload = {k: v for k, v in (n.payload or {}).items() if not k.startswith("_")}
        return cls(
            id=n.id,
            kind=n.kind,
            title=n.title,
            body=n.body,
            payload=payload,
            channel=str(n.channel),
            status=str(n.status),
            urgent=n.urgent,
            created_at=n.created_at,
            sent_at=n.sent_at,
            read_at=n.read_at,
            delivery_note=n.last_error,
        )


async def list_notifications(
    actor: Actor, *, page: int = 1, page_size: int = 20, unread: bool = False
) -> Page[NotificationOut]:
    """The caller's inbox, newest first."""
    qs = Notification.filter(recipient_id=actor.user_id)
    if unread:
        qs = qs.filter(read_at__isnull=True)
    total = await qs.count()
    rows = await qs.order_by("-created_at", "-id").offset((page - 1) * page_size).limit(page_size)
    return Page[NotificationOut](
        items=[NotificationOut.of(r) for r in rows], total=total, page=page, page_size=page_size
    )


async def mark_read(actor: Actor, notification_id: int) -> NotificationOut:
    """Mark one of the caller's notifications read; others' are not found."""
    async with in_transaction():
        row = await Notification.get_or_none(id=notification_id, recipient_id=actor.user_id)
        if row is None:
            raise NotFound("未找到该通知")
        if row.read_at is None:
            await Notification.filter(id=row.id, read_at__isnull=True).update(read_at=clock_now())
            await row.refresh_from_db(fields=["read_at"])
    return NotificationOut.of(row)


# --- subscribe grants ---------------------------------------------------------------------------


class TemplateOut(Out):
    kind: str
    template_id: str


class TemplatesOut(Out):
    templates: list[TemplateOut]


class GrantOut(Out):
    template_id: str
    remaining: int


class GrantsOut(Out):
    grants: list[GrantOut]


def list_subscribe_templates() -> TemplatesOut:
    """The subscribe template ids (from [wechat.templates]) the mini-app should ask for."""
    tpl = runtime().config.wechat.templates.model_dump()
    return TemplatesOut(templates=[TemplateOut(kind=k, template_id=v) for k, v in tpl.items() if v])


MAX_GRANTS_PER_TEMPLATE = 1000


async def record_subscriptions(actor: Actor, template_ids: list[str], accepted: list[str]) -> GrantsOut:
    """One accepted subscribe prompt = one message: remaining += 1 per accepted template."""
    known = {v for v in runtime().config.wechat.templates.model_dump().values() if v}
    asked = set(template_ids)
    for tid in accepted:
        if tid not in asked:
            raise ValidationError(f"accepted: {tid} 不在本次申请的模板中", {"field": "accepted"})
    for tid in asked:
        if tid not in known:
            raise ValidationError(f"template_ids: 未知的订阅消息模板 {tid}", {"field": "template_ids"})
    async with in_transaction():
        for tid in sorted(set(accepted)):
            await _add_grant(actor.user_id, tid)
        rows = await SubscriptionGrant.filter(user_id=actor.user_id, template_id__in=sorted(asked)).order_by(
            "template_id"
        )
    return GrantsOut(grants=[GrantOut(template_id=r.template_id, remaining=r.remaining) for r in rows])


async def _add_grant(user_id: int, template_id: str) -> None:
    """remaining += 1 (capped), creating the row on first use; safe against concurrent calls."""
    for _ in range(5):
        bumped = await SubscriptionGrant.filter(
            user_id=user_id, template_id=template_id, remaining__lt=MAX_GRANTS_PER_TEMPLATE
        ).update(remaining=F("remaining") + 1)
        if bumped:
            return
        row = await SubscriptionGrant.get_or_none(user_id=user_id, template_id=template_id)
        if row is not None:
            if row.remaining >= MAX_GRANTS_PER_TEMPLATE:
                return  # at the cap
            continue  # it was just created or consumed concurrently: bump it now
        try:
            async with in_transaction():  # savepoint: a duplicate must not spoil the outer transaction
                await SubscriptionGrant.create(user_id=user_id, template_id=template_id, remaining=1)
            return
        except IntegrityError:
            continue  # a concurrent first grant won: add ours to it


async def take_grant(user_id: int, template_id: str) -> bool:
    """Consume one grant atomically (the drain calls it before a subscribe send)."""
    if not template_id:
        return False
    taken = await SubscriptionGrant.filter(user_id=user_id, template_id=template_id, remaining__gt=0).update(
        remaining=F("remaining") - 1
    )
    return taken == 1
