"""Fuzzy product matching for chat: by name, pinyin, pinyin initials and SKU code.

"螺纹钢Φ12", "螺纹钢 12", "luowengang12", "lwg12", "LWG-002", "罗纹钢12" (a homophone typo)
all find 螺纹钢 HRB400E Φ12. Numbers are matched exactly (Φ12 never means Φ120): every
number the user typed must appear among the product's numbers. `rank` is pure and scores every
item (the reference: tests, hypothesis); `CatalogIndex.rank` gives the same answers while
scoring only the candidates its inverted indexes name, so a query costs what it matches, not
what the catalogue holds. `match_products` (chat) and `search_ids` (REST ``q``) rank the
catalogue's index, rebuilt once per catalogue change (see `catalogue_changed`).
"""

from __future__ import annotations

import asyncio
import math
import re
import secrets
import time
import unicodedata
import weakref
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from pydantic import BaseModel
from rapidfuzz import fuzz, process
from tortoise.signals import post_delete, post_save

from core.kv import KVUnavailable
from core.runtime import runtime
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


@lru_cache(maxsize=4096)
def _pinyin(text: str) -> tuple[str, str]:
    return pinyin_of(text)  # categories repeat across items; queries repeat across senders


@lru_cache(maxsize=65536)
def _prepared(item: CatalogItem) -> _Item:
    name = fold(item.name)
    category = fold(item.category)
    cat_pinyin, cat_initials = _pinyin(category)
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
    pinyin = _letters(_pinyin(words)[0]) if words and not ascii_word else ""
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
    """Score every item: the reference the index must agree with."""
    q = _prepare_query(query)
    return _result(query, [(_score(q, _prepared(item)), item) for item in catalogue], limit)


def _result(query: str, scored: Iterable[tuple[float, CatalogItem]], limit: int) -> MatchResult:
    good = _good(scored)
    hits = [
        ProductHit(id=i.id, sku=i.sku, name=i.name, unit=i.unit, score=round(s, 1)) for s, i in good[:limit]
    ]
    best = None
    if hits and hits[0].score >= SURE_SCORE:
        if len(good) == 1 or hits[0].score - good[1][0] >= CLEAR_LEAD:
            best = hits[0]
    return MatchResult(query=query, hits=hits, total=len(good), best=best)


def _good(scored: Iterable[tuple[float, CatalogItem]]) -> list[tuple[float, CatalogItem]]:
    return sorted(((s, i) for s, i in scored if s >= MIN_SCORE), key=lambda p: (-p[0], p[1].sku))


# --- the index ------------------------------------------------------------------------------

_EDGE = 8  # name positions indexed at each end: partial_ratio also scores short edge windows
_SMALL = 256  # a universe the typed numbers narrowed to this size is scored whole


def _grams(text: str, n: int) -> set[str]:
    return {text[i : i + n] for i in range(len(text) - n + 1)}


def _postings() -> defaultdict[str, list[int]]:
    return defaultdict(list)


