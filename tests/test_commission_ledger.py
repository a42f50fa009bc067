"""The commission ledger on a real database: worked examples to the cent, reversals, who earns,
which rule wins, locked periods, and the statements close_period builds."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from core.clock import BUSINESS_TZ, FixedClock, SystemClock, set_clock
from handlers.auth import build_actor
from handlers.commission_reads import get_commissions
from handlers.statements import close_period, confirm_statement, dispute_statement
from models.base import Beneficiary, ReceivableKind, StatementKind, StatementStatus
from models.commission import CommissionEntry, Statement
from tests.factories_commission import Shop, at, complete, make_receivable, make_return, returned

D = Decimal
TWO = [("0", "0.02"), ("100000", "0.03")]

# Worked examples: a rule, a month (or a quarter) of orders and returns, and the expected
# statements to the cent. Orders are (day, line amounts...), a line "1000.00" is one unit
# at that price, (2, "15000.00") two units. Returns are (order index, {line index: units}).
WORKED: list[dict[str, Any]] = [
    {
        "id": "flat 2%: per-order rounding",
        "rule": {"mode": "flat", "rate": "0.02"},
        "orders": [("2026-03-02", "1000.00"), ("2026-03-20", "2345.67")],
        "statements": {"2026-03": "66.91"},  # 20.00 + 46.91 (46.9134)
    },
    {
        "id": "flat 1.5%: half-up",
        "rule": {"mode": "flat", "rate": "0.015"},
        "orders": [("2026-03-02", "99.00")],
        "statements": {"2026-03": "1.49"},  # 1.485
    },
    {
        "id": "marginal: the crossing order is split across tiers",
        "rule": {"mode": "tiered_marginal", "tiers": TWO},
        "orders": [("2026-03-02", "80000.00"), ("2026-03-09", "30000.00")],
        "statements": {"2026-03": "2300.00"},  # 1600 + 400 + 300, no adjustment
    },
    {
        "id": "whole: earlier orders topped up at close",
        "rule": {"mode": "tiered_whole", "tiers": TWO},
        "orders": [("2026-03-02", "80000.00"), ("2026-03-09", "30000.00")],
        "statements": {"2026-03": "3300.00"},  # 1600 + 900 accrued, +800 adjustment
    },
    {
        "id": "whole: a return drops the month below the tier",
        "rule": {"mode": "tiered_whole", "tiers": TWO},
        "orders": [("2026-03-02", "80000.00"), ("2026-03-09", (2, "15000.00"))],
        "returns": [(1, {0: 1})],
        "statements": {"2026-03": "1900.00"},  # 95000 * 2%: 1600 + 900 - 450 - 150
    },
    {
        "id": "marginal, three tiers",
        "rule": {"mode": "tiered_marginal", "tiers": [("0", "0.01"), ("1000", "0.02"), ("5000", "0.035")]},
        "orders": [
            ("2026-03-01", "700.00"),
            ("2026-03-02", "700.00"),
            ("2026-03-03", "4000.00"),
            ("2026-03-04", "1000.00"),
        ],
        "statements": {"2026-03": "139.00"},  # 1000*1% + 4000*2% + 1400*3.5%
    },
    {
        "id": "month tiers restart every month",
        "rule": {"mode": "tiered_marginal", "tiers": TWO},
        "orders": [("2026-03-31", "90000.00"), ("2026-04-01", "20000.00")],
        "statements": {"2026-03": "1800.00", "2026-04": "400.00"},
    },
    {
        "id": "quarter tiers recomputed at quarter end",
        "rule": {"mode": "tiered_whole", "tiers": [("0", "0.01"), ("5000", "0.02")], "period": "quarter"},
        "orders": [("2026-01-10", "3000.00"), ("2026-02-10", "3000.00")],
        "statements": {"2026-01": "30.00", "2026-02": "60.00", "2026-03": "30.00"},  # Q1: 6000 * 2% = 120
    },
    {
        "id": "a fully returned order nets to zero",
        "rule": {"mode": "tiered_whole", "tiers": TWO},
        "orders": [("2026-03-02", (4, "30000.00"))],
        "returns": [(0, {0: 1}), (0, {0: 3})],
        "statements": {"2026-03": "0.00"},
    },
    {
        "id": "two reps split a flat commission exactly",
        "rule": {"mode": "flat", "rate": "0.03"},
        "reps": 2,
        "orders": [("2026-03-02", "100.01"), ("2026-03-03", "0.50")],
        "statements": {"2026-03": "1.51"},  # 3.00 -> 1.50 + 1.50; 0.02 -> 0.01 + 0.01
        "statements_rep2": {"2026-03": "1.51"},
    },
]


async def _statement_totals(subject_key: str) -> dict[str, str]:
    rows = await Statement.filter(kind=StatementKind.COMMISSION, subject_key=subject_key).order_by("period")
    return {s.period: str(s.total) for s in rows}


async def assert_entries_sum_to_statements() -> None:
    """Invariant 7: every statement's total is the sum of the entries of its subject and month,
    and every such entry is linked to it."""
    for st in await Statement.filter(kind=StatementKind.COMMISSION):
        entries = await CommissionEntry.filter(subject_key=st.subject_key, period=st.period)
        assert all(e.statement_id == st.id for e in entries), st.subject_key  # type: ignore[attr-defined]
        assert sum((D(e.amount) for e in entries), D(0)) == st.total, (st.subject_key, st.period)
        assert sum((D(line["amount"]) for line in st.lines), D(0)) == st.total


@pytest.mark.parametrize("case", WORKED, ids=[c["id"] for c in WORKED])
async def test_worked_example(db, case: dict[str, Any]) -> None:
    shop = await Shop.create(reps=case.get("reps", 1))
    rule = dict(case["rule"])
    await shop.rule(**rule)
    orders = [await shop.order(day, *amounts) for day, *amounts in case["orders"]]
    for index, qtys in case.get("returns", []):
        await returned(orders[index], await make_return(orders[index], qtys))
    for month in sorted(case["statements"]):
        await close_period(month)
    assert await _statement_totals(f"user:{shop.rep.id}") == case["statements"]
    if "statements_rep2" in case:
        assert await _statement_totals(f"user:{shop.reps[1].id}") == case["statements_rep2"]
    await assert_entries_sum_to_statements()


async def test_entries_explain_themselves(db) -> None:
    shop = await Shop.create()
    rule = await shop.rule(mode="tiered_marginal", tiers=TWO, name="华东阶梯")
    order = await shop.order("2026-03-02", (8, "10000.00"), (3, "10000.00"))
    entries = await CommissionEntry.filter(order_id=order.id).order_by("id")
    assert [(e.kind, e.base, e.rate, e.amount) for e in entries] == [
        ("accrual", D("100000.00"), D("0.0200"), D("2000.00")),
        ("accrual", D("10000.00"), D("0.0300"), D("300.00")),
    ]
    first, second = (e.detail for e in entries)
    assert first["order_number"] == order.number and first["rule"] == "华东阶梯"
    assert first["tier"]["index"] == 0 and second["tier"]["index"] == 1
    # the second line straddles the tier boundary: 20000 in tier 1, 10000 in tier 2
    assert [(ln["sku"], ln["qty"], ln["net"], ln["base"]) for ln in first["lines"]] == [
        (shop.product.sku, 8, "80000.00", "80000.00"),
        (shop.product.sku, 3, "30000.00", "20000.00"),
    ]
    assert second["lines"][0]["base"] == "10000.00" and second["volume_after"] == "110000.00"
    assert all(e.rule_id == rule.id and e.subject_key == f"user:{shop.rep.id}" for e in entries)  # type: ignore[attr-defined]


async def test_partial_returns_reverse_exact_shares_and_net_to_zero(db) -> None:
    shop = await Shop.create()
    await shop.rule(mode="flat", rate="0.02")
    order = await shop.order("2026-03-02", (3, "33.33"))  # 99.99 -> 2.00
    for _ in range(3):
        await returned(order, await make_return(order, {0: 1}))
    amounts = [e.amount for e in await CommissionEntry.filter(order_id=order.id).order_by("id")]
    assert amounts == [D("2.00"), D("-0.67"), D("-0.66"), D("-0.67")]  # round(2 * k/3) differences
    bases = [e.base for e in await CommissionEntry.filter(order_id=order.id).order_by("id")]
    assert bases == [D("99.99"), D("-33.33"), D("-33.33"), D("-33.33")]


async def test_return_before_completion_is_netted_not_reversed(db) -> None:
    shop = await Shop.create()
    await shop.rule(mode="flat", rate="0.10")
    order = await shop.order("2026-03-02", (2, "50.00"), complete_it=False)
    early = await make_return(order, {0: 1})
    await returned(order, early)  # no accrual yet: nothing to reverse
    order.status = "completed"
    await order.save(update_fields=["status"])
    await complete(order)
    await returned(order, early)  # delivered again after completion: still nothing
    entries = await CommissionEntry.filter(order_id=order.id)
    assert [(e.kind, e.base, e.amount) for e in entries] == [("accrual", D("50.00"), D("5.00"))]
    late = await make_return(order, {0: 1})
    await returned(order, late)
    assert sum(e.amount for e in await CommissionEntry.filter(order_id=order.id)) == 0


async def test_events_delivered_twice_book_once(db) -> None:
    shop = await Shop.create()
    await shop.rule(mode="flat", rate="0.02")
    order = await shop.order("2026-03-02", (2, "100.00"))
    await complete(order)
    ret = await make_return(order, {0: 1})
    await returned(order, ret)
    await returned(order, ret)
    assert [e.amount for e in await CommissionEntry.filter(order_id=order.id).order_by("id")] == [
        D("4.00"),
        D("-2.00"),
    ]


async def test_distributor_rebate_is_the_distributors(db) -> None:
    shop = await Shop.create()
    await shop.rule(beneficiary=Beneficiary.DISTRIBUTOR, mode="flat", rate="0.05")
    await shop.rule(beneficiary=Beneficiary.SALES, mode="flat", rate="0.01")
    await shop.order("2026-03-02", "1000.00")
    rows = {e.subject_key: e for e in await CommissionEntry.all()}
    rebate = rows[f"distributor:{shop.distributor.id}"]
    assert rebate.amount == D("50.00") and rebate.beneficiary_id == shop.dist_user.id  # type: ignore[attr-defined]
    assert rebate.beneficiary_distributor_id == shop.distributor.id  # type: ignore[attr-defined]
    assert rows[f"user:{shop.rep.id}"].amount == D("10.00")
    mine = await get_commissions(await build_actor(shop.dist_user), "2026-03")
    assert mine.total == D("50.00") and mine.beneficiary and mine.beneficiary.type == "distributor"
    rep = await get_commissions(await build_actor(shop.rep), "2026-03")
    assert rep.total == D("10.00") and [i.kind for i in rep.items] == ["accrual"]


async def test_sales_rep_field_wins_over_assignments(db) -> None:
    shop = await Shop.create(sales_rep_field=True)
    from models.user import SalesAssignment
    from tests.factories_commission import quick_user

    other = await quick_user("sales")
    await SalesAssignment.create(user=other, distributor=shop.distributor)
    await shop.rule(mode="flat", rate="0.02")
    await shop.order("2026-03-02", "100.00")
    assert {e.subject_key for e in await CommissionEntry.all()} == {f"user:{shop.rep.id}"}


async def test_one_rule_per_line_per_type(db) -> None:
    shop = await Shop.create()
    await shop.rule(mode="flat", rate="0.01")
    specific = await shop.rule(mode="flat", rate="0.02", scope_category=shop.product.category)
    await shop.rule(mode="flat", rate="0.09", valid_from=datetime(2027, 1, 1).date())  # not yet valid
    await shop.rule(mode="flat", rate="0.09", active=False)
    await shop.order("2026-03-02", "100.00")
    entries = await CommissionEntry.all()
    assert [(e.rule_id, e.amount) for e in entries] == [(specific.id, D("2.00"))]  # type: ignore[attr-defined]


async def test_return_after_close_rebuilds_the_open_statement(db) -> None:
    shop = await Shop.create()
    await shop.rule(mode="tiered_whole", tiers=TWO)
    await shop.order("2026-03-02", "80000.00")
    order = await shop.order("2026-03-09", (2, "15000.00"))
    await close_period("2026-03")
    st = await Statement.get(subject_key=f"user:{shop.rep.id}", period="2026-03")
    assert st.total == D("3300.00")
    await dispute_statement(await build_actor(shop.rep), st.id, "少算了")
    await returned(order, await make_return(order, {0: 1}))  # statement still open -> rebuilt now
    await st.refresh_from_db()
    assert st.total == D("1900.00") and st.status == StatementStatus.OPEN  # reissued
    await assert_entries_sum_to_statements()


async def test_confirmed_month_is_locked_and_late_changes_go_to_the_next_open_month(db) -> None:
    shop = await Shop.create()
    await shop.rule(mode="flat", rate="0.02")
    order = await shop.order("2026-03-02", (2, "500.00"))
    await close_period("2026-03")
    st = await Statement.get(subject_key=f"user:{shop.rep.id}", period="2026-03")
    await confirm_statement(await build_actor(shop.rep), st.id)
    await returned(order, await make_return(order, {0: 1}))
    late = await CommissionEntry.get(source_ref__startswith="return:")
    assert (late.kind, late.period, late.amount) == ("adjustment", "2026-04", D("-10.00"))
    assert late.detail["late"] == {"kind": "reversal", "period": "2026-03"}
    await st.refresh_from_db()
    assert st.total == D("20.00") and st.status == StatementStatus.CONFIRMED
    assert await close_period("2026-03") == {
        "period": "2026-03",
        "commission": {"locked": 1},
        "receivables": {},
    }
    await close_period("2026-04")
    assert await _statement_totals(f"user:{shop.rep.id}") == {"2026-03": "20.00", "2026-04": "-10.00"}
    await assert_entries_sum_to_statements()


async def test_close_is_idempotent(db) -> None:
    shop = await Shop.create()
    await shop.rule(mode="tiered_whole", tiers=TWO)
    await shop.order("2026-03-02", "80000.00")
    await shop.order("2026-03-09", "30000.00")
    first = await close_period("2026-03")
    count = await CommissionEntry.all().count()
    stamp = (await Statement.get(subject_key=f"user:{shop.rep.id}")).updated_at
    second = await close_period("2026-03")
    assert first["commission"] == {"created": 1} and second["commission"] == {"unchanged": 1}
    assert await CommissionEntry.all().count() == count
    assert (await Statement.get(subject_key=f"user:{shop.rep.id}")).updated_at == stamp


async def test_receivables_statement(db) -> None:
    shop = await Shop.create()
    d = shop.distributor
    await make_receivable(d, ReceivableKind.SHIPMENT, "1000.00", at("2026-02-10"))
    await make_receivable(d, ReceivableKind.SHIPMENT, "500.00", at("2026-03-05"))
    await make_receivable(d, ReceivableKind.PAYMENT, "-700.00", at("2026-03-06"))
    await make_receivable(d, ReceivableKind.RETURN, "-100.00", at("2026-03-31", 23))
    await make_receivable(d, ReceivableKind.SHIPMENT, "999.00", at("2026-04-01", 0))  # next month
    assert (await close_period("2026-03"))["receivables"] == {"created": 1}
    st = await Statement.get(kind=StatementKind.RECEIVABLES, subject_key=f"distributor:{d.id}")
    assert st.summary == {
        "opening": "1000.00",
        "shipped": "500.00",
        "payments": "-700.00",
        "returns": "-100.00",
        "adjustments": "0.00",
        "closing": "700.00",
        "as_of": "2026-03-31",
        "overdue": "700.00",  # no due_at: due the day booked, so all past due by 03-31
    }
    assert st.total == D("700.00") and [ln["amount"] for ln in st.lines] == ["500.00", "-700.00", "-100.00"]
    assert (await close_period("2026-03"))["receivables"] == {"unchanged": 1}


async def test_close_defaults_to_the_month_that_just_ended(db) -> None:
    set_clock(FixedClock(datetime(2026, 4, 1, 0, 30, tzinfo=BUSINESS_TZ)))  # 2026-03-31 16:30 UTC
    try:
        assert (await close_period())["period"] == "2026-03"
    finally:
        set_clock(SystemClock())


async def test_no_cent_lost_when_a_split_is_finer_than_a_cent(db) -> None:
    shop = await Shop.create(reps=3)
    await shop.rule(mode="flat", rate="1")
    order = await shop.order("2026-03-02", "0.02", "0.01")
    entries = await CommissionEntry.filter(order_id=order.id)
    assert sum(e.amount for e in entries) == D("0.03") and sum(e.base for e in entries) == D("0.03")
    assert all(e.amount == e.base for e in entries)  # at 100% each rep earns exactly its share
    await returned(order, await make_return(order, {0: 1, 1: 1}))
    assert sum(e.amount for e in await CommissionEntry.filter(order_id=order.id)) == 0
