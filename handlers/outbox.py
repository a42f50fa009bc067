"""The outbox drain: deliver pending notifications through the Notifier port, at most once.

Claiming (many drainers on one database are safe):
- PostgreSQL: `SELECT ... FOR UPDATE SKIP LOCKED` inside a transaction, then the rows are
  marked `sending` with `claimed_until` (a lease) before the transaction commits.
- SQLite: each candidate is claimed with a conditional update
  (`filter(id=.., status=pending).update(status=sending, ...)` and a row-count check).
Sends happen OUTSIDE any transaction; each result is recorded with a conditional update that
only succeeds while our claim still stands.

Failure policy:
- `sent` / `failed` (permanent: the reason is kept, the inbox still has it) / `unknown`
  (an ambiguous send on a channel without an idempotency key: never re-sent blindly);
- `retry`: exponential backoff with jitter (or the platform's own wait: daily quota ->
  tomorrow, minute quota -> next minute, robot throttled -> 10 minutes), `dead` after
  `alerts.max_attempts`.
- A WeChat subscribe / template row (no idempotency key) is marked "send started"
  (`last_error` = SEND_STARTED) just before its platform call, and only while our claim
  stands. A row stuck in `sending` past its lease (a killed drainer) is reclaimed: a marked
  non-idempotent row may have reached the platform, so it becomes `unknown` (never re-sent
  blindly); every other row — including non-idempotent rows the dead drainer never started —
  goes back to `pending`: the others' re-send is harmless (DingTalk robot `msgUuid` = outbox
  id, WeCom `enable_duplicate_check`, DingTalk work notifications drop identical text).
- The claim's lease (`alerts.drain_lease_s`) is renewed every third of it while the pass
  runs, so it can be short: a dead drainer's rows are free again within one lease.
- A drainer cancelled mid-batch releases the rows it had not started at once.

DingTalk group robots: at most `alerts.robot_per_min` messages a minute each, counted in the
kv store across instances. A row over the limit waits (`last_error` = ROBOT_WAIT); when the
window opens, all waiting rows of that robot are merged into ONE digest row, which is sent,
and the merged rows are marked sent with a note naming the digest.

Quiet hours (`alerts.quiet_hours`): non-urgent rows are not claimed inside them.

Every pass first fans out the recorded domain events (`handlers.fanout`): the per-recipient
rows of an order placed just now are written, and then claimed, by the same pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from tortoise import connections
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from core.clock import now as clock_now
from core.logging import get_logger
from core.runtime import runtime
from handlers.fanout import fan_out_events
from handlers.notify import RecipientBook, quiet_until, take_grant, template_for
from models.base import NotificationChannel, NotificationStatus
from models.notification import Notification

log = get_logger("qudao.outbox")

Channel = NotificationChannel
Status = NotificationStatus

# Channels whose send has no idempotency key: an ambiguous send becomes `unknown`.
NON_IDEMPOTENT = frozenset({Channel.WECHAT_SUBSCRIBE, Channel.WECHAT_TEMPLATE})
SEND_STARTED = "send started"  # the platform call of a non-idempotent row may have happened
ROBOT_WAIT = "waiting: robot rate limit"
ROBOT_WAIT_DIGEST = "waiting: robot rate limit (digest)"
ROBOT_DIGEST_KIND = "robot_digest"
ROBOT_DIGEST_MAX_LINES = 30


# --- the port -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboundMessage:
    """One push, channel-neutral; the channel adapters turn it into platform calls."""

    id: int  # outbox id: DingTalk msgUuid, the sequence number shown in the text
    channel: str  # wechat_subscribe | wechat_template | wecom | dingtalk_robot | dingtalk_work
    to: str  # openid, WeCom / DingTalk userid, or the robot name
    kind: str
    title: str
    body: str
    payload: dict[str, Any] = field(default_factory=dict)
    template_id: str = ""
    urgent: bool = False
    created_at: datetime | None = None


SendStatus = Literal["sent", "failed", "retry", "unknown"]


@dataclass(frozen=True)
class SendResult:
    status: SendStatus
    error: str | None = None
    retry_after_s: float | None = None  # the platform's own wait (quota, throttle); else backoff
    note: str | None = None  # e.g. WeCom `invaliduser` on a partial success
    robot_throttled: bool = False  # DingTalk 130101: hold every message of this robot

    @classmethod
    def sent(cls, note: str | None = None) -> SendResult:
        return cls("sent", note=note)


class Notifier(Protocol):
    async def send(self, n: OutboundMessage) -> SendResult: ...


# --- policy helpers -----------------------------------------------------------------------------


def backoff_s(attempts: int) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random."""
    cfg = runtime().config.alerts
    cap = min(cfg.retry_max_s, cfg.retry_base_s * 2 ** max(0, attempts - 1))
    return cap / 2 + random.uniform(0, cap / 2)


