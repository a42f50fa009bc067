"""Commission rules: admin CRUD, which rule applies to an order line, and the tier math.

Which rule applies (one rule per order line per beneficiary type)
-----------------------------------------------------------------
For one order line and one beneficiary type (`sales` = the distributor's rep, `distributor` =
a rebate to the ordering distributor) the candidates are the *active* rules of that type that
are valid on the order's completion date (business time zone, `valid_from <= day <= valid_to`)
and whose scope matches: a NULL scope field matches anything; `category` is compared with the
product's category, `sku` with the line's sku, `level` and `region` with the ordering
distributor's. Among the candidates ONE rule wins:

1. the highest `priority`,
2. then the most specific scope (the most non-NULL scope fields),
3. then the lowest id (the oldest rule).

So a line earns at most one sales commission and at most one distributor rebate, and two
overlapping rules never pay twice for the same sale.

Tiers
-----
`tiers` is `[{"from": "0", "rate": "0.02"}, {"from": "100000", "rate": "0.03"}]`: ascending
`from`, the first from 0, rates between 0 and 1 with at most 4 decimals. A period volume V
reaches tier i when `V >= from_i`. `tiered_marginal` pays each slice of the volume at its
tier's rate (like income tax brackets); `tiered_whole` pays the whole volume at the rate of
the tier it reached, so its rates must not decrease (otherwise more volume could pay less).
Both are monotonic: more volume never lowers the commission.

Writes are for admins and managers. A manager sees the rules of its regions plus the
region-less (company-wide) ones, and may only create or change rules scoped to one of its
regions; rules of other regions are not found (404). Every write is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PlainSerializer, model_validator
from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from core.errors import Forbidden, NotFound, ValidationError
from core.money import money
from core.schema import MAX_ID, Day, In, Out, Page, PageQuery
from handlers.actor import Actor, Role
from handlers.admin_common import invalid
from handlers.audit import record, snapshot
from models.base import Beneficiary, CommissionMode, CommissionPeriod
from models.commission import CommissionRule
from models.product import Product

RATE_PLACES = Decimal("0.0001")
MAX_VOLUME = Decimal("1000000000000")


def _decimal_in(value: Any) -> Decimal:
    """Decimals arrive as strings ("0.02") or exact integers; floats have already lost digits."""
    if isinstance(value, bool) or isinstance(value, float):
        raise invalid('小数请用字符串发送，如 "0.02"')
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            raise invalid("不是有效的数字") from None
        if not d.is_finite():
            raise invalid("不是有限的数字")
        return d
    if isinstance(value, Decimal) and value.is_finite():
        return value
    raise invalid("请用字符串发送数字")


DecimalIn = Annotated[Decimal, BeforeValidator(_decimal_in)]


def rate_str(value: Decimal) -> str:
    return str(Decimal(value).quantize(RATE_PLACES))


Rate = Annotated[Decimal, PlainSerializer(rate_str, return_type=str, when_used="json")]


def _check_rate(value: Decimal, where: str) -> Decimal:
    if value < 0 or value > 1:
        raise invalid(f"{where}须在 0 到 1 之间")
    if value != value.quantize(RATE_PLACES):
        raise invalid(f"{where}最多四位小数")
    return value.quantize(RATE_PLACES)


# --- inputs -----------------------------------------------------------------------------------


class TierIn(In):
    from_: DecimalIn = Field(alias="from")
    rate: DecimalIn


class ScopeIn(In):
    category: str | None = Field(None, min_length=1, max_length=64)
    sku: str | None = Field(None, min_length=1, max_length=64)
    level: Literal[1, 2] | None = None
    region: str | None = Field(None, min_length=1, max_length=64)


class RuleIn(In):
    """POST and PUT body (PUT replaces the whole rule)."""

    name: str = Field(min_length=1, max_length=100)
    beneficiary: Beneficiary
    mode: CommissionMode
    rate: DecimalIn | None = None
    tiers: list[TierIn] | None = Field(None, min_length=1, max_length=20)
    scope: ScopeIn | None = None
    period: CommissionPeriod = CommissionPeriod.MONTH
    valid_from: Day
    valid_to: Day | None = None
    priority: int = Field(0, ge=-1000, le=1000)
    active: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> RuleIn:
        if self.mode == CommissionMode.FLAT:
            if self.rate is None:
                raise invalid("固定比例规则须填写佣金比例")
            if self.tiers is not None:
                raise invalid("固定比例规则只填佣金比例，不填阶梯")
            self.rate = _check_rate(self.rate, "佣金比例")
        else:
            if not self.tiers:
                raise invalid("阶梯规则须填写阶梯")
            if self.rate is not None:
                raise invalid("阶梯规则只填阶梯，不填统一比例")
            previous: TierIn | None = None
            for i, tier in enumerate(self.tiers):
                tier.rate = _check_rate(tier.rate, f"第 {i + 1} 档比例")
                if tier.from_ < 0 or tier.from_ >= MAX_VOLUME or tier.from_ != money(tier.from_):
                    raise invalid(f"第 {i + 1} 档起点须为不小于 0 的金额，最多两位小数")
                if i == 0 and tier.from_ != 0:
                    raise invalid("第 1 档须从 0 开始")
                if previous is not None:
                    if tier.from_ <= previous.from_:
                        raise invalid(f"第 {i + 1} 档起点须高于上一档")
                    if self.mode == CommissionMode.TIERED_WHOLE and tier.rate < previous.rate:
                        raise invalid(
                            f"第 {i + 1} 档比例低于上一档：全额累进的比例不能降低（否则销量越高佣金反而越少）"
                        )
                previous = tier
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise invalid("失效日期（valid_to）早于生效日期（valid_from）")
        return self


class RuleQuery(PageQuery):
    beneficiary: Beneficiary | None = None
    active: bool | None = None


# --- outputs ----------------------------------------------------------------------------------


class ScopeOut(Out):
    category: str | None = None
    sku: str | None = None
    level: int | None = None
    region: str | None = None


class TierOut(Out):
    # `from` is a keyword; the JSON name is "from"
    from_: str = Field(serialization_alias="from")
    rate: str


class RuleOut(Out):
    id: int
    name: str
    beneficiary: str
    mode: str
    rate: Rate | None
    tiers: list[dict[str, str]] | None
    scope: ScopeOut
    period: str
    valid_from: date
    valid_to: date | None
    priority: int
    active: bool
    created_at: datetime
    updated_at: datetime


def rule_out(rule: CommissionRule) -> RuleOut:
    return RuleOut(
        id=rule.id,
        name=rule.name,
        beneficiary=str(rule.beneficiary),
        mode=str(rule.mode),
        rate=rule.rate,
        tiers=rule.tiers,
        scope=ScopeOut(
            category=rule.scope_category, sku=rule.scope_sku, level=rule.scope_level, region=rule.scope_region
        ),
        period=str(rule.period),
        valid_from=rule.valid_from,
        valid_to=rule.valid_to,
        priority=rule.priority,
        active=rule.active,
        created_at=rule.created_at,
        updated_at=rule.updated_at,
    )


# --- admin use-cases --------------------------------------------------------------------------


def _visible(qs: QuerySet[CommissionRule], actor: Actor) -> QuerySet[CommissionRule]:
    """Admins see every rule; a manager its regions' rules and the company-wide ones."""
    if not actor.is_staff:
        raise Forbidden("只有管理员和区域经理可以管理佣金规则")
    if actor.role == Role.admin or actor.regions is None:
        return qs
    return qs.filter(Q(scope_region__isnull=True) | Q(scope_region__in=sorted(actor.regions)))


