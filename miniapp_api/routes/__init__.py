"""Route tables, one module per feature; each exposes `api: Api`."""

from __future__ import annotations

from types import ModuleType

from miniapp_api.routes import (
    admin,
    admin_alerts,
    admin_catalog,
    admin_commission,
    admin_stock,
    auth,
    catalog,
    commissions,
    contracts,
    jobs,
    leads,
    notifications,
    orders,
    reports,
    returns,
    stock,
    system,
)

ROUTE_MODULES: list[ModuleType] = [
    system,
    auth,
    catalog,
    stock,
    orders,
    returns,
    leads,
    commissions,
    contracts,
    notifications,
    reports,
    jobs,
    admin,
    admin_catalog,
    admin_stock,
    admin_commission,
    admin_alerts,
]
