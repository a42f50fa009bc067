"""Property tests (Hypothesis) on a real database: for random rules, orders, returns and
split reps, the ledger keeps invariant 7.

- entries sum to their statements, and every entry of a closed month is on its statement;
- the bases booked for a month equal the month's in-scope net sales after returns (nothing
  lost in splits, slices or reversals);
- a tiered statement equals round(commission(volume)) of the beneficiary's volume;
- a flat rule pays round(net * rate) per order, split exactly between reps;
- a fully returned order nets to exactly zero (amounts and bases);
- more volume never lowers a statement: another order in a closed, open month raises it or
  leaves it equal.

Each example builds its own tenant (region, distributor, reps, product) and region-scoped
rule, so examples sharing the test's database never see each other's rules."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from hypothesis import given, note, settings
from hypothesis import strategies as st

from core.money import money
from handlers.commission_rules import commission_of, rule_tiers
from handlers.statements import close_period
from models.base import CommissionMode, StatementKind
from models.commission import CommissionEntry, Statement
from models.order import OrderLine
from tests.factories_commission import Shop, make_return, returned
from tests.test_commission_ledger import assert_entries_sum_to_statements

D = Decimal
DAYS = ["2026-03-05", "2026-03-20", "2026-04-02"]


@st.composite
def scenarios(draw: st.DrawFn) -> dict:
    mode = draw(st.sampled_from(["flat", "tiered_marginal", "tiered_whole"]))
    starts = sorted(draw(st.sets(st.integers(1, 60).map(lambda k: k * 100), max_size=3)))
    rates = [draw(st.integers(0, 900)) for _ in range(len(starts) + 1)]
    if mode == "tiered_whole":
        rates.sort()
    tiers = [("0", str(D(rates[0]) / 10000))] + [
        (str(s), str(D(r) / 10000)) for s, r in zip(starts, rates[1:], strict=True)
    ]
    line = st.tuples(st.integers(1, 5), st.integers(1, 300_000).map(lambda c: str(D(c) / 100)))
    orders = draw(
        st.lists(
            st.tuples(st.sampled_from(DAYS), st.lists(line, min_size=1, max_size=3)), min_size=1, max_size=4
        )
    )
    returns = draw(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(1, 5)), max_size=5))
    full = draw(st.sets(st.integers(0, 3), max_size=2))  # orders returned completely at the end
    extra = draw(st.sampled_from(["0.01", "10.00", "999.99", "5000.00"]))
    return {
        "mode": mode,
        "tiers": tiers,
        "rate": tiers[0][1],
        "reps": draw(st.integers(1, 3)),
        "orders": orders,
        "returns": returns,
        "full": full,
        "extra": extra,
    }


async def _return_rest(order, index: int | None = None) -> None:  # type: ignore[no-untyped-def]
    lines = await OrderLine.filter(order_id=order.id).order_by("id")
    qtys = {i: ln.qty - ln.returned_qty for i, ln in enumerate(lines) if ln.qty > ln.returned_qty}
    if index is not None:
        qtys = {k: v for k, v in qtys.items() if k == index}
    if qtys:
        await returned(order, await make_return(order, qtys))


@settings(max_examples=20)
@given(sc=scenarios())
async def test_ledger_invariants(db, sc: dict) -> None:  # type: ignore[no-untyped-def]
    note(repr(sc))
    shop = await Shop.create(reps=sc["reps"])
    if sc["mode"] == "flat":
        rule = await shop.rule(mode="flat", rate=sc["rate"])
    else:
        rule = await shop.rule(mode=sc["mode"], tiers=sc["tiers"])
    orders = [await shop.order(day, *lines) for day, lines in sc["orders"]]
    for o_idx, l_idx, qty in sc["returns"]:
        if o_idx >= len(orders):
            continue
        order = orders[o_idx]
        lines = await OrderLine.filter(order_id=order.id).order_by("id")
        if l_idx >= len(lines) or lines[l_idx].returned_qty >= lines[l_idx].qty:
            continue
        qty = min(qty, lines[l_idx].qty - lines[l_idx].returned_qty)
        await returned(order, await make_return(order, {l_idx: qty}))
    fully = sorted(i for i in sc["full"] if i < len(orders))
    for i in fully:
        await _return_rest(orders[i])

    for month in ("2026-03", "2026-04"):
        await close_period(month)
    await assert_entries_sum_to_statements()
    keys = [f"user:{rep.id}" for rep in shop.reps]
    entries = await CommissionEntry.filter(subject_key__in=keys)

    # the bases booked per month are the month's net sales after returns, to the cent
    net_by_month: dict[str, D] = defaultdict(D)
    for order, (day, _) in zip(orders, sc["orders"], strict=True):
        for ln in await OrderLine.filter(order_id=order.id).prefetch_related("return_lines"):
            net_by_month[day[:7]] += D(ln.amount) - sum((D(r.amount) for r in ln.return_lines), D(0))
    based: dict[str, D] = defaultdict(D)
    for e in entries:
        based[e.period] += D(e.base)
    assert {m: v for m, v in based.items() if v} == {m: v for m, v in net_by_month.items() if v}

    # fully returned orders net to zero
    for i in fully:
        mine = [e for e in entries if e.order_id == orders[i].id]  # type: ignore[attr-defined]
        assert sum((e.amount for e in mine), D(0)) == 0 and sum((e.base for e in mine), D(0)) == 0

    tiers = rule_tiers(rule)
    statements = {
        (s.subject_key, s.period): s
        for s in await Statement.filter(kind=StatementKind.COMMISSION, subject_key__in=keys)
    }
    if sc["mode"] != "flat":  # a tiered statement is round(commission(volume)), per beneficiary
        for (key, month), stmt in statements.items():
            vol = sum((D(e.base) for e in entries if e.subject_key == key and e.period == month), D(0))
            assert stmt.total == money(commission_of(rule.mode, tiers, vol)), (key, month, vol)
    else:  # flat: orders without returns pay round(net * rate), split exactly between reps
        returned_ids = {orders[i].id for i in fully} | {
            e.order_id
            for e in entries
            if e.kind == "reversal"  # type: ignore[attr-defined]
        }
        for order in orders:
            if order.id in returned_ids:
                continue
            paid = sum((e.amount for e in entries if e.order_id == order.id), D(0))  # type: ignore[attr-defined]
            assert paid == money(D(order.total_amount) * rule.rate)

    # monotonic: another order in the (closed but open) month never lowers a statement
    before = {k: s.total for k, s in statements.items()}
    await shop.order("2026-03-25", sc["extra"])
    for (key, month), total in before.items():
        stmt = await Statement.get(kind=StatementKind.COMMISSION, subject_key=key, period=month)
        assert stmt.total >= total, (key, month)
    await assert_entries_sum_to_statements()
    assert rule.mode in (CommissionMode.FLAT, CommissionMode.TIERED_MARGINAL, CommissionMode.TIERED_WHOLE)
