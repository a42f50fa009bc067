"""Commissions and statements (对账单): the caller's ledger, statements, confirm and dispute."""

from __future__ import annotations

from pydantic import Field

from core.schema import Id, In, Page, Query
from handlers import commission_reads, statements
from handlers.commission_reads import CommissionsOut
from handlers.statements import DisputeIn, StatementOut, StatementQuery
from miniapp_api.framework import Api, Ctx

api = Api()


class CommissionsQuery(Query):
    period: str | None = Field(None, max_length=7, description="YYYY-MM (default: this month)")
    beneficiary_id: Id | None = Field(None, description="staff only: a user id in scope")


class Empty(In):
    """An empty body or `{}`; any field is rejected."""


@api.route("GET", "/commissions", query=CommissionsQuery, response=CommissionsOut, tags=("commission",))
async def get_commissions(ctx: Ctx) -> CommissionsOut:
    """The caller's commission entries of a month, not paged; total = the sum of the items."""
    return await commission_reads.get_commissions(ctx.me, ctx.query.period, ctx.query.beneficiary_id)


@api.route("GET", "/statements", query=StatementQuery, response=Page[StatementOut], tags=("commission",))
async def list_statements(ctx: Ctx) -> Page[StatementOut]:
    """The caller's statements (staff: those of their scope)."""
    return await statements.list_statements(ctx.me, ctx.query)


@api.route("GET", r"/statements/{id:\d+}", response=StatementOut, scope="object", tags=("commission",))
async def get_statement(ctx: Ctx) -> StatementOut:
    """One statement in the caller's scope."""
    return await statements.get_statement(ctx.me, int(ctx.params["id"]))


@api.route(
    "POST",
    r"/statements/{id:\d+}/confirm",
    body=Empty,
    response=StatementOut,
    scope="object",
    tags=("commission",),
)
async def confirm(ctx: Ctx) -> StatementOut:
    """The statement's subject confirms it; the month is then locked for it."""
    return await statements.confirm_statement(ctx.me, int(ctx.params["id"]))


@api.route(
    "POST",
    r"/statements/{id:\d+}/dispute",
    body=DisputeIn,
    response=StatementOut,
    scope="object",
    tags=("commission",),
)
async def dispute(ctx: Ctx) -> StatementOut:
    """The statement's subject disputes it with a reason; the manager is notified."""
    return await statements.dispute_statement(ctx.me, int(ctx.params["id"]), ctx.body.reason)
