"""Contracts as the app shows them (read-only; writes are /admin/contracts)."""

from __future__ import annotations

from core.schema import Page
from handlers import contracts_read
from handlers.contracts_read import ContractBrief, ContractsQuery
from miniapp_api.framework import Api, Ctx

api = Api()


@api.route("GET", "/contracts", query=ContractsQuery, response=Page[ContractBrief], tags=("contracts",))
async def list_contracts(ctx: Ctx) -> Page[ContractBrief]:
    """Contracts of the distributors in your scope, the latest end date first (filter by status)."""
    q: ContractsQuery = ctx.query
    return await contracts_read.list_contracts(ctx.me, status=q.status, page=q.page, page_size=q.page_size)


@api.route("GET", r"/contracts/{id:\d+}", response=ContractBrief, scope="object", tags=("contracts",))
async def get_contract(ctx: Ctx) -> ContractBrief:
    """One contract of a distributor in your scope."""
    return await contracts_read.get_contract(ctx.me, ctx.id)
