"""The console's route table and plumbing: each page names its scope kind ("public", "self",
"object") like the API's routes, so tests walk every page and action (tests/test_console.py).

A handler gets the request and the signed-in Actor (staff only) and returns a response;
writes (POST) need the CSRF token. Domain errors become a Chinese error page — or, for htmx,
a message swapped into `#flash` with the same status."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web

from console.session import ACTOR, CSRF_HEADER, check_csrf, csrf_for, current_actor
from core.clock import BUSINESS_TZ
from core.errors import DomainError, Forbidden, NotFound, ValidationError
from core.logging import get_logger
from handlers.actor import Actor

log = get_logger("qudao.console")

Handler = Callable[[web.Request, Actor], Awaitable[web.StreamResponse]]
PublicHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


@dataclass(frozen=True)
class Page:
    method: str
    path: str  # relative to /console
    handler: Any
    name: str
    scope: str = "self"  # "public" | "self" | "object" (a path id that must be in scope, else 404)
    auth: bool = True


class Pages:
    def __init__(self) -> None:
        self.pages: list[Page] = []

    def add(
        self, method: str, path: str, *, name: str, scope: str = "self", auth: bool = True
    ) -> Callable[[Any], Any]:
        def register(fn: Any) -> Any:
            self.pages.append(Page(method, path, fn, name, scope if auth else "public", auth))
            return fn

        return register

    def mount(self, app: web.Application) -> None:
        for p in self.pages:
            app.router.add_route(p.method, p.path, _adapt(p), name=p.name)


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def is_htmx(request: web.Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _adapt(page: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        if not page.auth:
            return await page.handler(request)  # type: ignore[no-any-return]
        actor = await current_actor(request)
        if actor is None:
            return _to_login(request)
        if not actor.is_staff:
            raise Forbidden("管理后台仅限经理和管理员使用")
        if page.method != "GET":
            await check_csrf(request)
        return await page.handler(request, actor)  # type: ignore[no-any-return]

    return handler


def _to_login(request: web.Request) -> web.StreamResponse:
    target = "/console/login"
    if request.method == "GET" and request.path != "/console/":
        target += "?next=" + quote(request.path_qs, safe="")
    if is_htmx(request):
        return web.Response(status=401, headers={"HX-Redirect": target})
    return redirect(target)


def render(request: web.Request, template: str, context: dict[str, Any], status: int = 200) -> web.Response:
    actor = request.get(ACTOR)
    if actor is not None and not actor.is_staff:
        actor = None  # no menu, no CSRF token for a refused role
    base: dict[str, Any] = {"actor": actor, "nav": "", "csrf_header": CSRF_HEADER}
    if actor is not None:
        from console.session import TOKEN

        base["csrf"] = csrf_for(request, request[TOKEN])
    return aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)


def done(request: web.Request, location: str, template: str, context: dict[str, Any]) -> web.StreamResponse:
    """After a write: htmx gets the re-rendered fragment, a plain form post a redirect."""
    if is_htmx(request):
        return render(request, template, context)
    return redirect(location)


@web.middleware
async def console_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        resp = await handler(request)
    except DomainError as exc:
        resp = _error_page(request, exc.status, exc.message)
        if getattr(exc, "retry_after", None) is not None:
            resp.headers["Retry-After"] = str(exc.retry_after)  # type: ignore[attr-defined]
    except web.HTTPException as exc:
        if exc.status < 400:
            _secure(exc)
            raise
        message = {404: "页面不存在", 405: "不支持该请求方式"}.get(exc.status, "请求无法处理")
        resp = _error_page(request, exc.status, message)
    return _secure(resp)


def _secure(resp: web.StreamResponse) -> web.StreamResponse:
    for k, v in SECURITY_HEADERS.items():
        resp.headers.setdefault(k, v)
    if resp.content_type == "text/html":
        resp.headers.setdefault("Cache-Control", "no-store")
    return resp


def _error_page(request: web.Request, status: int, message: str) -> web.Response:
    if status == 404:
        message = "未找到该记录，或不在您的管辖范围内"
    if is_htmx(request):
        resp = render(request, "_flash.html", {"error": message}, status=status)
        resp.headers["HX-Retarget"] = "#flash"
        resp.headers["HX-Reswap"] = "innerHTML"
        return resp
    return render(request, "error.html", {"status": status, "message": message}, status=status)


# --- parsing form and query values --------------------------------------------------------


def object_id(request: web.Request, name: str = "id") -> int:
    value = request.match_info.get(name, "")
    if not value.isdigit() or len(value) > 10 or int(value) > 2**31 - 1:
        raise NotFound("未找到该记录")
    return int(value)


def text(value: str | None, field: str, label: str, *, max_len: int, required: bool = False) -> str | None:
    value = (value or "").strip()
    if not value:
        if required:
            raise ValidationError(f"请填写{label}", {"field": field})
        return None
    if len(value) > max_len:
        raise ValidationError(f"{label}最多 {max_len} 个字符", {"field": field})
    return value


async def posted_text(request: web.Request, field: str, label: str, *, max_len: int = 500) -> str:
    """A required text field of a posted form (a reason, a note)."""
    form = await request.post()
    value = text(str(form.get(field, "")), field, label, max_len=max_len, required=True)
    assert value is not None
    return value


def day(value: str | None, field: str, label: str) -> date | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{label}格式应为 年-月-日（如 2026-01-31）", {"field": field}) from None


def positive_int(value: str | None, field: str, label: str, default: int | None = None) -> int | None:
    value = (value or "").strip()
    if not value:
        return default
    if not value.isdigit() or len(value) > 9 or int(value) < 1:
        raise ValidationError(f"{label}应为正整数", {"field": field})
    return int(value)


def audit_detail(after: Any) -> str:
    """An audit row's `after` as Chinese "字段：值" pairs (times in the business zone)."""
    from console.labels import AUDIT_FIELD, AUDIT_TIME_FIELD, ORDER_STATUS

    if not isinstance(after, dict):
        return "" if after is None else str(after)
    parts = []
    for key, value in after.items():
        if key in AUDIT_TIME_FIELD:
            try:
                value = local_time(datetime.fromisoformat(str(value)))
            except ValueError:
                pass
            parts.append(f"{AUDIT_TIME_FIELD[key]}：{value}")
        elif key == "status":
            parts.append(f"状态：{ORDER_STATUS.get(str(value), value)}")
        elif isinstance(value, bool):
            parts.append(f"{AUDIT_FIELD.get(key, key)}：{'是' if value else '否'}")
        elif isinstance(value, dict | list):
            continue  # line-level detail: the tables above show it
        else:
            parts.append(f"{AUDIT_FIELD.get(key, key)}：{value}")
    return "；".join(parts)


def local_time(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M")
