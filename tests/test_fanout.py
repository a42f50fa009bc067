"""Notification fan-out happens in the outbox drain, not in the order admission transaction:
the admission writes one `notification_event` row; the next drain pass resolves the region's
managers and writes (and delivers) their 待审核 notices."""

from __future__ import annotations

import pytest

from core.errors import InsufficientStock
from handlers.fanout import fan_out_events
from handlers.outbox import Drainer, SendResult
from models.base import UserRole
from models.notification import Notification, NotificationEvent
from tests.factories_orders import make_order, quick_user, shop


class _Quiet:
    async def send(self, n):  # type: ignore[no-untyped-def]
        return SendResult.sent()


async def test_order_placed_when_admitted_writes_one_event_not_the_notices(db) -> None:
    s = await shop()
    managers = [await quick_user(UserRole.MANAGER, regions=["华东"]) for _ in range(3)]
    await make_order(s["distributor"], product=s["product"], qty=1)
    assert await Notification.filter(recipient_id__in=[m.id for m in managers]).count() == 0
    assert await NotificationEvent.filter(name="order.placed").count() == 1
    await Drainer(_Quiet()).drain_once()  # the next drain pass
    rows = await Notification.filter(recipient_id__in=[m.id for m in managers])
    assert len(rows) == 3 and all("待审核" in r.title for r in rows)
    assert await NotificationEvent.all().count() == 0


async def test_fan_out_when_run_twice_writes_each_notice_once(db) -> None:
    s = await shop()
    manager = await quick_user(UserRole.MANAGER, regions=["华东"])
    await make_order(s["distributor"], product=s["product"], qty=1)
    assert await fan_out_events() == 1
    assert await fan_out_events() == 0
    assert await Notification.filter(recipient_id=manager.id).count() == 1


async def test_refused_admission_when_rolled_back_leaves_no_event(db) -> None:
    s = await shop(on_hand=1)
    await quick_user(UserRole.MANAGER, regions=["华东"])
    with pytest.raises(InsufficientStock):
        await make_order(s["distributor"], product=s["product"], qty=5)
    assert await NotificationEvent.all().count() == 0
