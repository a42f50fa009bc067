"""Quantities and order items as reps type them: Arabic or Chinese numerals (三, 十五, 两千五,
一百零五), fractions (2.5, 二点五, 两吨半, 半吨), units, and a list of items separated by
punctuation, 和/以及 or simply spaces after a quantity. Pure; `bot.understand` reads intents
with it and the 下单 conversation its items."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

# --- numbers ----------------------------------------------------------------------------------

CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "俩": 2, "三": 3, "四": 4, "五": 5,
             "六": 6, "七": 7, "八": 8, "九": 9}  # fmt: skip
CN_UNITS = {"十": 10, "百": 100, "千": 1000}
CN_CHARS = frozenset(CN_DIGITS) | frozenset(CN_UNITS) | {"万", "点", "半"}


def cn_number(text: str) -> Decimal | None:
    """'三' -> 3, '十五' -> 15, '两千五' -> 2500, '一百零五' -> 105, '二点五' -> 2.5,
    '半' -> 0.5; None when it is not a Chinese numeral."""
    if not text or any(ch not in CN_CHARS for ch in text):
        return None
    if text == "半":
        return Decimal("0.5")
    whole, _, frac = text.partition("点")
    value = _cn_int(whole) if whole else 0
    if value is None:
        return None
    if not frac:
        return Decimal(value)
    if any(ch not in CN_DIGITS for ch in frac):
        return None
    return Decimal(f"{value}.{''.join(str(CN_DIGITS[ch]) for ch in frac)}")


def _cn_int(text: str) -> int | None:
    total = section = digit = 0
    for ch in text:
        if ch in CN_DIGITS:
            digit = CN_DIGITS[ch]
        elif ch in CN_UNITS:
            section += (digit or 1) * CN_UNITS[ch]
            digit = 0
        elif ch == "万":
            total += (section + digit) * 10_000
            section = digit = 0
        else:
            return None
    # 两千五 is 2500, 三百五 350, 一万五 15000 (but 一百零五 is 105): a last digit right after
    # 百/千/万 counts in the next lower place
    if len(text) >= 2 and text[-2] in _NEXT_PLACE and text[-1] in CN_DIGITS:
        digit *= _NEXT_PLACE[text[-2]]
    return total + section + digit


_NEXT_PLACE = {"百": 10, "千": 100, "万": 1000}


def to_number(text: str) -> Decimal | None:
    """Arabic ('12', '2.5') or Chinese ('十二', '两吨半' without the unit) digits."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return cn_number(text)
    return value if value.is_finite() else None


# --- order items ------------------------------------------------------------------------------

UNITS = (
    *"吨 袋 件 箱 根 张 卷 桶 个 套 支 立方 方 米 包 盒 瓶 条 块 台 t T".split(),
    *"把 捆 片 扇 副 罐 只 平方 平米".split(),
)
_BY_LENGTH = sorted(UNITS, key=len, reverse=True)  # "立方" before "方"
TIMES = "x×*"
MAX_QTY = 1_000_000
MAX_ITEMS = 20
# Parts are separated by punctuation or a spaced 和/以及. The lookbehind tries a run of spaces
# once, from its start, not from every space in it (quadratic); a newline the first branch took
# may still start one, as before.
_SPLIT = re.compile(r"[,，;；、\n]+|(?<![^\S\n])\s+(?:和|以及)\s*")


@dataclass(frozen=True)
class Item:
    """One product and quantity as typed; `qty` is an int, or a Decimal when the user wrote a
    fraction ("2.5吨") — the order asks for a whole number then, it never rounds silently."""

    text: str
    qty: int | Decimal
    unit: str | None

    @property
    def whole(self) -> bool:
        return isinstance(self.qty, int)


def parse_items(text: str) -> list[Item] | None:
    """The items of a message, or None if any part lacks a quantity. Items are separated by
    punctuation, 和/以及, or simply by spaces after a quantity ("盘螺8 3吨 水泥 100袋")."""
    parts = [p.strip() for p in _SPLIT.split(text) if p.strip()]
    if not parts or len(parts) > MAX_ITEMS:
        return None
    items: list[Item] = []
    for part in parts:
        for chunk in _chunks(part):
            item = parse_item(chunk)
            if item is None or not 0 < item.qty <= MAX_QTY or len(items) >= MAX_ITEMS:
                return None
            items.append(item)
    return items


