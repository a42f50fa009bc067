"""Domain events: use-cases emit, other use-cases subscribe (notifications, commission).

Subscribers run inside the emitter's transaction, so what they write (outbox rows,
commission entries) commits or rolls back with the change that caused it. Nothing slow
or external may happen in a subscriber: external sends go through the outbox.

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
  order.placed (and an auto order.approved) fire once the order row is written but BEFORE its
  lines and reservations (kept out of the stock-lock window): read the order, not its lines;
  if the stock then falls short, the whole admission — subscribers' rows too — rolls back.
  They also carry ``order``: the row's facts {id, number, status, total_amount,
  distributor_id, distributor_name, region}, which spares the subscriber a read inside the
  busiest transaction in the product.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from core.logging import get_logger

log = get_logger("qudao.events")


@dataclass(frozen=True)
class Event:
    name: str
    payload: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[Event], Awaitable[None]]
_subscribers: dict[str, list[Subscriber]] = {}

# Modules whose import registers subscribers; loaded once, on the first emit.
SUBSCRIBER_MODULES = ("handlers.notify_events", "handlers.commission_events")
_loaded = False


def subscribe(*names: str) -> Callable[[Subscriber], Subscriber]:
    def register(fn: Subscriber) -> Subscriber:
        for name in names:
            if fn not in _subscribers.setdefault(name, []):
                _subscribers[name].append(fn)
        return fn

    return register


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in SUBSCRIBER_MODULES:
            importlib.import_module(module)


async def emit(name: str, **payload: Any) -> None:
    """Run every subscriber of `name` now, in the caller's transaction."""
    _load()
    event = Event(name, payload)
    for fn in _subscribers.get(name, []):
        await fn(event)
    log.debug("event", name=name, **payload)
