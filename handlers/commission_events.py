"""Commission subscribers: accrue on order.completed, reverse on order.returned.

Imported lazily by handlers/events.py on the first emit. They run inside the emitter's
transaction, so the entries commit or roll back with the completion or return itself."""

from __future__ import annotations

from handlers.commission import accrue_order, reverse_return
from handlers.events import Event, subscribe


@subscribe("order.completed")
async def on_order_completed(event: Event) -> None:
    await accrue_order(int(event.payload["order_id"]), int(event.payload.get("actor_id") or 0))


@subscribe("order.returned")
async def on_order_returned(event: Event) -> None:
    await reverse_return(
        int(event.payload["order_id"]),
        int(event.payload["return_id"]),
        int(event.payload.get("actor_id") or 0),
    )
