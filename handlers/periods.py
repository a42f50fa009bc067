"""Business periods (Asia/Shanghai): months "YYYY-MM" and quarters "YYYY-Qn", as statements,
commission tiers and reports count them."""

from __future__ import annotations

from datetime import UTC, datetime

from core.clock import BUSINESS_TZ, today
from core.errors import ValidationError


def month_of(moment: datetime) -> str:
    local = moment.astimezone(BUSINESS_TZ)
    return f"{local.year:04d}-{local.month:02d}"


def parse_month(value: str) -> str:
    """'2026-11' -> '2026-11'; anything else is a ValidationError."""
    text = (value or "").strip()
    if len(text) == 7 and text[4] == "-" and text[:4].isdigit() and text[5:].isdigit():
        year, month = int(text[:4]), int(text[5:])
        if 2000 <= year <= 2999 and 1 <= month <= 12:
            return text
    raise ValidationError("period: 期间格式应为 年-月（如 2026-01）", {"field": "period"})


def next_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:])
    return f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"


def previous_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:])
    return f"{year - 1:04d}-12" if mon == 1 else f"{year:04d}-{mon - 1:02d}"


def current_month() -> str:
    day = today()
    return f"{day.year:04d}-{day.month:02d}"


def require_ended(month: str) -> str:
    """`month` if it has ended in the business time zone (by the clock the code uses), else a
    ValidationError: a statement closes only a past month, never the running one."""
    running = current_month()
    if month >= running:
        raise ValidationError(
            f"账期 {month} 尚未结束，只能结算已结束的月份"
            f"（当前为 {running}，最近可结算 {previous_month(running)}）",
            {"field": "period"},
        )
    return month


def quarter_of(month: str) -> str:
    return f"{month[:4]}-Q{(int(month[5:]) - 1) // 3 + 1}"


def is_quarter_end(month: str) -> bool:
    return int(month[5:]) % 3 == 0


def tier_periods_ending(month: str) -> list[str]:
    """The tier periods a statement for `month` closes: the month, and its quarter at quarter end."""
    return [month, quarter_of(month)] if is_quarter_end(month) else [month]


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[start, end) of a business month, in UTC (SQLite compares stored datetimes as text,
    so filters must use the same zone as the stored values)."""
    year, mon = int(month[:4]), int(month[5:])
    start = datetime(year, mon, 1, tzinfo=BUSINESS_TZ)
    nxt = next_month(month)
    end = datetime(int(nxt[:4]), int(nxt[5:]), 1, tzinfo=BUSINESS_TZ)
    return start.astimezone(UTC), end.astimezone(UTC)


def month_range(first: str, last: str) -> list[str]:
    out = []
    month = first
    while month <= last and len(out) < 1200:
        out.append(month)
        month = next_month(month)
    return out
