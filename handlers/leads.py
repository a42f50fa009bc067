"""Leads (客户报备): register, list, arbitrate, expire.

A lead protects a customer for its owner (a sales rep, or a distributor's users) for
`leads.protection_days`. Registration normalises the name (width, spaces, punctuation,
有限责任公司 -> 有限公司, a trailing "(…分公司)"), the phone (digits, no +86) and validates the
USCC check digit, then, under one kv lock so the first valid registration wins:

- same USCC, phone or normalised name as another owner's active protected lead ->
  `LeadConflict` (409, the other owner is never named), or with `arbitration=True` a
  `pending_review` lead for a manager;
- the same customer already protected for this owner -> `InvalidState`;
- a near-duplicate name (rapidfuzz ratio >= `leads.fuzzy_threshold`, or the same core once a
  leading region and trailing company words are dropped — `name_core`: "上海宏达建设公司",
  "宏达建设" and "上海宏达建筑工程有限公司" are all "宏达") of another owner's active lead ->
  `pending_review` for a manager;
- otherwise `protected` until now + protection_days.

Only sales reps and distributor users register (the API and the chat run this same
use-case, so a manager gets the same 403 on both). The lead's region is the owner's, never
the caller's word: a distributor user's distributor's region; a rep's assigned distributors'
region — a rep serving several regions names one of them (`region`), else 400.

Approving a pending lead protects it and rejects the other owners' active leads it
conflicts with (the manager decided who keeps the customer); rejecting records the reason.
An approval never reaches outside the approver's scope: if a conflicting lead lies in a
region the approver cannot see, the approval is refused (409 `cross_region`) and that
region's managers and the admins are told (`lead.escalated`) — an admin, or a manager of
every region involved, decides. A pending lead that already conflicts across regions is
escalated the same way when it is registered.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator
from rapidfuzz import fuzz, process
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from core.clock import now
from core.errors import (
    Forbidden,
    InvalidState,
    LeadConflict,
    NotFound,
    RateLimited,
    RequestInProgress,
    ValidationError,
)
from core.kv import LockNotAcquired
from core.money import money
from core.runtime import runtime
from core.schema import In, Money, Out, Page, PageQuery
from handlers.actor import Actor, Role
from handlers.audit import record
from handlers.events import emit
from handlers.uscc import is_valid_uscc, normalize_uscc
from models.base import LeadStatus
from models.distributor import Distributor
from models.lead import Lead

REGISTER_LOCK = "leads:register"
LOCK_LEASE_S = 30.0
LOCK_WAIT_S = 10.0
REGISTRATIONS_PER_MIN = 30  # per user (OWASP API6: business-flow abuse)
REGISTRANTS = frozenset({Role.sales, Role.distributor})
REVIEWERS = frozenset({Role.admin, Role.manager})
SUPERSEDED = "经仲裁已判给其他报备人"  # the reject_reason of a lead an arbitration took away
# reject reasons stored in English by earlier versions, shown as people read them
LEGACY_REASONS = {"superseded by arbitration": SUPERSEDED}
NO_REGION = "未分区"  # how a legacy lead without a region is named in an escalation

# A trailing "(分公司)" / "（深圳分公司）" names a branch of the same customer.
_BRANCH = re.compile(r"\([^()]*分公司\)\s*$")
_NON_DIGIT = re.compile(r"\D")


# --- normalisation ---------------------------------------------------------------------


def normalize_name(name: str) -> str:
    """'深圳市腾讯计算机系统有限责任公司　' -> '深圳市腾讯计算机系统有限公司' (the key leads match on).

    NFKC folds full-width letters, digits, spaces and brackets; case is folded; everything
    that is not a letter or digit (spaces, punctuation, brackets) is dropped."""
    text = unicodedata.normalize("NFKC", name).strip()
    text = _BRANCH.sub("", text)
    text = "".join(ch for ch in text.lower() if ch.isalnum())
    return text.replace("有限责任公司", "有限公司")


# What a company name's core is read without: a leading region (repeated: 广东省深圳市…) and
# trailing legal forms and trade words (repeated: …建筑工程有限公司), so "上海宏达建设公司",
# "宏达建设" and "上海宏达建筑工程有限公司" share the core "宏达".
_REGIONS = (
    "北京|天津|上海|重庆|河北|山西|辽宁|吉林|黑龙江|江苏|浙江|安徽|福建|江西|山东|河南|湖北|湖南|广东|"
    "海南|四川|贵州|云南|陕西|甘肃|青海|台湾|内蒙古|广西|西藏|宁夏|新疆|香港|澳门|广州|深圳|珠海|"
    "佛山|东莞|中山|惠州|汕头|杭州|宁波|温州|绍兴|嘉兴|金华|台州|湖州|南京|苏州|无锡|常州|南通|扬州|"
    "徐州|合肥|芜湖|福州|厦门|泉州|南昌|济南|青岛|烟台|潍坊|郑州|洛阳|武汉|宜昌|长沙|株洲|成都|绵阳|"
    "贵阳|昆明|西安|兰州|西宁|银川|乌鲁木齐|拉萨|南宁|柳州|桂林|海口|三亚|石家庄|唐山|保定|太原|"
    "沈阳|大连|长春|哈尔滨|呼和浩特|包头"
)
_REGION_PREFIX = re.compile(rf"^(?:{_REGIONS})(?:省|市|自治区|特别行政区)?")
_SUFFIX = re.compile(
    "(?:股份有限公司|有限公司|总公司|分公司|公司|集团|控股|工程|建设|建筑|建工|建材|实业|贸易|商贸|"
    "科技|发展|装饰|装修|劳务|安装|市政|路桥|工作室|经营部|厂)$"
)
_MIN_CORE = 2


@lru_cache(maxsize=65536)
def name_core(normalized: str) -> str:
    """The distinctive part of a normalised name: '上海宏达建筑工程有限公司' -> '宏达'. Never
    shorter than two characters; '' when only a region and company words are left
    ('北京建设集团': nothing distinctive, so nothing to match on)."""
    core = normalized
    for pattern in (_REGION_PREFIX, _SUFFIX):
        while (m := pattern.search(core)) and len(core) - len(m[0]) >= _MIN_CORE:
            core = core[: m.start()] + core[m.end() :]
    if _SUFFIX.fullmatch(core) or _REGION_PREFIX.fullmatch(core):
        return ""
    return core


def normalize_phone(phone: str) -> str:
    """Digits only, without +86 / 0086: '+86 138-0013-8000' -> '13800138000'.

    A mobile is 11 digits starting with 1; a landline 7-12 digits (area code included).
    Anything else is a ValidationError."""
    raw = unicodedata.normalize("NFKC", phone).strip()
    digits = _NON_DIGIT.sub("", raw)
    if raw.startswith("+86") or (digits.startswith("86") and len(digits) == 13 and digits[2] == "1"):
        digits = digits[2:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    if len(digits) == 11 and digits.startswith("1"):
        return digits
    if 7 <= len(digits) <= 12 and not digits.startswith("1"):
        return digits
    raise ValidationError("phone: 请填写有效的手机号或座机号", {"field": "phone"})


# --- inputs and outputs ----------------------------------------------------------------


class LeadIn(In):
    customer_name: str = Field(min_length=1, max_length=200)
    phone: str = Field(min_length=1, max_length=32)
    uscc: str | None = Field(None, max_length=32)
    project: str | None = Field(None, max_length=200)
    region: str | None = Field(None, max_length=64)
    amount: Decimal | None = None
    arbitration: bool = False

    @field_validator("amount", mode="before")
    @classmethod
    def _amount(cls, v: object) -> object:
        if v is None or isinstance(v, Decimal):
            return v
        if isinstance(v, bool) or not isinstance(v, str | int):
            raise ValueError('金额应为字符串（如 "120000.00"）或整数')
        try:
            value = money(v)
        except ValueError:
            raise ValueError("金额应为数字") from None
        if value < 0 or value >= Decimal("1e12"):
            raise ValueError("金额超出范围")
        return value

    @field_validator("uscc", "project", "region", mode="after")
    @classmethod
    def _empty_is_none(cls, v: str | None) -> str | None:
        return v or None


class LeadQuery(PageQuery):
    status: LeadStatus | None = None


class ReasonIn(In):
    reason: str = Field(min_length=1, max_length=500)


class LeadOut(Out):
    id: int
    customer_name: str
    phone: str | None
    uscc: str | None
    project: str | None
    region: str | None
    amount: Money | None
    status: LeadStatus
    protected_until: datetime | None
    owner_id: int
    distributor_id: int | None
    reject_reason: str | None
    created_at: datetime

    @classmethod
    def of(cls, lead: Lead) -> LeadOut:
        return cls(
            id=lead.id,
            customer_name=lead.customer_name,
            phone=lead.phone,
            uscc=lead.uscc,
            project=lead.project,
            region=lead.region,
            amount=lead.amount,
            status=LeadStatus(lead.status),
            protected_until=lead.protected_until,
            owner_id=lead.owner_id,  # type: ignore[attr-defined]
            distributor_id=lead.distributor_id,  # type: ignore[attr-defined]
            reject_reason=LEGACY_REASONS.get(lead.reject_reason or "", lead.reject_reason),
            created_at=lead.created_at,
        )


class RegisteredLead(LeadOut):
    """The create response: why a lead waits for a manager, when it does."""

    review_reason: Literal["arbitration", "near_duplicate"] | None = None


@dataclass(frozen=True)
class _Keys:
    name: str
    phone: str
    uscc: str | None


def _keys(data: LeadIn) -> _Keys:
    name = normalize_name(data.customer_name)
    if len(name) < 2:
        raise ValidationError("customer_name: 客户名称过短", {"field": "customer_name"})
    uscc = None
    if data.uscc:
        uscc = normalize_uscc(unicodedata.normalize("NFKC", data.uscc))
        if not is_valid_uscc(uscc):
            raise ValidationError("uscc: 统一社会信用代码无效（校验位不符）", {"field": "uscc"})
    return _Keys(name, normalize_phone(data.phone), uscc)


# --- scope -----------------------------------------------------------------------------


def _visible(actor: Actor):  # type: ignore[no-untyped-def]
    """Leads the actor may see: own (sales), its distributors' (distributor user), its
    regions' (manager), all (admin)."""
    qs = Lead.all()
    if actor.role == Role.admin:
        return qs
    if actor.role == Role.manager:
        return qs.filter(region__in=list(actor.regions or ()))
    if actor.role == Role.distributor:
        ids = list(actor.distributor_ids or ())
        return qs.filter(Q(owner_id=actor.user_id) | Q(distributor_id__in=ids))
    return qs.filter(owner_id=actor.user_id)


