"""A small declarative route table: each route names its body, query, response and who may
call it. The same table drives request parsing, auth, OpenAPI and the BOLA test matrix."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel
from pydantic import ValidationError as PydanticError

from core.errors import Forbidden, NotFound, Unauthenticated, ValidationError
from core.schema import MAX_ID, MAX_JSON_DEPTH, json_depth_over
from handlers.actor import Actor

Authenticator = Callable[[str], Awaitable[Actor]]
AUTHENTICATOR: web.AppKey[Authenticator] = web.AppKey("authenticator")
ACTOR: web.RequestKey[Actor] = web.RequestKey("actor", Actor)


@dataclass
class Ctx:
    """What a route handler gets: the request, the caller and the parsed inputs."""

    request: web.Request
    actor: Actor | None
    body: Any
    query: Any
    params: dict[str, str]

    @property
    def id(self) -> int:
        """The numeric `{id:\\d+}` path parameter (the router already checked it)."""
        return int(self.params["id"])

    @property
    def me(self) -> Actor:
        assert self.actor is not None  # routes with auth=False never read .me
        return self.actor


RouteHandler = Callable[[Ctx], Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: RouteHandler
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    auth: bool = True
    roles: frozenset[str] | None = None  # None: any signed-in user
    # BOLA classification for the scope test: "public", "self" (caller's own data, filtered
    # by scope) or "object" (a path id that must be in the caller's scope, else 404)
    scope: str = "self"
    tags: tuple[str, ...] = ()
    raw: bool = False  # handler returns a web.StreamResponse itself
    extra: dict[str, Any] = field(default_factory=dict)


class Api:
    """Collects routes from feature modules; `mount` registers them on an aiohttp app."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str = "",
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: Any = None,
        status: int = 200,
        auth: bool = True,
        roles: set[str] | frozenset[str] | None = None,
        scope: str = "self",
        tags: tuple[str, ...] = (),
        raw: bool = False,
        **extra: Any,
    ) -> Callable[[RouteHandler], RouteHandler]:
        def register(fn: RouteHandler) -> RouteHandler:
            self.routes.append(
                Route(
                    method=method.upper(),
                    path=path,
                    handler=fn,
                    summary=summary or (fn.__doc__ or fn.__name__).strip().splitlines()[0],
                    body=body,
                    query=query,
                    response=response,
                    status=status,
                    auth=auth,
                    roles=frozenset(roles) if roles is not None else None,
                    scope=scope if auth else "public",
                    tags=tags,
                    raw=raw,
                    extra=extra,
                )
            )
            return fn

        return register

    def include(self, other: Api) -> None:
        self.routes.extend(other.routes)

    def mount(self, app: web.Application) -> None:
        for r in self.routes:
            app.router.add_route(r.method, r.path, _adapt(r))


_NUMERIC_PARAM = re.compile(r"{(\w+):(?:\\d\+|\[0-9\]\+)}")