def _chunks(part: str) -> list[str]:
    """A part cut after each word that ends in a quantity with a unit or is "x5", when more
    words follow: "盘螺8 3吨 水泥 100袋" -> ["盘螺8 3吨", "水泥 100袋"] (spacing kept)."""
    words = list(_WORD.finditer(part))
    out: list[str] = []
    start = 0  # index of the first word of the current chunk
    for i, m in enumerate(words[:-1]):
        word = m[0]
        if _closes(word) and (i > start or _has_name(word)):
            out.append(part[words[start].start() : m.end()])
            start = i + 1
    out.append(part[words[start].start() :] if words else part)
    return out


_WORD = re.compile(r"\S+")
_UNIT_ENDS = frozenset(u[-1] for u in UNITS) | {"半"}


def _closes(word: str) -> bool:
    if word[0] in TIMES and len(word) > 1 and to_number(word[1:]) is not None:
        return True
    if word[-1] not in _UNIT_ENDS:
        return False  # the common case, decided in one look (long messages stay linear)
    unit = next((u for u in _BY_LENGTH if word.removesuffix("半").endswith(u)), None)
    if unit is None:
        return False
    body = word.removesuffix("半")[: -len(unit)]
    return bool(body) and (body[-1].isdecimal() or body[-1] in CN_CHARS)


def _has_name(word: str) -> bool:
    """'水泥100袋' carries its own name; '100袋' does not."""
    item = parse_item(word)
    return item is not None and item.text != "" and not word[0].isdecimal()


def parse_item(part: str) -> Item | None:
    """`<product> 5吨`, `<product> x5`, `<product>100袋`, `<product> 三吨`, `<product> 2.5吨`,
    `<product> 两吨半` (a stripped part); None without a quantity.

    The number must be set off by a space or an x, or carry a unit — so "螺纹钢Φ12" is a
    product without a quantity, not 12 of "螺纹钢Φ". Read from the right in one pass (a regex
    with a lazy name before `\\s+\\d+` backtracks quadratically on long runs of spaces); the
    result is the shortest name that leaves a valid quantity after it.
    """
    half = part.endswith("半") and any(part[:-1].endswith(u) for u in UNITS)
    if half:
        part = part[:-1]
    unit = next((u for u in _BY_LENGTH if part.endswith(u)), None)
    body = (part[: -len(unit)] if unit else part).rstrip()
    start = len(body)
    while start and (body[start - 1].isdecimal() or body[start - 1] == "."):
        start -= 1
    while start < len(body) and body[start] == ".":
        start += 1
    arabic = start < len(body)
    if not arabic:
        while start and body[start - 1] in CN_CHARS:
            start -= 1
    digits, before = body[start:], body[:start]
    if not digits or (not arabic and not unit):
        return None
    name = before.rstrip()
    spaced = len(name) < len(before)
    if name and name[-1] in TIMES and name[:-1].rstrip():
        name = name[:-1].rstrip()  # "水泥 x 5", "水泥x5"
    elif not name:  # "15吨": the name must have a character, so it takes the first digit
        if not arabic or not unit or len(digits) < 2 or not digits.isdecimal():
            return None
        name, digits = digits[0], digits[1:]
    elif not (spaced or unit):
        return None  # "螺纹钢Φ12" is a spec, not a quantity; "x5" has nothing before the x
    qty = _quantity(digits, half)
    if qty is None:
        return None
    return Item(name.strip(), qty, unit)


def parse_qty(text: str) -> tuple[int | Decimal, str | None] | None:
    """A quantity alone ("3", "三吨", "2.5吨", "两吨半"): (qty, unit), else None."""
    item = parse_item(f"_ {text.strip()}")
    if item is None or item.text != "_" or not 0 < item.qty <= MAX_QTY:
        return None
    return item.qty, item.unit


def _quantity(digits: str, half: bool) -> int | Decimal | None:
    if len(digits) > 12:  # more digits than any sane quantity
        return None
    value = to_number(digits) if not digits.isdecimal() else Decimal(int(digits))
    if value is None:
        return None
    if half:
        value += Decimal("0.5")
    return int(value) if value == value.to_integral_value() else value.normalize()