def _same_owner(lead: Lead, actor: Actor) -> bool:
    if lead.owner_id == actor.user_id:  # type: ignore[attr-defined]
        return True
    dist = lead.distributor_id  # type: ignore[attr-defined]
    return dist is not None and dist == actor.distributor_id


def _active(at: datetime):  # type: ignore[no-untyped-def]
    return Lead.filter(status=LeadStatus.PROTECTED, protected_until__gt=at)


def _require(actor: Actor, roles: frozenset[Role], message: str) -> None:
    if actor.role not in roles:
        raise Forbidden(message)


async def owner_regions(actor: Actor) -> list[str]:
    """The regions a registrant's leads may belong to: its distributor's (distributor user),
    its assigned distributors' (rep: assignments and `sales_rep_id`, as in its Actor)."""
    if actor.role == Role.distributor:
        ids = [actor.distributor_id] if actor.distributor_id is not None else []
    else:
        ids = sorted(actor.distributor_ids or ())
    if not ids:
        return []
    return sorted(set(await Distributor.filter(id__in=ids).values_list("region", flat=True)))


async def _owner_region(actor: Actor, requested: str | None) -> str:
    """The lead's region, from the owner; a `region` in the body may only pick among them."""
    regions = await owner_regions(actor)
    if not regions:
        raise Forbidden("您还没有分配经销商，无法确定报备区域，请联系管理员", {"reason": "no_region"})
    details = {"field": "region", "regions": regions}
    if requested is not None:
        wanted = unicodedata.normalize("NFKC", requested).strip()
        if wanted not in regions:
            raise ValidationError(f"region: 须为您负责的区域之一：{'、'.join(regions)}", details)
        return wanted
    if len(regions) > 1:
        raise ValidationError(f"region: 您负责多个区域，请指明报备区域：{'、'.join(regions)}", details)
    return regions[0]


