"""佣金 / 本月佣金 / 上月佣金 / 佣金 2026-10 — the caller's commission entries of a month."""

from __future__ import annotations

import re

from bot.router import ChatContext, Router
from core.money import money_str
from handlers import commission_reads, periods

router = Router("commission")

KINDS = {"accrual": "计提", "reversal": "退货冲回", "adjustment": "阶梯调整"}
_MONTH = re.compile(r"(\d{4})\s*[-年/.]\s*(\d{1,2})")
MAX_LINES = 10


@router.command("本月佣金", "上月佣金", "佣金", "我的佣金", "提成")
async def handle_commission(ctx: ChatContext, rest: str) -> str:
    period = _period(ctx.text, rest)
    data = await commission_reads.get_commissions(ctx.me, period)
    if not data.items:
        return f"{data.period} 暂无佣金记录。"
    out = [f"{data.period} 佣金合计 ¥{money_str(data.total)}（{len(data.items)} 笔）："]
    for item in data.items[-MAX_LINES:]:
        ref = item.order_number or item.rule_name
        out.append(f"• {KINDS.get(item.kind, item.kind)} {ref} ¥{money_str(item.amount)}")
    if len(data.items) > MAX_LINES:
        out.append(f"……只列出最近 {MAX_LINES} 笔，完整明细请在小程序查看。")
    return "\n".join(out)


def _period(text: str, rest: str) -> str | None:
    m = _MONTH.search(rest)
    if m and 1 <= int(m[2]) <= 12:
        return f"{m[1]}-{int(m[2]):02d}"
    if text.startswith("上月"):
        return periods.previous_month(periods.current_month())
    return None  # this month
