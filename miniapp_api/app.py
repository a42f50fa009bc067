"""The /api/v1 sub-application: composes the feature route tables."""

from __future__ import annotations

from aiohttp import web

from miniapp_api.framework import Api, Ctx, json_response
from miniapp_api.openapi import DOCS_HTML, build_openapi
from miniapp_api.routes import ROUTE_MODULES

OPENAPI: web.AppKey[dict] = web.AppKey("openapi")


def collect_routes() -> Api:
    api = Api()
    for module in ROUTE_MODULES:
        api.include(module.api)
    return api


def create_api_app() -> web.Application:
    app = web.Application()
    api = collect_routes()
    api.mount(app)
    app[OPENAPI] = build_openapi(api.routes)

    async def openapi_json(request: web.Request) -> web.Response:
        return json_response(request.app[OPENAPI])

    app.router.add_get("/openapi.json", openapi_json)
    return app


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=DOCS_HTML, content_type="text/html")


__all__ = ["Ctx", "create_api_app", "docs_page"]
