"""Hostile input on EVERY route of the route table (`miniapp_api.app.collect_routes()`): deep
JSON, dates and timestamps at the edges of Python's calendar, oversized strings, U+0000 and
huge integers — each in every field of every body and query model, derived from the models
themselves, so a new route or field is covered without writing a case.

Expectations: never a 500; a hostile value in a field is a 400 `validation_error` whose
`details.fields` names that field (rejected at parse time, before any handler, query or
conversion runs); deep JSON is a 400 on every route that takes a JSON body, signed in or not.
The targeted regressions: tests/test_nul_input.py (U+0000), tests/test_query_ids.py (huge ids),
tests/test_reports.py / tests/test_payments.py (calendar edges)."""

from __future__ import annotations

import itertools
import re
import types
import typing
from collections.abc import Iterator
from datetime import date, datetime
from enum import Enum
from typing import Any

import pytest
from pydantic import (
    AwareDatetime,
    BaseModel,
    FutureDate,
    FutureDatetime,
    NaiveDatetime,
    PastDate,
    PastDatetime,
)

from miniapp_api.app import collect_routes
from miniapp_api.framework import Route
from tests import factories
from tests.bola import cached_hash
from tests.factories import World, make_world

ROUTES = collect_routes().routes
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")
_KEYS = itertools.count()

DATE_EDGES = ["0001-01-01", "9999-12-31", "1999-12-31", "3000-01-01"]
TIMESTAMP_EDGES = [
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-12:00",
    "9999-12-31T23:59:59Z",
]
HUGE_INTS = [2**31, 10**30]
LONG_BODY_STRING = "界" * 70_000  # 210 KB of UTF-8: inside the 1 MB body limit
LONG_QUERY_STRING = "x" * 4000  # inside aiohttp's 8 KB request line


@pytest.fixture(autouse=True)
def _fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factories, "hash_password", cached_hash)


# --- the walker -------------------------------------------------------------------------------


def _path(route: Route) -> str:
    """The route's path with every parameter filled (ids: 1; alternatives: the first)."""

    def fill(m: re.Match[str]) -> str:
        pattern = m.group(2)
        if pattern is None:
            return "x"
        if pattern in (r"\d+", "[0-9]+"):
            return "1"
        return pattern.split("|")[0]

    return "/api/v1" + re.sub(r"{(\w+)(?::([^}]*))?}", fill, route.path)


def _leaves(tp: Any) -> list[Any]:
    """The concrete types inside Optional/Union/Annotated/list[...]."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _leaves(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType, list, tuple, set, frozenset):
        return [leaf for arg in typing.get_args(tp) if arg is not type(None) for leaf in _leaves(arg)]
    return [tp]


def _is_list(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _is_list(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(a) for a in typing.get_args(tp))
    return origin in (list, tuple, set, frozenset)


def _kind(leaf: Any) -> str | None:
    if leaf in (AwareDatetime, NaiveDatetime, PastDatetime, FutureDatetime):  # not datetime subclasses
        return "timestamp"
    if leaf in (PastDate, FutureDate):
        return "date"
    if not isinstance(leaf, type) or issubclass(leaf, Enum):
        return None  # Literal, Enum: a fixed set of values
    if issubclass(leaf, datetime):
        return "timestamp"
    if issubclass(leaf, date):
        return "date"
    if issubclass(leaf, bool):
        return None
    if issubclass(leaf, int):
        return "int"
    if issubclass(leaf, str):
        return "str"
    return None


def fields(model: type[BaseModel], prefix: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(location, kind) of every date/timestamp/int/str field, nested models included; a list
    adds index 0 to the location (pydantic's error loc)."""
    for name, info in model.model_fields.items():
        loc = (*prefix, info.alias or name)
        many = _is_list(info.annotation)
        for leaf in _leaves(info.annotation):
            if isinstance(leaf, type) and issubclass(leaf, BaseModel):
                yield from fields(leaf, (*loc, 0) if many else loc)
            elif (kind := _kind(leaf)) is not None:
                yield ((*loc, 0) if many else loc), kind


def _nest(loc: tuple[Any, ...], value: Any) -> Any:
    """A body holding `value` at `loc` (an int in loc = a list)."""
    if not loc:
        return value
    head, rest = loc[0], loc[1:]
    return [_nest(rest, value)] if isinstance(head, int) else {head: _nest(rest, value)}


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def _headers(world: World, route: Route) -> dict[str, str]:
    """A user whose role may call the route (admin when it may), so parsing is reached."""
    roles = route.roles or {"admin"}
    role = "admin" if "admin" in roles else sorted(roles)[0]
    return {**world.headers("east", role), "Idempotency-Key": f"fuzz-{next(_KEYS)}"}


async def _send(client: Any, route: Route, headers: dict[str, str], **kw: Any) -> tuple[int, Any]:
    async with client.request(route.method, _path(route), headers=headers, **kw) as resp:
        ctype = resp.headers.get("Content-Type", "")
        return resp.status, (await resp.json() if "json" in ctype else await resp.text())


def _check_rejected(where: str, status: int, payload: Any, field: str | None) -> str | None:
    """None when the answer is a 400 validation_error (naming `field`, if given)."""
    if status != 400 or not isinstance(payload, dict) or "error" not in payload:
        return f"{where}: {status} {str(payload)[:300]}"
    err = payload["error"]
    if err.get("code") != "validation_error":
        return f"{where}: 400 with code {err.get('code')}"
    if field is not None:
        named = [f.get("field") for f in err.get("details", {}).get("fields", [])]
        # the field itself, the list/model holding it (U+0000 is checked on the outer
        # field) or a member of it (a union's branch: "recipients.0.constrained-int")
        if not any(n == field or field.startswith(f"{n}.") or n.startswith(f"{field}.") for n in named):
            return f"{where}: 400 but not for {field}: {err.get('message')} {named}"
    return None


