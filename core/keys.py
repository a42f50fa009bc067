"""Typed application keys (aiohttp AppKey): the one place app state is declared."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from tortoise.context import TortoiseContext

if TYPE_CHECKING:
    from core.access_log import AccessLog
    from core.config import Config
    from core.kv import KV
    from core.metrics import AppMetrics
    from core.runtime import Runtime

CONFIG: web.AppKey[Config] = web.AppKey("config")
ORM: web.AppKey[TortoiseContext] = web.AppKey("orm")
KV_STORE: web.AppKey[KV] = web.AppKey("kv")
HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("http")
METRICS: web.AppKey[AppMetrics] = web.AppKey("metrics")
RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime")
EXTRAS: web.AppKey[dict[str, Any]] = web.AppKey("extras")
ACCESS_LOG: web.AppKey[AccessLog] = web.AppKey("access_log")

# Per-request storage.
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)
