"""After-sales return requests: list, read, and the staff review (approve / reject) and
receipt (入库). Requests are made with POST /orders/{id}/returns (routes/orders.py)."""

from __future__ import annotations

from pydantic import Field

from core.schema import Id, Page, PageQuery
from handlers import returns
from handlers.order_io import RejectIn
from handlers.returns import ApproveIn, ReturnRequestOut
from miniapp_api.framework import Api, Ctx
from miniapp_api.routes.orders import STAFF, Empty

api = Api()
TAGS = ("returns",)


class ReturnsQuery(PageQuery):
    status: str | None = Field(None, max_length=24)
    order_id: Id | None = None
    distributor_id: Id | None = None


@api.route("GET", "/returns", query=ReturnsQuery, response=Page[ReturnRequestOut], tags=TAGS)
async def list_returns(ctx: Ctx) -> Page[ReturnRequestOut]:
    """Return requests in your scope, newest first (filter by status, order_id, distributor_id)."""
    q: ReturnsQuery = ctx.query
    return await returns.list_returns(
        ctx.me,
        status=q.status,
        order_id=q.order_id,
        distributor_id=q.distributor_id,
        page=q.page,
        page_size=q.page_size,
    )


@api.route("GET", r"/returns/{id:\d+}", response=ReturnRequestOut, scope="object", tags=TAGS)
async def get_return(ctx: Ctx) -> ReturnRequestOut:
    """One return request."""
    return await returns.get_return(ctx.me, ctx.id)


@api.route(
    "POST",
    r"/returns/{id:\d+}/approve",
    body=ApproveIn,
    response=ReturnRequestOut,
    roles=STAFF,
    scope="object",
    tags=TAGS,
)
async def approve(ctx: Ctx) -> ReturnRequestOut:
    """Approve a requested return (optional note); the goods may then be received."""
    return await returns.approve_return(ctx.me, ctx.id, ctx.body.reason)


@api.route(
    "POST",
    r"/returns/{id:\d+}/reject",
    body=RejectIn,
    response=ReturnRequestOut,
    roles=STAFF,
    scope="object",
    tags=TAGS,
)
async def reject(ctx: Ctx) -> ReturnRequestOut:
    """Reject a requested (or approved, not yet received) return, with a reason."""
    return await returns.reject_return(ctx.me, ctx.id, ctx.body.reason)


@api.route(
    "POST",
    r"/returns/{id:\d+}/receive",
    body=Empty,
    response=ReturnRequestOut,
    roles=STAFF,
    scope="object",
    tags=TAGS,
)
async def receive(ctx: Ctx) -> ReturnRequestOut:
    """入库: receive an approved return's goods into stock; only then are receivables credited
    and commission reversed."""
    return await returns.receive_return(ctx.me, ctx.id)
