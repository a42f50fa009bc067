"""Base pydantic models shared by every layer: strict inputs, JSON-friendly outputs."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictInt,
    field_validator,
)
from pydantic_core import PydanticCustomError

from core.money import money_str

T = TypeVar("T")

# Ids are 32-bit in every table (PostgreSQL int4): a larger one names nothing, and must be a
# 400 at the door rather than an overflow in the driver. `Id` for query strings (text -> int),
# `StrictId` for JSON bodies (a JSON integer only).
MAX_ID = 2**31 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
StrictId = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]

# The business calendar: every date and timestamp that comes in (query or body) lies within
# it, so time-zone conversions and date arithmetic (+- days, month ends, due dates) can never
# leave Python's calendar (years 1..9999) and raise OverflowError deep in a handler. A
# timestamp is bounded by its own wall-clock date (offsets are < 24 h, so its UTC and business
# time stay far inside). `Day` for dates, `Timestamp` for aware datetimes; `_Input` also
# checks any plain date/datetime field, so a field declared without them is still bounded.
DATE_MIN = date(2000, 1, 1)
DATE_MAX = date(2999, 12, 31)
_CALENDAR = f"{DATE_MIN.isoformat()} .. {DATE_MAX.isoformat()}"


def in_calendar(value: Any) -> Any:
    """A date/datetime outside DATE_MIN..DATE_MAX is a validation error (400)."""
    if isinstance(value, date):
        day = value.date() if isinstance(value, datetime) else value
        if not DATE_MIN <= day <= DATE_MAX:
            raise PydanticCustomError(
                "date_out_of_range",
                "日期须在 {min} 至 {max} 之间",
                {"min": DATE_MIN.isoformat(), "max": DATE_MAX.isoformat()},
            )
    return value


Day = Annotated[date, AfterValidator(in_calendar), Field(description=f"a date within {_CALENDAR}")]
Timestamp = Annotated[
    AwareDatetime,
    AfterValidator(in_calendar),
    Field(description=f"an ISO 8601 timestamp with its UTC offset, on a date within {_CALENDAR}"),
]

# Request bodies nest at most this deep (`{"a": [1]}` is 2): legitimate bodies use 3 or 4;
# deeper ones only serve to exhaust recursion in the parsers and validators.
MAX_JSON_DEPTH = 32


def json_depth_over(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when parsed JSON nests deeper than `limit` (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


# Money leaves as a string with two places ("1234.50"), never a float.
Money = Annotated[Decimal, PlainSerializer(money_str, return_type=str, when_used="json")]


def _has_nul(value: object) -> bool:
    # iterative: a deeply nested value must not exhaust the recursion limit (a 500)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


class _Input(BaseModel):
    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        # PostgreSQL text cannot hold U+0000 (SQLite can): refuse it at the door, on every
        # input, so both databases behave alike and no query fails halfway.
        if _has_nul(value):
            raise ValueError("不能包含 NUL（U+0000）字符")
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _in_calendar(cls, value: object) -> object:
        for item in value if isinstance(value, list | tuple | set | frozenset) else (value,):
            in_calendar(item)
        return value


class In(_Input):
    """Request bodies: unknown fields are rejected, never silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Query(_Input):
    """Query strings: unknown parameters are ignored (clients add cache busters)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class PageQuery(Query):
    page: int = Field(1, ge=1, le=100_000)
    page_size: int = Field(20, ge=1, le=100)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(Out, Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int
