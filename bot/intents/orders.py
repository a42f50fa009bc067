"""下单 (multi-turn: distributor -> items -> priced summary -> 确认/取消), 订单, 查订单 <单号>.

Placing goes through `handlers.ordering.place_order` — the same admission and Idempotency as
POST /api/v1/orders — with the key `chat:<channel>:<sender>:<conversation id>`, so a 确认
sent twice (or redelivered) never makes a second order. States (kv, 10 minutes):
order:distributor {ids} -> order:items {distributor_id} -> [order:fix {chosen, pending}] ->
order:confirm {distributor_id, lines} -> order:placed {number}.

Items come as the rep writes them (`bot.understand.parse_items`: "螺纹钢12 三吨 水泥 100袋",
"2.5吨"). An item that is ambiguous (several products), unknown, fractional (quantities are
whole units) or in another unit is asked about alone (order:fix) — the rest are kept, so
nobody re-sends the whole list; one matching product is taken without asking.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from bot.conversation import State
from bot.intents.stock import pick_number
from bot.quantities import MAX_ITEMS, MAX_QTY, Item, parse_item, parse_items, parse_qty
from bot.router import ChatContext, Router
from bot.understand import understand
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
    units_of,
)
from handlers.order_io import ORDER_STATUS_ZH
from handlers.product_match import match_products

__all__ = ["MAX_ITEMS", "MAX_QTY", "Item", "parse_item", "parse_items", "router"]

router = Router("orders")

PICK_DISTRIBUTOR, ITEMS, CONFIRM, PLACED = "order:distributor", "order:items", "order:confirm", "order:placed"
FIX = "order:fix"  # one item is unclear: ask about it alone, keep the others
YES = ("确认", "确定", "提交", "是", "好", "好的", "可以", "ok", "yes")
NO = ("取消", "不要了", "算了", "否", "no")

STATUS = ORDER_STATUS_ZH  # one table of order states as people read them
_NUMBER = re.compile(r"SO\d{12}", re.I)
PROMPT = "请发送商品和数量，例如：螺纹钢Φ12 5吨，水泥 100袋\n回复“取消”放弃下单。"
SKIP = ("跳过", "不要这个", "这个不要了", "去掉", "删掉")


# --- 下单 -------------------------------------------------------------------------------


@router.command("下单", "订货", "我要下单")
async def handle_order(ctx: ChatContext, rest: str) -> str:
    items = parse_items(rest) if rest else None
    dists = await order_distributors(ctx.me, None if (items or not rest) else rest)
    if not dists and rest and not items:
        return (
            f"没有找到名为“{rest}”的经销商（或不在您的负责范围内）。\n"
            "下单请先发送“下单”选经销商，再发送商品和数量，如：盘螺8 3吨"
        )
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
        words = understand(ctx.text)
        if words.intent == "quantity":  # a quantity without its product
            return f"请连同商品一起发送，例如：螺纹钢12 {ctx.text}\n回复“取消”放弃下单。"
        if words.intent == "product":  # a product without its quantity
            name = words.slots["product"]
            return f"“{name}”要多少？请带上数量和单位，例如：{name} 3吨\n回复“取消”放弃下单。"
        return "没看懂商品和数量。" + PROMPT
    return await _summarise(ctx, state, items)


async def _summarise(ctx: ChatContext, state: State, items: list[Item]) -> str:
    chosen: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    for item in items:
        pending.append(await _entry(item))
    return await _continue(ctx, state, chosen, pending)


async def _entry(item: Item) -> dict[str, Any]:
    """An item with the product it means (one clear or only match), or the candidates."""
    entry: dict[str, Any] = {"text": item.text, "qty": str(item.qty), "unit": item.unit}
    result = await match_products(item.text)
    hit = result.best or (result.hits[0] if result.total == 1 else None)
    if hit is not None:
        return entry | {"id": hit.id, "name": hit.name, "product_unit": hit.unit}
    return entry | {"hits": [[h.id, h.name, h.unit] for h in result.hits], "total": result.total}


def _same_unit(typed: str | None, unit: str) -> bool:
    return typed is None or typed.lower() == unit.lower() or (typed in ("t", "T") and unit == "吨")


def _problem(entry: dict[str, Any]) -> str | None:
    """Why this item cannot go into the order yet, as a question to the user; None if it can."""
    text, qty, typed = entry["text"], Decimal(entry["qty"]), entry["unit"]
    if entry.get("id") is None:
        if not entry.get("hits"):
            return f"没有找到“{text}”。请重新发送这一项（商品名称和数量），或回复“跳过”。"
        lines = [f"{i}. {name}" for i, (_, name, _) in enumerate(entry["hits"], 1)]
        more = "（只列出前几个，说得更具体些可以缩小范围）" if entry.get("total", 0) > len(lines) else ""
        return f"“{text}”有多个商品{more}，请回复序号：\n" + "\n".join(lines)
    name, unit = entry["name"], entry["product_unit"]
    if not _same_unit(typed, unit):
        return f"“{name}”的单位是{unit}，不是{typed}。请回复数量（{unit}），或回复“跳过”。"
    if qty != qty.to_integral_value():
        low, high = qty.to_integral_value(ROUND_FLOOR), qty.to_integral_value(ROUND_CEILING)
        hint = f"{low}或{high}" if low > 0 else f"{high}"
        return (
            f"“{name}”按{unit}整数下单，{qty.normalize()}{unit}不是整数。"
            f"请回复整数数量（如 {hint}），或回复“跳过”。"
        )
    return None


async def _continue(
    ctx: ChatContext, state: State, chosen: list[dict[str, Any]], pending: list[dict[str, Any]]
) -> str:
    """Move every clear item into `chosen`; ask about the first unclear one, else summarise."""
    while pending and _problem(pending[0]) is None:
        chosen.append(pending.pop(0))
    base = {k: state.data[k] for k in ("distributor_id", "distributor_name") if k in state.data}
    if pending:
        await ctx.conversation.set(FIX, base | {"chosen": chosen, "pending": pending}, conv_id=state.conv_id)
        others = len(chosen) + len(pending) - 1
        kept = f"\n（其余 {others} 项已记下，不用重发。）" if others else ""
        return f"{_problem(pending[0])}{kept}"
    if not chosen:
        await ctx.conversation.set(ITEMS, base, conv_id=state.conv_id)
        return "没有可下单的商品了。" + PROMPT
    items = [(int(e["id"]), int(Decimal(e["qty"]))) for e in chosen]
    preview = await preview_order(ctx.me, state.data["distributor_id"], items)
    if preview.unpriced:
        names = "、".join(line.name for line in preview.unpriced)
        return f"{names} 暂无价格，不能下单。请换其他商品，或联系业务经理。"
    lines = [{"sku": line.sku, "qty": line.qty} for line in preview.lines]
    # A fresh conversation id per summary: 确认 of this summary (however often) is one order;
    # a changed summary is another order intent with its own key.
    await ctx.conversation.set(CONFIRM, base | {"lines": lines})
    return render_preview(preview)


@router.state(FIX)
async def handle_fix(ctx: ChatContext, state: State) -> str | None:
    """The answer about one unclear item: a number from its list, a whole quantity, the item
    written again, or 跳过; the other items stay as they were."""
    text = ctx.text
    if text in NO or understand(text).intent == "cancel":
        await ctx.conversation.clear()
        return "好的，已取消下单。"
    chosen: list[dict[str, Any]] = list(state.data.get("chosen", []))
    pending: list[dict[str, Any]] = list(state.data.get("pending", []))
    if not pending:
        return None
    entry = dict(pending[0])
    if text in SKIP:
        return await _continue(ctx, state, chosen, pending[1:])
    if understand(text).intent == "confirm":
        return f"还有一项没确定：{_problem(entry)}"
    if ctx.has_other_intent():
        return None  # "查库存 …", "订单": answered; the order waits unless that starts another step
    fixed = await _fixed(entry, text)
    if fixed is None:
        return f"没看懂。{_problem(entry)}"
    return await _continue(ctx, state, chosen, [fixed, *pending[1:]])


async def _fixed(entry: dict[str, Any], text: str) -> dict[str, Any] | None:
    if entry.get("id") is None and entry.get("hits"):
        n = pick_number(text)
        if n is not None and 1 <= n <= len(entry["hits"]):
            pid, name, unit = entry["hits"][n - 1]
            return entry | {"id": pid, "name": name, "product_unit": unit}
    if entry.get("id") is not None:
        qty = parse_qty(text)
        if qty is not None:
            return entry | {"qty": str(qty[0]), "unit": qty[1] or entry["product_unit"]}
    item = parse_item(text)
    if item is not None and 0 < item.qty <= MAX_QTY:
        return await _entry(item)
    if entry.get("id") is None and parse_qty(text) is None and len(text) <= 40:
        return await _entry(Item(text, _qty_of(entry), entry["unit"]))  # the name alone, again
    return None


def _qty_of(entry: dict[str, Any]) -> int | Decimal:
    qty = Decimal(entry["qty"])
    return int(qty) if qty == qty.to_integral_value() else qty


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
    intent = understand(ctx.text).intent
    if (answer in NO or intent == "cancel") and state.kind == CONFIRM:
        await ctx.conversation.clear()
        return "好的，已取消下单。"
    if answer not in YES and intent != "confirm":
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
    return render_order(order, await units_of([line.sku for line in order.lines]))


def render_order(order: ordering.OrderOut, units: dict[str, str]) -> str:
    """One order: its lines with units, gifts apart from paid units (a gift shipped is not an
    over-shipment), what shipped and came back, the shipments and the returns."""
    out = [
        f"订单 {order.number}（{order.distributor_name}）：{STATUS.get(order.status, order.status)}",
        f"下单时间 {order.created_at.astimezone(BUSINESS_TZ):%Y-%m-%d %H:%M}，"
        f"金额 ¥{money_str(order.total_amount)}",
    ]
    names = {line.sku: line.name for line in order.lines}
    for line in order.lines:
        unit = units.get(line.sku, "")
        out.append(f"• {line.name} × {line.qty}{unit}  ¥{money_str(line.amount)}")
        total = line.qty + line.free_qty
        notes = [f"赠{line.free_qty}{unit}"] if line.free_qty else []
        if line.shipped_qty:
            notes.append(f"已发 {line.shipped_qty}/{total}{unit}")
        if line.returned_qty:
            notes.append(f"已退 {line.returned_qty}{unit}")
        if notes:
            out.append(f"  （{'，'.join(notes)}）")
    for sh in order.shipments or []:
        day = sh.shipped_at.astimezone(BUSINESS_TZ)
        carrier = "".join(f" {x}" for x in (sh.carrier, sh.tracking_no) if x)
        received = "，已签收" if sh.received_at else ""
        out.append(f"发货 {day:%m-%d}{carrier}：{_what(sh.lines, names, units)}{received}")
    for r in order.returns or []:
        day = r.created_at.astimezone(BUSINESS_TZ)
        refund = f"退款 ¥{money_str(r.amount)}（{r.reason}）"
        out.append(f"退货 {day:%m-%d}：{_what(r.lines, names, units)}，{refund}")
    if order.reject_reason:
        out.append(f"驳回原因：{order.reject_reason}")
    return "\n".join(out)


def _what(lines: list[ordering.QtyOut], names: dict[str, str], units: dict[str, str]) -> str:
    return "、".join(f"{names.get(q.sku, q.sku)} × {q.qty}{units.get(q.sku, '')}" for q in lines)


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
        status = STATUS.get(o.status, o.status)
        out.append(f"• {o.number} {o.distributor_name} {status} ¥{money_str(o.total_amount)} {day:%m-%d}")
    out.append("发送“查订单 单号”看详情。")
    return "\n".join(out)
