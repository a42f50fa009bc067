"""Payments lower receivables once per ref; receivables balance and aging."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from core.clock import BUSINESS_TZ, now
from core.money import money
from handlers.finance import receivables_aging, receivables_balance
from models.audit import AuditLog
from models.base import ReceivableKind, UserRole
from models.finance import Payment, ReceivableEntry
from tests.factories import auth, make_distributor, token_for
from tests.factories_orders import quick_user, world_state

API = "/api/v1"


async def _h(role: UserRole, **kw: Any) -> dict[str, str]:
    return auth(await token_for(await quick_user(role, **kw)))


async def _pay(client: Any, headers: dict, body: dict) -> tuple[int, Any]:
    resp = await client.post(f"{API}/admin/payments", json=body, headers=headers)
    return resp.status, await resp.json()


async def _owe(distributor: Any, amount: str, due: datetime) -> None:
    await ReceivableEntry.create(
        distributor=distributor,
        kind=ReceivableKind.SHIPMENT,
        amount=money(amount),
        ref_type="shipment",
        ref_id="t",
        occurred_at=due - timedelta(days=30),
        due_at=due,
    )


async def test_payment_lowers_receivables_once_per_ref(client) -> None:
    d = await make_distributor(region="华东")
    other = await make_distributor(region="华东")
    await _owe(d, "1000", now())
    mgr = await _h(UserRole.MANAGER, regions=["华东"])
    body = {
        "distributor_id": d.id,
        "amount": "300.50",
        "paid_at": "2026-11-20T10:00:00+08:00",
        "ref": "BANK-001",
    }
    status, out = await _pay(client, mgr, body)
    assert status == 201, out
    assert out["amount"] == "300.50" and out["balance_after"] == "699.50" and out["ref"] == "BANK-001"
    entry = await ReceivableEntry.get(kind=ReceivableKind.PAYMENT)
    assert entry.amount == Decimal("-300.50") and entry.ref_id == str(out["id"])
    assert await AuditLog.filter(action="payment.create", entity_id=str(out["id"])).exists()
    before = await world_state()
    status, err = await _pay(client, mgr, {**body, "amount": "1"})
    assert (
        status == 409
        and err["error"]["code"] == "invalid_state"
        and err["error"]["details"]["field"] == "ref"
    )
    assert await world_state() == before
    status, _ = await _pay(client, mgr, {**body, "distributor_id": other.id})
    assert status == 201  # refs are per distributor
    assert await receivables_balance(d.id) == Decimal("699.50")


async def test_concurrent_duplicate_payments_count_once(client) -> None:
    d = await make_distributor()
    admin = await _h(UserRole.ADMIN)
    body = {"distributor_id": d.id, "amount": 100, "paid_at": "2026-11-20T10:00:00Z", "ref": "DUP-1"}
    results = await asyncio.gather(*(_pay(client, admin, body) for _ in range(12)))
    assert sorted(code for code, _ in results) == [201] + [409] * 11
    assert await Payment.all().count() == 1 and await receivables_balance(d.id) == Decimal("-100.00")


async def test_bad_payments_are_400_and_change_nothing(client) -> None:
    d = await make_distributor()
    admin = await _h(UserRole.ADMIN)
    ok = {"distributor_id": d.id, "amount": "10", "paid_at": "2026-11-20T10:00:00+08:00", "ref": "R1"}
    before = await world_state()
    for change, field in [
        ({"amount": "0"}, "amount"),
        ({"amount": "-5"}, "amount"),
        ({"amount": "1.234"}, "amount"),
        ({"amount": 1.5}, "amount"),
        ({"amount": "abc"}, "amount"),
        ({"amount": "NaN"}, "amount"),
        ({"amount": "1e30"}, "amount"),
        ({"paid_at": "2026-11-31"}, "paid_at"),  # a naive time is Asia/Shanghai; a bad date is not
        ({"paid_at": 1764000000}, "paid_at"),
        ({"ref": ""}, "ref"),
        ({"distributor_id": "x"}, "distributor_id"),
        ({"created_by": 1}, "created_by"),
    ]:
        status, body = await _pay(client, admin, {**ok, **change})
        assert status == 400, (change, body)
        assert field in [f["field"] for f in body["error"]["details"]["fields"]], body
    assert await Payment.all().count() == 0 and await world_state() == before


async def test_payment_scope_and_roles(client) -> None:
    d = await make_distributor(region="华东")
    body = {"distributor_id": d.id, "amount": "10", "paid_at": "2026-11-20T10:00:00+08:00", "ref": "S1"}
    before = await world_state()
    assert (await _pay(client, await _h(UserRole.MANAGER, regions=["华北"]), body))[0] == 404
    assert (await _pay(client, await _h(UserRole.SALES), body))[0] == 403
    assert (await _pay(client, await _h(UserRole.DISTRIBUTOR, distributor=d), body))[0] == 403
    assert (await _pay(client, await _h(UserRole.ADMIN), {**body, "distributor_id": 999_999}))[0] == 404
    assert await world_state() == before
    east = await _h(UserRole.MANAGER, regions=["华东"])
    assert (await _pay(client, east, body))[0] == 201
    listed = await (await client.get(f"{API}/admin/payments", headers=east)).json()
    assert [p["ref"] for p in listed["items"]] == ["S1"] and listed["total"] == 1
    north = await _h(UserRole.MANAGER, regions=["华北"])
    assert (await (await client.get(f"{API}/admin/payments", headers=north)).json())["total"] == 0
    assert (await client.get(f"{API}/admin/payments?distributor_id={d.id}", headers=north)).status == 404


async def test_aging_buckets_settle_oldest_first(client) -> None:
    d = await make_distributor()
    today_ = date(2026, 11, 23)

    def day(n: int) -> datetime:
        return datetime.combine(today_ - timedelta(days=n), datetime.min.time(), BUSINESS_TZ)

    await _owe(d, "100", day(100))  # 100 days overdue
    await _owe(d, "200", day(45))
    await _owe(d, "300", day(10))
    await _owe(d, "400", day(-5))  # not yet due
    await ReceivableEntry.create(
        distributor=d,
        kind=ReceivableKind.PAYMENT,
        amount=money("-150"),
        ref_type="payment",
        ref_id="p",
        occurred_at=day(1),
    )
    [row] = await receivables_aging([d.id], as_of=today_)
    assert row.balance == Decimal("850.00")
    assert (row.current, row.d1_30, row.d31_60, row.d61_90, row.d90_plus) == (
        Decimal("400.00"),
        Decimal("300.00"),
        Decimal("150.00"),
        Decimal("0.00"),
        Decimal("0.00"),
    )
    assert row.overdue == Decimal("450.00") and row.oldest_due == (today_ - timedelta(days=45))
    paid_up = await make_distributor()
    await _owe(paid_up, "10", day(3))
    await ReceivableEntry.create(
        distributor=paid_up,
        kind=ReceivableKind.PAYMENT,
        amount=money("-10"),
        ref_type="payment",
        ref_id="q",
        occurred_at=day(0),
    )
    assert [r.distributor_id for r in await receivables_aging(as_of=today_)] == [d.id]


async def test_paid_at_at_the_edges_of_the_calendar_is_400(client) -> None:
    """Timestamps are bounded at parse time (core.schema.Timestamp): a paid_at whose UTC or
    business-time conversion, or due-date arithmetic, would leave Python's calendar is a 400
    naming the field, never a 500."""
    d = await make_distributor()
    admin = await _h(UserRole.ADMIN)
    before = await world_state()
    for i, paid_at in enumerate(
        [
            "0001-01-01T00:00:00+14:00",
            "0001-01-01T00:00:00+00:00",
            "0001-01-01T07:59:59+08:00",
            "9999-12-31T23:59:59-12:00",
            "9999-12-31T23:59:59+00:00",
            "1899-12-31T23:59:59Z",
            "3000-01-01T00:00:00+08:00",
        ]
    ):
        body = {"distributor_id": d.id, "amount": "10", "paid_at": paid_at, "ref": f"EDGE-{i}"}
        status, data = await _pay(client, admin, body)
        assert status == 400, (paid_at, status, data)
        assert "paid_at" in [f["field"] for f in data["error"]["details"]["fields"]], data
    assert await Payment.all().count() == 0 and await world_state() == before
    # the first and last instants of the business calendar are fine
    for i, paid_at in enumerate(["2000-01-01T00:00:00+08:00", "2999-12-31T23:59:59+08:00"]):
        body = {"distributor_id": d.id, "amount": "10", "paid_at": paid_at, "ref": f"OK-{i}"}
        status, data = await _pay(client, admin, body)
        assert status == 201, (paid_at, data)
