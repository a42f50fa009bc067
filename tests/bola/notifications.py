"""BOLA cases for the inbox and subscribe grants: a notification is its recipient's alone."""

from __future__ import annotations

import itertools
from typing import Any

from handlers.notify import notify
from models.notification import Notification
from tests.bola import ALL_ROLES, Case, Probe

_seq = itertools.count(1)
# Only the recipient (east's 一级 distributor user) sees or touches it — not even an admin.
OWNER = frozenset({"east.distributor"})


async def _east_note(world) -> Notification:  # type: ignore[no-untyped-def]
    i = next(_seq)
    row = await notify(
        recipient_id=world.east.dist_user.id,
        kind="order_status",
        title=f"BOLA 通知 {i}",
        body="b",
        dedupe_key=f"bola:note:{i}",
        channel="inbox",
    )
    assert row is not None
    return row


async def _inbox(world, client) -> Probe:  # type: ignore[no-untyped-def]
    row = await _east_note(world)
    return Probe("/notifications?page_size=100", marker=row.id)


async def _read(world, client) -> Probe:  # type: ignore[no-untyped-def]
    row = await _east_note(world)
    return Probe(f"/notifications/{row.id}/read", body={}, extra={"id": row.id})


async def _read_at(world, probe: Probe) -> Any:  # type: ignore[no-untyped-def]
    return (await Notification.get(id=probe.extra["id"])).read_at


async def _subscribe(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe("/subscriptions", body={"template_ids": [], "accepted": []})


async def _templates(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe("/subscriptions/templates")


CASES: dict[tuple[str, str], Case] = {
    ("GET", "/notifications"): Case(_inbox, kind="list", sees=OWNER),
    ("POST", r"/notifications/{id:\d+}/read"): Case(_read, sees=OWNER, snapshot=_read_at),
    ("POST", "/subscriptions"): Case(_subscribe, kind="self", sees=ALL_ROLES),
    ("GET", "/subscriptions/templates"): Case(_templates, kind="self", sees=ALL_ROLES),
}