def _adapt(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    numeric = _NUMERIC_PARAM.findall(route.path)

    async def aiohttp_handler(request: web.Request) -> web.StreamResponse:
        for name in numeric:
            value = request.match_info.get(name, "")
            if len(value) > 10 or int(value) > MAX_ID:
                raise NotFound("not found")
        actor = await _authenticate(request) if route.auth else None
        if actor is not None and route.roles is not None and actor.role not in route.roles:
            raise Forbidden("your role may not use this endpoint")
        query = _parse(route.query, dict(request.query), "query") if route.query else None
        body = await _read_body(request, route.body) if route.body else None
        ctx = Ctx(request, actor, body, query, dict(request.match_info))
        result = await route.handler(ctx)
        if route.raw or isinstance(result, web.StreamResponse):
            return result
        return json_response(result, status=route.status)

    return aiohttp_handler


async def _authenticate(request: web.Request) -> Actor:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("请先登录")
    actor = await request.config_dict[AUTHENTICATOR](token.strip())
    request[ACTOR] = actor
    return actor


async def _read_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    raw = await request.read()
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ValidationError("body: 请求体格式不正确，无法解析") from None
    if not isinstance(data, dict):
        raise ValidationError("body: 请求体必须是键值对象")
    if json_depth_over(data):  # before validation: deep nesting only serves to exhaust recursion
        raise ValidationError(
            f"请求体嵌套过深（最多 {MAX_JSON_DEPTH} 层）", {"field": "body", "max_depth": MAX_JSON_DEPTH}
        )
    return _parse(model, data, "body")


def _parse(model: type[BaseModel], data: dict[str, Any], where: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except PydanticError as exc:
        fields = [
            {
                "field": ".".join(str(p) for p in e["loc"]) or where,
                "message": zh_message(e),
                "type": e["type"],
            }
            for e in exc.errors(include_url=False, include_input=False)
        ]
        first = fields[0]
        raise ValidationError(f"{first['field']}: {first['message']}", {"fields": fields}) from None


# pydantic's own messages are English; users read these instead (keyed by error `type`,
# filled from the error's `ctx`). Types not listed fall back to a generic message.
_ZH: dict[str, str] = {
    "missing": "必填",
    "extra_forbidden": "不允许的字段",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "int_from_float": "应为整数",
    "float_parsing": "应为数字",
    "float_type": "应为数字",
    "decimal_parsing": "应为数字",
    "decimal_type": "应为数字",
    "decimal_max_digits": "数字位数过多（最多 {max_digits} 位）",
    "decimal_max_places": "小数最多 {decimal_places} 位",
    "decimal_whole_digits": "整数部分位数过多",
    "bool_parsing": "应为布尔值",
    "bool_type": "应为布尔值",
    "string_type": "应为字符串",
    "string_too_short": "至少 {min_length} 个字符",
    "string_too_long": "最多 {max_length} 个字符",
    "string_pattern_mismatch": "格式不正确",
    "too_short": "至少 {min_length} 项",
    "too_long": "最多 {max_length} 项",
    "list_type": "应为列表",
    "dict_type": "应为对象",
    "model_type": "应为对象",
    "model_attributes_type": "应为对象",
    "greater_than": "必须大于 {gt}",
    "greater_than_equal": "不能小于 {ge}",
    "less_than": "必须小于 {lt}",
    "less_than_equal": "不能大于 {le}",
    "multiple_of": "应为 {multiple_of} 的倍数",
    "finite_number": "应为有限数字",
    "literal_error": "应为以下之一：{expected}",
    "enum": "应为以下之一：{expected}",
    "date_parsing": "日期格式应为 年-月-日（如 2026-01-31）",
    "date_from_datetime_parsing": "日期格式应为 年-月-日（如 2026-01-31）",
    "date_from_datetime_inexact": "日期格式应为 年-月-日（如 2026-01-31）",
    "date_type": "日期格式应为 年-月-日（如 2026-01-31）",
    "datetime_parsing": "时间格式不正确（如 2026-01-31T08:00:00+08:00）",
    "datetime_from_date_parsing": "时间格式不正确（如 2026-01-31T08:00:00+08:00）",
    "datetime_type": "时间格式不正确（如 2026-01-31T08:00:00+08:00）",
    "timezone_aware": "时间须带时区",
    "uuid_parsing": "格式不正确",
    "json_invalid": "格式不正确",
    "string_unicode": "应为有效的文本",
    "union_tag_invalid": "类型不正确",
    "union_tag_not_found": "缺少类型字段",
}
_FALLBACK = "格式不正确"
_VALUE_ERROR = "Value error, "


def zh_message(error: Any) -> str:
    """A Chinese message for one pydantic error (without the "field: " prefix)."""
    kind = error["type"]
    if kind in ("value_error", "assertion_error"):
        # validators raise Chinese text (handlers.admin_common.invalid); a plain ValueError
        # arrives with pydantic's English prefix, which users must not read
        msg = str(error["msg"]).removeprefix(_VALUE_ERROR).removeprefix("Assertion failed, ")
        return msg or _FALLBACK
    template = _ZH.get(kind)
    if template is None:
        return _FALLBACK
    ctx = {k: str(v).replace(" or ", "、") for k, v in (error.get("ctx") or {}).items()}
    try:
        return template.format(**ctx)
    except (KeyError, IndexError):
        return _FALLBACK


def dump(result: Any) -> Any:
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    if isinstance(result, list | tuple):
        return [dump(x) for x in result]
    if isinstance(result, dict):
        return {k: dump(v) for k, v in result.items()}
    return result


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def json_response(result: Any, status: int = 200) -> web.Response:
    body = orjson.dumps(dump(result), default=_default)
    return web.Response(body=body, status=status, content_type="application/json", charset="utf-8")
