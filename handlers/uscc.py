"""统一社会信用代码 (USCC, GB 32100-2015): 18 characters, the last a mod-31 check digit."""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # no I, O, S, V, Z
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_INDEX = {c: i for i, c in enumerate(ALPHABET)}


def check_char(first17: str) -> str:
    total = sum(_INDEX[c] * w for c, w in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def normalize_uscc(value: str) -> str:
    return value.strip().upper()


def is_valid_uscc(value: str) -> bool:
    code = normalize_uscc(value)
    if len(code) != 18 or any(c not in _INDEX for c in code):
        return False
    return check_char(code[:17]) == code[17]


def make_uscc(body17: str) -> str:
    """Complete 17 characters with their check digit (demo data, tests)."""
    return body17 + check_char(body17)
