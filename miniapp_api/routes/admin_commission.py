"""Admin: commission rules (create, list, read, replace). Admins and managers (regions only)."""

from __future__ import annotations

from core.schema import Page
from handlers import commission_rules
from handlers.commission_rules import RuleIn, RuleOut, RuleQuery
from miniapp_api.framework import Api, Ctx

api = Api()

STAFF = {"admin", "manager"}
TAGS = ("admin", "commission")


@api.route(
    "POST", "/admin/commission-rules", body=RuleIn, response=RuleOut, status=201, roles=STAFF, tags=TAGS
)
async def create_rule(ctx: Ctx) -> RuleOut:
    """Create a commission rule (flat rate or tiers by period volume; see README for priority)."""
    return await commission_rules.create_rule(ctx.me, ctx.body)


@api.route("GET", "/admin/commission-rules", query=RuleQuery, response=Page[RuleOut], roles=STAFF, tags=TAGS)
async def list_rules(ctx: Ctx) -> Page[RuleOut]:
    """Commission rules, highest priority first (a manager: its regions' and company-wide rules)."""
    return await commission_rules.list_rules(ctx.me, ctx.query)


@api.route(
    "GET", r"/admin/commission-rules/{id:\d+}", response=RuleOut, roles=STAFF, scope="object", tags=TAGS
)
async def get_rule(ctx: Ctx) -> RuleOut:
    """One commission rule."""
    return await commission_rules.get_rule(ctx.me, int(ctx.params["id"]))


@api.route(
    "PUT",
    r"/admin/commission-rules/{id:\d+}",
    body=RuleIn,
    response=RuleOut,
    roles=STAFF,
    scope="object",
    tags=TAGS,
)
async def replace_rule(ctx: Ctx) -> RuleOut:
    """Replace a commission rule (past entries keep their rates; open periods re-tier at close)."""
    return await commission_rules.update_rule(ctx.me, int(ctx.params["id"]), ctx.body)
