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
from core.pydantic_zh import zh_fields
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
                raise NotFound()
        actor = await _authenticate(request) if route.auth else None
        if actor is not None and route.roles is not None and actor.role not in route.roles:
            raise Forbidden("您的角色不能使用这个功能")
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
        fields = zh_fields(exc, where)
        first = fields[0]
        raise ValidationError(f"{first['field']}: {first['message']}", {"fields": fields}) from None


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
