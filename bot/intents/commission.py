"""佣金 / 本月佣金 / 上月佣金 / 佣金 2026-10 / "上个月提成多少" — the caller's commission entries
of a month."""

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
    data = await commission_reads.get_commissions(ctx.me, requested_period(ctx.text, rest))
    return render_entries(data, "佣金")


def render_entries(data: commission_reads.CommissionsOut, label: str) -> str:
    if not data.items:
        return f"{data.period} 暂无{label}记录。"
    out = [f"{data.period} {label}合计 ¥{money_str(data.total)}（{len(data.items)} 笔）："]
    for item in data.items[-MAX_LINES:]:
        ref = item.order_number or item.rule_name
        out.append(f"• {KINDS.get(item.kind, item.kind)} {ref} ¥{money_str(item.amount)}")
    if len(data.items) > MAX_LINES:
        out.append(f"……只列出最近 {MAX_LINES} 笔，完整明细请在小程序查看。")
    return "\n".join(out)


def requested_period(text: str, rest: str) -> str | None:
    """A month named in the words ("2026-10", "2026年10月"), 上月 / 上个月, else None (this month)."""
    m = _MONTH.search(rest) or _MONTH.search(text)
    if m and 1 <= int(m[2]) <= 12:
        return f"{m[1]}-{int(m[2]):02d}"
    if "上月" in text or "上个月" in text or "上月" in rest:
        return periods.previous_month(periods.current_month())
    return None  # this month
