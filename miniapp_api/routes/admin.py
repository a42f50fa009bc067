"""Admin API (admin + manager; a manager only inside its regions): distributors, users and
invite codes, warehouses, contracts, imports. Catalogue routes: routes/admin_catalog.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, web

from core.errors import ValidationError
from core.schema import In, Page
from handlers import admin_contracts as contracts
from handlers import admin_distributors as distributors
from handlers import admin_users as users
from handlers import admin_warehouses as warehouses
from handlers import importer
from handlers.accounts import UserOut
from handlers.admin_common import ListQuery, with_names
from handlers.admin_contracts import AdminContractOut, ContractIn, ContractPatch, ContractQuery
from handlers.admin_distributors import DistributorIn, DistributorOut, DistributorPatch, DistributorQuery
from handlers.admin_users import InviteCodeOut, UserIn, UserPatch, UserQuery
from handlers.admin_warehouses import WarehouseIn, WarehouseOut, WarehousePatch, WarehouseQuery
from handlers.importer import ImportKind, ImportReport
from miniapp_api.framework import Api, Ctx
from miniapp_api.xlsx import XLSX_TYPE, xlsx_response

api = Api()
STAFF = {"admin", "manager"}
ID = r"{id:\d+}"


class Empty(In):
    """An empty body or `{}`; any field is rejected."""


Lister = Callable[..., Awaitable[Page[Any]]]


async def listing(ctx: Ctx, fn: Lister, name: str) -> Page[Any] | web.Response:
    """A page as JSON, or with ?format=xlsx every matching row as a workbook."""
    query: ListQuery = ctx.query
    if query.format == "xlsx":
        page = await fn(ctx.me, query, export=True)
        return xlsx_response(await with_names([item.model_dump() for item in page.items]), name)
    return await fn(ctx.me, query)


# --- distributors ---------------------------------------------------------------------------------
T_DIST = ("admin: distributors",)


@api.route(
    "POST",
    "/admin/distributors",
    body=DistributorIn,
    response=DistributorOut,
    status=201,
    roles=STAFF,
    tags=T_DIST,
)
async def create_distributor(ctx: Ctx) -> DistributorOut:
    """Register a distributor (status "applying"; activate it to let it order)."""
    return await distributors.create_distributor(ctx.me, ctx.body)


@api.route(
    "GET",
    "/admin/distributors",
    query=DistributorQuery,
    response=Page[DistributorOut],
    roles=STAFF,
    tags=T_DIST,
)
async def list_distributors(ctx: Ctx) -> Page[DistributorOut] | web.Response:
    """Distributors in the caller's regions (?format=xlsx exports every match)."""
    return await listing(ctx, distributors.list_distributors, "distributors")


@api.route(
    "GET", f"/admin/distributors/{ID}", response=DistributorOut, roles=STAFF, scope="object", tags=T_DIST
)
async def get_distributor(ctx: Ctx) -> DistributorOut:
    """One distributor."""
    return await distributors.get_distributor(ctx.me, ctx.id)


@api.route(
    "PATCH",
    f"/admin/distributors/{ID}",
    body=DistributorPatch,
    response=DistributorOut,
    roles=STAFF,
    scope="object",
    tags=T_DIST,
)
async def update_distributor(ctx: Ctx) -> DistributorOut:
    """Change a distributor's details (not its level or status)."""
    return await distributors.update_distributor(ctx.me, ctx.id, ctx.body)


@api.route(
    "POST",
    f"/admin/distributors/{ID}/activate",
    body=Empty,
    response=DistributorOut,
    roles=STAFF,
    scope="object",
    tags=T_DIST,
)
async def activate_distributor(ctx: Ctx) -> DistributorOut:
    """applying/suspended -> active."""
    return await distributors.activate_distributor(ctx.me, ctx.id)


@api.route(
    "POST",
    f"/admin/distributors/{ID}/suspend",
    body=Empty,
    response=DistributorOut,
    roles=STAFF,
    scope="object",
    tags=T_DIST,
)
async def suspend_distributor(ctx: Ctx) -> DistributorOut:
    """-> suspended; every session of its users ends at once."""
    return await distributors.suspend_distributor(ctx.me, ctx.id)


# --- users -----------------------------------------------------------------------------------------
T_USER = ("admin: users",)


@api.route("POST", "/admin/users", body=UserIn, response=UserOut, status=201, roles=STAFF, tags=T_USER)
async def create_user(ctx: Ctx) -> UserOut:
    """Create a user (managers: distributor and sales users of their regions only)."""
    return await users.create_user(ctx.me, ctx.body)


@api.route("GET", "/admin/users", query=UserQuery, response=Page[UserOut], roles=STAFF, tags=T_USER)
async def list_users(ctx: Ctx) -> Page[UserOut] | web.Response:
    """Users the caller manages (?format=xlsx exports every match)."""
    return await listing(ctx, users.list_users, "users")


@api.route("GET", f"/admin/users/{ID}", response=UserOut, roles=STAFF, scope="object", tags=T_USER)
async def get_user(ctx: Ctx) -> UserOut:
    """One user."""
    return await users.get_user(ctx.me, ctx.id)


@api.route(
    "PATCH", f"/admin/users/{ID}", body=UserPatch, response=UserOut, roles=STAFF, scope="object", tags=T_USER
)
async def update_user(ctx: Ctx) -> UserOut:
    """Change a user (a new password ends its sessions; new assignments apply at once)."""
    return await users.update_user(ctx.me, ctx.id, ctx.body)


@api.route(
    "POST",
    f"/admin/users/{ID}/suspend",
    body=Empty,
    response=UserOut,
    roles=STAFF,
    scope="object",
    tags=T_USER,
)
async def suspend_user(ctx: Ctx) -> UserOut:
    """Suspend a user; its sessions end at once."""
    return await users.suspend_user(ctx.me, ctx.id)


