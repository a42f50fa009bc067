"""The caller's inbox, beyond `handlers.notify`: mark everything read at once."""

from __future__ import annotations

from core.clock import now
from handlers.actor import Actor
from models.notification import Notification


async def mark_all_read(actor: Actor) -> int:
    """Mark every unread notification of the caller read; returns how many changed."""
    return await Notification.filter(recipient_id=actor.user_id, read_at__isnull=True).update(read_at=now())
