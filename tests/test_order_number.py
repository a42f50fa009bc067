"""The order number is drawn inside the admission transaction (one commit per order): a
refused admission leaves no gap in the day's numbers, and every number is unique under
concurrency."""

from __future__ import annotations

import asyncio

import pytest

from core.clock import today
from core.errors import InsufficientStock
from models.order import Order, OrderCounter
from tests.factories_orders import make_order, shop


async def test_refused_admission_when_rolled_back_draws_no_number(db) -> None:
    s = await shop(on_hand=3)
    with pytest.raises(InsufficientStock):
        await make_order(s["distributor"], product=s["product"], qty=5)
    assert await OrderCounter.all().count() == 0  # the draw rolled back with the refusal
    out = await make_order(s["distributor"], product=s["product"], qty=1)
    assert out.number == f"SO{today():%Y%m%d}0001"


async def test_concurrent_admissions_when_numbered_are_unique_and_dense(db) -> None:
    s = await shop(on_hand=100)
    outs = await asyncio.gather(
        *(make_order(s["distributor"], product=s["product"], qty=1) for _ in range(8))
    )
    numbers = sorted(o.number for o in outs)
    day = f"SO{today():%Y%m%d}"
    assert numbers == [f"{day}{i:04d}" for i in range(1, 9)]
    assert sorted(await Order.all().values_list("number", flat=True)) == numbers
