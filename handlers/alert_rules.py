"""Admin alert rules: who else gets which scheduled alert, through which channel, with which
thresholds. A rule may be limited to a region (`params.region`); managers only see and write
rules of their regions (others are not found), admins all of them.

- channel `dingtalk_robot`: `recipients` are robot names from [[dingtalk.robots]]; the job's
  company-wide summary then goes to those robots only.
- any other channel: `recipients` are user ids who get the kind's alerts (for the rule's
  region, or all) on that channel (`inbox` = in the app only).
- `params.cover_days` (low_stock) and `params.days` (contract_expiry) override the defaults.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator
from tortoise.transactions import in_transaction

from core.errors import ValidationError
from core.runtime import runtime
from core.schema import Id, In, Out, Page, PageQuery
from handlers.actor import Actor
from handlers.admin_common import get_or_404, invalid, manager_regions, not_found, require_region
from handlers.audit import record, snapshot
from models.base import NotificationChannel
from models.notification import AlertRule
from models.user import User

RuleKind = Literal["low_stock", "overstock", "contract_expiry", "receivables_overdue", "daily_digest"]
RuleChannel = Literal[
    "inbox", "wechat_subscribe", "wechat_template", "wecom", "dingtalk_robot", "dingtalk_work"
]
Recipient = Id | Annotated[str, Field(min_length=1, max_length=64)]


class AlertParams(In):
    region: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    cover_days: Annotated[int, Field(ge=0, le=365)] | None = None
    days: Annotated[list[Annotated[int, Field(ge=0, le=365)]], Field(min_length=1, max_length=10)] | None = (
        None
    )


class AlertRuleIn(In):
    kind: RuleKind
    channel: RuleChannel = "inbox"
    recipients: Annotated[list[Recipient], Field(max_length=50)] = []
    params: AlertParams = AlertParams()
    active: bool = True


class AlertRulePatch(In):
    channel: RuleChannel | None = None
    recipients: Annotated[list[Recipient], Field(max_length=50)] | None = None
    params: AlertParams | None = None
    active: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> AlertRulePatch:
        if not self.model_fields_set:
            raise invalid("没有要修改的内容")
        return self


class AlertRuleOut(Out):
    id: int
    kind: str
    channel: str
    recipients: list[int | str]
    params: dict[str, Any]
    region: str | None
    active: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, r: AlertRule) -> AlertRuleOut:
        params = dict(r.params or {})
        return cls(
            id=r.id,
            kind=r.kind,
            channel=str(r.channel),
            recipients=list(r.recipients or []),
            params=params,
            region=params.get("region"),
            active=r.active,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )


class Deleted(Out):
    id: int
    deleted: bool = True


def _visible(actor: Actor, rule: AlertRule) -> bool:
    regions = manager_regions(actor)
    return regions is None or (rule.params or {}).get("region") in regions


async def _check(actor: Actor, channel: str, recipients: list[Any], params: AlertParams) -> None:
    if manager_regions(actor) is not None and params.region is None:
        raise ValidationError("params.region: 区域经理的预警规则须指定区域", {"field": "params.region"})
    if params.region is not None:
        require_region(actor, params.region)
    if channel == NotificationChannel.DINGTALK_ROBOT:
        names = {r.name for r in runtime().config.dingtalk.robots}
        bad = [r for r in recipients if not isinstance(r, str) or r not in names]
        if bad:
            names_text = "、".join(map(str, bad))
            raise ValidationError(f"recipients: 未配置的机器人：{names_text}", {"field": "recipients"})
        return
    if any(not isinstance(r, int) for r in recipients):
        raise ValidationError(
            "recipients: 请填写用户 id（只有钉钉机器人渠道填写机器人名称）", {"field": "recipients"}
        )
    ids = set(recipients)
    if ids and await User.filter(id__in=list(ids)).count() != len(ids):
        raise ValidationError("recipients: 有用户 id 不存在", {"field": "recipients"})


async def _get(actor: Actor, rule_id: int) -> AlertRule:
    rule = await get_or_404(AlertRule.all(), rule_id, "alert rule")
    if not _visible(actor, rule):
        raise not_found("alert rule")  # like any object outside the caller's scope
    return rule


async def list_alert_rules(actor: Actor, query: PageQuery) -> Page[AlertRuleOut]:
    rules = [r for r in await AlertRule.all().order_by("id") if _visible(actor, r)]
    start = (query.page - 1) * query.page_size
    items = [AlertRuleOut.of(r) for r in rules[start : start + query.page_size]]
    return Page[AlertRuleOut](items=items, total=len(rules), page=query.page, page_size=query.page_size)


async def get_alert_rule(actor: Actor, rule_id: int) -> AlertRuleOut:
    return AlertRuleOut.of(await _get(actor, rule_id))


async def create_alert_rule(actor: Actor, body: AlertRuleIn) -> AlertRuleOut:
    await _check(actor, body.channel, body.recipients, body.params)
    async with in_transaction():
        rule = await AlertRule.create(
            kind=body.kind,
            channel=NotificationChannel(body.channel),
            recipients=body.recipients,
            params=body.params.model_dump(exclude_none=True),
            active=body.active,
        )
        await record(actor, "alert_rule.create", "alert_rule", rule.id, after=snapshot(rule))
    return AlertRuleOut.of(rule)


async def update_alert_rule(actor: Actor, rule_id: int, body: AlertRulePatch) -> AlertRuleOut:
    async with in_transaction():
        rule = await _get(actor, rule_id)
        before = snapshot(rule)
        channel = body.channel or str(rule.channel)
        recipients = body.recipients if body.recipients is not None else list(rule.recipients or [])
        params = body.params if body.params is not None else AlertParams.model_validate(rule.params or {})
        await _check(actor, channel, recipients, params)
        rule.channel = NotificationChannel(channel)
        rule.recipients = recipients
        rule.params = params.model_dump(exclude_none=True)
        if body.active is not None:
            rule.active = body.active
        await rule.save()
        await record(actor, "alert_rule.update", "alert_rule", rule.id, before=before, after=snapshot(rule))
    return AlertRuleOut.of(rule)


async def delete_alert_rule(actor: Actor, rule_id: int) -> Deleted:
    async with in_transaction():
        rule = await _get(actor, rule_id)
        before = snapshot(rule)
        await rule.delete()
        await record(actor, "alert_rule.delete", "alert_rule", rule_id, before=before)
    return Deleted(id=rule_id)
