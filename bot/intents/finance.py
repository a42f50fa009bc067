"""返利, 对账单, 应收, 额度 — money questions a distributor (its own) or a rep / manager (the
distributors in scope) asks, through the same reads as the API and the Actor's scope."""

from __future__ import annotations

from bot.intents.commission import render_entries, requested_period
from bot.router import ChatContext, Router
from core.money import money_str
from handlers import commission_reads
from handlers.actor import Role
from handlers.chat import credit_status, receivables_status
from handlers.statements import StatementQuery, list_statements

router = Router("finance")

STATEMENT_KINDS = {"commission": "佣金对账单", "receivables": "应收对账单"}
STATEMENT_STATUS = {"open": "待确认", "confirmed": "已确认", "disputed": "有异议"}
TERMS = {"prepay": "款到发货", "monthly": "月结", "quarterly": "季结"}
MAX_LINES = 5


@router.command("返利", "我的返利", "本月返利", "上月返利", "返点")
async def handle_rebate(ctx: ChatContext, rest: str) -> str:
    """A distributor's rebates are its commission entries (beneficiary: the distributor)."""
    if ctx.me.role in (Role.admin, Role.manager):
        return "返利按经销商核算：请在管理后台的佣金/对账单中查看，或发送“对账单”。"
    data = await commission_reads.get_commissions(ctx.me, requested_period(ctx.text, rest))
    label = "返利" if ctx.me.role == Role.distributor else "佣金（返利是经销商的，这是您的佣金）"
    return render_entries(data, label)


@router.command("对账单", "我的对账单", "账单")
async def handle_statements(ctx: ChatContext, rest: str) -> str:
    period = requested_period(ctx.text, rest)  # "上个月对账单", "2026年11月对账单"
    page = await list_statements(ctx.me, StatementQuery(page=1, page_size=MAX_LINES, period=period))
    if not page.items:
        if period:
            return f"{period} 没有对账单。"
        return "还没有对账单（每月初生成上个月的对账单）。"
    out = [f"对账单（最近 {len(page.items)} 份，共 {page.total} 份）："]
    for st in page.items:
        kind = STATEMENT_KINDS.get(st.kind, st.kind)
        if st.kind == "commission" and st.beneficiary.type == "distributor":
            kind = "返利对账单"
        status = STATEMENT_STATUS.get(st.status, st.status)
        who = f" {st.beneficiary.name}" if ctx.me.role != Role.distributor and st.beneficiary.name else ""
        out.append(f"• {st.period} {kind}{who} ¥{money_str(st.total)}（{status}）")
    out.append("确认或提出异议请在小程序中操作。")
    return "\n".join(out)


@router.command("应收", "应收款", "欠款", "账款")
async def handle_receivables(ctx: ChatContext, _: str) -> str:
    rows = await receivables_status(ctx.me)
    if not rows:
        return "没有未结的应收款。"
    own = ctx.me.role == Role.distributor and len(rows) == 1
    out = ["应收款（欠款）：" if own else "应收款（按逾期多少排序）："]
    for r in rows:
        overdue = f"，其中逾期 ¥{money_str(r.overdue)}" if r.overdue else "，未逾期"
        since = f"（最早 {r.oldest_due:%Y-%m-%d} 到期）" if r.overdue and r.oldest_due else ""
        out.append(f"• {r.name}：¥{money_str(r.balance)}{overdue}{since}")
    return "\n".join(out)


@router.command("额度", "信用额度", "可用额度", "授信")
async def handle_credit(ctx: ChatContext, _: str) -> str:
    rows = await credit_status(ctx.me)
    if not rows:
        return "没有可查看的经销商。"
    out = ["信用额度："]
    for r in rows:
        terms = TERMS.get(r.payment_terms, r.payment_terms)
        if r.payment_terms == "prepay":
            out.append(f"• {r.name}（{terms}）：可用预付款 ¥{money_str(r.available)}")
            continue
        out.append(
            f"• {r.name}（{terms}）：额度 ¥{money_str(r.credit_limit)}，已用 ¥{money_str(r.used)}，"
            f"可用 ¥{money_str(r.available)}"
        )
    return "\n".join(out)
