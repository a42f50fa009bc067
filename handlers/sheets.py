"""Rows of an uploaded CSV or XLSX file, read with bounded memory and time.

Uploads are hostile until read: a 3 KB workbook may declare `<dimension ref="A1:XFD10001"/>`
(openpyxl's read-only mode trusts it and pads every row to 16,384 cells), hold a part that
inflates to gigabytes, or a row of millions of cells. So the XLSX reader here does not use
openpyxl: it checks the zip's declared sizes (zipfile refuses to inflate past them) before
anything is parsed, then streams the first sheet's XML, freeing each element once read. It
ignores `<dimension>`, yields only rows that exist (numbered as in the spreadsheet), keeps at
most MAX_COLUMNS cells per row and stops at the caller's row cap. Cell values: shared and
inline strings, numbers (int when whole), booleans, and the cached result of formulas; number
formats (dates) are not applied — imports have no date columns.

Both readers are generators: the caller stops reading as soon as it has seen too much.
"""

from __future__ import annotations

import csv
import io
import posixpath
import re
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO, Any
from xml.etree import ElementTree as ET

from core.errors import PayloadTooLarge, ValidationError

MAX_COLUMNS = 64  # cells right of this column must be empty
MAX_SHEET_ROW = 1_048_576  # Excel's last row
XLSX_MAX_UNPACKED = 128 * 2**20  # all parts together, inflated (100,000 rows: ~70 MB)
XLSX_MAX_STRINGS = 32 * 2**20  # the shared-strings part, inflated (held in memory while reading)
XLSX_MAX_SMALL_PART = 4 * 2**20  # package/workbook relationships and the workbook part
MAX_CELL_CHARS = 32_767  # Excel's limit for one cell

Row = tuple[int, list[Any]]  # (spreadsheet row number, cell values from column A)

_REL_DOC = "/officeDocument"
_REL_SHEET = "/worksheet"
_REL_STRINGS = "/sharedStrings"
_CELL_REF = re.compile(r"([A-Za-z]{1,3})(\d*)")
_XLSX_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    KeyError,
    ValueError,
    OSError,
    EOFError,
    NotImplementedError,  # unsupported compression
    RuntimeError,  # encrypted member
    zlib.error,
    ET.ParseError,
)


def _unreadable(what: str) -> ValidationError:
    return ValidationError(f"XLSX 文件无法读取：{what}", {"field": "file"})


# --- CSV ----------------------------------------------------------------------------------------------


def csv_rows(data: bytes) -> Iterator[Row]:
    """CSV in UTF-8 (with or without BOM) or GB18030 (Excel in China)."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte string
        raise ValidationError("文件不是 UTF-8 或 GB18030 编码的文本")
    if "\x00" in text:
        raise ValidationError("文件不是 CSV 文本文件（含 NUL 字节）")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        yield from enumerate(reader, start=1)
    except csv.Error as exc:
        raise ValidationError(f"CSV 文件无法解析（{exc}）") from None


# --- XLSX ---------------------------------------------------------------------------------------------


def xlsx_rows(data: bytes) -> Iterator[Row]:
    """The rows of the workbook's first sheet (see the module docstring for the limits)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            _check_sizes(zf)
            sheet, strings_part = _first_sheet(zf)
            strings = _shared_strings(zf, strings_part) if strings_part else []
            with zf.open(sheet) as stream:
                yield from _sheet_rows(stream, strings)
    except _XLSX_ERRORS as exc:
        raise _unreadable(type(exc).__name__) from None


def _check_sizes(zf: zipfile.ZipFile) -> None:
    """Refuse a zip bomb from its directory, before inflating anything. The declared sizes
    are binding: zipfile stops at them and fails the CRC check if a member inflates further."""
    infos = zf.infolist()
    total = sum(i.file_size for i in infos)
    if total > XLSX_MAX_UNPACKED or any(i.file_size > XLSX_MAX_UNPACKED for i in infos):
        raise PayloadTooLarge(
            f"XLSX 文件解压后过大（{total} 字节，上限 {XLSX_MAX_UNPACKED} 字节）",
            {"field": "file", "unpacked_bytes": total, "max_unpacked_bytes": XLSX_MAX_UNPACKED},
        )


def _read_small(zf: zipfile.ZipFile, name: str, limit: int = XLSX_MAX_SMALL_PART) -> ET.Element:
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise PayloadTooLarge(
            f"XLSX 文件的 {name} 过大（上限 {limit} 字节）",
            {"field": "file", "part": name, "max_bytes": limit},
        )
    return ET.fromstring(zf.read(info))


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _rels(zf: zipfile.ZipFile, part: str) -> list[tuple[str, str, str]]:
    """(id, type, target path) of a part's relationships."""
    folder, name = posixpath.split(part)
    rels_name = posixpath.join(folder, "_rels", name + ".rels")
    out = []
    for rel in _read_small(zf, rels_name):
        target = rel.get("Target", "")
        path = (
            target.lstrip("/")
            if target.startswith("/")
            else posixpath.normpath(posixpath.join(folder, target))
        )
        out.append((rel.get("Id", ""), rel.get("Type", ""), path))
    return out


