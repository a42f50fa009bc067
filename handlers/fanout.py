"""Notification fan-out, off the business transaction.

A use-case's transaction writes one `notification_event` row per event (`handlers.events`,
deferred subscribers); the outbox drain calls `fan_out_events()` first in every pass, which
runs the deferred subscribers (`handlers.notify_events`: recipients resolved, one outbox row
per recipient, insert-or-ignore on the dedupe key) and deletes the event — both in one
transaction per event, so an event is fanned out once even with many drainers (the row is
locked with SKIP LOCKED on PostgreSQL; SQLite has one writer) and never lost: a failing
event stays, with the error and an attempt count, and is retried by later passes until
`MAX_ATTEMPTS` (then it is left for an operator, logged at ERROR)."""

from __future__ import annotations

from tortoise.expressions import F

from core.logging import get_logger
from handlers.events import Event, run_deferred
from handlers.sql import json_value, params, transaction
from models.notification import NotificationEvent

log = get_logger("qudao.fanout")

MAX_ATTEMPTS = 5
_LOCK_SQL = "SELECT id, name, payload FROM notification_event WHERE id = {id}{lock}"


async def fan_out_events(batch: int = 500) -> int:
    """Fan out the pending events, oldest first; the number fanned out."""
    done = 0
    while True:
        ids = await (
            NotificationEvent.filter(attempts__lt=MAX_ATTEMPTS)
            .order_by("id")
            .limit(batch)
            .values_list("id", flat=True)
        )
        for event_id in ids:
            done += await _fan_out_one(int(event_id))  # type: ignore[arg-type]
        if len(ids) < batch:
            return done


async def _fan_out_one(event_id: int) -> int:
    try:
        async with transaction():
            p = params(NotificationEvent)
            lock = " FOR UPDATE SKIP LOCKED" if p.pg else ""
            rows = await p.fetch(_LOCK_SQL.format(id=p(event_id), lock=lock))
            if not rows:
                return 0  # another drainer has it (or had it)
            await run_deferred(Event(rows[0]["name"], dict(json_value(rows[0]["payload"]) or {})))
            await NotificationEvent.filter(id=event_id).delete()
        return 1
    except Exception as exc:  # one bad event must not stop the others
        attempts = await NotificationEvent.filter(id=event_id).values_list("attempts", flat=True)
        level = log.error if attempts and int(attempts[0]) + 1 >= MAX_ATTEMPTS else log.warning
        level("notification_fan_out_failed", event_id=event_id, error=repr(exc))
        await NotificationEvent.filter(id=event_id).update(
            attempts=F("attempts") + 1, last_error=repr(exc)[:1000]
        )
        return 0
