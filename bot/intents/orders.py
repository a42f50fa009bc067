"""下单 (multi-turn: distributor -> items -> priced summary -> 确认/取消), 订单, 查订单 <单号>.

Placing goes through `handlers.ordering.place_order` — the same admission and Idempotency as
POST /api/v1/orders — with the key `chat:<channel>:<sender>:<conversation id>`, so a 确认
sent twice (or redelivered) never makes a second order. States (kv, 10 minutes):
order:distributor {ids} -> order:items {distributor_id} -> order:confirm {distributor_id,
lines} -> order:placed {number}.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.conversation import State
from bot.router import ChatContext, Router
from core.clock import BUSINESS_TZ
from core.errors import InsufficientStock, NotFound
from core.money import money_str
from handlers import ordering
from handlers.chat import (
    DistributorBrief,
    OrderPreview,
    get_order_by_number,
    get_order_distributor,
    order_distributors,
    preview_order,
)
from handlers.product_match import match_products

router = Router("orders")

PICK_DISTRIBUTOR, ITEMS, CONFIRM, PLACED = "order:distributor", "order:items", "order:confirm", "order:placed"
YES = ("确认", "确定", "提交", "是", "好", "ok", "yes")
NO = ("取消", "不要了", "算了", "否", "no")
MAX_QTY = 1_000_000
MAX_ITEMS = 20

STATUS = {
    "pending_review": "待审核",
    "approved": "已审核",
    "shipped": "已发货",
    "received": "已收货",
    "completed": "已完成",
    "rejected": "已驳回",
    "cancelled": "已取消",
}
UNITS = tuple("吨|袋|件|箱|根|张|卷|桶|个|套|支|立方|方|米|包|盒|瓶|条|块|台|t|T".split("|"))
_BY_LENGTH = sorted(UNITS, key=len, reverse=True)  # "立方" before "方"
TIMES = "x×*"
# Parts are separated by punctuation or a spaced 和/以及. The lookbehind tries a run of spaces
# once, from its start, not from every space in it (quadratic); a newline the first branch took
# may still start one, as before.
_SPLIT = re.compile(r"[,，;；、\n]+|(?<![^\S\n])\s+(?:和|以及)\s*")
_NUMBER = re.compile(r"SO\d{12}", re.I)
PROMPT = "请发送商品和数量，例如：螺纹钢Φ12 5吨，水泥 100袋\n回复“取消”放弃下单。"


@dataclass(frozen=True)
class Item:
    text: str
    qty: int
    unit: str | None


def parse_items(text: str) -> list[Item] | None:
    """The items of a message, or None if any part lacks a quantity."""
    parts = [p.strip() for p in _SPLIT.split(text) if p.strip()]
    if not parts or len(parts) > MAX_ITEMS:
        return None
    items: list[Item] = []
    for part in parts:
        item = parse_item(part)
        if item is None or not 0 < item.qty <= MAX_QTY:
            return None
        items.append(item)
    return items


def parse_item(part: str) -> Item | None:
    """`<product> 5吨`, `<product> x5`, `<product>100袋` (a stripped part); None without a quantity.

    The number must be set off by a space or an x, or carry a unit — so "螺纹钢Φ12" is a
    product without a quantity, not 12 of "螺纹钢Φ". Read from the right in one pass (a regex
    with a lazy name before `\\s+\\d+` backtracks quadratically on long runs of spaces); the
    result is the regex's: the shortest name that leaves a valid quantity after it.
    """
    unit = next((u for u in _BY_LENGTH if part.endswith(u)), None)
    body = (part[: -len(unit)] if unit else part).rstrip()
    start = len(body)
    while start and body[start - 1].isdecimal():
        start -= 1
    digits, before = body[start:], body[:start]
    if not digits:
        return None
    name = before.rstrip()
    spaced = len(name) < len(before)
    if name and name[-1] in TIMES and name[:-1].rstrip():
        name = name[:-1].rstrip()  # "水泥 x 5", "水泥x5"
    elif not name:  # "15吨": the name must have a character, so it takes the first digit
        if not unit or len(digits) < 2:
            return None
        name, digits = digits[0], digits[1:]
    elif not (spaced or unit):
        return None  # "螺纹钢Φ12" is a spec, not a quantity; "x5" has nothing before the x
    try:
        qty = int(digits)
    except ValueError:  # more digits than int() reads: no sane quantity either
        return None
    return Item(name.strip(), qty, unit)


# --- 下单 -------------------------------------------------------------------------------


@router.command("下单", "订货", "我要下单")
async def handle_order(ctx: ChatContext, rest: str) -> str:
    items = parse_items(rest) if rest else None
    dists = await order_distributors(ctx.me, None if (items or not rest) else rest)
    if not dists:
        return "没有可以下单的经销商（名称不符，或不在您的负责范围内）。"
    if len(dists) > 1:
        await ctx.conversation.set(PICK_DISTRIBUTOR, {"ids": [d.id for d in dists]})
        lines = [f"{i}. {d.name}" for i, d in enumerate(dists, 1)]
        return "为哪个经销商下单？请回复序号：\n" + "\n".join(lines) + "\n（也可以发送“下单 经销商名称”）"
    return await _start_items(ctx, dists[0], items, conv_id=None)


async def _start_items(
    ctx: ChatContext, dist: DistributorBrief, items: list[Item] | None, conv_id: str | None
) -> str:
    data = {"distributor_id": dist.id, "distributor_name": dist.name}
    state = await ctx.conversation.set(ITEMS, data, conv_id=conv_id)
    if items:
        return await _summarise(ctx, state, items)
    return f"为“{dist.name}”下单。\n{PROMPT}"


@router.state(PICK_DISTRIBUTOR)
async def handle_pick_distributor(ctx: ChatContext, state: State) -> str | None:
    m = re.fullmatch(r"(\d{1,2})", ctx.text)
    if m is None:
        return None
    ids: list[int] = state.data["ids"]
    n = int(m[1])
    if not 1 <= n <= len(ids):
        return f"请回复 1 到 {len(ids)} 之间的序号。"
    try:
        dist = await get_order_distributor(ctx.me, ids[n - 1])
    except NotFound:
        await ctx.conversation.clear()
        return "这个经销商已不在您的负责范围内，或已停用。"
    return await _start_items(ctx, dist, None, conv_id=state.conv_id)


@router.state(ITEMS)
async def handle_items(ctx: ChatContext, state: State) -> str | None:
    if ctx.text in NO:
        await ctx.conversation.clear()
        return "好的，已取消下单。"
    if ctx.has_other_intent():
        return None  # a command ("下单 …", "查库存 …") or a question: route it normally
    items = parse_items(ctx.text)
    if items is None:
        return "没看懂商品和数量。" + PROMPT
    return await _summarise(ctx, state, items)


async def _summarise(ctx: ChatContext, state: State, items: list[Item]) -> str:
    chosen: list[tuple[int, int]] = []
    problems: list[str] = []
    units: dict[int, str | None] = {}
    for item in items:
        result = await match_products(item.text)
        if result.best is None:
            if len(result.hits) == 1:
                problems.append(f"“{item.text}”是指“{result.hits[0].name}”吗？请写完整名称或商品编码。")
            elif result.hits:
                names = "、".join(h.name for h in result.hits[:3])
                problems.append(f"“{item.text}”有多个商品（{names}…），请写得更具体。")
            else:
                problems.append(f"没有找到“{item.text}”。")
            continue
        chosen.append((result.best.id, item.qty))
        units[result.best.id] = item.unit
    if problems:
        return "\n".join(problems) + "\n请重新发送商品和数量。"
    preview = await preview_order(ctx.me, state.data["distributor_id"], chosen)
    wrong_unit = [
        f"“{line.name}”的单位是{line.unit}，不是{units[pid]}。"
        for (pid, _), line in zip(chosen, preview.lines, strict=True)
        if units[pid]
        and units[pid].lower() != line.unit.lower()
        and not (units[pid] in "tT" and line.unit == "吨")
    ]
    if wrong_unit:
        return "\n".join(wrong_unit) + "\n请重新发送商品和数量。"
    if preview.unpriced:
        names = "、".join(line.name for line in preview.unpriced)
        return f"{names} 暂无价格，不能下单。请换其他商品，或联系业务经理。"
    lines = [{"sku": line.sku, "qty": line.qty} for line in preview.lines]
    data = {**state.data, "lines": lines}
    # A fresh conversation id per summary: 确认 of this summary (however often) is one order;
    # a changed summary is another order intent with its own key.
    await ctx.conversation.set(CONFIRM, data)
    return render_preview(preview)


def render_preview(preview: OrderPreview) -> str:
    out = [f"请确认订单（{preview.distributor.name}）："]
    for i, line in enumerate(preview.lines, 1):
        free = f"，赠{line.free_qty}{line.unit}" if line.free_qty else ""
        off = f"，优惠¥{money_str(line.discount)}" if line.discount else ""
        out.append(
            f"{i}. {line.name} × {line.qty}{line.unit}  单价¥{money_str(line.unit_price)}"  # type: ignore[arg-type]
            f"  小计¥{money_str(line.amount)}{off}{free}"  # type: ignore[arg-type]
        )
        if line.available < line.qty + line.free_qty:
            out.append(f"   （当前可用库存 {line.available}{line.unit}，可能不足）")
    out.append(f"合计：¥{money_str(preview.total)}")
    out.append("回复“确认”提交，回复“取消”放弃。")
    return "\n".join(out)


@router.state(CONFIRM, PLACED)
async def handle_confirm(ctx: ChatContext, state: State) -> str | None:
    answer = ctx.text.lower()
    if answer in NO and state.kind == CONFIRM:
        await ctx.conversation.clear()
        return "好的，已取消下单。"
    if answer not in YES:
        items = None if ctx.has_other_intent() else parse_items(ctx.text)
        if state.kind == CONFIRM and items:
            return await _summarise(ctx, state, items)  # changed their mind: a new summary
        return None
    body = {"distributor_id": state.data["distributor_id"], "lines": state.data["lines"]}
    try:
        order = await ordering.place_order(
            ctx.me, idempotency_key=ctx.idempotency_key(state.conv_id), body=body
        )
    except InsufficientStock as exc:
        short = [
            f"{i.get('sku')}：需要{i.get('requested')}，可用{i.get('available')}"
            for i in exc.details.get("items", [])
            if isinstance(i, dict)
        ]
        return "库存不足，订单未提交：\n" + "\n".join(short) + "\n可以发送新的数量，或回复“取消”。"
    await ctx.conversation.set(PLACED, {**state.data, "number": order.number}, conv_id=state.conv_id)
    status = STATUS.get(order.status, order.status)
    return f"订单已提交：{order.number}\n金额 ¥{money_str(order.total_amount)}，状态：{status}。"


@router.command("确认")
async def handle_nothing_to_confirm(ctx: ChatContext, _: str) -> str:
    return "没有待确认的订单。发送“下单”开始。"


# --- 订单 / 查订单 ------------------------------------------------------------------------


@router.command("查订单", "订单详情")
async def handle_order_detail(ctx: ChatContext, rest: str) -> str:
    m = _NUMBER.search(rest)
    if m is None:
        return await _recent(ctx)
    order = await get_order_by_number(ctx.me, m[0])
    out = [
        f"订单 {order.number}：{STATUS.get(order.status, order.status)}",
        f"下单时间 {order.created_at.astimezone(BUSINESS_TZ):%Y-%m-%d %H:%M}，"
        f"金额 ¥{money_str(order.total_amount)}",
    ]
    for line in order.lines:
        shipped = f"（已发{line.shipped_qty}）" if line.shipped_qty else ""
        out.append(f"• {line.name} × {line.qty}  ¥{money_str(line.amount)}{shipped}")
    if order.reject_reason:
        out.append(f"驳回原因：{order.reject_reason}")
    return "\n".join(out)


@router.command("订单", "我的订单", "最近订单")
async def handle_orders(ctx: ChatContext, rest: str) -> str:
    if _NUMBER.search(rest):
        return await handle_order_detail(ctx, rest)
    return await _recent(ctx)


async def _recent(ctx: ChatContext) -> str:
    page = await ordering.list_orders(ctx.me, page=1, page_size=5)
    if not page.items:
        return "还没有订单。发送“下单”开始。"
    out = [f"最近 {len(page.items)} 个订单（共 {page.total} 个）："]
    for o in page.items:
        day = o.created_at.astimezone(BUSINESS_TZ)
        out.append(f"• {o.number} {STATUS.get(o.status, o.status)} ¥{money_str(o.total_amount)} {day:%m-%d}")
    out.append("发送“查订单 单号”看详情。")
    return "\n".join(out)
