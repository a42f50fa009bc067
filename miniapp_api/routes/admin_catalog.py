"""Admin catalogue API: products (writes admin only), price lists and promotions (a manager
only for its regions)."""

from __future__ import annotations

from aiohttp import web

from core.schema import Page
from handlers import admin_catalog as catalog
from handlers.admin_catalog import (
    AdminProductOut,
    PriceListIn,
    PriceListOut,
    PriceListPatch,
    PriceListQuery,
    ProductIn,
    ProductPatch,
    ProductQuery,
    PromotionIn,
    PromotionOut,
    PromotionPatch,
    PromotionQuery,
)
from miniapp_api.framework import Api, Ctx
from miniapp_api.routes.admin import ID, STAFF, listing

api = Api()
ADMIN = {"admin"}
T_PROD = ("admin: products",)
T_PRICE = ("admin: price lists",)
T_PROMO = ("admin: promotions",)


@api.route(
    "POST", "/admin/products", body=ProductIn, response=AdminProductOut, status=201, roles=ADMIN, tags=T_PROD
)
async def create_product(ctx: Ctx) -> AdminProductOut:
    """A product (SKU); pinyin and initials are computed from the name."""
    return await catalog.create_product(ctx.me, ctx.body)


@api.route(
    "GET", "/admin/products", query=ProductQuery, response=Page[AdminProductOut], roles=STAFF, tags=T_PROD
)
async def list_products(ctx: Ctx) -> Page[AdminProductOut] | web.Response:
    """Products by SKU/name/pinyin, category, status (?format=xlsx exports every match)."""
    return await listing(ctx, catalog.list_products, "products")


@api.route("GET", f"/admin/products/{ID}", response=AdminProductOut, roles=STAFF, scope="object", tags=T_PROD)
async def get_product(ctx: Ctx) -> AdminProductOut:
    """One product."""
    return await catalog.get_product(ctx.me, ctx.id)


@api.route(
    "PATCH",
    f"/admin/products/{ID}",
    body=ProductPatch,
    response=AdminProductOut,
    roles=ADMIN,
    scope="object",
    tags=T_PROD,
)
async def update_product(ctx: Ctx) -> AdminProductOut:
    """Change a product (SKU fixed); status inactive hides it from ordering."""
    return await catalog.update_product(ctx.me, ctx.id, ctx.body)


@api.route(
    "POST",
    "/admin/price-lists",
    body=PriceListIn,
    response=PriceListOut,
    status=201,
    roles=STAFF,
    tags=T_PRICE,
)
async def create_price_list(ctx: Ctx) -> PriceListOut:
    """A price list for a level and/or region (no region: admin only)."""
    return await catalog.create_price_list(ctx.me, ctx.body)


@api.route(
    "GET", "/admin/price-lists", query=PriceListQuery, response=Page[PriceListOut], roles=STAFF, tags=T_PRICE
)
async def list_price_lists(ctx: Ctx) -> Page[PriceListOut] | web.Response:
    """Price lists of the caller's regions and those for every region."""
    return await listing(ctx, catalog.list_price_lists, "price-lists")


@api.route(
    "GET", f"/admin/price-lists/{ID}", response=PriceListOut, roles=STAFF, scope="object", tags=T_PRICE
)
async def get_price_list(ctx: Ctx) -> PriceListOut:
    """One price list with its items."""
    return await catalog.get_price_list(ctx.me, ctx.id)


@api.route(
    "PATCH",
    f"/admin/price-lists/{ID}",
    body=PriceListPatch,
    response=PriceListOut,
    roles=STAFF,
    scope="object",
    tags=T_PRICE,
)
async def update_price_list(ctx: Ctx) -> PriceListOut:
    """Rename, end (valid_to), re-prioritise, or replace all items."""
    return await catalog.update_price_list(ctx.me, ctx.id, ctx.body)


@api.route(
    "POST",
    "/admin/promotions",
    body=PromotionIn,
    response=PromotionOut,
    status=201,
    roles=STAFF,
    tags=T_PROMO,
)
async def create_promotion(ctx: Ctx) -> PromotionOut:
    """A discount ("0.95" = 5% off) or buy-N-get-M, by SKU or category, level, region, dates."""
    return await catalog.create_promotion(ctx.me, ctx.body)


@api.route(
    "GET", "/admin/promotions", query=PromotionQuery, response=Page[PromotionOut], roles=STAFF, tags=T_PROMO
)
async def list_promotions(ctx: Ctx) -> Page[PromotionOut] | web.Response:
    """Promotions of the caller's regions and those for every region."""
    return await listing(ctx, catalog.list_promotions, "promotions")


@api.route("GET", f"/admin/promotions/{ID}", response=PromotionOut, roles=STAFF, scope="object", tags=T_PROMO)
async def get_promotion(ctx: Ctx) -> PromotionOut:
    """One promotion."""
    return await catalog.get_promotion(ctx.me, ctx.id)


@api.route(
    "PATCH",
    f"/admin/promotions/{ID}",
    body=PromotionPatch,
    response=PromotionOut,
    roles=STAFF,
    scope="object",
    tags=T_PROMO,
)
async def update_promotion(ctx: Ctx) -> PromotionOut:
    """Rename, change the rate/N/M, end it (valid_to) or switch it off (active)."""
    return await catalog.update_promotion(ctx.me, ctx.id, ctx.body)
