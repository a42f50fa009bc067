"""Fuzzy product matching: name, pinyin, initials, SKU code; numbers match exactly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.kv import KVUnavailable
from handlers.demo import CATALOGUE
from handlers.product_match import CatalogIndex, CatalogItem, match_products, rank
from handlers.text import pinyin_of
from models.base import ProductStatus
from tests.factories import make_product


def demo_catalogue() -> list[CatalogItem]:
    items: list[CatalogItem] = []
    for category, prefix, unit, _price, pattern, specs in CATALOGUE:
        for i, spec in enumerate(specs, 1):
            name = pattern.format(s=spec)
            full, initials = pinyin_of(name)
            items.append(
                CatalogItem(len(items) + 1, f"{prefix}-{i:03d}", name, full, initials, category, unit)
            )
    return items


CAT = demo_catalogue()


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("螺纹钢Φ12", "螺纹钢 HRB400E Φ12"),
        ("螺纹钢 12", "螺纹钢 HRB400E Φ12"),
        ("螺纹钢φ12", "螺纹钢 HRB400E Φ12"),
        ("ＬＷＧ－００２", "螺纹钢 HRB400E Φ12"),  # full-width SKU
        ("lwg-002", "螺纹钢 HRB400E Φ12"),
        ("luowengang12", "螺纹钢 HRB400E Φ12"),  # pinyin
        ("lwg12", "螺纹钢 HRB400E Φ12"),  # initials
        ("罗纹钢12", "螺纹钢 HRB400E Φ12"),  # homophone typo
        ("盘螺8", "盘螺 HRB400E Φ8"),
        ("工字钢16#", "热轧工字钢 Q235B 16#"),
        ("镀锌管DN50", "热镀锌钢管 DN50"),
        ("PPR管 25", "PPR冷热水管 25×3.5 4米"),
        ("水泥 散装", "海螺水泥 P.O 42.5 散装"),  # words typed apart, each in the name
        ("石膏板 防水 12", "纸面石膏板 12mm 防水"),
    ],
)
def test_one_product_is_clearly_meant(query: str, name: str) -> None:
    result = rank(query, CAT)
    assert result.best is not None and result.best.name == name, result


@pytest.mark.parametrize(("query", "count"), [("螺纹钢", 10), ("水泥", 4), ("石膏板", 5), ("水泥 42.5", 2)])
def test_a_family_is_a_list_to_pick_from(query: str, count: int) -> None:
    result = rank(query, CAT, limit=5)
    assert result.best is None and result.ambiguous
    assert result.total >= count and len(result.hits) == min(5, result.total)


@pytest.mark.parametrize("query", ["螺纹钢Φ120", "xx", "", "   ", "天气"])
def test_no_match(query: str) -> None:
    result = rank(query, CAT)
    assert result.best is None and result.hits == []


def test_numbers_never_match_loosely() -> None:
    """Φ12 is not Φ120 and not Φ22: every typed number must be one of the product's."""
    for hit in rank("螺纹钢 22", CAT).hits:
        assert "22" in hit.name.split("Φ")[-1]


@given(st.sampled_from(CAT))
def test_exact_sku_or_name_always_wins(item: CatalogItem) -> None:
    assert rank(item.sku, CAT).best.id == item.id  # type: ignore[union-attr]
    assert rank(item.name, CAT).best.id == item.id  # type: ignore[union-attr]


async def test_match_products_reads_only_active_products(db) -> None:
    on = await make_product(name="纸面石膏板 9.5mm 防潮", sku="SGB-901", category="石膏板", unit="张")
    await make_product(
        name="纸面石膏板 12mm 防潮", sku="SGB-902", category="石膏板", status=ProductStatus.INACTIVE
    )
    result = await match_products("石膏板 防潮")
    assert result.best is not None and result.best.id == on.id


# --- the index: the same answers, a cost that follows the matches ------------------------------

TYPED = [
    "螺纹钢Φ12", "螺纹钢 12", "lwg12", "lw12", "罗纹钢12", "罗纹钢", "luowengang", "luowengan", "shuini",
    "水泥 散装", "gang", "钢管", "管", "石膏板 防水 12", "ppr", "dn50", "rzgzg", "haiLuo", "热轧", "钢",
    "16", "Φ", "xx", "天气", "",
]  # fmt: skip


