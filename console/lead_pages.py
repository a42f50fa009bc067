"""报备仲裁: pending leads with the protected leads they collide with, side by side; approve
and reject through `handlers.leads` (the approval's scope rules are the use-case's)."""

from __future__ import annotations

from aiohttp import web

from console.framework import Pages, done, object_id, posted_text, render
from handlers import leads, workbench
from handlers.actor import Actor

pages = Pages()


async def _context(actor: Actor) -> dict[str, object]:
    return {"nav": "leads", "arbitrations": await workbench.list_arbitrations(actor)}


@pages.add("GET", "/leads", name="leads")
async def arbitration_list(request: web.Request, actor: Actor) -> web.StreamResponse:
    return render(request, "leads.html", await _context(actor))


@pages.add("POST", r"/leads/{id:\d+}/approve", name="lead_approve", scope="object")
async def approve(request: web.Request, actor: Actor) -> web.StreamResponse:
    lead = await leads.approve_lead(actor, object_id(request))
    ctx = {**await _context(actor), "flash": f"已批准「{lead.customer_name}」的报备，冲突的报备已驳回"}
    return done(request, "/console/leads", "_leads_main.html", ctx)


@pages.add("POST", r"/leads/{id:\d+}/reject", name="lead_reject", scope="object")
async def reject(request: web.Request, actor: Actor) -> web.StreamResponse:
    lead_id = object_id(request)
    reason = await posted_text(request, "reason", "驳回原因")
    lead = await leads.reject_lead(actor, lead_id, reason)
    ctx = {**await _context(actor), "flash": f"已驳回「{lead.customer_name}」的报备"}
    return done(request, "/console/leads", "_leads_main.html", ctx)