# --- use-cases -------------------------------------------------------------------------


async def register_lead(actor: Actor, data: LeadIn) -> RegisteredLead:
    """Register a customer for the actor (see the module doc for the conflict rules)."""
    _require(actor, REGISTRANTS, "只有销售代表和经销商用户可以报备客户")
    keys = _keys(data)
    kv = runtime().kv
    rate = await kv.rate_limit(f"leads:register:{actor.user_id}", REGISTRATIONS_PER_MIN, 60.0)
    if not rate.allowed:
        raise RateLimited("报备过于频繁，请稍后再试", retry_after=rate.retry_after)
    region = await _owner_region(actor, data.region)
    try:
        async with kv.lock(REGISTER_LOCK, LOCK_LEASE_S, blocking_timeout=LOCK_WAIT_S):
            return await _register_locked(actor, data, keys, region)
    except LockNotAcquired:
        raise RequestInProgress("报备正在处理中，请稍后重试") from None


async def _register_locked(actor: Actor, data: LeadIn, keys: _Keys, region: str) -> RegisteredLead:
    at = now()
    async with in_transaction():
        exact = Q(name_normalized=keys.name) | Q(phone_digits=keys.phone)
        if keys.uscc:
            exact |= Q(uscc=keys.uscc)
        matches = await _active(at).filter(exact)
        others = [m for m in matches if not _same_owner(m, actor)]
        review: Literal["arbitration", "near_duplicate"] | None = None
        involved: set[str | None] = set()  # regions of the leads it conflicts with
        if others:
            if not data.arbitration:
                raise LeadConflict("该客户已被报备，且在保护期内", {"reason": "already_registered"})
            review = "arbitration"
            involved = {m.region for m in others}
        elif matches:
            raise InvalidState("您已报备过该客户", {"lead_id": matches[0].id, "reason": "duplicate"})
        elif involved := await _near_duplicate(actor, keys.name, at):
            review = "near_duplicate"
        protected = review is None
        lead = await Lead.create(
            customer_name=data.customer_name.strip(),
            name_normalized=keys.name,
            phone=data.phone.strip(),
            phone_digits=keys.phone,
            uscc=keys.uscc,
            project=data.project,
            region=region,
            amount=data.amount,
            owner_id=actor.user_id,
            distributor_id=actor.distributor_id,
            status=LeadStatus.PROTECTED if protected else LeadStatus.PENDING_REVIEW,
            protected_until=at + timedelta(days=runtime().config.leads.protection_days)
            if protected
            else None,
        )
        after = {"status": lead.status, "customer_name": lead.customer_name, "review_reason": review}
        await record(actor, "lead.register", "lead", lead.id, after=after)
        await emit("lead.registered", lead_id=lead.id, actor_id=actor.user_id)
        if elsewhere := _region_names(involved - {region}):
            await emit("lead.escalated", lead_id=lead.id, actor_id=actor.user_id, regions=elsewhere)
    return RegisteredLead(**LeadOut.of(lead).model_dump(), review_reason=review)


