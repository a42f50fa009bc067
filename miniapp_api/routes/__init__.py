"""Route tables, one module per feature; each exposes `api: Api`. Add new modules here."""

from __future__ import annotations

from types import ModuleType

from miniapp_api.routes import system

ROUTE_MODULES: list[ModuleType] = [system]