def _check_id(rule_id: int) -> None:
    if not 0 < rule_id <= MAX_ID:  # ids are 32-bit: a larger one names nothing
        raise NotFound("未找到该佣金规则")


def _check_writable(actor: Actor, region: str | None) -> None:
    if actor.role == Role.admin or actor.regions is None:
        return
    if region is None or region not in actor.regions:
        raise Forbidden("区域经理只能设置自己负责区域的佣金规则")


def _fields(body: RuleIn) -> dict[str, Any]:
    scope = body.scope or ScopeIn()
    return {
        "name": body.name,
        "beneficiary": body.beneficiary,
        "mode": body.mode,
        "rate": body.rate,
        "tiers": (
            [{"from": str(money(t.from_)), "rate": rate_str(t.rate)} for t in body.tiers]
            if body.tiers
            else None
        ),
        "scope_category": scope.category,
        "scope_sku": scope.sku,
        "scope_level": scope.level,
        "scope_region": scope.region,
        "period": body.period,
        "valid_from": body.valid_from,
        "valid_to": body.valid_to,
        "priority": body.priority,
        "active": body.active,
    }


async def _check_sku(sku: str | None) -> None:
    if sku is not None and not await Product.filter(sku=sku).exists():
        raise ValidationError(f"scope.sku: 商品编码 {sku} 不存在", {"field": "scope.sku"})


async def create_rule(actor: Actor, body: RuleIn) -> RuleOut:
    _visible(CommissionRule.all(), actor)
    _check_writable(actor, body.scope.region if body.scope else None)
    await _check_sku(body.scope.sku if body.scope else None)
    async with in_transaction():
        rule = await CommissionRule.create(**_fields(body))
        await record(actor, "commission_rule.create", "commission_rule", rule.id, after=snapshot(rule))
    await rule.refresh_from_db()
    return rule_out(rule)


async def update_rule(actor: Actor, rule_id: int, body: RuleIn) -> RuleOut:
    """PUT: replace the rule. Past entries keep their rates; open periods are recomputed with
    the new tiers when they close (as tier adjustments)."""
    _check_id(rule_id)
    async with in_transaction():
        rule = await _visible(CommissionRule.all(), actor).select_for_update().get_or_none(id=rule_id)
        if rule is None:
            raise NotFound("未找到该佣金规则")
        _check_writable(actor, rule.scope_region)
        _check_writable(actor, body.scope.region if body.scope else None)
        await _check_sku(body.scope.sku if body.scope else None)
        before = snapshot(rule)
        rule.update_from_dict(_fields(body))
        await rule.save()
        await record(actor, "commission_rule.update", "commission_rule", rule.id, before, snapshot(rule))
    await rule.refresh_from_db()
    return rule_out(rule)


