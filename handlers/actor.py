"""Who is acting and what they may see: the one access-control mechanism.

Every route, chat intent and job runs a use-case as an Actor. `distributor_ids` is the set
of distributors in scope (None = all, for admins); `regions` limit managers. Scope checks
live in `handlers.scope`; an object outside scope is reported as not found (404)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    admin = "admin"
    manager = "manager"
    sales = "sales"
    distributor = "distributor"


STAFF = frozenset({Role.admin, Role.manager})


@dataclass(frozen=True)
class Actor:
    user_id: int
    role: Role
    display_name: str = ""
    distributor_id: int | None = None  # a distributor user's own distributor
    distributor_ids: frozenset[int] | None = None  # distributors in scope; None = all
    regions: frozenset[str] | None = None  # manager regions; None = all
    token_id: int | None = None
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF

    @property
    def is_admin(self) -> bool:
        return self.role == Role.admin

    def sees_all(self) -> bool:
        return self.distributor_ids is None

    def may_see_distributor(self, distributor_id: int | None) -> bool:
        if distributor_id is None:
            return self.is_staff
        return self.distributor_ids is None or distributor_id in self.distributor_ids


SYSTEM = Actor(user_id=0, role=Role.admin, display_name="system")
