"""Stock routes: on-hand, reserved and available per warehouse the caller may see."""

from __future__ import annotations

from pydantic import Field

from core.schema import Id, Page, PageQuery
from handlers import stock
from handlers.stock import StockRow
from miniapp_api.framework import Api, Ctx

api = Api()


class StockQuery(PageQuery):
    sku: str | None = Field(None, max_length=64)
    warehouse_id: Id | None = None


@api.route("GET", "/stock", query=StockQuery, response=Page[StockRow], tags=("stock",))
async def list_stock(ctx: Ctx) -> Page[StockRow]:
    """Stock rows: company warehouses plus the warehouses of distributors in your scope
    (a warehouse_id outside them is 404)."""
    q: StockQuery = ctx.query
    return await stock.list_stock(
        ctx.me, sku=q.sku, warehouse_id=q.warehouse_id, page=q.page, page_size=q.page_size
    )