async def get_rule(actor: Actor, rule_id: int) -> RuleOut:
    _check_id(rule_id)
    rule = await _visible(CommissionRule.all(), actor).get_or_none(id=rule_id)
    if rule is None:
        raise NotFound("未找到该佣金规则")
    return rule_out(rule)


async def list_rules(actor: Actor, query: RuleQuery) -> Page[RuleOut]:
    qs = _visible(CommissionRule.all(), actor)
    if query.beneficiary is not None:
        qs = qs.filter(beneficiary=query.beneficiary)
    if query.active is not None:
        qs = qs.filter(active=query.active)
    total = await qs.count()
    rows = (
        await qs.order_by("-priority", "id").offset((query.page - 1) * query.page_size).limit(query.page_size)
    )
    return Page[RuleOut](
        items=[rule_out(r) for r in rows], total=total, page=query.page, page_size=query.page_size
    )


# --- which rule applies -----------------------------------------------------------------------


async def rules_valid_on(day: date) -> list[CommissionRule]:
    return await CommissionRule.filter(
        Q(valid_to__isnull=True) | Q(valid_to__gte=day), active=True, valid_from__lte=day
    ).order_by("id")


def specificity(rule: CommissionRule) -> int:
    scope = (rule.scope_category, rule.scope_sku, rule.scope_level, rule.scope_region)
    return sum(1 for v in scope if v is not None)


def matches(rule: CommissionRule, *, category: str, sku: str, level: int, region: str) -> bool:
    return (
        (rule.scope_category is None or rule.scope_category == category)
        and (rule.scope_sku is None or rule.scope_sku == sku)
        and (rule.scope_level is None or rule.scope_level == level)
        and (rule.scope_region is None or rule.scope_region == region)
    )


def pick_rule(
    rules: list[CommissionRule], beneficiary: Beneficiary, *, category: str, sku: str, level: int, region: str
) -> CommissionRule | None:
    """The one rule that pays `beneficiary` for this line (see the module docstring)."""
    candidates = [
        r
        for r in rules
        if r.beneficiary == beneficiary and matches(r, category=category, sku=sku, level=level, region=region)
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda r: (-r.priority, -specificity(r), r.id))


# --- tier math (pure) -------------------------------------------------------------------------


@dataclass(frozen=True)
class Tier:
    index: int
    start: Decimal
    end: Decimal | None  # exclusive; None = open-ended
    rate: Decimal

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "from": str(money(self.start)),
            "to": None if self.end is None else str(money(self.end)),
            "rate": rate_str(self.rate),
        }


def tiers_of(
    mode: CommissionMode | str, rate: Decimal | None, tiers: list[dict[str, Any]] | None
) -> list[Tier]:
    if mode == CommissionMode.FLAT or not tiers:
        return [Tier(0, Decimal(0), None, Decimal(rate or 0))]
    starts = [Decimal(str(t["from"])) for t in tiers]
    return [
        Tier(i, starts[i], starts[i + 1] if i + 1 < len(starts) else None, Decimal(str(t["rate"])))
        for i, t in enumerate(tiers)
    ]


def rule_tiers(rule: CommissionRule) -> list[Tier]:
    return tiers_of(rule.mode, rule.rate, rule.tiers)


def tier_at(tiers: list[Tier], volume: Decimal) -> Tier:
    """The tier a period volume has reached (V >= from)."""
    reached = tiers[0]
    for tier in tiers:
        if volume >= tier.start:
            reached = tier
    return reached


def commission_of(mode: CommissionMode | str, tiers: list[Tier], volume: Decimal) -> Decimal:
    """Exact (unrounded) commission for a whole period volume."""
    if volume <= 0:
        return tiers[0].rate * volume
    if mode != CommissionMode.TIERED_MARGINAL:
        return tier_at(tiers, volume).rate * volume
    total = Decimal(0)
    for tier in tiers:
        if volume <= tier.start:
            break
        top = volume if tier.end is None else min(volume, tier.end)
        total += tier.rate * (top - tier.start)
    return total


def accrual_segments(
    mode: CommissionMode | str, tiers: list[Tier], v0: Decimal, v1: Decimal
) -> list[tuple[Tier, Decimal, Decimal]]:
    """How an order adding volume [v0, v1) is paid at accrual time: (tier, from, to) slices.

    flat: one slice at the rate; tiered_whole: one slice at the rate of the tier the period
    volume reached (v1); tiered_marginal: one slice per tier crossed."""
    if v1 <= v0:
        return []
    if mode == CommissionMode.FLAT:
        return [(tiers[0], v0, v1)]
    if mode == CommissionMode.TIERED_WHOLE:
        return [(tier_at(tiers, v1), v0, v1)]
    out: list[tuple[Tier, Decimal, Decimal]] = []
    for tier in tiers:
        lo = max(v0, tier.start) if tier.index else v0  # below 0 (never in practice) is tier 0
        hi = v1 if tier.end is None else min(v1, tier.end)
        if hi > lo:
            out.append((tier, lo, hi))
    return out
