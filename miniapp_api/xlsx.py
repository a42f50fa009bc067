"""`?format=xlsx` for list and report endpoints: the same rows as the JSON, as a workbook people
read — Chinese headers and enum words, money as numbers, 北京时间, a totals row."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from aiohttp import web

from core.clock import BUSINESS_TZ
from handlers import words

# openpyxl is imported where a workbook is written: most processes never write one, and it
# would cost every process memory at start (tests/test_startup.py).

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# Formula injection (OWASP "CSV injection"): names and notes come from users, and a text that
# starts like a formula would run in the admin's spreadsheet (openpyxl itself writes any "=..."
# string as a formula). Such texts get a leading apostrophe, so they are text here and after
# a save as CSV. Full-width forms too: Chinese spreadsheet apps accept them as formula starts.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")  # "-12.50" stays as is


def _text(value: str) -> str:
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    value = ILLEGAL_CHARACTERS_RE.sub("", value)  # control characters would make openpyxl raise
    if value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def _instant(value: Any) -> datetime | None:
    """A datetime (or its ISO text) as a naive 北京时间 datetime, which Excel shows as a date."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is not None:
        value = value.astimezone(BUSINESS_TZ).replace(tzinfo=None)
    return value


def _money(value: Any) -> Decimal | None:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() else None


def _cell(value: Any, col: str = "", sheet: str = "") -> tuple[Any, str | None]:
    """(cell value, number format): enum words in Chinese, money as numbers, times in 北京时间."""
    value = words.value(col, value, sheet)
    if value is None:
        return None, None
    if col in words.MONEY and not isinstance(value, bool):
        amount = _money(value)
        if amount is not None:
            return amount, words.MONEY_FORMAT
    if col in words.TIMES or isinstance(value, datetime):
        instant = _instant(value)
        if instant is not None:
            return instant, words.TIME_FORMAT
    if isinstance(value, date) and not isinstance(value, datetime):
        return value, words.DATE_FORMAT
    if isinstance(value, str):
        return _text(value), None
    if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        return _text("、".join(str(v) for v in value)), None
    if isinstance(value, list) and value and all(isinstance(v, dict) and "sku" in v for v in value):
        # a price list's items: "SKU-001 3800.00；SKU-002 22.50"
        return _text("；".join(f"{v['sku']} {v.get('price', '')}".strip() for v in value)), None
    if isinstance(value, dict | list):
        import json

        return _text(json.dumps(value, ensure_ascii=False, default=str)), None
    return value, None


def rows_to_xlsx(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str] | None = None,
    title: str = "data",
    *,
    params: dict[str, Any] | None = None,
    totals: Sequence[dict[str, Any]] = (),
) -> bytes:
    """A header row in Chinese, one row per item, then the `totals` rows (小计/合计) in bold.
    Money is a number formatted #,##0.00 (Excel can SUM it), times are 北京时间; no cell is
    ever a formula (every text goes through `_text`). `title` names the sheet kind
    ("distributors", "sales-report", ...) for the words (handlers/words.py)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=words.SHEET_TITLES.get(title, title)[:31] or "data")
    cols = list(columns or (rows[0].keys() if rows else []))
    bold = Font(bold=True)

    def write(row: dict[str, Any], font: Font | None = None) -> None:
        cells = []
        for c in cols:
            value, fmt = _cell(row.get(c), c, title)
            cell = WriteOnlyCell(ws, value=value)
            if fmt:
                cell.number_format = fmt
            if font is not None:
                cell.font = font
            cells.append(cell)
        ws.append(cells)

    heads = [_text(words.header(str(c), title, params)) for c in cols]
    for i, head in enumerate(heads):
        ws.column_dimensions[get_column_letter(i + 1)].width = max(10, min(40, 2 * len(head) + 4))
    ws.freeze_panes = "A2"
    ws.append([WriteOnlyCell(ws, value=h) for h in heads])
    for row in rows:
        write(row)
    for row in totals:
        write(row, bold)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def list_totals(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """合计 under a list export: the row count and the sum of every money column."""
    cols = list(columns or (rows[0].keys() if rows else []))
    if not rows or not cols:
        return []
    total: dict[str, Any] = {cols[0]: "合计"}
    for c in cols[1:]:
        if c in words.MONEY:
            amounts = [_money(r[c]) for r in rows if r.get(c) is not None]
            total[c] = sum((a for a in amounts if a is not None), Decimal(0))
    if len(cols) > 1 and cols[1] not in total:
        total[cols[1]] = f"共 {len(rows)} 条"
    return [total]


def xlsx_response(
    rows: Sequence[dict[str, Any]],
    filename: str,
    columns: Sequence[str] | None = None,
    *,
    params: dict[str, Any] | None = None,
    totals: Sequence[dict[str, Any]] | None = None,
) -> web.Response:
    if totals is None:
        totals = list_totals(rows, columns)
    body = rows_to_xlsx(rows, columns, title=filename, params=params, totals=totals)
    chinese = quote(f"{words.SHEET_TITLES.get(filename, filename)}.xlsx")
    return web.Response(
        body=body,
        headers={
            "Content-Type": XLSX_TYPE,
            "Content-Disposition": f"attachment; filename=\"{filename}.xlsx\"; filename*=UTF-8''{chinese}",
        },
    )
