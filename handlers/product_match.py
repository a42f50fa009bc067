"""Fuzzy product matching for chat: by name, pinyin, pinyin initials and SKU code.

"螺纹钢Φ12", "螺纹钢 12", "luowengang12", "lwg12", "LWG-002", "罗纹钢12" (a homophone typo)
all find 螺纹钢 HRB400E Φ12. Numbers are matched exactly (Φ12 never means Φ120): every
number the user typed must appear among the product's numbers. `rank` is pure (tests,
hypothesis); `match_products` loads the active catalogue and ranks it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from pydantic import BaseModel
from rapidfuzz import fuzz
from tortoise.functions import Count, Max

from handlers.text import fold, pinyin_of
from models.base import ProductStatus
from models.product import Product

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
# Spec decorations that carry no meaning of their own once numbers are compared.
_SPEC_NOISE = re.compile(r"[φΦø#×*/\-_.,，、()（）\s]|mm|kg|型号|规格")
_TIMES = re.compile(r"(?<=\d)\s*[x×*]\s*(?=\d)")  # 20x2.8: an x between numbers is "by"
_ASCII_WORD = re.compile(r"^[a-z]+$")

EXACT = 110.0  # the SKU or the whole name, exactly: beats every fuzzy score (<= 100)
MIN_SCORE = 60.0
CLEAR_LEAD = 8.0  # the best hit must beat the second by this much to be "the" product
SURE_SCORE = 80.0


@dataclass(frozen=True, slots=True)
class CatalogItem:
    id: int
    sku: str
    name: str
    pinyin: str
    initials: str
    category: str
    unit: str


class ProductHit(BaseModel):
    id: int
    sku: str
    name: str
    unit: str
    score: float


class MatchResult(BaseModel):
    query: str
    hits: list[ProductHit]  # best first, at most `limit`
    total: int  # how many products scored at or above MIN_SCORE
    best: ProductHit | None  # set when one product is clearly meant

    @property
    def ambiguous(self) -> bool:
        return self.best is None and bool(self.hits)


def _numbers(text: str) -> tuple[str, ...]:
    """Numbers as typed, read before spaces are folded away ("42.5 50kg" is 42.5 and 50)."""
    spaced = unicodedata.normalize("NFKC", text).lower()
    return tuple(_canonical_number(n) for n in _NUMBER.findall(spaced))


def _canonical_number(n: str) -> str:
    return n.rstrip("0").rstrip(".") if "." in n else n.lstrip("0") or "0"


def _letters(folded: str) -> str:
    """The words of a folded string without its numbers and spec decorations."""
    return _SPEC_NOISE.sub("", _NUMBER.sub("", _TIMES.sub(" ", folded)))


@dataclass(frozen=True, slots=True)
class _Item:
    """What scoring needs of a catalogue item, computed once per item (cached)."""

    sku: str
    name: str
    numbers: tuple[str, ...]
    words: str
    pinyin_words: str
    initials: str
    category: str
    category_pinyin: str
    category_initials: str


@lru_cache(maxsize=65536)
def _prepared(item: CatalogItem) -> _Item:
    name = fold(item.name)
    category = fold(item.category)
    cat_pinyin, cat_initials = pinyin_of(category)
    return _Item(
        sku=fold(item.sku),
        name=name,
        numbers=_numbers(item.name),
        words=_letters(name),
        pinyin_words=_letters(item.pinyin),
        initials=_letters(item.initials),
        category=category,
        category_pinyin=cat_pinyin,
        category_initials=cat_initials,
    )


@dataclass(frozen=True, slots=True)
class _Query:
    folded: str
    numbers: tuple[str, ...]
    words: str  # without numbers and spec decorations
    ascii: bool  # typed pinyin or initials
    pinyin: str  # pinyin of Chinese words (homophone typos)
    parts: tuple[str, ...]  # the words as typed apart: "水泥 散装" -> ("水泥", "散装")


def _prepare_query(query: str) -> _Query:
    folded = fold(query)
    words = _letters(folded)
    ascii_word = bool(_ASCII_WORD.match(words))
    pinyin = _letters(pinyin_of(words)[0]) if words and not ascii_word else ""
    spaced = unicodedata.normalize("NFKC", query).lower().split()
    parts = tuple(p for p in (_letters(x) for x in spaced) if p)
    return _Query(folded, _numbers(query), words, ascii_word, pinyin, parts)


def _text_score(q: _Query, item: _Item) -> float:
    """How well the non-numeric part of the query names this product (0-100)."""
    w = q.words
    name_words = item.words
    if q.ascii and len(w) < 2:  # one Latin letter says nothing
        return 0.0
    scores = [fuzz.partial_ratio(w, name_words) if len(w) <= len(name_words) else fuzz.ratio(w, name_words)]
    if w in name_words:
        scores.append(92.0 + 8.0 * len(w) / max(len(name_words), 1))
    elif len(q.parts) > 1 and all(part in name_words for part in q.parts):
        scores.append(90.0 + 8.0 * len(w) / max(len(name_words), 1))
    if w == item.category:
        scores.append(95.0)
    if q.ascii:  # typed pinyin or initials
        if w in (item.category_pinyin, item.category_initials):
            scores.append(95.0)
        if w in item.pinyin_words:
            scores.append(88.0 + 8.0 * len(w) / max(len(item.pinyin_words), 1))
        if len(w) >= 2 and item.initials.startswith(w):
            scores.append(86.0)
        elif len(w) >= 3 and w in item.initials:
            scores.append(80.0)
        scores.append(fuzz.partial_ratio(w, item.pinyin_words) * 0.85)
    elif q.pinyin and q.pinyin in item.pinyin_words:  # 罗纹钢 -> luowengang
        scores.append(84.0)
    return max(scores)


def _score(q: _Query, item: _Item) -> float:
    if not q.folded:
        return 0.0
    if q.folded in (item.sku, item.name):
        return EXACT
    if len(q.folded) >= 3 and item.sku.startswith(q.folded):
        return 96.0
    if q.numbers and not all(n in item.numbers for n in q.numbers):
        return 0.0
    if not q.words:  # numbers only ("12"): weak on its own
        return 50.0 if q.numbers else 0.0
    # Every typed number matched: a small bonus, so "螺纹钢12" prefers Φ12 over the other 螺纹钢.
    return min(100.0, _text_score(q, item) + (4.0 if q.numbers else 0.0))


def score(query: str, item: CatalogItem) -> float:
    """0-100: how likely `query` names `item`."""
    return _score(_prepare_query(query), _prepared(item))


def rank(query: str, catalogue: list[CatalogItem], *, limit: int = 5) -> MatchResult:
    return _rank(query, [(item, _prepared(item)) for item in catalogue], limit=limit)


def _rank(query: str, catalogue: list[tuple[CatalogItem, _Item]], *, limit: int) -> MatchResult:
    q = _prepare_query(query)
    scored = [(_score(q, prepared), item) for item, prepared in catalogue]
    good = sorted(((s, i) for s, i in scored if s >= MIN_SCORE), key=lambda p: (-p[0], p[1].sku))
    hits = [
        ProductHit(id=i.id, sku=i.sku, name=i.name, unit=i.unit, score=round(s, 1)) for s, i in good[:limit]
    ]
    best = None
    if hits and hits[0].score >= SURE_SCORE:
        if len(good) == 1 or hits[0].score - good[1][0] >= CLEAR_LEAD:
            best = hits[0]
    return MatchResult(query=query, hits=hits, total=len(good), best=best)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    version: tuple[object, ...]
    items: list[tuple[CatalogItem, _Item]]


# Per database connection: the active catalogue and the version it was read at. Every match
# asks for the version (one aggregate query) and reloads only when it moved, so a big
# catalogue is not re-read and re-prepared for every chat message.
_snapshots: dict[int, _Snapshot] = {}


async def _version() -> tuple[object, ...]:
    rows = (
        await Product.filter(status=ProductStatus.ACTIVE)
        .annotate(n=Count("id"), top=Max("id"), changed=Max("updated_at"))
        .values_list("n", "top", "changed")
    )
    return tuple(rows[0]) if rows else ()


async def load_catalogue() -> list[CatalogItem]:
    rows = await Product.filter(status=ProductStatus.ACTIVE).values_list(
        "id", "sku", "name", "pinyin", "initials", "category", "unit"
    )
    return [CatalogItem(*row) for row in rows]


async def _catalogue() -> list[tuple[CatalogItem, _Item]]:
    key = id(Product._meta.db)
    version = await _version()
    snap = _snapshots.get(key)
    if snap is None or snap.version != version:
        items = await load_catalogue()
        snap = _Snapshot(version, [(item, _prepared(item)) for item in items])
        _snapshots.clear()  # one database per process in practice; tests switch between many
        _snapshots[key] = snap
    return snap.items


async def match_products(query: str, *, limit: int = 5) -> MatchResult:
    """Rank the active catalogue for a free-text product reference."""
    query = unicodedata.normalize("NFKC", query).strip()[:100]
    return _rank(query, await _catalogue(), limit=limit)
