"""Admin alert rules (/admin/alert-rules): extra recipients, channels and thresholds per alert."""

from __future__ import annotations

from core.schema import Page, PageQuery
from handlers import alert_rules as rules
from handlers.alert_rules import AlertRuleIn, AlertRuleOut, AlertRulePatch, Deleted
from miniapp_api.framework import Api, Ctx

api = Api()
STAFF = {"admin", "manager"}
TAGS = ("admin", "alerts")


@api.route("GET", "/admin/alert-rules", query=PageQuery, response=Page[AlertRuleOut], roles=STAFF, tags=TAGS)
async def list_rules(ctx: Ctx) -> Page[AlertRuleOut]:
    """Alert rules (a manager sees its regions' rules)."""
    return await rules.list_alert_rules(ctx.me, ctx.query)


@api.route(
    "POST", "/admin/alert-rules", body=AlertRuleIn, response=AlertRuleOut, status=201, roles=STAFF, tags=TAGS
)
async def create_rule(ctx: Ctx) -> AlertRuleOut:
    """Create an alert rule (a manager's rule needs params.region, one of its regions)."""
    return await rules.create_alert_rule(ctx.me, ctx.body)


@api.route(
    "GET", r"/admin/alert-rules/{id:\d+}", response=AlertRuleOut, roles=STAFF, scope="object", tags=TAGS
)
async def get_rule(ctx: Ctx) -> AlertRuleOut:
    """One alert rule."""
    return await rules.get_alert_rule(ctx.me, int(ctx.params["id"]))


@api.route(
    "PUT",
    r"/admin/alert-rules/{id:\d+}",
    body=AlertRulePatch,
    response=AlertRuleOut,
    roles=STAFF,
    scope="object",
    tags=TAGS,
)
async def update_rule(ctx: Ctx) -> AlertRuleOut:
    """Change an alert rule's channel, recipients, thresholds or active flag."""
    return await rules.update_alert_rule(ctx.me, int(ctx.params["id"]), ctx.body)


@api.route("DELETE", r"/admin/alert-rules/{id:\d+}", response=Deleted, roles=STAFF, scope="object", tags=TAGS)
async def delete_rule(ctx: Ctx) -> Deleted:
    """Delete an alert rule."""
    return await rules.delete_alert_rule(ctx.me, int(ctx.params["id"]))