@dataclass
class CatalogIndex:
    """Inverted indexes over one catalogue version, so a query scores only its candidates.

    Each candidate rule is a necessary condition of a `_text_score` clause reaching
    MIN_SCORE, so `rank` here equals the reference `rank` over the same items: numbers (all
    typed ones must be the item's), exact SKU/name, SKU prefix, category labels, character
    counts for partial_ratio on the name (a window sharing fewer characters with the query
    cannot score enough; see `_name_candidates`), n-grams for substrings of the pinyin and
    initials, and for a Latin query's fuzzy pinyin one C batch (`_fuzzy_pinyin`)."""

    items: list[CatalogItem]
    active: list[bool]
    prepared: list[_Item] = field(init=False)
    pinyins: list[str] = field(init=False)
    exact: defaultdict[str, list[int]] = field(default_factory=_postings)
    skus: list[tuple[str, int]] = field(default_factory=list)
    numbers: defaultdict[str, list[int]] = field(default_factory=_postings)
    chars: defaultdict[str, list[int]] = field(default_factory=_postings)
    edges: defaultdict[tuple[str, int], list[int]] = field(default_factory=lambda: defaultdict(list))
    by_len: list[tuple[int, int]] = field(default_factory=list)
    labels: defaultdict[str, list[int]] = field(default_factory=_postings)
    py2: defaultdict[str, list[int]] = field(default_factory=_postings)
    py3: defaultdict[str, list[int]] = field(default_factory=_postings)
    py_edge: defaultdict[str, list[int]] = field(default_factory=_postings)
    ini2: defaultdict[str, list[int]] = field(default_factory=_postings)
    ini3: defaultdict[str, list[int]] = field(default_factory=_postings)

    def __post_init__(self) -> None:
        self.prepared = [_prepared(item) for item in self.items]
        self.pinyins = [p.pinyin_words for p in self.prepared]
        for i, p in enumerate(self.prepared):
            self._add(i, p)
        self.skus.sort()
        self.by_len.sort()

    def _add(self, i: int, p: _Item) -> None:
        self.exact[p.sku].append(i)
        if p.name != p.sku:
            self.exact[p.name].append(i)
        self.skus.append((p.sku, i))
        for n in set(p.numbers):
            self.numbers[n].append(i)
        for c in set(p.words):
            self.chars[c].append(i)
        head, tail = p.words[:_EDGE], p.words[::-1][:_EDGE]
        for j, c in enumerate(head):
            self.edges[c, j].append(i)
        for j, c in enumerate(tail):
            self.edges[c, ~j].append(i)
        self.by_len.append((len(p.words), i))
        for label in {p.category, p.category_pinyin, p.category_initials}:
            self.labels[label].append(i)
        for g in _grams(p.pinyin_words, 2):
            self.py2[g].append(i)
        for g in _grams(p.pinyin_words, 3):
            self.py3[g].append(i)
        for c in {p.pinyin_words[:1], p.pinyin_words[-1:]} - {""}:
            self.py_edge[c].append(i)
        self.ini2[p.initials[:2]].append(i)
        for g in _grams(p.initials, 3):
            self.ini3[g].append(i)

    def rank(
        self,
        query: str,
        *,
        limit: int = 5,
        include_inactive: bool = False,
        category: str | None = None,
    ) -> MatchResult:
        q = _prepare_query(query)
        scored = (
            (_score(q, self.prepared[i]), self.items[i])
            for i in self._candidates(q)
            if (include_inactive or self.active[i])
            and (category is None or self.items[i].category == category)
        )
        return _result(query, scored, limit)

    def _candidates(self, q: _Query) -> set[int]:
        if not q.folded:
            return set()
        out = set(self.exact.get(q.folded, ()))
        if len(q.folded) >= 3:
            start = bisect_left(self.skus, (q.folded, -1))
            for sku, i in self.skus[start:]:
                if not sku.startswith(q.folded):
                    break
                out.add(i)
        if not q.words or (q.ascii and len(q.words) < 2):  # at most 50 or 0 by the text
            return out
        universe: set[int] | None = None
        if q.numbers:
            universe = _intersection(self.numbers.get(n, ()) for n in set(q.numbers))
            if len(universe) <= _SMALL:
                return out | universe
        need = (MIN_SCORE - (4.0 if q.numbers else 0.0) - 0.01) / 100  # what the text must score
        text = self._name_candidates(q.words, need)
        text.update(self.labels.get(q.words, ()))
        if q.ascii:
            text |= self._containing(q.words, self.py2, self.py3, "pinyin_words")
            text.update(self.ini2.get(q.words, ()) if len(q.words) == 2 else ())
            if len(q.words) >= 3:
                text |= _intersection(self.ini3.get(g, ()) for g in _grams(q.words, 3))
            text |= self._fuzzy_pinyin(q, need / 0.85)
        elif q.pinyin:
            text |= self._containing(q.pinyin, self.py2, self.py3, "pinyin_words")
        return out | (text & universe if universe is not None else text)

    def _name_candidates(self, w: str, t: float) -> set[int]:
        """Items whose name words could reach `t` (0-1) by partial_ratio/ratio against `w`.

        partial_ratio aligns `w` (m characters) with windows of the name: a full window scores
        L/m, where L <= the characters they share; a window cut by the name's start or end (k < m
        characters) scores 2L/(m+k) <= 2L/(m+L), as does `ratio` against a name shorter than `w`.
        So a candidate shares ceil(t*m) characters anywhere, or ceil(t*m/(2-t)) among its first or
        last m-1 characters, or is shorter than `w` and shares ceil(t*m/(2-t))."""
        m = len(w)
        need_full, need_edge = math.ceil(t * m), math.ceil(t * m / (2 - t))
        wanted = Counter(w)
        shared: Counter[int] = Counter()
        for c, k in wanted.items():
            for _ in range(k):
                shared.update(self.chars.get(c, ()))
        out = {i for i, n in shared.items() if n >= need_full}
        if m - 1 <= _EDGE:
            near: Counter[int] = Counter()
            for c in wanted:
                for j in range(m - 1):
                    near.update(self.edges.get((c, j), ()))
                    near.update(self.edges.get((c, ~j), ()))
            out.update(i for i, n in near.items() if n >= need_edge)
        else:
            out.update(i for i, n in shared.items() if n >= need_edge)
        shorter = self.by_len[: bisect_left(self.by_len, (m, -1))]
        out.update(i for _, i in shorter if shared.get(i, 0) >= need_edge)
        return out

    def _containing(
        self, text: str, grams2: dict[str, list[int]], grams3: dict[str, list[int]], attr: str
    ) -> set[int]:
        """Items whose `attr` contains `text`, found by its n-grams (checked by the scoring)."""
        if len(text) >= 3:
            return _intersection(grams3.get(g, ()) for g in _grams(text, 3))
        if len(text) == 2:
            return set(grams2.get(text, ()))
        return {i for i, p in enumerate(self.prepared) if text in getattr(p, attr)}

    def _fuzzy_pinyin(self, q: _Query, t: float) -> set[int]:
        """Candidates for `partial_ratio(w, pinyin) * 0.85` reaching `t`: for two letters, the
        bigram itself or, when numbers lower the bar, a letter at either end (2/3 * 0.85 + 4);
        longer, one batch over every item's pinyin in rapidfuzz's C code (~1 µs an item): a
        typo'd pinyin shares no fixed n-gram with its product, and this clause decides totals."""
        w = q.words
        if len(w) == 2:
            found = set(self.py2.get(w, ()))
            if q.numbers:
                for c in set(w):
                    found.update(self.py_edge.get(c, ()))
            return found
        kept = process.extract(w, self.pinyins, scorer=fuzz.partial_ratio, score_cutoff=t * 100, limit=None)
        return {k for _, _, k in kept}


