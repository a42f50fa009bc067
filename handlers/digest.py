"""Turning a job's alerts into outbox rows: dedupe, per-recipient digests, audiences.

A job builds `AlertDraft`s (one per subject and recipient, each with its dedupe key
`job:subject:period:recipient`) and calls `dispatch`. Drafts whose key already exists are
dropped (a rerun, a second instance or a catch-up sends nothing twice). When one recipient
has more than `alerts.digest_threshold` new alerts in the run, they go to that recipient's
inbox as quiet inbox-only rows (their keys are taken, so they never go out again) and ONE
digest notification is pushed instead.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tortoise.transactions import in_transaction

from core.clock import now as clock_now
from core.runtime import runtime
from handlers.notify import (
    Channel,
    RecipientBook,
    active_managers,
    build_row,
    existing_keys,
    insert_rows,
    safe_dedupe_key,
)
from models.base import UserStatus
from models.distributor import Distributor
from models.notification import AlertRule, Notification
from models.user import SalesAssignment, User

DIGEST_MAX_LINES = 30


@dataclass
class AlertDraft:
    kind: str
    title: str
    body: str
    dedupe_key: str
    recipient_id: int | None = None
    recipient_ref: str | None = None  # a DingTalk robot name
    line: str = ""  # one short line for a digest
    payload: dict[str, Any] = field(default_factory=dict)
    urgent: bool = False
    channel: str | None = None  # forced channel (alert rules); None = the recipient's best


@dataclass
class DispatchResult:
    drafts: int = 0
    new: int = 0
    notifications: int = 0
    digests: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


def _recipient(d: AlertDraft) -> str:
    return f"u{d.recipient_id}" if d.recipient_id is not None else f"r{d.recipient_ref}"


async def dispatch(job: str, period: str, drafts: list[AlertDraft], *, label: str = "提醒") -> DispatchResult:
    """Write the drafts that are new as outbox rows (one transaction per recipient)."""
    result = DispatchResult(drafts=len(drafts))
    for d in drafts:
        d.dedupe_key = safe_dedupe_key(d.dedupe_key)
    taken = await existing_keys(d.dedupe_key for d in drafts)
    fresh: dict[str, AlertDraft] = {}
    for d in drafts:
        if d.dedupe_key not in taken:
            fresh.setdefault(d.dedupe_key, d)
    result.new = len(fresh)
    by_recipient: dict[str, list[AlertDraft]] = defaultdict(list)
    for d in fresh.values():
        by_recipient[_recipient(d)].append(d)
    book = await RecipientBook.load(d.recipient_id for d in fresh.values() if d.recipient_id is not None)
    threshold = runtime().config.alerts.digest_threshold
    at = clock_now()
    for group in by_recipient.values():
        rows = _rows_for(job, period, group, book, threshold, label, at)
        async with in_transaction():
            result.notifications += await insert_rows(rows)
        if len(group) > threshold:
            result.digests += 1
    return result


def _channel(d: AlertDraft, book: RecipientBook) -> Channel:
    if d.channel:
        return Channel(d.channel)
    if d.recipient_ref is not None:
        return Channel.DINGTALK_ROBOT
    assert d.recipient_id is not None
    return book.choose(d.recipient_id, d.kind)


def _row(d: AlertDraft, channel: Channel, at: Any) -> Notification:
    return build_row(
        recipient_id=d.recipient_id,
        recipient_ref=d.recipient_ref,
        kind=d.kind,
        title=d.title,
        body=d.body,
        payload=d.payload,
        dedupe_key=d.dedupe_key,
        urgent=d.urgent,
        channel=channel,
        at=at,
    )


def _rows_for(
    job: str, period: str, group: list[AlertDraft], book: RecipientBook, threshold: int, label: str, at: Any
) -> list[Notification]:
    if len(group) <= threshold:
        return [_row(d, _channel(d, book), at) for d in group]
    group = sorted(group, key=lambda d: d.dedupe_key)
    # Members: in the inbox, never pushed one by one.
    members = [_row(d, Channel.INBOX, at) for d in group]
    for m in members:
        m.payload = {**(m.payload or {}), "_digest": True}
    first = group[0]
    lines = [f"· {d.line or d.title}" for d in group[:DIGEST_MAX_LINES]]
    if len(group) > DIGEST_MAX_LINES:
        lines.append(f"… 以及另外 {len(group) - DIGEST_MAX_LINES} 条，详见消息中心")
    digest_key = hashlib.sha1("\n".join(d.dedupe_key for d in group).encode()).hexdigest()[:16]
    digest = AlertDraft(
        kind=first.kind,
        title=f"{len(group)} 条{label}",
        body="\n".join(lines),
        dedupe_key=f"{job}:digest:{period}:{_recipient(first)}:{digest_key}",
        recipient_id=first.recipient_id,
        recipient_ref=first.recipient_ref,
        payload={"digest_of": len(group)},
        urgent=any(d.urgent for d in group),
        channel=first.channel,
    )
    return [*members, _row(digest, _channel(digest, book), at)]


# --- audiences ----------------------------------------------------------------------------------


@dataclass
class Audience:
    """Who hears about a distributor's (or a region's) alerts: the region's managers, the
    distributor's sales rep(s), plus extra users from active alert rules of the kind."""

    kind: str
    managers: list[tuple[int, frozenset[str]]] = field(default_factory=list)
    reps: dict[int, list[int]] = field(default_factory=dict)  # distributor id -> rep ids
    rules: list[AlertRule] = field(default_factory=list)
    robots: list[str] = field(default_factory=list)

    @classmethod
    async def load(cls, kind: str, distributor_ids: set[int] | None = None) -> Audience:
        aud = cls(kind=kind, managers=await active_managers())
        aud.rules = list(await AlertRule.filter(kind=kind, active=True).order_by("id"))
        if distributor_ids:
            await aud.load_reps(distributor_ids)
        configured = [r.name for r in runtime().config.dingtalk.robots]
        robot_rules = [r for r in aud.rules if r.channel == Channel.DINGTALK_ROBOT]
        if robot_rules:
            names = {str(n) for r in robot_rules for n in (r.recipients or [])}
            aud.robots = [n for n in configured if n in names]
        else:
            aud.robots = configured
        return aud

    async def load_reps(self, distributor_ids: set[int]) -> None:
        ids = sorted(distributor_ids)
        active = set(await User.filter(status=UserStatus.ACTIVE, role="sales").values_list("id", flat=True))
        direct: dict[int, int | None] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            direct.update(await Distributor.filter(id__in=chunk).values_list("id", "sales_rep_id"))
            for did, uid in await SalesAssignment.filter(distributor_id__in=chunk).values_list(
                "distributor_id", "user_id"
            ):
                if not direct.get(did) and uid in active:
                    self.reps.setdefault(did, []).append(uid)
        for did, rep in direct.items():
            if rep:
                self.reps[did] = [rep] if rep in active else []

    def param(self, name: str, default: Any, region: str | None = None) -> Any:
        """A threshold from the first active rule of this kind that sets it (region rules first)."""
        for rule in sorted(self.rules, key=lambda r: (r.params or {}).get("region") is None):
            params = rule.params or {}
            if params.get("region") not in (None, region):
                continue
            if name in params:
                return params[name]
        return default

    def users(self, region: str | None, distributor_id: int | None = None) -> list[tuple[int, str | None]]:
        """(user id, forced channel or None) for alerts about this region / distributor."""
        out: dict[int, str | None] = {}
        for uid, regions in self.managers:
            if region and region in regions:
                out[uid] = None
        if distributor_id is not None:
            for uid in self.reps.get(distributor_id, []):
                out.setdefault(uid, None)
        for rule in self.rules:
            if rule.channel == Channel.DINGTALK_ROBOT:
                continue
            if (rule.params or {}).get("region") not in (None, region):
                continue
            for rid in rule.recipients or []:
                if isinstance(rid, int):
                    out[rid] = str(rule.channel)
        return sorted(out.items())
