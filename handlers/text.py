"""Chinese text helpers: pinyin and initials for product search, width and space folding."""

from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[^0-9a-z]+")


def fold(text: str) -> str:
    """Full-width to half-width, lower case, no spaces: 'ＨＲＢ４００ Ｅ' -> 'hrb400e'."""
    return "".join(unicodedata.normalize("NFKC", text).lower().split())


def pinyin_of(name: str) -> tuple[str, str]:
    """(full pinyin, initials), both lower case ASCII without separators.

    '螺纹钢 HRB400E' -> ('luowenganghrb400e', 'lwghrb400e'); Latin and digits pass through.
    pypinyin loads its phrase dictionary (~45 MB) on import: only when pinyin is first needed
    (catalogue writes, chat product search), not at every process's start."""
    from pypinyin import Style, lazy_pinyin

    folded = unicodedata.normalize("NFKC", name)
    full = _NON_WORD.sub("", "".join(lazy_pinyin(folded, errors="default")).lower())
    initials = _NON_WORD.sub("", "".join(lazy_pinyin(folded, style=Style.FIRST_LETTER)).lower())
    return full, initials