def _derived(items: list[CatalogItem]) -> list[str]:
    """Queries people type about these items: names, parts of names, pinyin with a typo, SKUs."""
    out: list[str] = []
    for it in items:
        n, py = it.name, it.pinyin
        out += [n, it.sku.lower(), n[:2], n[1:4], n[:3] + n[-2:], py[:7], py[2:9], it.initials[:3]]
        out += [py[:4] + "x" + py[5:9], n.replace(n[1], "钢", 1)]
    return out


def big_catalogue(n: int) -> list[CatalogItem]:
    out: list[CatalogItem] = []
    while len(out) < n:
        k = len(out) // len(CAT)
        for it in CAT[: n - len(out)]:
            out.append(
                CatalogItem(len(out) + 1, f"{it.sku}-{k}", f"{it.name} {k}", f"{it.pinyin}{k}",
                            f"{it.initials}{k}", it.category, it.unit)
            )  # fmt: skip
    return out


@pytest.mark.parametrize("size", [len(CAT), 1000])
def test_the_index_answers_exactly_like_scoring_every_item(size: int) -> None:
    items = CAT if size == len(CAT) else big_catalogue(size)
    index = CatalogIndex(items, [True] * len(items))
    for query in TYPED + _derived(items[:: max(1, len(items) // 25)]):
        assert index.rank(query, limit=10_000) == rank(query, items, limit=10_000), query


def test_a_10k_catalogue_answers_in_milliseconds() -> None:
    items = big_catalogue(10_000)
    index = CatalogIndex(items, [True] * len(items))
    for query in ("螺纹钢Φ12", "水泥 散装", "lwg16", "罗纹钢12", "石膏板 防水 12", "ppr 25"):
        best = min(_timed(lambda q=query: index.rank(q)) for _ in range(3))
        assert best < 0.03, (query, best)  # scoring all 10k items in Python took 50-100 ms


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


async def test_one_rebuild_for_many_concurrent_messages_after_a_change(db) -> None:
    from handlers import product_match

    await make_product(name="纸面石膏板 9.5mm 防潮", sku="SGB-901", category="石膏板", unit="张")
    assert (await match_products("石膏板")).total == 1
    built = product_match._cache.rebuilds
    for _ in range(3):  # no change, no rebuild, no catalogue read
        await match_products("石膏板")
    assert product_match._cache.rebuilds == built
    new = await make_product(name="纸面石膏板 12mm 防潮", sku="SGB-902", category="石膏板", unit="张")
    results = await asyncio.gather(*(match_products("石膏板 12") for _ in range(20)))
    assert product_match._cache.rebuilds == built + 1
    assert all(r.best is not None and r.best.id == new.id for r in results)


class _KVDown:
    """The runtime's kv store while Redis is away: every call is an outage."""

    def __getattr__(self, name: str) -> Callable[..., Awaitable[object]]:
        async def down(*args: object, **kwargs: object) -> object:
            raise KVUnavailable("kv down")

        return down


async def test_matching_and_product_writes_survive_a_kv_outage(db, monkeypatch) -> None:
    """The index's version lives in the kv: with the kv away a save still commits and matching
    still answers (rebuilt at most every OUTAGE_REBUILD_S), and the first read after it rebuilds."""
    from core import runtime as rt
    from handlers import product_match

    await make_product(name="纸面石膏板 9.5mm 防潮", sku="SGB-901", category="石膏板", unit="张")
    assert (await match_products("石膏板")).total == 1
    kv = rt.runtime().kv
    monkeypatch.setattr(rt.runtime(), "kv", _KVDown())
    new = await make_product(name="纸面石膏板 12mm 防潮", sku="SGB-902", category="石膏板", unit="张")
    assert product_match._cache.bump_pending
    assert (await match_products("石膏板")).total == 2  # a new outage bucket: rebuilt from the db
    monkeypatch.setattr(rt.runtime(), "kv", kv)
    built = product_match._cache.rebuilds
    result = await match_products("石膏板 12")
    assert result.best is not None and result.best.id == new.id
    assert product_match._cache.rebuilds == built + 1 and not product_match._cache.bump_pending
