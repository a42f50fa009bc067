"""Leads (客户报备): register, list, and a manager's arbitration."""

from __future__ import annotations

from core.schema import In, Page
from handlers import leads
from handlers.leads import LeadIn, LeadOut, LeadQuery, ReasonIn, RegisteredLead
from miniapp_api.framework import Api, Ctx

api = Api()

REVIEWERS = {"admin", "manager"}


class Empty(In):
    """An empty body or `{}`; any field is rejected."""


@api.route(
    "POST",
    "/leads",
    body=LeadIn,
    response=RegisteredLead,
    status=201,
    roles={"sales", "distributor"},
    tags=("leads",),
)
async def register(ctx: Ctx) -> RegisteredLead:
    """Register a customer (409 lead_conflict if another owner protects it; `arbitration: true`
    sends it to a manager as pending_review instead). The region is the owner's; `region` may
    only pick one of the owner's regions (required when a rep serves several)."""
    return await leads.register_lead(ctx.me, ctx.body)


@api.route("GET", "/leads", query=LeadQuery, response=Page[LeadOut], tags=("leads",))
async def list_leads(ctx: Ctx) -> Page[LeadOut]:
    """Leads in the caller's scope: own (sales), its distributors' (distributor), regions (manager)."""
    return await leads.list_leads(ctx.me, ctx.query)


@api.route("GET", r"/leads/{id:\d+}", response=LeadOut, scope="object", tags=("leads",))
async def get_lead(ctx: Ctx) -> LeadOut:
    """One lead in the caller's scope."""
    return await leads.get_lead(ctx.me, int(ctx.params["id"]))


@api.route(
    "POST",
    r"/leads/{id:\d+}/approve",
    body=Empty,
    response=LeadOut,
    roles=REVIEWERS,
    scope="object",
    tags=("leads",),
)
async def approve(ctx: Ctx) -> LeadOut:
    """Protect a pending lead; other owners' leads for the same customer are rejected. A
    conflicting lead outside the caller's regions: 409 invalid_state (`cross_region`), nothing
    changes, and that region's managers and the admins are notified."""
    return await leads.approve_lead(ctx.me, int(ctx.params["id"]))


@api.route(
    "POST",
    r"/leads/{id:\d+}/reject",
    body=ReasonIn,
    response=LeadOut,
    roles=REVIEWERS,
    scope="object",
    tags=("leads",),
)
async def reject(ctx: Ctx) -> LeadOut:
    """Reject a pending lead with a reason."""
    return await leads.reject_lead(ctx.me, int(ctx.params["id"]), ctx.body.reason)
