"""One definition of "due" and "overdue" (handlers.finance): the `receivables_overdue` job
pushes exactly what the receivables report calls overdue on the same business day, and the
receivables statements show the same due dates and overdue amount — at the boundary days."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from core import clock
from core.runtime import runtime
from handlers import alerts
from handlers.finance import due_at
from handlers.statements import close_period
from models.base import PaymentTerms, ReceivableKind, StatementKind, UserRole
from models.commission import Statement
from tests.factories import auth, token_for
from tests.factories_commission import at, make_receivable
from tests.factories_orders import quick_user
from tests.test_jobs_alerts import rows_for, tenant


@pytest.fixture(autouse=True)
def _restore_clock():  # type: ignore[no-untyped-def]
    yield
    clock.set_clock(clock.SystemClock())


async def _report_overdue(client: Any, headers: dict[str, str], dist_id: int) -> Decimal:
    """The receivables report as of the business day the clock says (no `as_of`)."""
    async with client.get("/api/v1/reports/receivables", headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        rows = {r["distributor_id"]: r for r in (await resp.json())["rows"]}
    return Decimal(rows[dist_id]["overdue"]) if dist_id in rows else Decimal("0.00")


async def _pushed(dist_id: int) -> Decimal:
    found = await alerts.overdue_by_distributor()
    return found[dist_id][0] if dist_id in found else Decimal("0.00")


async def _debts(dist: Any) -> None:
    # monthly terms, shipped 2026-03-10 15:00 Shanghai: due on business day 2026-04-09
    shipped = at("2026-03-10", 15)
    await make_receivable(
        dist, ReceivableKind.SHIPMENT, "1000.00", shipped, due_at=due_at(PaymentTerms.MONTHLY, shipped)
    )
    # an adjustment without a due_at: due the business day it was booked (2026-04-09, 23:30)
    late = datetime(2026, 4, 9, 23, 30, tzinfo=clock.BUSINESS_TZ)
    await make_receivable(dist, ReceivableKind.ADJUSTMENT, "200.00", late)
    await make_receivable(dist, ReceivableKind.PAYMENT, "-100.00", at("2026-03-20"))


def _set(moment: datetime) -> None:
    clock.set_clock(clock.FixedClock(moment))


async def test_the_job_pushes_exactly_what_the_report_calls_overdue(client) -> None:
    dist, _, manager, _ = await tenant()
    await _debts(dist)
    admin = auth(await token_for(await quick_user(UserRole.ADMIN)))
    tz = clock.BUSINESS_TZ
    for moment, expected in (
        (datetime(2026, 4, 9, 16, 0, tzinfo=tz), "0.00"),  # due today, after the shipment's hour
        (datetime(2026, 4, 9, 23, 59, tzinfo=tz), "0.00"),
        (datetime(2026, 4, 10, 0, 1, tzinfo=tz), "1100.00"),  # the first day past due
        (datetime(2026, 5, 9, 12, 0, tzinfo=tz), "1100.00"),
    ):
        _set(moment)
        report = await _report_overdue(client, admin, dist.id)
        assert report == Decimal(expected), moment
        assert await _pushed(dist.id) == report, moment
    # the job itself: nothing on the due day, the amount the report shows the day after
    _set(datetime(2026, 4, 9, 20, 0, tzinfo=tz))
    assert (await alerts.job_receivables_overdue())["distributors"] == 0
    assert await rows_for(manager.id) == []
    _set(datetime(2026, 4, 10, 8, 0, tzinfo=tz))
    assert (await alerts.job_receivables_overdue())["distributors"] == 1
    [n] = await rows_for(manager.id)
    assert "1100.00" in n.body and n.payload["overdue"] == "1100.00"


async def test_grace_days_move_the_due_day_for_report_job_and_statement(client) -> None:
    r = runtime()
    r.config = r.config.with_overrides({"alerts": {"receivables_grace_days": 2}})
    dist, _, _, _ = await tenant()
    await _debts(dist)
    admin = auth(await token_for(await quick_user(UserRole.ADMIN)))
    tz = clock.BUSINESS_TZ
    for moment, expected in (
        (datetime(2026, 4, 11, 23, 59, tzinfo=tz), "0.00"),
        (datetime(2026, 4, 12, 0, 1, tzinfo=tz), "1100.00"),
    ):
        _set(moment)
        report = await _report_overdue(client, admin, dist.id)
        assert report == Decimal(expected), moment
        assert await _pushed(dist.id) == report, moment


async def test_receivables_statement_shows_the_same_due_dates_and_overdue(client) -> None:
    dist, _, _, _ = await tenant()
    await _debts(dist)
    admin = auth(await token_for(await quick_user(UserRole.ADMIN)))
    # April's statement: as of its last day
    _set(datetime(2026, 4, 30, 12, 0, tzinfo=clock.BUSINESS_TZ))
    report = await _report_overdue(client, admin, dist.id)
    _set(datetime(2026, 5, 1, 3, 0, tzinfo=clock.BUSINESS_TZ))
    await close_period("2026-04")
    st = await Statement.get(kind=StatementKind.RECEIVABLES, subject_key=f"distributor:{dist.id}")
    assert st.summary["overdue"] == str(report) == "1100.00"
    assert st.summary["as_of"] == "2026-04-30"
    [line] = st.lines  # the adjustment booked on 04-09
    assert line["due_date"] == "2026-04-09"
    # March's statement, closed as of 03-31: the March shipment is not yet due
    await close_period("2026-03")
    march = await Statement.get(
        kind=StatementKind.RECEIVABLES, subject_key=f"distributor:{dist.id}", period="2026-03"
    )
    assert march.summary["overdue"] == "0.00"
    assert [x["due_date"] for x in march.lines] == ["2026-04-09", None]  # shipment, payment
    # a later day does not change a closed month's figure
    _set(datetime(2026, 6, 1, 3, 0, tzinfo=clock.BUSINESS_TZ))
    assert (await close_period("2026-03"))["receivables"] == {"unchanged": 1}
