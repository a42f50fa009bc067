"""Excel exports of the console's lists: Chinese headers, money and quantities as numbers,
times in the business time zone, a totals row; written by openpyxl in write-only mode.

No cell is ever a formula: texts that start like one get a leading apostrophe (OWASP "CSV
injection"; full-width starts too, as Chinese spreadsheet apps accept them)."""

from __future__ import annotations

import io
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from aiohttp import web

from core.clock import BUSINESS_TZ

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_ROWS = 20_000
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
FORMATS = {"money": "#,##0.00", "int": "0", "time": "yyyy-mm-dd hh:mm"}


@dataclass(frozen=True)
class Column:
    header: str
    get: Callable[[Any], Any]
    kind: str = "text"  # text | money | int | time
    total: bool = False


def _text(value: object) -> str:
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    text = ILLEGAL_CHARACTERS_RE.sub("", str(value))
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def _value(kind: str, value: Any) -> Any:
    if value is None or value == "":
        return None
    if kind == "money":
        return Decimal(str(value))
    if kind == "int":
        return int(value)
    if kind == "time":
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(BUSINESS_TZ).replace(tzinfo=None)
    return _text(value)


def workbook(title: str, columns: list[Column], items: Iterable[Any]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=title[:31])
    bold = Font(bold=True)

    def cell(value: Any, kind: str = "text", strong: bool = False) -> Any:
        c = WriteOnlyCell(ws, value=value)
        if kind in FORMATS and value is not None:
            c.number_format = FORMATS[kind]
        if strong:
            c.font = bold
        return c

    ws.append([cell(c.header, strong=True) for c in columns])
    sums = [Decimal(0) for _ in columns]
    count = 0
    for item in items:
        row = []
        for i, col in enumerate(columns):
            value = _value(col.kind, col.get(item))
            if col.total and value is not None:
                sums[i] += value
            row.append(cell(value, col.kind))
        ws.append(row)
        count += 1
    if any(c.total for c in columns):
        totals = [cell(f"合计（{count} 条）", strong=True)]
        totals += [cell(sums[i] if c.total else None, c.kind, strong=True) for i, c in enumerate(columns)][1:]
        ws.append(totals)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


async def collect(fetch: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """Every item of a paged use-case (page_size 100), at most MAX_ROWS."""
    items: list[Any] = []
    page = 1
    while len(items) < MAX_ROWS:
        result = await fetch(page=page)
        items.extend(result.items)
        if not result.items or len(items) >= result.total:
            break
        page += 1
    return items[:MAX_ROWS]


def xlsx_response(name: str, data: bytes) -> web.Response:
    stamp = datetime.now(BUSINESS_TZ).strftime("%Y%m%d-%H%M")
    filename = quote(f"{name}-{stamp}.xlsx")
    return web.Response(
        body=data,
        headers={
            "Content-Type": XLSX_TYPE,
            "Content-Disposition": f"attachment; filename=\"export.xlsx\"; filename*=UTF-8''{filename}",
        },
    )
