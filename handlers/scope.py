"""Scope checks: one place that turns an Actor into query filters and 404s.

`scoped(qs, actor)` narrows any queryset of rows that carry a distributor; `access_*`
fetch one object or raise NotFound — never Forbidden — so out-of-scope objects are
indistinguishable from missing ones (OWASP API1)."""

from __future__ import annotations

from typing import TypeVar

from tortoise.models import Model
from tortoise.queryset import QuerySet

from core.errors import NotFound
from handlers.actor import Actor

M = TypeVar("M", bound=Model)


def scoped(qs: QuerySet[M], actor: Actor, field: str = "distributor_id") -> QuerySet[M]:
    """Rows whose `field` (a distributor id) is in the actor's scope."""
    if actor.distributor_ids is None:
        return qs
    return qs.filter(**{f"{field}__in": list(actor.distributor_ids)})


async def access(qs: QuerySet[M], actor: Actor, obj_id: int | str, field: str = "distributor_id") -> M:
    """One row by id within scope, else NotFound."""
    try:
        pk = int(obj_id)
    except (TypeError, ValueError):
        raise NotFound("未找到该记录") from None
    obj = await scoped(qs, actor, field).get_or_none(id=pk)
    if obj is None:
        raise NotFound("未找到该记录")
    return obj


def require_distributor_in_scope(actor: Actor, distributor_id: int | None) -> None:
    if distributor_id is None or not actor.may_see_distributor(distributor_id):
        raise NotFound("未找到该经销商")
