"""Only a month that has ended (Asia/Shanghai, by the code's clock) can be closed: by hand over
HTTP or `qudao jobs run`, a current or future period is a 400 and builds nothing; the
scheduled run closes the month that just ended."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from core import clock
from handlers.jobs import run_job
from models.base import ReceivableKind, UserRole
from models.commission import Statement
from models.notification import JobRun
from tests.factories import auth, make_distributor, token_for
from tests.factories_commission import at, make_receivable
from tests.factories_orders import quick_user
from tests.test_scheduler import _cli, _env

TZ = clock.BUSINESS_TZ
LAST_MINUTE_OF_MARCH = datetime(2026, 3, 31, 23, 59, tzinfo=TZ)  # 15:59 UTC
FIRST_MINUTE_OF_APRIL = datetime(2026, 4, 1, 0, 1, tzinfo=TZ)  # still 2026-03-31 in UTC


@pytest.fixture(autouse=True)
def _restore_clock():  # type: ignore[no-untyped-def]
    yield
    clock.set_clock(clock.SystemClock())


async def _run(client: Any, headers: dict[str, str], period: str) -> tuple[int, Any]:
    async with client.post(
        "/api/v1/admin/jobs/commission_statements/run", json={"period": period}, headers=headers
    ) as resp:
        return resp.status, await resp.json()


async def test_the_current_month_cannot_be_closed_until_it_ends(client) -> None:
    d = await make_distributor()
    await make_receivable(d, ReceivableKind.SHIPMENT, "100.00", at("2026-03-05"))
    admin = auth(await token_for(await quick_user(UserRole.ADMIN)))

    clock.set_clock(clock.FixedClock(LAST_MINUTE_OF_MARCH))
    for period in ("2026-03", "2026-04", "2027-01"):  # this month, and later ones
        status, body = await _run(client, admin, period)
        assert status == 400 and body["error"]["code"] == "validation_error", body
        assert "尚未结束" in body["error"]["message"] and body["error"]["details"] == {"field": "period"}
    assert await Statement.all().count() == 0 and await JobRun.all().count() == 0

    clock.set_clock(clock.FixedClock(FIRST_MINUTE_OF_APRIL))
    status, body = await _run(client, admin, "2026-03")
    assert status == 200 and body["result"]["receivables"] == {"created": 1}, body
    assert (await _run(client, admin, "2026-04"))[0] == 400


async def test_the_scheduled_run_closes_only_the_month_that_ended(db) -> None:
    d = await make_distributor()
    await make_receivable(d, ReceivableKind.SHIPMENT, "100.00", at("2026-03-05"))
    clock.set_clock(clock.FixedClock(LAST_MINUTE_OF_MARCH))
    out = await run_job("commission_statements", {}, trigger="schedule")
    assert out is not None and out.result["period"] == "2026-02"
    assert not await Statement.filter(period="2026-03").exists()
    clock.set_clock(clock.FixedClock(FIRST_MINUTE_OF_APRIL))
    out = await run_job("commission_statements", {}, trigger="schedule")
    assert out is not None and out.result["period"] == "2026-03"
    assert await Statement.filter(period="2026-03").count() == 1


def test_cli_refuses_a_period_that_has_not_ended(config) -> None:  # type: ignore[no-untyped-def]
    this_month = clock.today().strftime("%Y-%m")  # the subprocess runs on the system clock
    p = _cli("jobs", "run", "commission_statements", "--period", this_month, env=_env(config))
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "validation_error" in p.stderr and "尚未结束" in p.stderr