def _intersection(postings: Iterable[Iterable[int]]) -> set[int]:
    sets = sorted((set(p) for p in postings), key=len)
    if not sets:
        return set()
    out = sets[0]
    for s in sets[1:]:
        out &= s
        if not out:
            break
    return out


# --- the catalogue's index, one per version -----------------------------------------------

VERSION_KEY = "catalog:version"


async def catalogue_changed() -> None:
    """Product writers call this after their transaction commits (ORM saves and deletes of one
    Product also call it through the signals below): every process's next match rebuilds its
    index. A new random token, not a counter, so a flushed or fresh kv never repeats one."""
    try:
        kv = runtime().kv
    except RuntimeError:  # no runtime (a script): nobody in this process matches
        return
    try:
        await kv.set(VERSION_KEY, secrets.token_hex(8))
        _cache.bump_pending = False
    except KVUnavailable:
        # The product is saved all the same; the bump is retried when the kv answers again.
        _cache.bump_pending = True


@post_save(Product)
async def _product_saved(sender: type[Product], instance: Product, *args: object) -> None:
    await catalogue_changed()


@post_delete(Product)
async def _product_deleted(sender: type[Product], instance: Product, *args: object) -> None:
    await catalogue_changed()


# While the kv is away an index is rebuilt at most this often: matching stays up, and a
# product changed during the outage shows within this many seconds.
OUTAGE_REBUILD_S = 30


async def _version() -> str:
    kv = runtime().kv
    try:
        if _cache.bump_pending:
            await catalogue_changed()
        value = await kv.get(VERSION_KEY)
        if value is None:
            await kv.set(VERSION_KEY, secrets.token_hex(8), nx=True)
            value = await kv.get(VERSION_KEY) or b""
    except KVUnavailable:
        # Any token differs from these, so the first read after the outage rebuilds too.
        return f"outage:{int(time.monotonic() // OUTAGE_REBUILD_S)}"
    return value.decode()


@dataclass
class _Cache:
    key: tuple[int, str] | None = None
    index: CatalogIndex | None = None
    rebuilds: int = 0  # how many indexes this process built (tests)
    bump_pending: bool = False  # catalogue_changed() met a kv outage


_cache = _Cache()
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _locks.get(loop)
    if lock is None:
        lock = _locks[loop] = asyncio.Lock()
    return lock


async def catalogue_index() -> CatalogIndex:
    """The index of the catalogue as of now: one kv read per call; after a change, one
    rebuild per process however many messages wait for it (they share it)."""
    key = (id(Product._meta.db), await _version())
    if _cache.key != key or _cache.index is None:
        async with _lock():
            if _cache.key != key or _cache.index is None:
                rows = await Product.all().values_list(
                    "id", "sku", "name", "pinyin", "initials", "category", "unit", "status"
                )
                items = [CatalogItem(*row[:7]) for row in rows]
                active = [row[7] == ProductStatus.ACTIVE for row in rows]
                _cache.index = await asyncio.to_thread(CatalogIndex, items, active)
                _cache.key = key
                _cache.rebuilds += 1
    return _cache.index


async def load_catalogue() -> list[CatalogItem]:
    index = await catalogue_index()
    return [item for item, on in zip(index.items, index.active, strict=True) if on]


async def match_products(query: str, *, limit: int = 5) -> MatchResult:
    """Rank the active catalogue for a free-text product reference."""
    query = unicodedata.normalize("NFKC", query).strip()[:100]
    return (await catalogue_index()).rank(query, limit=limit)


# A catalogue page lists only what the matcher is fairly sure of: chat's pick list may offer
# a weak guess (MIN_SCORE), a page of weak guesses would be noise.
LIST_SCORE = 70.0


async def search_ids(query: str, *, include_inactive: bool, category: str | None = None) -> list[int]:
    """Product ids for a catalogue search ``q``, best match first (REST `GET /products`)."""
    query = unicodedata.normalize("NFKC", query).strip()[:100]
    index = await catalogue_index()
    result = index.rank(query, limit=len(index.items), include_inactive=include_inactive, category=category)
    return [h.id for h in result.hits if h.score >= LIST_SCORE]
