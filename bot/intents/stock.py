"""查库存 <产品>, free questions ("螺纹钢还有货吗"), and picking from a numbered list."""

from __future__ import annotations

import re

from bot.conversation import State
from bot.router import ChatContext, Router
from handlers.chat import ProductStock, product_stock
from handlers.product_match import MatchResult, match_products

router = Router("stock")

PICK = "pick:stock"
_ASK = (
    r"(?:现在|目前|仓库里?)?"
    r"(?:还有货吗|有货吗|有没有货|还有没有货?|还有吗|有库存吗|库存还有多少|还有多少|库存多少|有多少货?|的库存|库存)"
)


@router.command("查库存", "库存", "查货")
async def handle_stock(ctx: ChatContext, query: str) -> str:
    if not query:
        return "请告诉我要查的商品，例如：查库存 螺纹钢Φ12"
    return await answer(ctx, query)


@router.pattern(rf"(?:请问|帮我查一?下)?(?P<q>.+?){_ASK}[?？。!！]*")
async def handle_stock_question(ctx: ChatContext, m: re.Match[str]) -> str:
    return await answer(ctx, m["q"])


@router.state(PICK)
async def handle_pick(ctx: ChatContext, state: State) -> str | None:
    choice = pick_number(ctx.text)
    if choice is None:
        return None  # not an answer to the list: route the text normally
    ids: list[int] = state.data.get("ids", [])
    if not 1 <= choice <= len(ids):
        return f"请回复 1 到 {len(ids)} 之间的序号。"
    await ctx.conversation.clear()
    return render(await product_stock(ctx.me, ids[choice - 1]))


def pick_number(text: str) -> int | None:
    m = re.fullmatch(r"(?:第)?\s*(\d{1,2})\s*(?:个|号)?", text)
    return int(m[1]) if m else None


async def answer(ctx: ChatContext, query: str) -> str:
    query = query.strip(" ，,。?？的")
    found = await answer_if_known(ctx, query)
    if found is None:
        return f"没有找到与“{query}”相符的商品。可以试试商品名称、拼音首字母或商品编码。"
    return found


async def answer_if_known(ctx: ChatContext, query: str) -> str | None:
    """The stock of the product meant (one match is the one meant: no "请回复序号"), a
    numbered list to pick from, or None when nothing in the catalogue matches."""
    result = await match_products(query)
    only = result.best or (result.hits[0] if result.total == 1 else None)
    if only is not None:
        return render(await product_stock(ctx.me, only.id))
    if not result.hits:
        return None
    await ctx.conversation.set(PICK, {"ids": [h.id for h in result.hits]})
    return numbered(result, "请回复序号（如 1）查看库存。")


def numbered(result: MatchResult, tail: str) -> str:
    lines = [f"找到 {result.total} 个相符的商品：" if result.total > len(result.hits) else "找到以下商品："]
    lines += [f"{i}. {h.name}（{h.sku}）" for i, h in enumerate(result.hits, 1)]
    if result.total > len(result.hits):
        lines.append(f"……只列出前 {len(result.hits)} 个，说得更具体些可以缩小范围。")
    lines.append(tail)
    return "\n".join(lines)


def render(stock: ProductStock) -> str:
    head = f"{stock.name}（{stock.sku}）"
    if stock.available <= 0:
        return f"{head}\n目前无可用库存。"
    places = "\n".join(f"• {p.warehouse_name}：{p.available}{stock.unit}" for p in stock.places)
    return f"{head}\n可用库存 {stock.available}{stock.unit}：\n{places}"
