"""Admin stock and money routes: adjustments, thresholds, payments (admin + manager of the
region; outside the manager's regions is 404)."""

from __future__ import annotations

from pydantic import Field

from core.schema import Id, Page, PageQuery
from handlers import finance, stock
from handlers.finance import PaymentIn, PaymentOut
from handlers.stock import AdjustmentIn, AdjustmentOut, ThresholdIn, ThresholdOut
from miniapp_api.framework import Api, Ctx

api = Api()

STAFF = {"admin", "manager"}


class StockAdminQuery(PageQuery):
    warehouse_id: Id | None = None
    sku: str | None = Field(None, max_length=64)


class PaymentsQuery(PageQuery):
    distributor_id: Id | None = None


@api.route(
    "POST",
    "/admin/stock-adjustments",
    body=AdjustmentIn,
    response=AdjustmentOut,
    status=201,
    roles=STAFF,
    tags=("admin", "stock"),
)
async def adjust(ctx: Ctx) -> AdjustmentOut:
    """Inbound / outbound / stocktake delta for one (warehouse, sku); never below reserved."""
    return await stock.adjust_stock(ctx.me, ctx.body)


@api.route(
    "GET",
    "/admin/stock-adjustments",
    query=StockAdminQuery,
    response=Page[AdjustmentOut],
    roles=STAFF,
    tags=("admin", "stock"),
)
async def list_adjustments(ctx: Ctx) -> Page[AdjustmentOut]:
    """Manual stock movements, newest first."""
    q: StockAdminQuery = ctx.query
    return await stock.list_adjustments(
        ctx.me, warehouse_id=q.warehouse_id, sku=q.sku, page=q.page, page_size=q.page_size
    )


@api.route(
    "PUT",
    "/admin/stock-thresholds",
    body=ThresholdIn,
    response=ThresholdOut,
    roles=STAFF,
    tags=("admin", "stock"),
)
async def set_thresholds(ctx: Ctx) -> ThresholdOut:
    """Set alert thresholds of one (warehouse, sku): omitted fields stay, null clears."""
    return await stock.set_thresholds(ctx.me, ctx.body)


@api.route(
    "GET",
    "/admin/stock-thresholds",
    query=StockAdminQuery,
    response=Page[ThresholdOut],
    roles=STAFF,
    tags=("admin", "stock"),
)
async def list_thresholds(ctx: Ctx) -> Page[ThresholdOut]:
    """Stock rows with any threshold set."""
    q: StockAdminQuery = ctx.query
    return await stock.list_thresholds(
        ctx.me, warehouse_id=q.warehouse_id, sku=q.sku, page=q.page, page_size=q.page_size
    )


@api.route(
    "POST",
    "/admin/payments",
    body=PaymentIn,
    response=PaymentOut,
    status=201,
    roles=STAFF,
    tags=("admin", "finance"),
)
async def record_payment(ctx: Ctx) -> PaymentOut:
    """Record a payment (lowers receivables); a ref already recorded for that distributor is 409."""
    return await finance.record_payment(ctx.me, ctx.body)


@api.route(
    "GET",
    "/admin/payments",
    query=PaymentsQuery,
    response=Page[PaymentOut],
    roles=STAFF,
    tags=("admin", "finance"),
)
async def list_payments(ctx: Ctx) -> Page[PaymentOut]:
    """Payments, newest first."""
    q: PaymentsQuery = ctx.query
    return await finance.list_payments(
        ctx.me, distributor_id=q.distributor_id, page=q.page, page_size=q.page_size
    )
