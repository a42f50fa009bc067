"""BOLA matrix cases: every route of the API, called as every role, must honour scope.

`tests/test_bola.py` walks `miniapp_api.app.collect_routes()` and, for every route, looks up
a `Case` in the `CASES` dicts of the modules of this package. A route without a case FAILS
the test (listing every route lacking one), and so does a case for a route that no longer
exists. So: when you add a route, add its case here in the same change.

Writing cases (one module per feature: `tests/bola/<feature>.py`)
-----------------------------------------------------------------

    from tests.bola import Case, Probe, EAST_CHILD_SEES
    from tests.factories import make_order ...

    async def _order(world, client) -> Probe:
        order = await make_order(world.east.distributor, ...)      # owned by EAST
        return Probe(f"/orders/{order.id}/cancel", body={})

    CASES: dict[tuple[str, str], Case] = {
        ("POST", r"/orders/{id:\\d+}/cancel"): Case(_order),          # kind from the route: "object"
        ("GET", "/orders"): Case(_list_orders),                     # kind "list" (route scope "self")
    }

- The key is `(METHOD, path)` exactly as declared on the route (`r"/orders/{id:\\d+}"`, no
  `/api/v1` prefix).
- `Case.probe` is `async (world, client) -> Probe`. It is called ONCE PER ROLE, right before
  that role's request, so a write route acts on a fresh object every time (cancelling an
  order twice would otherwise answer 409). The probe builds (through the ORM factories or
  admin HTTP calls with `world.headers("", "admin")`) an object OWNED BY `world.east`
  (normally `world.east.distributor`, the 一级) and returns the request to make:
  `Probe(path, body=None, headers=None, data=None, marker=None, visible=None)`.
  `path` is relative to /api/v1 and may carry a query string. `body` is sent as JSON;
  `data` (bytes) is sent raw instead (uploads; put the Content-Type in `headers`). Extra
  `headers` are added to the caller's Authorization (e.g. a fresh `Idempotency-Key`).
  NEVER suspend, delete or otherwise spoil the shared `world.*` objects (tokens, users,
  distributors, warehouse, product): create new ones for destructive routes.
- The world: `tests.factories.make_world()` (east = 华东, north = 华北; a 一级 distributor
  + 二级 child each, a distributor warehouse, a sales rep assigned to both, a manager of the
  region, a user per distributor; an admin; one product in a company warehouse). One world
  is built per feature module; every request uses a FRESH token of the role's user (so a
  case may log a token out).

Roles (the keys used below)
---------------------------
`admin`, and for tenant in east/north: `<tenant>.manager`, `<tenant>.sales`,
`<tenant>.distributor` (user of the 一级), `<tenant>.child` (user of the 二级).

Expectations, per role, in this order (the first that applies):
1. The route declares `roles=` and the role's user role is not in it -> 403 `forbidden`.
2. `Case.expect[role]` if given: a status or a tuple of acceptable statuses.
3. By `Case.kind` (default: the route's `scope`):
   - "object" (an object id in the path, or an object named in the body): roles in
     `Case.sees` succeed with a status in `Case.ok` (default: the route's declared status);
     every other role gets 404 `not_found` (never 403, never 200).
   - "list" (a list filtered by scope): every role gets 200; roles in `Case.sees` MUST find
     the probe's object in the answer, the others must NOT. Found = `Probe.visible(json)` if
     given, else any item of `json["items"]` (or of `json` when it is a list) whose "id" ==
     `Probe.marker`. A list probe must set `marker` or `visible`.
   - "self" (the caller's own data, nothing of east's to leak: /me, logout, inbox counts):
     every role succeeds with a status in `Case.ok`.
   - "public" (auth=False routes): called once without a token; any status in `Case.ok`
     (default: the declared status). Use `expect` only for role-based rules.
   `Case.sees` defaults to `EAST_SEES` = admin, east.manager, east.sales, east.distributor
   (the 一级 sees itself and its children; the 二级's user does NOT see its parent's data).
   Use `EAST_CHILD_SEES` for objects owned by `world.east.child` (its 一级 parent sees them
   too), `ALL_ROLES` for shared objects (products, company warehouses).
4. Every answer must be < 500, and every 4xx must be the documented error JSON.
5. Optional `Case.snapshot`: `async (world, probe) -> Any`; for every role that is refused
   (403/404) the runner compares the snapshot before and after the call: a refused call must
   change nothing.

Notes: a role that may call a route but is refused by a business rule (e.g. a 二级 user
ordering for its parent) belongs in `expect` with the exact status. Keep probes cheap (a few
inserts): the matrix runs ~9 calls per route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

ROLE_KEYS: tuple[str, ...] = (
    "admin",
    "east.manager",
    "east.sales",
    "east.distributor",
    "east.child",
    "north.manager",
    "north.sales",
    "north.distributor",
    "north.child",
)
EAST_SEES: frozenset[str] = frozenset({"admin", "east.manager", "east.sales", "east.distributor"})
EAST_CHILD_SEES: frozenset[str] = EAST_SEES | {"east.child"}
ALL_ROLES: frozenset[str] = frozenset(ROLE_KEYS)
STAFF_SEES: frozenset[str] = frozenset({"admin", "east.manager"})  # admin + the region's manager


@dataclass
class Probe:
    """One request to make: path relative to /api/v1 (query string allowed)."""

    path: str
    body: Any = None
    headers: dict[str, str] | None = None
    data: bytes | None = None
    marker: Any = None  # the id of east's object, looked up in list answers
    visible: Callable[[Any], bool] | None = None  # custom "is east's object in this answer?"
    extra: dict[str, Any] = field(default_factory=dict)  # free room for snapshot()


ProbeFn = Callable[[Any, Any], Awaitable[Probe]]  # (world, client) -> Probe
SnapshotFn = Callable[[Any, Probe], Awaitable[Any]]  # (world, probe) -> comparable state


@dataclass(frozen=True)
class Case:
    probe: ProbeFn
    kind: str | None = None  # "object" | "list" | "self" | "public"; None = the route's scope
    sees: frozenset[str] = EAST_SEES
    ok: tuple[int, ...] | None = None  # success statuses; None = the route's declared status
    expect: dict[str, int | tuple[int, ...]] = field(default_factory=dict)
    snapshot: SnapshotFn | None = None


def seen_in(answer: Any, marker: Any) -> bool:
    """Default list lookup: an item with "id" == marker in answer["items"] (or in a list)."""
    items = answer.get("items", []) if isinstance(answer, dict) else answer
    if not isinstance(items, list):
        return False
    return any(isinstance(it, dict) and it.get("id") == marker for it in items)


__all__ = [
    "ALL_ROLES",
    "EAST_CHILD_SEES",
    "EAST_SEES",
    "ROLE_KEYS",
    "STAFF_SEES",
    "Case",
    "Probe",
    "seen_in",
]


_HASHES: dict[str, str] = {}


def cached_hash(password: str) -> str:
    """argon2 is slow on purpose (~0.3 s): the factories hash the same test password for every
    user, so tests may patch `tests.factories.hash_password` with this (one hash per password)."""
    from handlers.passwords import hash_password

    if password not in _HASHES:
        _HASHES[password] = hash_password(password)
    return _HASHES[password]
