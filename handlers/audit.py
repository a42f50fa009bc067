"""Audit log: who changed what. Every admin write and every state transition calls `record`
inside its own transaction, so the log and the change commit together."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from core.request_context import request_id_var
from handlers.actor import Actor
from handlers.sql import insert
from models.audit import AuditLog


def jsonable(value: Any) -> Any:
    """Plain JSON data from what use-cases hold: Decimal as an exact string, dates ISO."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value


def snapshot(obj: Any, fields: list[str] | None = None) -> dict[str, Any]:
    """The persisted fields of a model instance as JSON-friendly data (for before/after)."""
    names = fields or list(obj._meta.db_fields)
    return {name: jsonable(getattr(obj, name, None)) for name in names}


async def record(
    actor: Actor | None,
    action: str,
    entity: str,
    entity_id: int | str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    await insert(  # raw: every order admission and transition writes one (handlers.sql)
        AuditLog,
        {
            "actor_id": actor.user_id if actor is not None and actor.user_id else None,
            "action": action,
            "entity": entity,
            "entity_id": str(entity_id),
            "before": jsonable(before) if before is not None else None,
            "after": jsonable(after) if after is not None else None,
            "request_id": request_id_var.get(),
        },
        returning=None,
    )