async def _near_duplicate(actor: Actor, name: str, at: datetime) -> set[str | None]:
    """The regions of other owners' active leads whose names are near `name` (empty: none)."""
    rows = await _active(at).values_list("name_normalized", "owner_id", "distributor_id", "region")
    others = [
        (n, region)
        for n, owner, dist, region in rows
        if owner != actor.user_id and (dist is None or dist != actor.distributor_id)
    ]
    threshold = runtime().config.leads.fuzzy_threshold
    hits = process.extract(
        name, [n for n, _ in others], scorer=fuzz.ratio, score_cutoff=threshold, limit=None
    )
    core = name_core(name)
    same_core = {region for n, region in others if core and name_core(n) == core}
    return {others[i][1] for _, _, i in hits} | same_core


def _region_names(regions: set[str | None]) -> list[str]:
    return sorted(r or NO_REGION for r in regions)


async def list_leads(actor: Actor, query: LeadQuery) -> Page[LeadOut]:
    qs = _visible(actor)
    if query.status is not None:
        qs = qs.filter(status=query.status)
    total = await qs.count()
    rows = await qs.order_by("-id").offset((query.page - 1) * query.page_size).limit(query.page_size)
    return Page[LeadOut](
        items=[LeadOut.of(r) for r in rows], total=total, page=query.page, page_size=query.page_size
    )


async def get_lead(actor: Actor, lead_id: int) -> LeadOut:
    lead = await _visible(actor).get_or_none(id=lead_id)
    if lead is None:
        raise NotFound("未找到该报备")
    return LeadOut.of(lead)


async def approve_lead(actor: Actor, lead_id: int) -> LeadOut:
    """A manager protects a pending lead; other owners' active leads for the same customer
    are rejected (the arbitration went to this one) — only if the approver may see them all."""
    _require(actor, REVIEWERS, "只有经理和管理员可以审核报备")
    try:
        async with runtime().kv.lock(REGISTER_LOCK, LOCK_LEASE_S, blocking_timeout=LOCK_WAIT_S):
            return await _approve_locked(actor, lead_id)
    except LockNotAcquired:
        raise RequestInProgress("报备正在处理中，请稍后重试") from None


