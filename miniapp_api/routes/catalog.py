"""Catalog routes: products with the caller's own price and availability."""

from __future__ import annotations

from pydantic import Field

from core.schema import Id, Page, PageQuery, Query
from handlers import catalog
from handlers.catalog import ProductOut
from miniapp_api.framework import Api, Ctx

api = Api()


class ProductsQuery(PageQuery):
    q: str | None = Field(None, max_length=100)
    category: str | None = Field(None, max_length=64)
    distributor_id: Id | None = Field(None, description="price for this distributor (in scope)")


class ProductPriceQuery(Query):
    distributor_id: Id | None = Field(None, description="price for this distributor (in scope)")


@api.route("GET", "/products", query=ProductsQuery, response=Page[ProductOut], tags=("catalog",))
async def list_products(ctx: Ctx) -> Page[ProductOut]:
    """Products matching q (name, pinyin, initials, SKU) and category, with your own price.

    Staff and sales reps without a distributor see the level-1 base price unless they pass
    `distributor_id` (a distributor in their scope)."""
    q: ProductsQuery = ctx.query
    return await catalog.list_products(
        ctx.me,
        q=q.q,
        category=q.category,
        distributor_id=q.distributor_id,
        page=q.page,
        page_size=q.page_size,
    )


@api.route(
    "GET",
    r"/products/{id:\d+}",
    query=ProductPriceQuery,
    response=ProductOut,
    scope="object",
    tags=("catalog",),
)
async def get_product(ctx: Ctx) -> ProductOut:
    """One product with your own price and availability."""
    return await catalog.get_product(ctx.me, int(ctx.params["id"]), distributor_id=ctx.query.distributor_id)
