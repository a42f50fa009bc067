"""`?format=xlsx` for list and report endpoints: the same rows as the JSON, as a workbook."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

# openpyxl is imported where a workbook is written: most processes never write one, and it
# would cost every process memory at start (tests/test_startup.py).

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _cell(value: Any) -> Any:
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    if isinstance(value, str):
        return ILLEGAL_CHARACTERS_RE.sub("", value)  # control characters would make openpyxl raise
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
    """One header row, then one row per item. Money stays exact (the JSON's strings)."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=title[:31] or "data")
    cols = list(columns or (rows[0].keys() if rows else []))
    ws.append(cols)
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
