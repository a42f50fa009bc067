"""HTTP plumbing shared by every surface: request id, access log, error JSON, body limit."""

from __future__ import annotations

import ipaddress
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import lru_cache

import structlog
from aiohttp import web

from core.errors import DomainError, Unavailable
from core.keys import ACCESS_LOG, CONFIG, METRICS, REQUEST_ID, RUNTIME
from core.outage import RETRY_AFTER_S, is_db_outage, probe
from core.request_context import request_id_var

log = structlog.get_logger("qudao.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_HTTP_CODES = {
    400: "validation_error",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "invalid_state",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}
_HTTP_ZH = {  # messages people read for errors aiohttp raises itself (unknown path, method, ...)
    400: "请求有误",
    401: "请先登录",
    403: "没有权限",
    404: "没有这个接口",
    405: "不支持这种请求方法",
    413: "请求内容太大（最多 {limit} 字节）",
    415: "不支持这种内容类型",
    429: "操作太频繁，请稍后再试",
    503: "服务暂时不可用，请稍后重试",
}
UNAVAILABLE_TEXT = "服务暂时不可用（数据库连接失败或超时），请稍后重试"


def error_response(status: int, code: str, message: str, details: dict | None = None) -> web.Response:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return web.json_response(body, status=status)


def domain_error_response(exc: DomainError) -> web.Response:
    resp = web.json_response(exc.to_json(), status=exc.status)
    retry_after = getattr(exc, "retry_after", None)  # RateLimited, Unavailable
    if retry_after is not None:
        resp.headers["Retry-After"] = str(retry_after)
    return resp


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(t, strict=False) for t in trusted)


def _trusted(addr: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in n for n in networks)


def client_ip(request: web.Request) -> str:
    """The client's address for per-address limits: the TCP peer, unless the peer is one of
    `[server] trusted_proxies`; then X-Forwarded-For read from the right, skipping trusted
    hops, and the first other entry wins. Entries left of it are the client's own claims
    and are never believed, so a client cannot pick its address by sending the header."""
    peer = request.remote or "unknown"
    networks = _networks(tuple(request.config_dict[CONFIG].server.trusted_proxies))
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [h.strip() for v in request.headers.getall("X-Forwarded-For", []) for h in v.split(",")]
    for hop in reversed([h for h in hops if h]):
        if _trusted(hop, networks):
            continue
        try:
            return str(ipaddress.ip_address(hop))
        except ValueError:
            return peer  # garbage from a trusted proxy's client: fall back to the proxy
    return peer


def db_unavailable(request: web.Request, exc: BaseException) -> web.Response | None:
    """A database outage (refused, dropped, timed out) -> 503 `unavailable` + Retry-After,
    logged once per outage by the runtime's tracker; None for any other error (a bug)."""
    if not is_db_outage(exc):
        return None
    runtime = request.config_dict.get(RUNTIME)
    if runtime is not None:
        runtime.db_outage.failed(exc)
    return domain_error_response(Unavailable(UNAVAILABLE_TEXT, RETRY_AFTER_S))


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id (client's X-Request-Id if sane, else new), bound into every log line."""
    rid = request.headers.get("X-Request-Id", "")
    if not _REQUEST_ID.match(rid):
        rid = uuid.uuid4().hex
    request[REQUEST_ID] = rid
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=rid)
    request_id_var.set(rid)
    started = time.perf_counter()
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        resp.headers["X-Request-Id"] = rid
        return resp
    except web.HTTPException as exc:
        status = exc.status
        exc.headers["X-Request-Id"] = rid
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "-"
        metrics = request.config_dict.get(METRICS)
        if metrics is not None:
            metrics.observe_request(request.method, route, status, elapsed)
        access = request.config_dict.get(ACCESS_LOG)
        if access is not None:  # buffered orjson lines (core.access_log); [server] access_log
            access.write(
                request_id=rid,
                method=request.method,
                path=request.path,
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )


async def _recheck_db(request: web.Request) -> None:
    """During a database outage, a request that went through re-checks the database (at
    most once a second), so the end of the outage is logged once too."""
    runtime = request.config_dict.get(RUNTIME)
    if runtime is None or not runtime.db_outage.down:
        return
    now = time.monotonic()
    if now - runtime.db_outage.last_check < 1.0:
        return
    runtime.db_outage.last_check = now
    from core.db import check_database

    cfg = request.config_dict[CONFIG].database
    # probe(): a bound that does not wait for the cancelled check to give its connection back
    if await probe(check_database(cfg, write=False), cfg.probe_timeout_s) != "ok":
        return
    runtime.db_outage.recovered()


@web.middleware
async def error_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as the documented error JSON; never a stack trace."""
    limit = request.config_dict[CONFIG].server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return error_response(413, "payload_too_large", f"请求内容太大（最多 {limit} 字节）")
    try:
        resp = await handler(request)
        await _recheck_db(request)
        return resp
    except DomainError as exc:
        return domain_error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = _HTTP_ZH.get(exc.status, "请求有误").format(limit=limit)
        resp = error_response(exc.status, code, message)
        for h in ("Allow", "Retry-After"):
            if h in exc.headers:
                resp.headers[h] = exc.headers[h]
        return resp
    except Exception as exc:
        unavailable = db_unavailable(request, exc)
        if unavailable is not None:
            return unavailable
        log.exception("unhandled_error", path=request.path)
        return error_response(500, "internal_error", "系统出错了，请稍后重试")
