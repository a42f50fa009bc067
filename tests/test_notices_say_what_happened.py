"""Issue 18, notifications: what a rep, a buyer and a manager read says what happened."""

from __future__ import annotations

from decimal import Decimal

import pytest
from tortoise.transactions import in_transaction

from channels.notifier import build_notifier
from channels.wechat.client import trim_value
from core.runtime import runtime
from handlers import ordering, statements
from handlers.actor import SYSTEM
from handlers.events import emit
from handlers.fanout import fan_out_events
from handlers.outbox import Drainer
from models.base import IdentityChannel, NotificationChannel, NotificationStatus, StatementKind, UserRole
from models.commission import Statement
from models.notification import Notification
from models.user import Identity, SalesAssignment
from tests.factories_orders import actor_of, make_order, quick_user, shop
from tests.factories_push import http_session, push_config, start_fake


@pytest.fixture
def config(config):  # type: ignore[no-untyped-def]
    # An Official Account is configured (mini-program and OA share [wechat]).
    return config.with_overrides({"wechat": {"appid": "wx-test", "secret": "wx-secret"}})


async def _inbox(user_id: int) -> list[Notification]:
    await fan_out_events()  # what the outbox drain's next pass does first
    return await Notification.filter(recipient_id=user_id).order_by("id")


async def test_two_shipment_batches_each_name_batch_carrier_and_tracking(db):  # type: ignore[no-untyped-def]
    s = await shop(price="100.00")
    sku = s["product"].sku
    out = await make_order(s["distributor"], product=s["product"], qty=10, status="approved")
    await ordering.ship_order(
        SYSTEM,
        out.id,
        {"lines": [{"sku": sku, "qty": 4}], "carrier": "顺丰速运", "tracking_no": "SF1234567890"},
    )
    await ordering.ship_order(
        SYSTEM,
        out.id,
        {"lines": [{"sku": sku, "qty": 6}], "carrier": "德邦物流", "tracking_no": "DPK88001234"},
    )
    # Both batches ship before the drain fans out: each notice still describes its own batch.
    shipped = [n for n in await _inbox(s["user"].id) if "发货" in n.title]
    assert len(shipped) == 2, [n.title for n in shipped]
    assert "第1批发货" in shipped[0].title and "已全部发货" in shipped[1].title
    first, second = shipped
    assert first.title != second.title and first.body != second.body
    assert "第1批" in first.title + first.body and "第2批" in second.title + second.body
    assert "顺丰速运" in first.body and "SF1234567890" in first.body
    assert "德邦物流" in second.body and "DPK88001234" in second.body
    assert "4吨" in first.body and "6吨" in second.body  # what is in this batch, with its unit
    assert "1000.00" not in first.body + second.body  # not the order total repeated
    assert "部分发货" in first.body and "全部发货" in second.title
    for n in shipped:  # a subscribe message (thing ≤ 20) still shows the whole order number
        assert out.number in trim_value("thing1", n.title), n.title


async def test_rejected_notice_gives_the_reason(db):  # type: ignore[no-untyped-def]
    s = await shop()
    out = await make_order(s["distributor"], product=s["product"], qty=2)
    await ordering.reject_order(SYSTEM, out.id, "价格已调整，请按12月价目表重新下单")
    [rejected] = [n for n in await _inbox(s["user"].id) if "已驳回" in n.title]
    assert "价格已调整，请按12月价目表重新下单" in rejected.body
    assert trim_value("thing1", rejected.title) == rejected.title  # fits, order number whole


async def test_dispute_notice_says_who_disputed(db):  # type: ignore[no-untyped-def]
    s = await shop()
    manager = await quick_user(UserRole.MANAGER, regions=["华东"])
    buyer = s["user"]
    buyer.display_name = "李会计"
    await buyer.save()
    st = await Statement.create(
        kind=StatementKind.RECEIVABLES,
        distributor=s["distributor"],
        subject_key=f"distributor:{s['distributor'].id}",
        period="2026-11",
        total=Decimal("12800.00"),
    )
    await statements.dispute_statement(await actor_of(buyer), st.id, "11月的运费不该算我们的")
    [notice] = await _inbox(manager.id)
    assert "李会计" in notice.body and s["distributor"].name in notice.body
    assert "11月的运费不该算我们的" in notice.body
    assert "应收对账单" in notice.title


async def _ready(st: Statement) -> None:
    async with in_transaction():
        await emit("statement.ready", statement_id=st.id, actor_id=0)


