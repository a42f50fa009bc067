"""报备 <客户> <电话> [信用代码] [项目] [区域:<区域>] — the same use-case as POST /api/v1/leads
with the sender's Actor (so the same roles, region rules and validation); a conflict can be
sent to a manager with 仲裁."""

from __future__ import annotations

import re

from pydantic import ValidationError as PydanticError

from bot.conversation import State
from bot.errors import user_text
from bot.router import ChatContext, Router
from core.clock import BUSINESS_TZ
from core.errors import LeadConflict, ValidationError
from handlers.leads import LeadIn, RegisteredLead, register_lead

router = Router("leads")

CONFLICT = "lead:conflict"
USAGE = (
    "请按格式发送：报备 客户名称 电话 [统一社会信用代码] [项目] [区域:区域名]\n"
    "例如：报备 深圳市某某建设有限公司 13800138000 南山项目\n"
    "（负责多个区域时加上“区域:华东”这样的区域）"
)
_SPLIT = re.compile(r"[\s,，;；、]+")
_PHONE = re.compile(r"^\+?[\d\-()（）]{7,20}$")
_COUNTRY = re.compile(r"(\+86|0086)[\s\-]+(?=1\d{2})")
_USCC = re.compile(r"^[0-9A-Za-z]{18}$")
_REGION = re.compile(r"^区域[:：=]?(?P<region>.+)$")


def parse(text: str) -> LeadIn | None:
    text = _COUNTRY.sub(r"\1", text)  # "+86 138..." is one phone, not two tokens
    tokens = [t for t in _SPLIT.split(text) if t]
    phone_at = next(
        (i for i, t in enumerate(tokens) if _PHONE.match(t) and sum(c.isdigit() for c in t) >= 7), None
    )
    if phone_at is None or phone_at == 0:
        return None
    rest = tokens[phone_at + 1 :]
    uscc = rest.pop(0) if rest and _USCC.match(rest[0]) else None
    regions = [m["region"] for t in rest if (m := _REGION.match(t))]
    rest = [t for t in rest if not _REGION.match(t)]
    return LeadIn(
        customer_name=" ".join(tokens[:phone_at]),
        phone=tokens[phone_at],
        uscc=uscc,
        project=" ".join(rest) or None,
        region=regions[-1] if regions else None,
    )


@router.command("报备", "客户报备")
async def handle_register(ctx: ChatContext, text: str) -> str:
    try:
        data = parse(text)
    except PydanticError as exc:
        return _refusal(exc)
    if data is None:
        return USAGE
    try:
        lead = await register_lead(ctx.me, data)
    except LeadConflict:
        await ctx.conversation.set(CONFLICT, {"lead": data.model_dump(mode="json")})
        raise
    except ValidationError as exc:
        if exc.details.get("field") != "region":
            raise
        example = (exc.details.get("regions") or ["华东"])[0]
        return f"{user_text(exc)}\n请在报备内容后加上“区域:{example}”再发送。"
    return render(lead)


FIELDS = {
    "customer_name": "客户名称",
    "phone": "电话",
    "uscc": "统一社会信用代码",
    "project": "项目",
    "region": "区域",
}


def _refusal(exc: PydanticError) -> str:
    """A field the API would refuse (400) is refused here too, saying which — never cut."""
    for err in exc.errors():
        name = FIELDS.get(str(err["loc"][0]) if err["loc"] else "", "")
        limit = (err.get("ctx") or {}).get("max_length")
        if name and limit:
            return f"{name}太长（最多 {limit} 字），没有报备。请核对后重新发送。\n{USAGE}"
    return USAGE


@router.state(CONFLICT)
async def handle_arbitration(ctx: ChatContext, state: State) -> str | None:
    if ctx.text not in ("仲裁", "申请仲裁"):
        return None
    await ctx.conversation.clear()
    data = LeadIn.model_validate({**state.data["lead"], "arbitration": True})
    return render(await register_lead(ctx.me, data))


@router.command("仲裁", "申请仲裁")
async def handle_nothing_to_arbitrate(ctx: ChatContext, _: str) -> str:
    return "没有待仲裁的报备。仲裁用于报备冲突时：先发送“报备 …”，提示冲突后回复“仲裁”。"


def render(lead: RegisteredLead) -> str:
    if lead.status == "protected" and lead.protected_until is not None:
        until = lead.protected_until.astimezone(BUSINESS_TZ).date()
        return f"报备成功：{lead.customer_name}\n保护期至 {until:%Y-%m-%d}。"
    why = "已申请仲裁" if lead.review_reason == "arbitration" else "与已有报备的客户名称相近"
    return f"已提交经理审核（{why}）：{lead.customer_name}\n审核结果会通知您。"
