"""Base pydantic models shared by every layer: strict inputs, JSON-friendly outputs."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, StrictInt, field_validator

from core.money import money_str

T = TypeVar("T")

# Ids are 32-bit in every table (PostgreSQL int4): a larger one names nothing, and must be a
# 400 at the door rather than an overflow in the driver. `Id` for query strings (text -> int),
# `StrictId` for JSON bodies (a JSON integer only).
MAX_ID = 2**31 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
StrictId = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]

# Money leaves as a string with two places ("1234.50"), never a float.
Money = Annotated[Decimal, PlainSerializer(money_str, return_type=str, when_used="json")]


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


class _Input(BaseModel):
    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        # PostgreSQL text cannot hold U+0000 (SQLite can): refuse it at the door, on every
        # input, so both databases behave alike and no query fails halfway.
        if _has_nul(value):
            raise ValueError("must not contain NUL (U+0000) characters")
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