async def test_statement_titles_say_rebate_commission_or_receivables(db):  # type: ignore[no-untyped-def]
    s = await shop()
    rep = await quick_user(UserRole.SALES)
    dist = s["distributor"]
    rebate = await Statement.create(
        kind=StatementKind.COMMISSION,
        distributor=dist,
        subject_key=f"distributor:{dist.id}",
        period="2026-11",
        total=Decimal("3200.00"),
    )
    commission = await Statement.create(
        kind=StatementKind.COMMISSION,
        beneficiary=rep,
        subject_key=f"user:{rep.id}",
        period="2026-11",
        total=Decimal("880.00"),
    )
    receivables = await Statement.create(
        kind=StatementKind.RECEIVABLES,
        distributor=dist,
        subject_key=f"distributor:{dist.id}",
        period="2026-11",
        total=Decimal("50000.00"),
    )
    for st in (rebate, commission, receivables):
        await _ready(st)
    [r1, r2] = await _inbox(s["user"].id)
    assert "返利对账单" in r1.title and "佣金" not in r1.title + r1.body
    assert "应收对账单" in r2.title
    [c] = await _inbox(rep.id)
    assert "佣金对账单" in c.title
    # the statement itself says so too (GET /statements/{id}: title)
    buyer = await actor_of(s["user"])
    assert (await statements.get_statement(buyer, rebate.id)).title == "返利对账单"
    assert (await statements.get_statement(buyer, receivables.id)).title == "应收对账单"
    assert (await statements.get_statement(await actor_of(rep), commission.id)).title == "佣金对账单"


def test_subscribe_truncation_keeps_two_products_apart() -> None:
    a = trim_value("thing2", "库存不足：海螺牌普通硅酸盐水泥 P.O 42.5 袋装")
    b = trim_value("thing2", "库存不足：海螺牌普通硅酸盐水泥 P.O 42.5 散装")
    assert len(a) <= 20 and len(b) <= 20
    assert a != b
    assert a.startswith("库存不足") and "…" in a


async def test_rep_who_ordered_by_chat_hears_of_review_and_shipment(db):  # type: ignore[no-untyped-def]
    s = await shop()
    rep = await quick_user(UserRole.SALES)
    await SalesAssignment.create(user=rep, distributor=s["distributor"])
    out = await make_order(s["distributor"], product=s["product"], qty=3, by=rep, status="shipped")
    titles = [n.title for n in await _inbox(rep.id)]
    assert any(out.number in t and "已审核" in t for t in titles), titles
    assert any(out.number in t and "发货" in t for t in titles), titles


async def test_rep_bound_only_on_the_official_account_gets_a_push(db):  # type: ignore[no-untyped-def]
    s = await shop()
    rep = await quick_user(UserRole.SALES)
    await SalesAssignment.create(user=rep, distributor=s["distributor"])
    await Identity.create(user=rep, channel=IdentityChannel.WECHAT, account_id="oa-openid-rep")
    out = await make_order(s["distributor"], product=s["product"], qty=1, by=rep)
    await ordering.approve_order(SYSTEM, out.id)
    [notice] = await _inbox(rep.id)
    assert notice.channel == NotificationChannel.WECHAT_TEMPLATE


async def test_oa_only_rep_push_is_delivered_even_without_a_template(db, config, aiohttp_server):  # type: ignore[no-untyped-def]
    """No [wechat.templates] id for order_status: the drain sends an OA customer-service text."""
    fake = await start_fake(aiohttp_server)
    cfg = push_config(config, fake.base).with_overrides({"wechat": {"templates": {"order_status": ""}}})
    s = await shop()
    rep = await quick_user(UserRole.SALES)
    await SalesAssignment.create(user=rep, distributor=s["distributor"])
    await Identity.create(user=rep, channel=IdentityChannel.WECHAT, account_id="oa-openid-rep")
    out = await make_order(s["distributor"], product=s["product"], qty=1, by=rep)
    await ordering.reject_order(SYSTEM, out.id, "库存不足，请改下周再订")
    async with http_session() as http:
        await Drainer(build_notifier(cfg, http, runtime().kv)).drain()
    [notice] = await _inbox(rep.id)
    assert notice.status == NotificationStatus.SENT, notice.last_error
    [call] = fake.calls("wechat.custom")
    assert call["body"]["touser"] == "oa-openid-rep"
    assert "库存不足，请改下周再订" in call["body"]["text"]["content"]


def test_commission_statement_notes_are_chinese() -> None:
    from handlers.statements import _note
    from models.commission import CommissionEntry

    late = CommissionEntry(detail={"late": {"kind": "reversal", "period": "2026-10"}, "return_id": 7})
    assert _note(late) == "2026-10 的冲回（该月对账单已确认，计入本期）；退货 #7"
    split = CommissionEntry(detail={"split": {"among": 2, "user_ids": [1, 2]}})
    assert _note(split) == "2 位业务员平分"
    tier = CommissionEntry(
        detail={
            "reason": "tier_recompute",
            "tier_period": "2026-Q4",
            "volume": "120000.00",
            "tier": {"index": 1, "rate": "0.03"},
            "due": "3600.00",
            "booked_before": "2400.00",
        }
    )
    assert "阶梯重算" in _note(tier) and "第2档" in _note(tier) and "tier" not in _note(tier)
