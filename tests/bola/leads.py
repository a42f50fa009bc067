"""BOLA cases for leads: east's rep owns the lead (region 华东); reviews are staff-only."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from core.clock import now
from handlers.leads import normalize_name
from models.base import LeadStatus
from models.lead import Lead
from tests.bola import STAFF_SEES, Case, Probe

# The rep who owns it, its region's manager and admins; not distributor users (another owner).
REP_SEES = frozenset({"admin", "east.manager", "east.sales"})
_seq = itertools.count(1)


async def _east_lead(world, status: LeadStatus = LeadStatus.PROTECTED) -> Lead:  # type: ignore[no-untyped-def]
    i = next(_seq)
    name = f"华东测试客户{i}有限公司"
    return await Lead.create(
        customer_name=name,
        name_normalized=normalize_name(name),
        phone=f"1370000{i:04d}",
        phone_digits=f"1370000{i:04d}",
        region=world.east.region,
        owner=world.east.rep,
        status=status,
        protected_until=now() + timedelta(days=90) if status == LeadStatus.PROTECTED else None,
    )


async def _register(world, client) -> Probe:  # type: ignore[no-untyped-def]
    i = next(_seq)
    return Probe("/leads", body={"customer_name": f"BOLA 新客户{i}", "phone": f"1360000{i:04d}"})


async def _list(world, client) -> Probe:  # type: ignore[no-untyped-def]
    lead = await _east_lead(world)
    return Probe("/leads?page_size=100", marker=lead.id)


async def _one(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe(f"/leads/{(await _east_lead(world)).id}")


async def _approve(world, client) -> Probe:  # type: ignore[no-untyped-def]
    lead = await _east_lead(world, LeadStatus.PENDING_REVIEW)
    return Probe(f"/leads/{lead.id}/approve", body={}, extra={"id": lead.id})


async def _reject(world, client) -> Probe:  # type: ignore[no-untyped-def]
    lead = await _east_lead(world, LeadStatus.PENDING_REVIEW)
    return Probe(f"/leads/{lead.id}/reject", body={"reason": "重复报备"}, extra={"id": lead.id})


async def _status(world, probe: Probe) -> Any:  # type: ignore[no-untyped-def]
    return (await Lead.get(id=probe.extra["id"])).status


CASES: dict[tuple[str, str], Case] = {
    ("POST", "/leads"): Case(_register),
    ("GET", "/leads"): Case(_list, sees=REP_SEES),
    ("GET", r"/leads/{id:\d+}"): Case(_one, sees=REP_SEES),
    ("POST", r"/leads/{id:\d+}/approve"): Case(_approve, sees=STAFF_SEES, snapshot=_status),
    ("POST", r"/leads/{id:\d+}/reject"): Case(_reject, sees=STAFF_SEES, snapshot=_status),
}
