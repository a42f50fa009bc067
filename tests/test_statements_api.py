"""Statements (对账单) over HTTP: list by scope, confirm / dispute by the subject only, the
manager notified on disputes, confirmed months locked, the job run by the scheduler."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from core.clock import BUSINESS_TZ, now
from handlers.events import Event, subscribe
from handlers.statements import close_period
from models.audit import AuditLog
from models.base import Beneficiary, ReceivableKind, StatementStatus
from models.commission import CommissionEntry, Statement
from models.order import Order
from tests.factories import make_world
from tests.factories_commission import (
    at,
    complete,
    fast_passwords,
    make_order,
    make_receivable,
    make_return,
    make_rule,
    returned,
)
from tests.test_commission_ledger import assert_entries_sum_to_statements

EVENTS: list[Event] = []


@subscribe("statement.ready", "statement.confirmed", "statement.disputed")
async def _record(event: Event) -> None:
    EVENTS.append(event)


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    fast_passwords(monkeypatch)
    EVENTS.clear()


async def _month_of_sales(w):  # type: ignore[no-untyped-def]
    await make_rule(scope_region="华东", rate="0.02")
    await make_rule(scope_region="华东", beneficiary=Beneficiary.DISTRIBUTOR, rate="0.01")
    order = await make_order(w.east.distributor, [(w.product, 4, "250.00")], completed_at=at("2026-03-10"))
    await complete(order)
    await make_receivable(w.east.distributor, ReceivableKind.SHIPMENT, "1000.00", at("2026-03-10"))
    await close_period("2026-03")
    return order


async def _list(client, headers, **params):  # type: ignore[no-untyped-def]
    async with client.get("/api/v1/statements", params=params, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_statements_are_listed_by_scope(client) -> None:
    w = await make_world()
    await _month_of_sales(w)
    rep = await _list(client, w.headers("east", "sales"), period="2026-03")
    assert [(s["kind"], s["beneficiary"]["type"], s["total"]) for s in rep["items"]] == [
        ("commission", "user", "20.00")
    ]
    (stmt,) = rep["items"]
    assert stmt["status"] == "open" and stmt["beneficiary"]["id"] == w.east.rep.id
    assert [line["amount"] for line in stmt["lines"]] == ["20.00"]
    dist = await _list(client, w.headers("east", "distributor"), period="2026-03")
    assert sorted((s["kind"], s["total"]) for s in dist["items"]) == [
        ("commission", "10.00"),
        ("receivables", "1000.00"),
    ]
    receivables = next(s for s in dist["items"] if s["kind"] == "receivables")
    assert receivables["summary"]["closing"] == "1000.00" and receivables["summary"]["opening"] == "0.00"
    assert (await _list(client, w.headers("east", "manager")))["total"] == 3
    assert (await _list(client, w.headers("", "admin"), kind="receivables"))["total"] == 1
    for who in (("north", "manager"), ("north", "sales"), ("north", "distributor"), ("east", "child")):
        assert (await _list(client, w.headers(*who)))["total"] == 0
    async with client.get("/api/v1/statements?period=03-2026", headers=w.headers("east", "sales")) as resp:
        assert resp.status == 400
    one = f"/api/v1/statements/{stmt['id']}"
    async with client.get(one, headers=w.headers("east", "manager")) as resp:
        assert resp.status == 200 and (await resp.json())["total"] == "20.00"
    for path, who in (
        (one, ("north", "manager")),
        (one, ("east", "distributor")),
        ("/api/v1/statements/99999999999", ("", "admin")),
        ("/api/v1/statements/99999999999/confirm", ("east", "sales")),
        ("/api/v1/admin/commission-rules/99999999999", ("", "admin")),
    ):
        method = client.post if path.endswith("confirm") else client.get
        async with method(path, json={}, headers=w.headers(*who)) as resp:
            assert resp.status == 404, path


async def test_confirm_and_dispute_by_the_subject_only(client) -> None:
    w = await make_world()
    await _month_of_sales(w)
    rep_stmt = await Statement.get(subject_key=f"user:{w.east.rep.id}")
    rebate = await Statement.get(subject_key=f"distributor:{w.east.distributor.id}", kind="commission")
    recv = await Statement.get(kind="receivables")
    confirm = f"/api/v1/statements/{rep_stmt.id}/confirm"
    for who in (("", "admin"), ("east", "manager"), ("east", "distributor"), ("north", "sales")):
        async with client.post(confirm, json={}, headers=w.headers(*who)) as resp:
            assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    assert (await Statement.get(id=rep_stmt.id)).status == StatementStatus.OPEN
    async with client.post(confirm, json={}, headers=w.headers("east", "sales")) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["status"] == "confirmed" and body["confirmed_at"]
    async with client.post(confirm, json={}, headers=w.headers("east", "sales")) as resp:
        assert resp.status == 409 and (await resp.json())["error"]["code"] == "invalid_state"
    async with client.post(
        f"/api/v1/statements/{rep_stmt.id}/dispute", json={"reason": "x"}, headers=w.headers("east", "sales")
    ) as resp:
        assert resp.status == 409

    dispute = f"/api/v1/statements/{rebate.id}/dispute"
    async with client.post(dispute, json={}, headers=w.headers("east", "distributor")) as resp:
        assert resp.status == 400  # a reason is required
    async with client.post(
        dispute, json={"reason": "返利比例不对"}, headers=w.headers("east", "child")
    ) as resp:
        assert resp.status == 404  # the 一级's statement is not the 二级's
    async with client.post(
        dispute, json={"reason": "返利比例不对"}, headers=w.headers("east", "distributor")
    ) as resp:
        assert resp.status == 200
        assert (await resp.json())["dispute_reason"] == "返利比例不对"
    async with client.post(
        f"/api/v1/statements/{recv.id}/confirm", json={}, headers=w.headers("east", "distributor")
    ) as resp:
        assert (await resp.json())["status"] == "confirmed"
    fired = [(e.name, e.payload["statement_id"]) for e in EVENTS if e.name != "statement.ready"]
    assert fired == [
        ("statement.confirmed", rep_stmt.id),
        ("statement.disputed", rebate.id),
        ("statement.confirmed", recv.id),
    ]
    actions = await AuditLog.filter(entity="statement").order_by("id").values_list("action", flat=True)
    assert actions == ["statement.confirm", "statement.dispute", "statement.confirm"]


async def test_a_return_after_confirmation_lands_in_the_next_month(client) -> None:
    w = await make_world()
    order = await _month_of_sales(w)
    rep_stmt = await Statement.get(subject_key=f"user:{w.east.rep.id}")
    async with client.post(
        f"/api/v1/statements/{rep_stmt.id}/confirm", json={}, headers=w.headers("east", "sales")
    ) as resp:
        assert resp.status == 200
    await returned(order, await make_return(order, {0: 1}))
    async with client.get("/api/v1/commissions?period=2026-04", headers=w.headers("east", "sales")) as resp:
        april = await resp.json()
    assert [(i["kind"], i["amount"]) for i in april["items"]] == [("adjustment", "-5.00")]
    assert (await Statement.get(id=rep_stmt.id)).total == Decimal("20.00")
    # the rebate statement was not confirmed: its reversal stays in March and the statement follows
    rebate = await Statement.get(subject_key=f"distributor:{w.east.distributor.id}", kind="commission")
    assert rebate.total == Decimal("7.50") and rebate.period == "2026-03"


async def test_concurrent_returns_closes_and_confirmation_keep_entries_equal_to_statements(client) -> None:
    """Invariant 7 under concurrency: 16 return receipts (入库, where the credit and the
    reversal happen) over HTTP race two closes of their month and the rep confirming it.
    Whatever the interleaving, every entry of a closed month is on its statement, statements
    equal their entries, and the bases net to what was kept."""
    w = await make_world()
    await make_rule(scope_region="华东", mode="tiered_whole", tiers=[("0", "0.02"), ("2000", "0.03")])
    orders = []
    for k in range(8):
        order = await make_order(
            w.east.distributor,
            [(w.product, 10, "100.00")],
            completed_at=at(f"2026-03-{k + 2:02d}"),
            warehouse=w.east.warehouse,
        )
        await complete(order)
        orders.append(order)
    # Received recently enough to be within the return window (orders.return_days).
    await Order.filter(id__in=[o.id for o in orders]).update(received_at=now())
    await close_period("2026-03")
    rep_stmt = await Statement.get(subject_key=f"user:{w.east.rep.id}")
    dist, rep, admin = w.headers("east", "distributor"), w.headers("east", "sales"), w.headers("", "admin")

    async def post(path: str, body: dict, headers: dict[str, str]) -> Any:
        async with client.post(f"/api/v1{path}", json=body, headers=headers) as resp:
            return resp.status if resp.status != 201 else (await resp.json())["id"]

    requests = []
    for o in orders:
        for q in (2, 3):
            body = {"lines": [{"sku": w.product.sku, "qty": q}], "reason": "退货"}
            requests.append(await post(f"/orders/{o.id}/returns", body, dist))
            assert await post(f"/returns/{requests[-1]}/approve", {}, admin) == 200
    statuses = await asyncio.gather(
        *(post(f"/returns/{r}/receive", {}, admin) for r in requests),
        close_period("2026-03"),
        close_period("2026-03"),
        post(f"/statements/{rep_stmt.id}/confirm", {}, rep),
    )
    assert statuses[:16] == [200] * 16 and statuses[-1] == 200, statuses
    for month in ("2026-03", "2026-04"):
        await close_period(month)
    await assert_entries_sum_to_statements()
    entries = await CommissionEntry.filter(subject_key=f"user:{w.east.rep.id}")
    assert all(e.statement_id is not None for e in entries)  # type: ignore[attr-defined]
    assert sum((e.base for e in entries), Decimal(0)) == Decimal("4000.00")  # 8000 sold, 4000 returned
    assert (await Statement.get(id=rep_stmt.id)).status == StatementStatus.CONFIRMED


async def test_end_to_end_through_the_order_lifecycle(client) -> None:
    """The real lifecycle over HTTP: order, approve, ship, receive, complete, return -> the rep's
    commissions and statement follow (the ordering feature emits the events)."""
    w = await make_world(price="100.00")
    await make_rule(scope_region="华东", rate="0.03")
    dist, admin = w.headers("east", "distributor"), w.headers("", "admin")
    body = {"lines": [{"sku": w.product.sku, "qty": 4}]}
    async with client.post("/api/v1/orders", json=body, headers={**dist, "Idempotency-Key": "e2e-1"}) as resp:
        assert resp.status == 201, await resp.text()
        order = await resp.json()
    steps = [
        (f"/orders/{order['id']}/approve", {}, admin),
        (f"/orders/{order['id']}/shipments", {"lines": [{"sku": w.product.sku, "qty": 4}]}, admin),
        (f"/orders/{order['id']}/receive", {}, dist),
        (f"/orders/{order['id']}/complete", {}, admin),
        (
            f"/orders/{order['id']}/returns",
            {"lines": [{"sku": w.product.sku, "qty": 1}], "reason": "破损"},
            dist,
        ),
        ("/returns/{ret}/approve", {}, admin),  # 申请 -> 审核 -> 入库: credit and reversal at receipt
        ("/returns/{ret}/receive", {}, admin),
    ]
    ret = None
    for path, payload, who in steps:
        async with client.post(f"/api/v1{path.format(ret=ret)}", json=payload, headers=who) as resp:
            assert resp.status in (200, 201), (path, await resp.text())
            if path.endswith("/returns"):
                ret = (await resp.json())["id"]
    month = now().astimezone(BUSINESS_TZ).strftime("%Y-%m")
    async with client.get(f"/api/v1/commissions?period={month}", headers=w.headers("east", "sales")) as resp:
        mine = await resp.json()
    assert [(i["kind"], i["base"], i["amount"]) for i in mine["items"]] == [
        ("accrual", "400.00", "12.00"),
        ("reversal", "-100.00", "-3.00"),
    ]
    assert mine["total"] == "9.00"
    await close_period(month)
    statements = await _list(client, w.headers("east", "sales"), period=month)
    assert [s["total"] for s in statements["items"]] == ["9.00"]
