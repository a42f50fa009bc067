"""Pure commission math: tiers, slices, exact splits, rule validation and rule resolution."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from core.money import money
from handlers.commission import allocate, split_even
from handlers.commission_rules import (
    RuleIn,
    accrual_segments,
    commission_of,
    pick_rule,
    tier_at,
    tiers_of,
)
from handlers.periods import month_bounds, next_month, parse_month, quarter_of
from models.base import Beneficiary, CommissionMode

D = Decimal
TWO = [{"from": "0", "rate": "0.02"}, {"from": "100000", "rate": "0.03"}]


def test_tier_boundary_is_reached_at_from() -> None:
    tiers = tiers_of("tiered_whole", None, TWO)
    assert tier_at(tiers, D("99999.99")).rate == D("0.02")
    assert tier_at(tiers, D("100000.00")).rate == D("0.03")


@pytest.mark.parametrize(
    ("mode", "volume", "expected"),
    [
        ("tiered_marginal", "110000", "2300"),  # 100000*2% + 10000*3%
        ("tiered_whole", "110000", "3300"),  # 110000*3%
        ("tiered_marginal", "100000", "2000"),
        ("tiered_whole", "99999.99", "1999.9998"),
        ("tiered_whole", "0", "0"),
    ],
)
def test_commission_of_known_values(mode: str, volume: str, expected: str) -> None:
    assert commission_of(mode, tiers_of(mode, None, TWO), D(volume)) == D(expected)


def test_marginal_accrual_splits_an_order_across_tiers() -> None:
    tiers = tiers_of("tiered_marginal", None, TWO)
    segs = accrual_segments("tiered_marginal", tiers, D("80000"), D("110000"))
    assert [(t.index, lo, hi) for t, lo, hi in segs] == [
        (0, D("80000"), D("100000")),
        (1, D("100000"), D("110000")),
    ]
    whole = accrual_segments("tiered_whole", tiers_of("tiered_whole", None, TWO), D("80000"), D("110000"))
    assert [(t.rate, lo, hi) for t, lo, hi in whole] == [(D("0.03"), D("80000"), D("110000"))]


tier_lists = st.lists(
    st.tuples(st.integers(1, 200_000), st.integers(0, 10_000)),
    min_size=0,
    max_size=4,
    unique_by=lambda t: t[0],
)


def _tiers(spec: list[tuple[int, int]], mode: str) -> list[dict[str, str]]:
    """Valid tiers from (start, rate in basis points) pairs: tier 0 from 0, then one per start;
    tiered_whole rates sorted, as validation demands."""
    starts = sorted(s for s, _ in spec)
    rates = [spec[0][1] if spec else 100] + [r for _, r in spec]
    if mode == "tiered_whole":
        rates.sort()
    out = [{"from": "0", "rate": str(D(rates[0]) / 10000)}]
    out += [{"from": str(s), "rate": str(D(r) / 10000)} for s, r in zip(starts, rates[1:], strict=True)]
    return out


volumes = st.decimals(min_value=0, max_value=500_000, places=2, allow_nan=False, allow_infinity=False)


@given(
    spec=tier_lists, mode=st.sampled_from(["tiered_marginal", "tiered_whole", "flat"]), a=volumes, b=volumes
)
def test_more_volume_never_lowers_commission(spec: list[tuple[int, int]], mode: str, a: D, b: D) -> None:
    tiers_json = _tiers(spec, mode)
    body = {"name": "x", "beneficiary": "sales", "mode": mode, "valid_from": "2026-01-01"}
    body |= {"rate": tiers_json[0]["rate"]} if mode == "flat" else {"tiers": tiers_json}
    rule = RuleIn.model_validate(body)  # the generated rule is a valid one
    tiers = tiers_of(rule.mode, rule.rate, tiers_json if mode != "flat" else None)
    lo, hi = min(a, b), max(a, b)
    assert commission_of(mode, tiers, lo) <= commission_of(mode, tiers, hi)
    assert money(commission_of(mode, tiers, lo)) <= money(commission_of(mode, tiers, hi))


@given(spec=tier_lists, v0=volumes, add=volumes)
def test_marginal_slices_cover_the_order_and_sum_to_the_exact_difference(
    spec: list[tuple[int, int]], v0: D, add: D
) -> None:
    tiers = tiers_of("tiered_marginal", None, _tiers(spec, "tiered_marginal"))
    segs = accrual_segments("tiered_marginal", tiers, v0, v0 + add)
    assert sum((hi - lo for _, lo, hi in segs), D(0)) == add
    paid = sum((t.rate * (hi - lo) for t, lo, hi in segs), D(0))
    assert paid == commission_of("tiered_marginal", tiers, v0 + add) - commission_of(
        "tiered_marginal", tiers, v0
    )


@given(
    total=st.decimals(min_value=-10_000, max_value=10_000, places=2, allow_nan=False, allow_infinity=False),
    n=st.integers(1, 7),
    offset=st.integers(0, 10),
)
def test_split_even_sums_exactly_and_differs_by_at_most_a_cent(total: D, n: int, offset: int) -> None:
    parts = split_even(total, n, offset)
    assert sum(parts, D(0)) == total
    assert max(parts) - min(parts) <= D("0.01")


@given(
    total=st.decimals(min_value=-10_000, max_value=10_000, places=2, allow_nan=False, allow_infinity=False),
    weights=st.lists(st.decimals(min_value=0, max_value=1000, places=2), min_size=1, max_size=6),
)
def test_allocate_sums_exactly(total: D, weights: list[D]) -> None:
    parts = allocate(total, weights)
    assert sum(parts, D(0)) == total
    assert len(parts) == len(weights)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"rate": None}, "固定比例规则须填写佣金比例"),
        ({"rate": 0.02}, "小数请用字符串发送"),
        ({"rate": "1.5"}, "佣金比例须在 0 到 1 之间"),
        ({"rate": "0.12345"}, "佣金比例最多四位小数"),
        ({"rate": "abc"}, "不是有效的数字"),
        ({"mode": "tiered_marginal", "rate": None}, "阶梯规则须填写阶梯"),
        (
            {"mode": "tiered_marginal", "tiers": [{"from": "10", "rate": "0.01"}], "rate": None},
            "第 1 档须从 0 开始",
        ),
        (
            {
                "mode": "tiered_marginal",
                "rate": None,
                "tiers": [{"from": "0", "rate": "0.01"}, {"from": "0", "rate": "0.02"}],
            },
            "第 2 档起点须高于上一档",
        ),
        (
            {
                "mode": "tiered_whole",
                "rate": None,
                "tiers": [{"from": "0", "rate": "0.03"}, {"from": "5", "rate": "0.02"}],
            },
            "第 2 档比例低于上一档",
        ),
        ({"mode": "tiered_whole", "tiers": TWO}, "不填统一比例"),
        ({"tiers": TWO}, "不填阶梯"),
        ({"valid_to": "2025-01-01"}, "失效日期（valid_to）早于生效日期（valid_from）"),
        ({"beneficiary": "boss"}, "beneficiary"),
        ({"scope": {"level": 3}}, "level"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_rule_validation_rejects(patch: dict, message: str) -> None:
    body = {"name": "r", "beneficiary": "sales", "mode": "flat", "rate": "0.02", "valid_from": "2026-01-01"}
    body.update(patch)
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(ValidationError) as err:
        RuleIn.model_validate(body)
    assert message in str(err.value)


def _rule(i: int, priority: int = 0, **scope: object) -> SimpleNamespace:
    fields = {f"scope_{k}": scope.get(k) for k in ("category", "sku", "level", "region")}
    return SimpleNamespace(id=i, priority=priority, beneficiary=Beneficiary.SALES, **fields)


def test_rule_resolution_priority_then_specificity_then_lowest_id() -> None:
    line = {"category": "螺纹钢", "sku": "S1", "level": 1, "region": "华东"}
    general, by_cat, by_sku = _rule(1), _rule(2, category="螺纹钢"), _rule(3, sku="S1", region="华东")
    assert pick_rule([general, by_cat, by_sku], Beneficiary.SALES, **line).id == 3  # most specific
    boosted = _rule(4, priority=5)
    assert pick_rule([general, by_cat, by_sku, boosted], Beneficiary.SALES, **line).id == 4  # priority first
    twin = _rule(5, sku="S1", region="华东")
    assert pick_rule([twin, by_sku], Beneficiary.SALES, **line).id == 3  # then the lowest id
    other = _rule(6, region="华北", priority=9)
    assert pick_rule([other], Beneficiary.SALES, **line) is None  # scope must match
    assert pick_rule([general], Beneficiary.DISTRIBUTOR, **line) is None  # one type at a time


def test_periods() -> None:
    assert parse_month("2026-11") == "2026-11"
    for bad in ("2026-13", "26-11", "2026/11", "", "2026-1x"):
        with pytest.raises(Exception, match="年-月"):
            parse_month(bad)
    assert next_month("2026-12") == "2027-01"
    assert quarter_of("2026-11") == "2026-Q4"
    start, end = month_bounds("2026-11")
    assert start.isoformat() == "2026-10-31T16:00:00+00:00" and end.isoformat() == "2026-11-30T16:00:00+00:00"


def test_flat_mode_ignores_tiers() -> None:
    tiers = tiers_of(CommissionMode.FLAT, D("0.015"), None)
    assert money(commission_of(CommissionMode.FLAT, tiers, D("99.00"))) == D("1.49")  # 1.485 half-up