HOSTILE: dict[str, list[Any]] = {
    "date": DATE_EDGES,
    "timestamp": TIMESTAMP_EDGES,
    "int": HUGE_INTS,
    "str": [LONG_BODY_STRING, "a\u0000b"],
}


# --- the tests --------------------------------------------------------------------------------


def test_the_walker_sees_the_fields_that_matter() -> None:
    """Guard against a walker that silently finds nothing (e.g. after a typing change)."""
    by_route = {(r.method, r.path): r for r in ROUTES}
    sales = dict(fields(by_route[("GET", "/reports/sales")].query))  # type: ignore[arg-type]
    assert sales["date_from",] == "date" and sales["date_to",] == "date"
    pay = dict(fields(by_route[("POST", "/admin/payments")].body))  # type: ignore[arg-type]
    assert pay["paid_at",] == "timestamp" and pay["distributor_id",] == "int" and pay["ref",] == "str"
    order = dict(fields(by_route[("POST", "/orders")].body))  # type: ignore[arg-type]
    assert order["lines", 0, "sku"] == "str" and order["lines", 0, "qty"] == "int"
    assert _path(by_route[("POST", "/admin/import/{kind:products|stock|distributors}")]) == (
        "/api/v1/admin/import/products"
    )


async def test_deep_json_is_400_on_every_route_signed_in_or_not(client) -> None:
    """~330 nested `[` once crashed the NUL check's recursion in core/schema.py (a 500 for an
    unauthenticated request); bodies deeper than 32 levels are refused before validation."""
    w = await make_world()
    failures: list[str] = []
    for route in ROUTES:
        if route.method not in BODY_METHODS:
            continue
        # nested inside a declared field (an unknown one is refused before any validator)
        key = next(iter(route.body.model_fields), "a") if route.body is not None else "a"
        head = b'{"' + key.encode() + b'": '
        deep_list = head + b"[" * 500 + b"]" * 500 + b"}"  # orjson itself stops at 1024
        deep_dict = head + b'{"a": ' * 500 + b"1" + b"}" * 500 + b"}"
        just_over = head + b"[" * 31 + b"]" * 31 + b"}"  # depth 33
        for name, raw in (("list", deep_list), ("dict", deep_dict), ("33", just_over)):
            for signed_in in (True, False):
                if not signed_in and route.auth:
                    headers: dict[str, str] = {}
                else:
                    headers = _headers(w, route)
                status, payload = await _send(
                    client, route, {**headers, "Content-Type": "application/json"}, data=raw
                )
                where = f"{route.method} {route.path} deep {name} {'admin' if signed_in else 'anonymous'}"
                if route.body is not None and (signed_in or not route.auth):
                    problem = _check_rejected(where, status, payload, None)
                elif not 400 <= status < 500:  # no body model (uploads, raw): any clear 4xx
                    problem = f"{where}: {status} {str(payload)[:200]}"
                else:
                    problem = None
                if problem:
                    failures.append(problem)
    assert not failures, f"{len(failures)} failure(s):\n" + "\n".join(failures)


async def test_every_field_refuses_hostile_values_at_parse_time(client) -> None:
    """Every date / timestamp / integer / string field of every body and query model, on every
    route: calendar edges (0001-01-01 .. 9999-12-31, outside the business calendar), integers
    beyond 32 bits, oversized strings and U+0000 are a 400 naming the field."""
    w = await make_world()
    failures: list[str] = []
    tried = 0
    for route in ROUTES:
        for model, where_in in ((route.query, "query"), (route.body, "body")):
            if model is None:
                continue
            for loc, kind in fields(model):
                name = _field_name(loc)
                for value in HOSTILE[kind]:
                    if where_in == "query":
                        if len(loc) != 1:
                            continue
                        if kind == "str" and isinstance(value, str) and len(value) > 1000:
                            value = LONG_QUERY_STRING
                        status, payload = await _send(
                            client, route, _headers(w, route), params={loc[0]: str(value)}
                        )
                    else:
                        body = _nest(loc, value)
                        status, payload = await _send(client, route, _headers(w, route), json=body)
                    tried += 1
                    shown = (
                        value if not isinstance(value, str) or len(value) < 40 else f"<{len(value)} chars>"
                    )
                    problem = _check_rejected(
                        f"{route.method} {route.path} {where_in} {name}={shown!r}", status, payload, name
                    )
                    if problem:
                        failures.append(problem)
    assert tried > 200, tried
    assert not failures, f"{len(failures)} failure(s):\n" + "\n".join(failures)


def test_a_plain_date_field_is_bounded_too() -> None:
    """A field declared as plain `date` / `datetime` (not core.schema.Day / Timestamp) is still
    bounded by the input base classes, so a new route cannot reopen the overflow."""
    from pydantic import ValidationError as PydanticError

    from core.schema import In, Query

    class Body(In):
        day: date
        when: datetime | None = None
        days: list[date] = []

    class Params(Query):
        on: date | None = None

    assert Body.model_validate({"day": "2999-12-31", "days": ["2000-01-01"]}).day == date(2999, 12, 31)
    for bad in (
        {"day": "0001-01-01"},
        {"day": "2026-01-01", "when": "9999-12-31T23:59:59+00:00"},
        {"day": "2026-01-01", "days": ["2026-01-01", "9999-12-31"]},
    ):
        with pytest.raises(PydanticError) as caught:
            Body.model_validate(bad)
        assert caught.value.errors()[0]["type"] == "date_out_of_range", bad
    with pytest.raises(PydanticError):
        Params.model_validate({"on": "1999-12-31"})
