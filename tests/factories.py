"""Test data builders. Every builder takes keyword overrides; `make_world` builds two
tenants (east / north) with every role, for scope (BOLA) tests.

Feature tests may add builders in their own `tests/factories_<feature>.py`."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from core.clock import today
from core.money import money
from handlers.auth import build_actor, issue_token
from handlers.passwords import hash_password
from handlers.text import pinyin_of
from handlers.uscc import make_uscc
from models.base import DistributorStatus, MovementReason, PaymentTerms, UserRole
from models.distributor import Distributor
from models.product import PriceList, PriceListItem, Product
from models.stock import Stock, StockMovement, Warehouse
from models.user import SalesAssignment, User

PASSWORD = "test-password-1"
_PASSWORD_HASH = hash_password(PASSWORD)  # argon2 is slow on purpose: hash the shared one once
_seq = itertools.count(1)


def n() -> int:
    return next(_seq)


def uscc(i: int | None = None) -> str:
    i = n() if i is None else i
    return make_uscc(f"91110000MA{i:07d}")


async def make_user(role: UserRole | str = UserRole.ADMIN, **kw: Any) -> User:
    i = n()
    defaults: dict[str, Any] = {
        "username": f"{role}_{i}",
        "password_hash": _PASSWORD_HASH,
        "display_name": f"{role} {i}",
        "role": role,
    }
    defaults.update(kw)
    return await User.create(**defaults)


async def make_distributor(**kw: Any) -> Distributor:
    i = n()
    defaults: dict[str, Any] = {
        "name": f"测试经销商{i}有限公司",
        "uscc": uscc(i),
        "level": 1,
        "region": "华东",
        "credit_limit": money("100000"),
        "payment_terms": PaymentTerms.MONTHLY,
        "status": DistributorStatus.ACTIVE,
    }
    defaults.update(kw)
    return await Distributor.create(**defaults)


async def make_product(**kw: Any) -> Product:
    i = n()
    name = kw.pop("name", f"螺纹钢 HRB400E Φ{i}")
    full, initials = pinyin_of(name)
    defaults: dict[str, Any] = {
        "sku": f"SKU-{i:05d}",
        "name": name,
        "pinyin": full,
        "initials": initials,
        "category": "螺纹钢",
        "unit": "吨",
    }
    defaults.update(kw)
    return await Product.create(**defaults)


async def make_warehouse(**kw: Any) -> Warehouse:
    i = n()
    defaults: dict[str, Any] = {"code": f"WH-{i}", "name": f"仓库{i}", "region": "华东"}
    defaults.update(kw)
    return await Warehouse.create(**defaults)


async def make_stock(warehouse: Warehouse, product: Product, on_hand: int = 100, **kw: Any) -> Stock:
    stock = await Stock.create(warehouse=warehouse, product=product, on_hand=on_hand, reserved=0, **kw)
    if on_hand:
        await StockMovement.create(
            warehouse=warehouse,
            product=product,
            reason=MovementReason.INBOUND,
            ref_type="test",
            ref_id="setup",
            delta_on_hand=on_hand,
            delta_reserved=0,
            on_hand_after=on_hand,
            reserved_after=0,
        )
    return stock


async def make_price_list(
    items: dict[Product, Decimal | str], level: int | None = None, region: str | None = None, **kw: Any
) -> PriceList:
    pl = await PriceList.create(
        name=kw.pop("name", f"价目表{n()}"),
        level=level,
        region=region,
        valid_from=kw.pop("valid_from", today() - timedelta(days=30)),
        **kw,
    )
    for product, price in items.items():
        await PriceListItem.create(price_list=pl, product=product, price=money(price))
    return pl


async def token_for(user: User) -> str:
    token, _ = await issue_token(user)
    return token


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Tenant:
    """One side of the world: a 一级 distributor with a 二级 child, its users and stock."""

    region: str
    distributor: Distributor
    child: Distributor
    warehouse: Warehouse
    dist_user: User
    child_user: User
    rep: User
    manager: User
    tokens: dict[str, str] = field(default_factory=dict)  # role name -> token


@dataclass
class World:
    admin: User
    admin_token: str
    product: Product
    east: Tenant
    north: Tenant
    company_warehouse: Warehouse
    extra: dict[str, Any] = field(default_factory=dict)

    def headers(self, tenant: str, role: str) -> dict[str, str]:
        """role: distributor | child | sales | manager; tenant: east | north; or ("", "admin")."""
        if role == "admin":
            return auth(self.admin_token)
        return auth(getattr(self, tenant).tokens[role])


async def _tenant(region: str, product: Product) -> Tenant:
    d = await make_distributor(region=region, level=1)
    child = await make_distributor(region=region, level=2, parent=d)
    wh = await make_warehouse(region=region, distributor=d)
    await make_stock(wh, product, on_hand=50)
    rep = await make_user(UserRole.SALES)
    await SalesAssignment.create(user=rep, distributor=d)
    await SalesAssignment.create(user=rep, distributor=child)
    manager = await make_user(UserRole.MANAGER, regions=[region])
    dist_user = await make_user(UserRole.DISTRIBUTOR, distributor=d)
    child_user = await make_user(UserRole.DISTRIBUTOR, distributor=child)
    t = Tenant(region, d, child, wh, dist_user, child_user, rep, manager)
    users = {"distributor": dist_user, "child": child_user, "sales": rep, "manager": manager}
    for role, user in users.items():
        t.tokens[role] = await token_for(user)
    return t


async def make_world(price: Decimal | str = "100.00") -> World:
    """Two tenants in different regions, one product stocked in a company warehouse."""
    admin = await make_user(UserRole.ADMIN)
    product = await make_product()
    company = await make_warehouse(region="华东")
    await make_stock(company, product, on_hand=100)
    await make_price_list({product: Decimal(price)}, valid_from=date(2020, 1, 1))
    east = await _tenant("华东", product)
    north = await _tenant("华北", product)
    return World(admin, await token_for(admin), product, east, north, company)


__all__ = ["PASSWORD", "World", "build_actor", "make_world"]