@api.route(
    "POST",
    f"/admin/users/{ID}/activate",
    body=Empty,
    response=UserOut,
    roles=STAFF,
    scope="object",
    tags=T_USER,
)
async def activate_user(ctx: Ctx) -> UserOut:
    """Re-activate a suspended user (and clear a login lock-out)."""
    return await users.activate_user(ctx.me, ctx.id)


@api.route(
    "POST",
    f"/admin/users/{ID}/invite-codes",
    body=Empty,
    response=InviteCodeOut,
    status=201,
    roles=STAFF,
    scope="object",
    tags=T_USER,
)
async def create_invite_code(ctx: Ctx) -> InviteCodeOut:
    """A one-time code to bind a WeChat/WeCom/DingTalk account to this user."""
    return await users.create_invite_code(ctx.me, ctx.id)


# --- warehouses ------------------------------------------------------------------------------------
T_WH = ("admin: warehouses",)


@api.route(
    "POST", "/admin/warehouses", body=WarehouseIn, response=WarehouseOut, status=201, roles=STAFF, tags=T_WH
)
async def create_warehouse(ctx: Ctx) -> WarehouseOut:
    """A company warehouse, or a distributor's own (distributor_id)."""
    return await warehouses.create_warehouse(ctx.me, ctx.body)


@api.route(
    "GET", "/admin/warehouses", query=WarehouseQuery, response=Page[WarehouseOut], roles=STAFF, tags=T_WH
)
async def list_warehouses(ctx: Ctx) -> Page[WarehouseOut] | web.Response:
    """Warehouses in the caller's regions (?format=xlsx exports every match)."""
    return await listing(ctx, warehouses.list_warehouses, "warehouses")


@api.route("GET", f"/admin/warehouses/{ID}", response=WarehouseOut, roles=STAFF, scope="object", tags=T_WH)
async def get_warehouse(ctx: Ctx) -> WarehouseOut:
    """One warehouse."""
    return await warehouses.get_warehouse(ctx.me, ctx.id)


@api.route(
    "PATCH",
    f"/admin/warehouses/{ID}",
    body=WarehousePatch,
    response=WarehouseOut,
    roles=STAFF,
    scope="object",
    tags=T_WH,
)
async def update_warehouse(ctx: Ctx) -> WarehouseOut:
    """Rename or (de)activate a warehouse."""
    return await warehouses.update_warehouse(ctx.me, ctx.id, ctx.body)


# --- contracts -------------------------------------------------------------------------------------
T_CON = ("admin: contracts",)


@api.route(
    "POST",
    "/admin/contracts",
    body=ContractIn,
    response=AdminContractOut,
    status=201,
    roles=STAFF,
    tags=T_CON,
)
async def create_contract(ctx: Ctx) -> AdminContractOut:
    """A distributor contract (active unless status "draft")."""
    return await contracts.create_contract(ctx.me, ctx.body)


@api.route(
    "GET", "/admin/contracts", query=ContractQuery, response=Page[AdminContractOut], roles=STAFF, tags=T_CON
)
async def list_contracts(ctx: Ctx) -> Page[AdminContractOut] | web.Response:
    """Contracts of the caller's distributors (?format=xlsx exports every match)."""
    return await listing(ctx, contracts.list_contracts, "contracts")


@api.route(
    "GET", f"/admin/contracts/{ID}", response=AdminContractOut, roles=STAFF, scope="object", tags=T_CON
)
async def get_contract(ctx: Ctx) -> AdminContractOut:
    """One contract."""
    return await contracts.get_contract(ctx.me, ctx.id)


@api.route(
    "PATCH",
    f"/admin/contracts/{ID}",
    body=ContractPatch,
    response=AdminContractOut,
    roles=STAFF,
    scope="object",
    tags=T_CON,
)
async def update_contract(ctx: Ctx) -> AdminContractOut:
    """Change dates (renewal), target, policy or draft/active."""
    return await contracts.update_contract(ctx.me, ctx.id, ctx.body)


@api.route(
    "POST",
    f"/admin/contracts/{ID}/terminate",
    body=Empty,
    response=AdminContractOut,
    roles=STAFF,
    scope="object",
    tags=T_CON,
)
async def terminate_contract(ctx: Ctx) -> AdminContractOut:
    """End a contract early."""
    return await contracts.terminate_contract(ctx.me, ctx.id)


# --- imports ---------------------------------------------------------------------------------------
UPLOAD = {
    "text/csv": {"schema": {"type": "string"}},
    XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}},
    "multipart/form-data": {
        "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
    },
}


@api.route(
    "POST",
    "/admin/import/{kind:products|stock|distributors}",
    response=ImportReport,
    status=201,
    roles=STAFF,
    tags=("admin: import",),
    upload=UPLOAD,
)
async def import_file(ctx: Ctx) -> ImportReport:
    """Import a CSV or XLSX file (raw body, or multipart field `file`): every row validated,
    all or nothing; rejects list each bad row number with its reasons."""
    data, filename = await _upload(ctx.request)
    kind: ImportKind = ctx.params["kind"]  # type: ignore[assignment]
    return await importer.import_file(ctx.me, kind, data, filename)


async def _upload(request: web.Request) -> tuple[bytes, str | None]:
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        async for part in reader:
            if isinstance(part, BodyPartReader) and part.name == "file":
                return await part.read(decode=False), part.filename
        raise ValidationError("file: 请以表单字段上传文件", {"field": "file"})
    data = await request.read()
    if not data:
        raise ValidationError("file: 请上传 CSV 或 XLSX 文件", {"field": "file"})
    name = "upload.xlsx" if request.content_type == XLSX_TYPE else None
    return data, name
