"""Clock port: business time is always timezone-aware (default Asia/Shanghai)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock tests can set and move."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self.at = at

    def now(self) -> datetime:
        return self.at


_clock: Clock = SystemClock()


def set_clock(clock: Clock) -> None:
    global _clock
    _clock = clock


def current_clock() -> Clock:
    """The clock in use (to put it back after a temporary one)."""
    return _clock


def now() -> datetime:
    return _clock.now()


def today(tz: tzinfo = BUSINESS_TZ) -> date:
    return now().astimezone(tz).date()


def day_start(day: date, tz: tzinfo = BUSINESS_TZ) -> datetime:
    """The first instant of a business day, in UTC (for ``created_at`` ranges)."""
    return datetime.combine(day, time(0), tz).astimezone(UTC)
