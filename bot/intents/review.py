"""审核 — a manager approves or rejects pending orders from chat: "审核" lists them, "通过 1" /
"通过 SO…" approves, "驳回 1 价格有误" / "驳回 SO… 原因" rejects. The same use-cases as POST
/api/v1/orders/{id}/approve|reject, with the sender's Actor: the same roles (admin, manager),
the same scope (a manager's regions), the same checks (prepay covered, still pending)."""

from __future__ import annotations

import re

from bot.router import ChatContext, Router
from core.clock import BUSINESS_TZ
from core.money import money_str
from handlers import ordering
from handlers.actor import STAFF
from handlers.chat import get_order_by_number

router = Router("review")

LISTED = "review:list"  # {numbers}: what "通过 1" refers to
MAX_LISTED = 9
MAX_REASON = 500
_NUMBER = re.compile(r"SO\d{12}", re.I)
_INDEX = re.compile(r"^(?:第)?\s*(\d{1,2})\s*(?:个|单)?(?=\s|$|[,，:：])")
NOT_STAFF = "审核订单需要经理或管理员权限。发送“订单”可以查看订单状态。"


@router.command("审核", "待审核", "审核订单", "审批")
async def handle_review(ctx: ChatContext, _: str) -> str:
    if ctx.me.role not in STAFF:
        return NOT_STAFF
    page = await ordering.list_orders(ctx.me, status="pending_review", page=1, page_size=MAX_LISTED)
    if not page.items:
        await ctx.conversation.clear()
        return "没有待审核的订单。"
    await ctx.conversation.set(LISTED, {"numbers": [o.number for o in page.items]})
    more = "" if page.total <= MAX_LISTED else f"，先列最新的 {MAX_LISTED} 个"
    out = [f"待审核订单 {page.total} 个{more}："]
    for i, o in enumerate(page.items, 1):
        day = o.created_at.astimezone(BUSINESS_TZ)
        out.append(f"{i}. {o.number} {o.distributor_name} ¥{money_str(o.total_amount)} {day:%m-%d %H:%M}")
    out.append("回复“通过 1”或“驳回 1 原因”；“查订单 单号”看明细。")
    return "\n".join(out)


@router.command("通过", "审核通过", "批准")
async def handle_approve(ctx: ChatContext, rest: str) -> str:
    if ctx.me.role not in STAFF:
        return NOT_STAFF
    number, _ = await _which(ctx, rest)
    if number is None:
        return "请写上要通过的订单：“通过 1”（先发“审核”列出待审核订单）或“通过 SO单号”。"
    order = await get_order_by_number(ctx.me, number)
    done = await ordering.approve_order(ctx.me, order.id)
    return f"已通过：{done.number}（{done.distributor_name}，¥{money_str(done.total_amount)}）。"


@router.command("驳回", "拒绝")
async def handle_reject(ctx: ChatContext, rest: str) -> str:
    if ctx.me.role not in STAFF:
        return NOT_STAFF
    number, reason = await _which(ctx, rest)
    if number is None:
        return "请写上要驳回的订单和原因：“驳回 1 价格有误”或“驳回 SO单号 原因”。"
    if not reason:
        return f"请写上驳回原因，例如：驳回 {number} 价格有误"
    if len(reason) > MAX_REASON:
        return f"驳回原因太长（最多 {MAX_REASON} 字），请精简后重发。"
    order = await get_order_by_number(ctx.me, number)
    done = await ordering.reject_order(ctx.me, order.id, reason)
    return f"已驳回：{done.number}（{done.distributor_name}），原因：{reason}。"


async def _which(ctx: ChatContext, rest: str) -> tuple[str | None, str]:
    """(order number, the words after it) from "SO…", a number from the last list, or nothing
    when the last list had exactly one order."""
    rest = rest.strip()
    m = _NUMBER.search(rest)
    if m is not None:
        return m[0].upper(), (rest[: m.start()] + rest[m.end() :]).strip(" ,，:：")
    state = ctx.state if ctx.state is not None and ctx.state.kind == LISTED else None
    numbers: list[str] = state.data.get("numbers", []) if state else []
    i = _INDEX.match(rest)
    if i is not None:
        n = int(i[1])
        if 1 <= n <= len(numbers):
            return numbers[n - 1], rest[i.end() :].strip(" ,，:：")
        return None, ""
    if len(numbers) == 1:
        return numbers[0], rest
    return None, rest
