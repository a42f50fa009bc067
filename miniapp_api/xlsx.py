"""`?format=xlsx` for list and report endpoints: the same rows as the JSON, as a workbook."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

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


def _cell(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, Decimal):
        return str(value)  # exact, and equal to the JSON's string
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, ensure_ascii=False)
    return value


def rows_to_xlsx(
    rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, title: str = "data"
) -> bytes:
    """One header row, then one row per item. Money stays exact (the JSON's strings); no cell
    is ever a formula (every text goes through `_text`)."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=title[:31] or "data")
    cols = list(columns or (rows[0].keys() if rows else []))
    ws.append([_text(str(c)) for c in cols])
    for row in rows:
        ws.append([_cell(row.get(c)) for c in cols])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def xlsx_response(
    rows: Sequence[dict[str, Any]], filename: str, columns: Sequence[str] | None = None
) -> web.Response:
    body = rows_to_xlsx(rows, columns, title=filename)
    return web.Response(
        body=body,
        headers={
            "Content-Type": XLSX_TYPE,
            "Content-Disposition": f'attachment; filename="{filename}.xlsx"',
        },
    )
