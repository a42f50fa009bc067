"""The BOLA matrix (OWASP API1/API5): every route in the route table, called as every role.

Generated from `miniapp_api.app.collect_routes()`: a route without a case in
`tests/bola/<feature>.py` fails `test_every_route_has_a_case`. The contract for cases is the
docstring of `tests/bola/__init__.py`."""

from __future__ import annotations

import importlib
import pkgutil
import traceback
from types import ModuleType
from typing import Any

import pytest

import tests.bola as bola
from miniapp_api.app import collect_routes
from miniapp_api.framework import Route
from tests import factories
from tests.bola import ROLE_KEYS, Case, Probe, cached_hash, seen_in
from tests.factories import World, auth, make_world, token_for


@pytest.fixture(autouse=True)
def _fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factories, "hash_password", cached_hash)


ROUTES: dict[tuple[str, str], Route] = {(r.method, r.path): r for r in collect_routes().routes}
ROLE_OF = {"manager": "manager", "sales": "sales", "distributor": "distributor", "child": "distributor"}


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(bola.__path__) if not m.name.startswith("_"))


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"tests.bola.{name}")


def _all_cases() -> tuple[dict[tuple[str, str], str], list[str]]:
    owners: dict[tuple[str, str], str] = {}
    dupes: list[str] = []
    for name in _modules():
        for key in _load(name).CASES:
            if key in owners:
                dupes.append(f"{key[0]} {key[1]} in both {owners[key]} and {name}")
            owners[key] = name
    return owners, dupes


def test_every_route_has_a_case() -> None:
    owners, dupes = _all_cases()
    missing = sorted(set(ROUTES) - set(owners))
    stale = sorted(set(owners) - set(ROUTES))
    problems = [f"no BOLA case for route: {m} {p}" for m, p in missing]
    problems += [f"BOLA case for a route that does not exist: {m} {p} ({owners[(m, p)]})" for m, p in stale]
    problems += [f"duplicate BOLA case: {d}" for d in dupes]
    assert not problems, "add cases in tests/bola/<feature>.py (see tests/bola/__init__.py):\n" + "\n".join(
        problems
    )


def test_every_route_declares_a_known_scope() -> None:
    known = ("public", "self", "object")
    bad = [f"{r.method} {r.path}: {r.scope!r}" for r in ROUTES.values() if r.scope not in known]
    assert not bad, bad


def _user(world: World, role: str) -> Any:
    if role == "admin":
        return world.admin
    tenant, kind = role.split(".")
    t = getattr(world, tenant)
    return {"manager": t.manager, "sales": t.rep, "distributor": t.dist_user, "child": t.child_user}[kind]


def _user_role(role: str) -> str:
    return "admin" if role == "admin" else ROLE_OF[role.split(".")[1]]


def expected(route: Route, case: Case, kind: str, role: str) -> tuple[tuple[int, ...], bool | None]:
    """(acceptable statuses, must the east object be visible in a list answer?)"""
    ok = case.ok or (route.status,)
    if route.roles is not None and _user_role(role) not in route.roles:
        return (403,), None
    if role in case.expect:
        want = case.expect[role]
        return (want,) if isinstance(want, int) else tuple(want), None
    if kind == "object":
        return (ok if role in case.sees else (404,)), None
    if kind == "list":
        return (200,), role in case.sees
    return ok, None


async def _call(client: Any, method: str, probe: Probe, headers: dict[str, str]) -> tuple[int, Any, str]:
    hdrs = {**headers, **(probe.headers or {})}
    kw: dict[str, Any] = {"headers": hdrs}
    if probe.data is not None:
        kw["data"] = probe.data
    elif probe.body is not None:
        kw["json"] = probe.body
    async with client.request(method, "/api/v1" + probe.path, **kw) as resp:
        ctype = resp.headers.get("Content-Type", "")
        payload = await resp.json() if "json" in ctype else await resp.read()
        return resp.status, payload, ctype


async def _run_case(client: Any, world: World, route: Route, case: Case) -> list[str]:
    kind = case.kind or route.scope
    name = f"{route.method} {route.path}"
    failures: list[str] = []
    roles = ("public",) if kind == "public" else ROLE_KEYS
    for role in roles:
        try:
            probe = await case.probe(world, client)
            headers = {} if role == "public" else auth(await token_for(_user(world, role)))
            if role == "public":
                want, must_see = case.ok or (route.status,), None
            else:
                want, must_see = expected(route, case, kind, role)
            before = await case.snapshot(world, probe) if case.snapshot else None
            status, payload, _ = await _call(client, route.method, probe, headers)
        except Exception:
            failures.append(f"{name} as {role}: probe/call crashed:\n{traceback.format_exc(limit=4)}")
            continue
        where = f"{name} as {role} ({probe.path})"
        if status not in want:
            failures.append(f"{where}: got {status}, want {want}: {str(payload)[:200]}")
            continue
        if status >= 400:
            code = payload.get("error", {}).get("code") if isinstance(payload, dict) else None
            if not code:
                failures.append(f"{where}: {status} without the error JSON")
            elif {403: "forbidden", 404: "not_found"}.get(status, code) != code:
                failures.append(f"{where}: {status} with code {code}")
            if case.snapshot and status in (403, 404):
                after = await case.snapshot(world, probe)
                if after != before:
                    failures.append(f"{where}: refused but changed state: {before!r} -> {after!r}")
        if must_see is not None:
            if probe.visible is None and probe.marker is None:
                failures.append(f"{name}: list probe without marker/visible")
                continue
            seen = probe.visible(payload) if probe.visible else seen_in(payload, probe.marker)
            if seen != must_see:
                failures.append(f"{where}: east's object {'missing from' if must_see else 'LEAKED in'} list")
    return failures


@pytest.mark.parametrize("module", _modules())
async def test_bola_matrix(client, module: str) -> None:  # type: ignore[no-untyped-def]
    world = await make_world()
    failures: list[str] = []
    for key, case in _load(module).CASES.items():
        route = ROUTES.get(key)
        if route is not None:  # stale keys are reported by test_every_route_has_a_case
            failures += await _run_case(client, world, route, case)
    assert not failures, f"{len(failures)} BOLA failure(s):\n" + "\n".join(failures)
