"""Domain events: use-cases emit, other use-cases subscribe (notifications, commission).

Subscribers run inside the emitter's transaction, so what they write (outbox rows,
commission entries) commits or rolls back with the change that caused it. Nothing slow
or external may happen in a subscriber: external sends go through the outbox.
A *deferred* subscriber (`subscribe(..., deferred=True)`: the notification fan-out) does
not run there: the emitter writes one `notification_event` row per event instead (its payload
made JSON-plain: Decimal -> str, enums -> value), and the outbox drain runs the deferred
subscribers on it in a transaction of their own (`handlers.fanout`). Recipients are then
resolved off the business transaction; the notices arrive on the next drain pass.

Event names and payloads (all ids are ints):
  order.placed / order.approved / order.rejected / order.cancelled  {order_id, actor_id}
  order.shipped {order_id, shipment_id, actor_id}   order.received / order.completed {order_id, actor_id}
  order.returned {order_id, return_id, actor_id}   (a return received: return_id = the OrderReturn)
  return.requested / return.approved / return.rejected / return.received
      {return_request_id, order_id, actor_id}   (handlers/returns.py)
  lead.registered / lead.approved / lead.rejected / lead.expired {lead_id, actor_id}
  (lead.rejected of a lead an approval superseded also carries superseded_by: the winner's id)
  lead.escalated {lead_id, actor_id, regions: [str]}   (an arbitration reaching other regions)
  statement.ready / statement.confirmed / statement.disputed {statement_id, actor_id}
  commission.accrued {order_id, entry_ids: [int], actor_id}   (entries booked at completion)
  commission.reversed {order_id, return_id, entry_ids: [int], actor_id}   (a return's reversals)
  Order notes (handlers/ordering.py): order.shipped fires for EVERY shipment, partial ones too
  (the order's status says whether it is now fully `shipped`); an order auto-approved at
  admission emits order.placed then order.approved with an extra `auto: True` (actor_id = the
  placer); order.completed from the order_completion job has actor_id 0 (system).
  order.placed (and an auto order.approved) fire at the end of the admission, once the order
  is numbered and its lines and reservations are written; a refused admission emits nothing.
  They also carry ``order``: the row's facts {id, number, status, total_amount,
  distributor_id, distributor_name, region}, which spares the subscriber a read inside the
  busiest transaction in the product.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from core.logging import get_logger
from handlers.sql import insert
from models.notification import NotificationEvent

log = get_logger("qudao.events")


@dataclass(frozen=True)
class Event:
    name: str
    payload: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[Event], Awaitable[None]]
_subscribers: dict[str, list[Subscriber]] = {}
_deferred: dict[str, list[Subscriber]] = {}

# Modules whose import registers subscribers; loaded once, on the first emit.
SUBSCRIBER_MODULES = ("handlers.notify_events", "handlers.commission_events")
_loaded = False


def subscribe(*names: str, deferred: bool = False) -> Callable[[Subscriber], Subscriber]:
    table = _deferred if deferred else _subscribers

    def register(fn: Subscriber) -> Subscriber:
        for name in names:
            if fn not in table.setdefault(name, []):
                table[name].append(fn)
        return fn

    return register


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in SUBSCRIBER_MODULES:
            importlib.import_module(module)


async def emit(name: str, **payload: Any) -> None:
    """Run every subscriber of `name` now, in the caller's transaction; record the event for
    its deferred subscribers (one row, in the same transaction)."""
    _load()
    event = Event(name, payload)
    for fn in _subscribers.get(name, []):
        await fn(event)
    if name in _deferred:
        await insert(NotificationEvent, {"name": name, "payload": plain(payload)}, returning=None)
    log.debug("event", name=name, **payload)


async def run_deferred(event: Event) -> None:
    """The deferred subscribers of an event recorded by `emit` (the outbox drain's fan-out)."""
    _load()
    for fn in _deferred.get(event.name, []):
        await fn(event)


def plain(value: Any) -> Any:
    """JSON-plain: Decimal -> str, enum -> its value, date/datetime -> ISO 8601."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value
