"""合同 — contracts of the distributors in the caller's scope, soonest end first."""

from __future__ import annotations

from bot.router import ChatContext, Router
from core.money import money_str
from handlers.contracts_read import list_contracts

router = Router("contracts")

STATUS = {"draft": "草拟", "active": "生效中", "expired": "已到期", "terminated": "已终止"}
MAX_LINES = 10


@router.command("合同", "我的合同", "合同到期")
async def handle_contracts(ctx: ChatContext, _: str) -> str:
    rows = (await list_contracts(ctx.me, in_force=True, page_size=MAX_LINES)).items
    if not rows:
        return "没有进行中的合同。"
    out = ["合同（按到期日）："]
    for c in rows:
        left = f"剩{c.days_left}天" if c.days_left >= 0 else "已过期"
        target = f"，目标¥{money_str(c.target_amount)}" if c.target_amount is not None else ""
        status = STATUS.get(c.status, c.status)
        out.append(f"• {c.number} {c.distributor_name}")
        out.append(f"  {c.start_date}至{c.end_date}（{status}，{left}{target}）")
    return "\n".join(out)