async def _approve_locked(actor: Actor, lead_id: int) -> LeadOut:
    at = now()
    async with in_transaction():
        lead = await _pending(actor, lead_id)
        conflicts = await _conflicts_of(lead, at)
        visible = set(
            await _visible(actor).filter(id__in=[c.id for c in conflicts]).values_list("id", flat=True)
        )
        hidden = [c for c in conflicts if c.id not in visible]
        if not hidden:
            await _supersede(actor, lead, conflicts)
            until = at + timedelta(days=runtime().config.leads.protection_days)
            await _transition(lead, LeadStatus.PROTECTED, protected_until=until, reviewed_by_id=actor.user_id)
            await record(actor, "lead.approve", "lead", lead.id, after={"protected_until": until})
            await emit("lead.approved", lead_id=lead.id, actor_id=actor.user_id)
            return LeadOut.of(await Lead.get(id=lead.id))
    # Nothing was changed: the other region's managers (and the admins) must decide.
    regions = _region_names({c.region for c in hidden})
    async with in_transaction():
        await record(actor, "lead.escalate", "lead", lead.id, after={"regions": regions})
        await emit("lead.escalated", lead_id=lead.id, actor_id=actor.user_id, regions=regions)
    raise InvalidState(
        f"该客户在{'、'.join(regions)}区域有受保护的报备，不在您的管辖范围内：须由管理员或同时负责"
        "这些区域的经理仲裁（已通知对方区域经理）；您也可以驳回此报备",
        {"reason": "cross_region", "regions": regions},
    )


async def _conflicts_of(lead: Lead, at: datetime) -> list[Lead]:
    """Other owners' active leads for the same customer (same key or a near name)."""
    threshold = runtime().config.leads.fuzzy_threshold
    core = name_core(lead.name_normalized)
    return [
        other
        for other in await _active(at).exclude(id=lead.id)
        if other.owner_id != lead.owner_id  # type: ignore[attr-defined]
        and (
            other.name_normalized == lead.name_normalized
            or (lead.phone_digits and other.phone_digits == lead.phone_digits)
            or (lead.uscc and other.uscc == lead.uscc)
            or fuzz.ratio(other.name_normalized, lead.name_normalized) >= threshold
            or (core != "" and core == name_core(other.name_normalized))
        )
    ]


async def _supersede(actor: Actor, lead: Lead, conflicts: list[Lead]) -> None:
    for other in conflicts:
        changed = await Lead.filter(id=other.id, status=LeadStatus.PROTECTED).update(
            status=LeadStatus.REJECTED, reject_reason=SUPERSEDED, reviewed_by_id=actor.user_id
        )
        if changed:
            await record(actor, "lead.supersede", "lead", other.id, after={"by_lead": lead.id})
            await emit("lead.rejected", lead_id=other.id, actor_id=actor.user_id, superseded_by=lead.id)


async def reject_lead(actor: Actor, lead_id: int, reason: str) -> LeadOut:
    _require(actor, REVIEWERS, "只有经理和管理员可以审核报备")
    async with in_transaction():
        lead = await _pending(actor, lead_id)
        await _transition(lead, LeadStatus.REJECTED, reject_reason=reason, reviewed_by_id=actor.user_id)
        await record(actor, "lead.reject", "lead", lead.id, after={"reason": reason})
        await emit("lead.rejected", lead_id=lead.id, actor_id=actor.user_id)
        lead = await Lead.get(id=lead.id)
    return LeadOut.of(lead)


async def _pending(actor: Actor, lead_id: int) -> Lead:
    lead = await _visible(actor).get_or_none(id=lead_id)
    if lead is None:
        raise NotFound("未找到该报备")
    if lead.status != LeadStatus.PENDING_REVIEW:
        raise InvalidState("该报备已处理，只有待审核的报备可以审核")
    return lead


async def _transition(lead: Lead, to: LeadStatus, **fields: object) -> None:
    """Conditional update from pending_review: of two concurrent reviews, one wins."""
    changed = await Lead.filter(id=lead.id, status=LeadStatus.PENDING_REVIEW).update(status=to, **fields)
    if changed != 1:
        raise InvalidState("该报备刚刚已被他人审核")


async def expire_leads() -> dict[str, int]:
    """The lead_expiry job: protected leads past protected_until become expired (lead.expired)."""
    at = now()
    ids = await Lead.filter(status=LeadStatus.PROTECTED, protected_until__lte=at).values_list("id", flat=True)
    expired = 0
    for lead_id in ids:
        async with in_transaction():
            changed = await Lead.filter(
                id=lead_id, status=LeadStatus.PROTECTED, protected_until__lte=at
            ).update(status=LeadStatus.EXPIRED)
            if changed:
                expired += 1
                await record(None, "lead.expire", "lead", lead_id, after={"status": "expired"})
                await emit("lead.expired", lead_id=lead_id, actor_id=0)
    return {"expired": expired, "checked": len(ids)}