def is_postgres() -> bool:
    return connections.get("default").capabilities.dialect == "postgres"


@dataclass
class DrainStats:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    dead: int = 0
    unknown: int = 0
    deferred: int = 0
    merged: int = 0
    reclaimed: int = 0
    inbox_only: int = 0
    fanned_out: int = 0  # events turned into per-recipient rows (handlers.fanout)

    def add(self, other: DrainStats) -> None:
        for k, v in vars(other).items():
            setattr(self, k, getattr(self, k) + v)

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


@dataclass
class _Pass:
    """One drain pass: its claim (lease), counters, and the buffer of results to write.

    Results are written in small groups, each in one transaction (one commit for many rows
    instead of one per row). A row whose result is still in the buffer counts as done; the
    buffer is flushed before the pass ends, and first thing if the pass is cancelled."""

    lease: datetime
    stats: DrainStats
    flush_every: int
    done: set[int] = field(default_factory=set)
    in_flight: set[int] = field(default_factory=set)
    buffer: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


# --- the drainer --------------------------------------------------------------------------------


class Drainer:
    def __init__(
        self,
        notifier: Notifier,
        *,
        batch: int | None = None,
        lease_s: float | None = None,
        concurrency: int = 16,
        robot_window_s: float = 60.0,
    ) -> None:
        cfg = runtime().config.alerts
        self.notifier = notifier
        self.batch = batch or cfg.drain_batch
        self.lease_s = lease_s or cfg.drain_lease_s
        self.concurrency = concurrency
        self.robot_window_s = robot_window_s

    async def drain(self, *, max_passes: int = 50, budget_s: float | None = None) -> DrainStats:
        """Drain passes until nothing is due (or the pass/time budget runs out)."""
        total = DrainStats()
        loop = asyncio.get_running_loop()
        deadline = None if budget_s is None else loop.time() + budget_s
        for _ in range(max_passes):
            stats = await self.drain_once()
            total.add(stats)
            if stats.claimed == 0:
                break
            if deadline is not None and loop.time() >= deadline:
                break
        return total

    async def drain_once(self) -> DrainStats:
        stats = DrainStats()
        stats.fanned_out = await fan_out_events()  # the events' rows are due in this very pass
        at = clock_now()
        stats.reclaimed = await self.reclaim(at)
        rows = await self._claim(at)
        stats.claimed = len(rows)
        if not rows:
            return stats
        lease = rows[0].claimed_until
        assert lease is not None
        p = _Pass(lease=lease, stats=stats, flush_every=max(1, min(self.concurrency, 50)))
        renewer = asyncio.create_task(self._renew(p))
        try:
            book = await RecipientBook.load(r.recipient_id for r in rows if r.recipient_id)  # type: ignore[attr-defined]
            waiting = [r for r in rows if r.channel == Channel.DINGTALK_ROBOT and r.last_error == ROBOT_WAIT]
            others = [r for r in rows if r not in waiting]
            for robot in sorted({r.recipient_ref or "" for r in waiting}):
                group = [r for r in waiting if (r.recipient_ref or "") == robot]
                digest = await self._merge_robot(robot, group, lease, stats)
                p.done.update(r.id for r in group)
                if digest is not None:
                    others.append(digest)
            sem = asyncio.Semaphore(self.concurrency)

            async def one(row: Notification) -> None:
                async with sem:
                    await self._process(row, book, p)

            async with asyncio.TaskGroup() as tg:  # a failing row cancels its siblings
                for r in others:
                    tg.create_task(one(r))
            await self._flush(p)
        except BaseException:
            await _stop(renewer)
            # Cancelled (or crashed) mid-batch: write the results we have, hand back what we
            # never started, settle what was in flight as a reclaim would — right away.
            claimed = {r.id: r for r in rows}
            never = [i for i in claimed if i not in p.done and i not in p.in_flight]
            flying = [claimed[i] for i in p.in_flight if i in claimed and i not in p.done]
            await asyncio.shield(self._settle(p, never, flying))
            raise
        await _stop(renewer)
        return stats

    async def _renew(self, p: _Pass) -> None:
        """Extend the pass's claim every third of the lease while it runs. The lease value
        is the claim's token (results are written only where it still stands), so the rows
        and `p.lease` change together, under the pass lock."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            async with p.lock:
                new = clock_now() + timedelta(seconds=self.lease_s)
                try:
                    await Notification.filter(status=Status.SENDING, claimed_until=p.lease).update(
                        claimed_until=new
                    )
                except Exception as exc:  # the database is away: try again next time
                    log.warning("outbox_lease_not_renewed", error=f"{type(exc).__name__}: {exc}")
                    continue
                p.lease = new

    # --- claiming --------------------------------------------------------------------------

    def _due(self, at: datetime) -> Any:
        qs = Notification.filter(status=Status.PENDING, next_attempt_at__lte=at)
        if quiet_until(at) is not None:
            qs = qs.filter(urgent=True)
        return qs.order_by("next_attempt_at", "id").limit(self.batch)

    async def _claim(self, at: datetime) -> list[Notification]:
        lease = at + timedelta(seconds=self.lease_s)
        async with in_transaction():
            if is_postgres():
                rows = list(await self._due(at).select_for_update(skip_locked=True))
                if rows:
                    await Notification.filter(id__in=[r.id for r in rows]).update(
                        status=Status.SENDING, claimed_until=lease
                    )
            else:
                rows = []
                for r in await self._due(at):
                    won = await Notification.filter(id=r.id, status=Status.PENDING).update(
                        status=Status.SENDING, claimed_until=lease
                    )
                    if won == 1:
                        rows.append(r)
        for r in rows:
            r.status = Status.SENDING
            r.claimed_until = lease
        return rows

    async def reclaim(self, at: datetime | None = None) -> int:
        """Rows left in `sending` past their lease by a drainer that died."""
        at = at or clock_now()
        count = 0
        max_attempts = runtime().config.alerts.max_attempts
        stuck = await Notification.filter(status=Status.SENDING, claimed_until__lt=at).values_list(
            "id", "channel", "claimed_until", "attempts", "last_error"
        )
        for nid, channel, until, attempts, last_error in stuck:
            mine = Notification.filter(id=nid, status=Status.SENDING, claimed_until=until)
            if channel in NON_IDEMPOTENT and last_error == SEND_STARTED:
                upd: dict[str, Any] = {
                    "status": Status.UNKNOWN,
                    "last_error": "drainer stopped during the send; not re-sent (no idempotency key)",
                }
            elif attempts + 1 >= max_attempts:
                upd = {"status": Status.DEAD, "last_error": "drainer stopped during the last attempt"}
            else:
                upd = {"status": Status.PENDING, "next_attempt_at": at, "last_error": "reclaimed"}
            count += await mine.update(claimed_until=None, attempts=F("attempts") + 1, **upd)
        if count:
            log.warning("outbox_reclaimed", count=count)
        return count

    async def _settle(self, p: _Pass, never_started: list[int], in_flight: list[Notification]) -> None:
        await self._flush(p)
        if never_started:
            await Notification.filter(
                id__in=never_started, status=Status.SENDING, claimed_until=p.lease
            ).update(status=Status.PENDING, claimed_until=None)
        for row in in_flight:
            mine = Notification.filter(id=row.id, status=Status.SENDING, claimed_until=p.lease)
            if row.channel in NON_IDEMPOTENT:
                await mine.update(
                    status=Status.UNKNOWN,
                    claimed_until=None,
                    attempts=F("attempts") + 1,
                    last_error="drainer stopped during the send; not re-sent (no idempotency key)",
                )
            else:
                await mine.update(status=Status.PENDING, claimed_until=None, attempts=F("attempts") + 1)
        log.warning("outbox_released", never_started=len(never_started), in_flight=len(in_flight))

    # --- writing results -------------------------------------------------------------------

    async def _write(self, p: _Pass, row: Notification, upd: dict[str, Any]) -> None:
        """Queue the row's final update for this pass (written with others in one commit)."""
        p.buffer.append((row.id, upd))
        p.done.add(row.id)
        p.in_flight.discard(row.id)
        if len(p.buffer) >= p.flush_every:
            await self._flush(p)

    async def _flush(self, p: _Pass) -> None:
        async with p.lock:
            if not p.buffer:
                return
            items, p.buffer = p.buffer, []
            # Rows with the same update (the common case: sent, first attempt) go in one statement.
            groups: dict[str, tuple[dict[str, Any], list[int]]] = {}
            for nid, upd in items:
                key = repr(sorted((k, v) for k, v in upd.items() if k != "sent_at"))
                groups.setdefault(key, (upd, []))[1].append(nid)
            lost = 0
            try:
                async with in_transaction():
                    for upd, ids in groups.values():
                        # only while our claim stands: a reclaimed row is someone else's now
                        mine = Notification.filter(id__in=ids, status=Status.SENDING, claimed_until=p.lease)
                        lost += len(ids) - await mine.update(claimed_until=None, **upd)
            except BaseException:
                p.buffer[:0] = items  # not written: keep them for the next flush (it is idempotent)
                raise
            if lost:
                log.warning("outbox_claim_lost", rows=lost)

    def _finish(self, p: _Pass, row: Notification, upd: dict[str, Any], error: str | None) -> Any:
        """A final state after a send attempt (attempts + 1)."""
        return self._write(p, row, {**upd, "last_error": error, "attempts": row.attempts + 1})

    def _defer(
        self, p: _Pass, row: Notification, due: datetime, marker: str, *, attempted: bool = False
    ) -> Any:
        upd: dict[str, Any] = {"status": Status.PENDING, "next_attempt_at": due, "last_error": marker}
        if attempted:
            upd["attempts"] = row.attempts + 1
        return self._write(p, row, upd)

    # --- one row ---------------------------------------------------------------------------

    async def _process(self, row: Notification, book: RecipientBook, p: _Pass) -> None:
        at = clock_now()
        stats = p.stats
        channel = Channel(row.channel)
        if channel == Channel.DINGTALK_ROBOT:
            wait = await self._robot_wait(row.recipient_ref or "")
            if wait is not None:
                marker = ROBOT_WAIT_DIGEST if row.kind == ROBOT_DIGEST_KIND else ROBOT_WAIT
                await self._defer(p, row, at + timedelta(seconds=wait), marker)
                stats.deferred += 1
                return
            to = row.recipient_ref or ""
        else:
            uid: int = row.recipient_id  # type: ignore[attr-defined]
            if channel == Channel.WECHAT_SUBSCRIBE and row.attempts == 0:
                tid = str((row.payload or {}).get("template_id") or template_for(row.kind))
                if not await take_grant(uid, tid):
                    channel = book.choose(uid, row.kind, skip_subscribe=True)
                    if channel == Channel.INBOX:
                        upd = {"status": Status.SENT, "sent_at": at, "channel": Channel.INBOX}
                        await self._write(
                            p, row, {**upd, "last_error": "no subscribe grant left: inbox only"}
                        )
                        stats.inbox_only += 1
                        return
                    await Notification.filter(id=row.id).update(channel=channel)
            to = book.account(uid, channel) or ""
            if not to:
                await self._finish(
                    p, row, {"status": Status.FAILED}, f"recipient has no {channel} account bound"
                )
                stats.failed += 1
                return
        msg = OutboundMessage(
            id=row.id,
            channel=str(channel),
            to=to,
            kind=row.kind,
            title=row.title,
            body=row.body,
            payload=dict(row.payload or {}),
            template_id=str((row.payload or {}).get("template_id") or template_for(row.kind)),
            urgent=row.urgent,
            created_at=row.created_at,
        )
        if channel in NON_IDEMPOTENT and not await self._mark_started(p, row):
            return  # our claim was lost (reclaimed by another drainer): not ours to send
        p.in_flight.add(row.id)
        try:
            result = await self.notifier.send(msg)
        except Exception as exc:  # an adapter bug must not kill the batch
            log.exception("notifier_crashed", id=row.id)
            result = SendResult(
                "unknown" if channel in NON_IDEMPOTENT else "retry", f"adapter error: {exc!r}"
            )
        await self._record(p, row, result)

    async def _mark_started(self, p: _Pass, row: Notification) -> bool:
        """Record that this row's platform call is about to happen (a reclaim after a crash
        then knows it may have reached the platform); False if the claim no longer stands."""
        async with p.lock:
            marked = await Notification.filter(
                id=row.id, status=Status.SENDING, claimed_until=p.lease
            ).update(last_error=SEND_STARTED)
        if not marked:
            p.done.add(row.id)
            log.warning("outbox_claim_lost", rows=1, id=row.id)
        return bool(marked)

    async def _robot_wait(self, robot: str) -> float | None:
        """Seconds to wait before this robot may send again; None = send now (slot taken)."""
        kv = runtime().kv
        blocked = await kv.ttl(f"robot_block:{robot}")
        if blocked:
            return blocked + 1
        rate = await kv.rate_limit(
            f"robot:{robot}", runtime().config.alerts.robot_per_min, self.robot_window_s
        )
        return None if rate.allowed else rate.retry_after + 0.05

    async def _record(self, p: _Pass, row: Notification, result: SendResult) -> None:
        at = clock_now()
        stats = p.stats
        attempts = row.attempts + 1
        if result.robot_throttled and row.recipient_ref:
            await runtime().kv.set(f"robot_block:{row.recipient_ref}", "130101", ttl=600)
        if result.status == "sent":
            await self._finish(p, row, {"status": Status.SENT, "sent_at": at}, result.note)
            stats.sent += 1
        elif result.status == "failed":
            await self._finish(p, row, {"status": Status.FAILED}, result.error)
            stats.failed += 1
            log.info("outbox_failed", id=row.id, error=result.error)
        elif result.status == "unknown":
            await self._finish(p, row, {"status": Status.UNKNOWN}, result.error)
            stats.unknown += 1
            log.warning("outbox_unknown", id=row.id, error=result.error)
        elif attempts >= runtime().config.alerts.max_attempts:
            await self._finish(
                p, row, {"status": Status.DEAD}, f"gave up after {attempts} attempts: {result.error}"
            )
            stats.dead += 1
            log.warning("outbox_dead", id=row.id, error=result.error)
        else:
            wait = result.retry_after_s if result.retry_after_s is not None else backoff_s(attempts)
            due = at + timedelta(seconds=wait)
            if result.robot_throttled:
                marker = ROBOT_WAIT_DIGEST if row.kind == ROBOT_DIGEST_KIND else ROBOT_WAIT
                await self._defer(p, row, due, marker, attempted=True)
            else:
                await self._finish(p, row, {"status": Status.PENDING, "next_attempt_at": due}, result.error)
            stats.retried += 1

    # --- robot digests ---------------------------------------------------------------------

    async def _merge_robot(
        self, robot: str, claimed: list[Notification], lease: datetime, stats: DrainStats
    ) -> Notification | None:
        """Merge every row waiting for this robot's window into one digest row."""
        at = clock_now()
        async with in_transaction():
            qs = Notification.filter(
                channel=Channel.DINGTALK_ROBOT,
                recipient_ref=robot,
                status=Status.PENDING,
                last_error=ROBOT_WAIT,
            ).order_by("id")
            extra: list[Notification] = []
            if is_postgres():
                extra = list(await qs.select_for_update(skip_locked=True))
            else:
                for r in await qs:
                    won = await Notification.filter(
                        id=r.id, status=Status.PENDING, last_error=ROBOT_WAIT
                    ).update(status=Status.SENDING, claimed_until=lease)
                    if won:
                        extra.append(r)
            rows = sorted([*claimed, *extra], key=lambda r: r.id)
            if not rows:
                return None
            lines = [f"· {r.title}" for r in rows[:ROBOT_DIGEST_MAX_LINES]]
            if len(rows) > ROBOT_DIGEST_MAX_LINES:
                lines.append(f"… 以及另外 {len(rows) - ROBOT_DIGEST_MAX_LINES} 条")
            digest = Notification(
                recipient_ref=robot,
                channel=Channel.DINGTALK_ROBOT,
                kind=ROBOT_DIGEST_KIND,
                title=f"提醒汇总（{len(rows)} 条）",
                body="\n".join(lines),
                payload={"merged_ids": [r.id for r in rows]},
                dedupe_key=f"robot_digest:{robot}:{rows[0].id}:{rows[-1].id}:{len(rows)}",
                urgent=any(r.urgent for r in rows),
                status=Status.SENDING,
                claimed_until=lease,
                attempts=0,
                next_attempt_at=at,
            )
            await digest.save()
            await Notification.filter(id__in=[r.id for r in rows]).update(
                status=Status.SENT,
                sent_at=at,
                claimed_until=None,
                last_error=f"merged into robot digest #{digest.id}",
            )
        stats.merged += len(rows)
        return digest


async def _stop(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def drain_outbox(notifier: Notifier | None = None, **kw: Any) -> dict[str, int]:
    """The outbox_drain job: drain what is due now with the runtime's notifier."""
    notifier = notifier or runtime().ports.get("notifier")
    if notifier is None:
        raise RuntimeError("no notifier port installed (runtime().ports['notifier'])")
    budget = kw.pop("budget_s", 20.0)
    return (await Drainer(notifier, **kw).drain(budget_s=budget)).as_dict()
