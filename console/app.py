"""The /console sub-application: templates, vendored static assets, pages."""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from console import (
    alert_pages,
    auth_pages,
    lead_pages,
    order_pages,
    return_pages,
    statement_pages,
    workbench_pages,
)
from console.framework import Pages, audit_detail, console_errors, local_time, redirect
from console.labels import (
    AUDIT_ACTION,
    ENTRY_KIND,
    LEAD_STATUS,
    ORDER_STATUS,
    RETURN_STATUS,
    STATEMENT_KIND,
    STATEMENT_STATUS,
    SUMMARY_FIELD,
    label,
)

HERE = Path(__file__).parent
PAGE_MODULES = (
    auth_pages,
    workbench_pages,
    order_pages,
    return_pages,
    lead_pages,
    statement_pages,
    alert_pages,
)


def collect_pages() -> Pages:
    pages = Pages()
    for module in PAGE_MODULES:
        pages.pages.extend(module.pages.pages)
    return pages


async def console_root(request: web.Request) -> web.Response:
    return redirect("/console/")


def create_console_app() -> web.Application:
    app = web.Application(middlewares=[console_errors])
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(
        local_time=local_time,
        audit_detail=audit_detail,
        order_status=lambda v: label(ORDER_STATUS, v),
        lead_status=lambda v: label(LEAD_STATUS, v),
        return_status=lambda v: label(RETURN_STATUS, v),
        audit_action=lambda v: label(AUDIT_ACTION, v),
        statement_status=lambda v: label(STATEMENT_STATUS, v),
        statement_kind=lambda v: label(STATEMENT_KIND, v),
        entry_kind=lambda v: label(ENTRY_KIND, v),
        summary_field=lambda v: label(SUMMARY_FIELD, v),
    )
    collect_pages().mount(app)
    app.router.add_static("/static", HERE / "static", name="static")
    return app
