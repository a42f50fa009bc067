"""BOLA cases for alert rules: a rule of region 华东 belongs to admin and east's manager."""

from __future__ import annotations

from typing import Any

from models.base import NotificationChannel
from models.notification import AlertRule
from tests.bola import STAFF_SEES, Case, Probe


async def _east_rule(world) -> AlertRule:  # type: ignore[no-untyped-def]
    return await AlertRule.create(
        kind="low_stock",
        channel=NotificationChannel.INBOX,
        recipients=[world.east.manager.id],
        params={"region": world.east.region, "cover_days": 5},
    )


async def _list(world, client) -> Probe:  # type: ignore[no-untyped-def]
    rule = await _east_rule(world)
    return Probe("/admin/alert-rules?page_size=100", marker=rule.id)


async def _create(world, client) -> Probe:  # type: ignore[no-untyped-def]
    body = {
        "kind": "low_stock",
        "recipients": [world.east.manager.id],
        "params": {"region": world.east.region},
    }
    return Probe("/admin/alert-rules", body=body)


async def _one(world, client) -> Probe:  # type: ignore[no-untyped-def]
    rule = await _east_rule(world)
    return Probe(f"/admin/alert-rules/{rule.id}", extra={"id": rule.id})


async def _update(world, client) -> Probe:  # type: ignore[no-untyped-def]
    rule = await _east_rule(world)
    return Probe(f"/admin/alert-rules/{rule.id}", body={"active": False}, extra={"id": rule.id})


async def _state(world, probe: Probe) -> Any:  # type: ignore[no-untyped-def]
    rule = await AlertRule.get_or_none(id=probe.extra["id"])
    return None if rule is None else (rule.active, rule.params, rule.recipients)


async def _count(world, probe: Probe) -> Any:  # type: ignore[no-untyped-def]
    return await AlertRule.all().count()


CASES: dict[tuple[str, str], Case] = {
    ("GET", "/admin/alert-rules"): Case(_list, kind="list", sees=STAFF_SEES),
    ("POST", "/admin/alert-rules"): Case(_create, kind="object", sees=STAFF_SEES, snapshot=_count),
    ("GET", r"/admin/alert-rules/{id:\d+}"): Case(_one, sees=STAFF_SEES),
    ("PUT", r"/admin/alert-rules/{id:\d+}"): Case(_update, sees=STAFF_SEES, snapshot=_state),
    ("DELETE", r"/admin/alert-rules/{id:\d+}"): Case(_one, sees=STAFF_SEES, snapshot=_state),
}
