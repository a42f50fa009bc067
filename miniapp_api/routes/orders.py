"""Order routes: admission (Idempotency-Key), reads and the lifecycle transitions."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from core.schema import Id, In, Page, PageQuery
from handlers import ordering, returns
from handlers.idempotency import HEADER
from handlers.ordering import CancelIn, OrderCreate, OrderOut, RejectIn, ReturnIn, ShipmentIn
from handlers.returns import ReturnRequestOut
from miniapp_api.framework import Api, Ctx

api = Api()

EVERYONE = {"admin", "manager", "sales", "distributor"}
STAFF = {"admin", "manager"}


class Empty(In):
    """An empty body or `{}`; any field is rejected."""


class OrdersQuery(PageQuery):
    status: str | None = Field(None, max_length=24)
    distributor_id: Id | None = None
    number: str | None = Field(
        None, pattern=r"^[A-Za-z0-9]{1,20}$", description="order number or its prefix, e.g. SO20261205"
    )


@api.route(
    "POST",
    "/orders",
    body=OrderCreate,
    response=OrderOut,
    status=201,
    roles=EVERYONE,
    tags=("orders",),
    headers=(HEADER,),
)
async def place(ctx: Ctx) -> web.Response:
    """Place an order (atomic: prices frozen, stock reserved, credit checked). The same
    Idempotency-Key with the same body replays the first answer (header Idempotent-Replayed)."""
    admission = await ordering.admit_order(
        ctx.me, idempotency_key=ctx.request.headers.get(HEADER), body=ctx.body
    )
    resp = web.Response(
        text=admission.text, status=admission.status_code, content_type="application/json", charset="utf-8"
    )
    if admission.replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp


@api.route("GET", "/orders", query=OrdersQuery, response=Page[OrderOut], tags=("orders",))
async def list_orders(ctx: Ctx) -> Page[OrderOut]:
    """Orders in your scope, newest first (filter by status, distributor_id, and number: a full
    order number or a prefix such as SO20261205)."""
    q: OrdersQuery = ctx.query
    return await ordering.list_orders(
        ctx.me,
        status=q.status,
        distributor_id=q.distributor_id,
        number=q.number,
        page=q.page,
        page_size=q.page_size,
    )


@api.route("GET", r"/orders/{id:\d+}", response=OrderOut, scope="object", tags=("orders",))
async def get_order(ctx: Ctx) -> OrderOut:
    """One order with its lines, shipments and returns."""
    return await ordering.get_order(ctx.me, ctx.id)


@api.route(
    "POST",
    r"/orders/{id:\d+}/approve",
    body=Empty,
    response=OrderOut,
    roles=STAFF,
    scope="object",
    tags=("orders",),
)
async def approve(ctx: Ctx) -> OrderOut:
    """Approve a pending order."""
    return await ordering.approve_order(ctx.me, ctx.id)


@api.route(
    "POST",
    r"/orders/{id:\d+}/reject",
    body=RejectIn,
    response=OrderOut,
    roles=STAFF,
    scope="object",
    tags=("orders",),
)
async def reject(ctx: Ctx) -> OrderOut:
    """Reject a pending order (its reservations are released)."""
    return await ordering.reject_order(ctx.me, ctx.id, ctx.body.reason)


@api.route(
    "POST",
    r"/orders/{id:\d+}/cancel",
    body=CancelIn,
    response=OrderOut,
    roles=EVERYONE,
    scope="object",
    tags=("orders",),
)
async def cancel(ctx: Ctx) -> OrderOut:
    """Cancel an order before anything has shipped (its reservations are released)."""
    return await ordering.cancel_order(ctx.me, ctx.id, ctx.body.reason)


@api.route(
    "POST",
    r"/orders/{id:\d+}/shipments",
    body=ShipmentIn,
    response=OrderOut,
    status=201,
    roles=STAFF,
    scope="object",
    tags=("orders",),
)
async def ship(ctx: Ctx) -> OrderOut:
    """Ship some or all remaining units of an approved order (partial shipments allowed)."""
    return await ordering.ship_order(ctx.me, ctx.id, ctx.body)


@api.route(
    "POST",
    r"/orders/{id:\d+}/receive",
    body=Empty,
    response=OrderOut,
    roles={"distributor", *STAFF},
    scope="object",
    tags=("orders",),
)
async def receive(ctx: Ctx) -> OrderOut:
    """Confirm a fully shipped order has arrived (every shipment not yet received with it)."""
    return await ordering.receive_order(ctx.me, ctx.id)


@api.route(
    "POST",
    r"/orders/{id:\d+}/shipments/{shipment_id:\d+}/receive",
    body=Empty,
    response=OrderOut,
    roles={"distributor", *STAFF},
    scope="object",
    tags=("orders",),
)
async def receive_shipment(ctx: Ctx) -> OrderOut:
    """签收 one shipment (partial deliveries); the order becomes `received` when it is fully
    shipped and every shipment is received. A shipment already received: 409."""
    return await ordering.receive_shipment(ctx.me, ctx.id, int(ctx.params["shipment_id"]))


@api.route(
    "POST",
    r"/orders/{id:\d+}/complete",
    body=Empty,
    response=OrderOut,
    roles=STAFF,
    scope="object",
    tags=("orders",),
)
async def complete(ctx: Ctx) -> OrderOut:
    """Complete a received order now (otherwise the order_completion job does after return_days)."""
    return await ordering.complete_order(ctx.me, ctx.id)


@api.route(
    "POST",
    r"/orders/{id:\d+}/returns",
    body=ReturnIn,
    response=ReturnRequestOut,
    status=201,
    roles=EVERYONE,
    scope="object",
    tags=("orders", "returns"),
)
async def return_goods(ctx: Ctx) -> ReturnRequestOut:
    """申请退货: ask to return units of a received or completed order within `orders.return_days`
    of receipt. Nothing moves until staff approve it and receive the goods (see /returns)."""
    return await returns.request_return(ctx.me, ctx.id, ctx.body)