def _first_sheet(zf: zipfile.ZipFile) -> tuple[str, str | None]:
    """(first sheet's part, shared strings part or None), found through the relationships."""
    workbook = next((p for _, t, p in _rels(zf, "") if t.endswith(_REL_DOC)), None)
    if workbook is None:
        raise _unreadable("没有工作簿")
    rels = _rels(zf, workbook)
    by_id = {rid: path for rid, t, path in rels if t.endswith(_REL_SHEET)}
    strings = next((path for _, t, path in rels if t.endswith(_REL_STRINGS)), None)
    for el in _read_small(zf, workbook).iter():
        if _local(el.tag) == "sheet":
            rid = next((v for k, v in el.attrib.items() if _local(k) == "id"), "")
            if rid in by_id:
                return by_id[rid], strings
    raise ValidationError("XLSX 文件中没有工作表", {"field": "file"})


def _shared_strings(zf: zipfile.ZipFile, part: str) -> list[str]:
    info = zf.getinfo(part)
    if info.file_size > XLSX_MAX_STRINGS:
        raise PayloadTooLarge(
            f"XLSX 文件的共享字符串过大（上限 {XLSX_MAX_STRINGS} 字节）",
            {"field": "file", "part": part, "max_bytes": XLSX_MAX_STRINGS},
        )
    with zf.open(info) as stream:
        return list(_texts(stream, "si"))


def _texts(stream: IO[bytes], item: str) -> Iterator[str]:
    """The text of each `item` element (its <t> texts joined, phonetic runs left out),
    freeing every element once read."""
    stack: list[ET.Element] = []
    parts: list[str] = []
    phonetic = 0
    for event, el in ET.iterparse(stream, events=("start", "end")):
        tag = _local(el.tag)
        if event == "start":
            stack.append(el)
            phonetic += tag == "rPh"
            continue
        stack.pop()
        if tag == "rPh":
            phonetic -= 1
        elif tag == "t" and not phonetic:
            parts.append(el.text or "")
        elif tag == item:
            yield _joined(parts)
            parts = []
        if stack:
            stack[-1].remove(el)  # read: free it (memory stays at the open path)


def _joined(parts: list[str]) -> str:
    text = "".join(parts)
    if len(text) > MAX_CELL_CHARS:
        raise ValidationError(f"XLSX 单元格文本过长（上限 {MAX_CELL_CHARS} 字符）", {"field": "file"})
    return text


def _column(ref: str | None, previous: int) -> int:
    if not ref:
        return previous + 1
    m = _CELL_REF.fullmatch(ref)
    if m is None:
        raise _unreadable(f"单元格引用 {ref[:20]!r}")
    col = 0
    for ch in m.group(1).upper():
        col = col * 26 + ord(ch) - 64
    return col


def _row_number(ref: str | None, previous: int) -> int:
    number = previous + 1 if ref is None else int(ref) if ref.isdigit() and len(ref) <= 8 else -1
    if not previous < number <= MAX_SHEET_ROW:
        raise _unreadable(f"行号 {str(ref)[:20]!r}")
    return number


def _value(kind: str | None, raw: str | None, inline: list[str], strings: list[str]) -> Any:
    if kind == "inlineStr":
        return _joined(inline)
    if raw is None:
        return None
    if kind == "s":
        index = int(raw)
        if not 0 <= index < len(strings):
            raise _unreadable(f"共享字符串 {index}")
        return strings[index]
    if kind == "b":
        return raw.strip() == "1"
    if kind in ("str", "e", "d"):  # formula text result, error (#N/A), ISO date
        return _joined([raw])
    raw = raw.strip()
    if raw.lstrip("-").isdigit() and len(raw) < 19:
        return int(raw)
    return float(raw)


def _sheet_rows(stream: IO[bytes], strings: list[str]) -> Iterator[Row]:
    stack: list[ET.Element] = []
    number = col = 0
    cells: dict[int, Any] = {}
    kind: str | None = None
    raw: str | None = None
    inline: list[str] = []
    phonetic = 0
    for event, el in ET.iterparse(stream, events=("start", "end")):
        tag = _local(el.tag)
        if event == "start":
            stack.append(el)
            if tag == "row":
                number, col, cells = _row_number(el.get("r"), number), 0, {}
            elif tag == "c":
                col, kind, raw, inline = _column(el.get("r"), col), el.get("t"), None, []
            elif tag == "rPh":
                phonetic += 1
            continue
        stack.pop()
        if tag == "v":
            raw = el.text or ""
        elif tag == "rPh":
            phonetic -= 1
        elif tag == "t" and not phonetic:
            inline.append(el.text or "")
        elif tag == "c":
            value = _value(kind, raw, inline, strings)
            if value is not None and value != "":
                if col > MAX_COLUMNS:
                    raise ValidationError(
                        f"第 {number} 行超过 {MAX_COLUMNS} 列", {"row": number, "max_columns": MAX_COLUMNS}
                    )
                cells[col] = value
        elif tag == "row":
            yield number, [cells.get(i) for i in range(1, max(cells, default=0) + 1)]
        elif tag == "sheetData":
            return  # what follows (merged cells, page setup) is of no use here
        if stack:
            stack[-1].remove(el)  # read: free it (memory stays at the open path)
