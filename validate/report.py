"""Report renderings: the same data as XLSX (business staff), Markdown (Prefect artifacts), JSON."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

Sheet = tuple[Sequence[str], Sequence[Sequence[Any]]]


def nfc(v: Any) -> Any:
    return unicodedata.normalize("NFC", v) if isinstance(v, str) else v


def cell_text(v: Any) -> Any:
    """A value for a worksheet cell: NFC text, control characters (a NUL in a source value, say) shown as ``\\x00``
    — a worksheet cannot hold them, and hiding them would hide the very defect being reported."""
    if isinstance(v, (dict, list)):
        v = json.dumps(v, ensure_ascii=False, default=str)
    if isinstance(v, str):
        return ILLEGAL_CHARACTERS_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", nfc(v))
    return v


FAIL_VALUES = {"fail", "không đạt", "đang chặn", "chưa xử lý", "chờ quyết định", "cách ly", "nghiêm trọng"}
STATUS_HEADERS = {"kết quả", "trạng thái"}
_FAIL_FILL = PatternFill("solid", fgColor="FDE2E0")
_HEAD_FILL = PatternFill("solid", fgColor="DCE6F2")
_NUM = re.compile(r"^-?\d{1,15}(\.\d{1,12})?$")


def as_number(v: Any) -> Any:
    """A number kept as text (a count, a decimal quantity) as a number, so that a worksheet can sum and sort it;
    only where no digit is lost (≤ 15 significant digits: what a spreadsheet holds exactly) and never a code
    (a leading zero, or ten digits and more without a decimal point: tax codes, document numbers)."""
    if isinstance(v, Decimal):
        v = format(v, "f")
    if isinstance(v, str) and _NUM.match(t := v.strip()):
        digits = t.lstrip("-")
        if digits[:1] == "0" and digits[:2] not in ("0", "0.") and digits != "0":
            return v  # a leading zero: a code (0312345678), not a number
        if "." not in t and len(digits) > 9:
            return v  # ten digits and more without a decimal point: a tax or document number, kept as text
        if len(digits.replace(".", "").lstrip("0")) <= 15:
            return int(t) if "." not in t else float(t)
    return v


def write_xlsx(path: Path, sheets: dict[str, Sheet]) -> Path:
    """One sheet per entry, for people who work in Excel: Vietnamese headers in bold on a frozen first row with
    filters, columns as wide as their content, numbers as numbers (thousands separated), and the rows whose
    result or status says something is wrong filled in red."""
    wb = Workbook()
    wb.remove(wb.active)
    for title, (headers, rows) in sheets.items():
        ws = wb.create_sheet(title=nfc(title)[:31])
        ws.append([nfc(h) for h in headers])
        for c in ws[1]:
            c.font = Font(bold=True)
            c.fill = _HEAD_FILL
            c.alignment = Alignment(wrap_text=True, vertical="top")
        status_cols = [i for i, h in enumerate(headers) if str(h).strip().lower() in STATUS_HEADERS]
        widths = [len(str(h)) for h in headers]
        for r in rows:
            values = [cell_text(as_number(v)) for v in r]
            ws.append(values)
            bad = any(str(values[i]).strip().lower() in FAIL_VALUES for i in status_cols if i < len(values))
            for i, v in enumerate(values):
                cell = ws.cell(ws.max_row, i + 1)
                if isinstance(v, int) and not isinstance(v, bool):
                    cell.number_format = "#,##0"
                elif isinstance(v, float):
                    cell.number_format = "#,##0.###"
                if bad:
                    cell.fill = _FAIL_FILL
                if i < len(widths) and ws.max_row <= 500:
                    widths[i] = max(widths[i], len(str(v)) if v is not None else 0)
        for i, w in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(i)].width = max(8, min(60, w + 2))
        ws.freeze_panes = "A2"
        if headers:
            ws.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{max(1, ws.max_row)}"
        ws.print_title_rows = "1:1"
        ws.page_setup.orientation = "landscape"
        ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
        ws.sheet_properties.pageSetUpPr.fitToPage = True
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], limit: int = 50) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ") if v is not None else ""
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in list(rows)[:limit]:
        out.append("| " + " | ".join(cell(v) for v in r) + " |")
    if len(rows) > limit:
        out.append(f"\n… {len(rows) - limit} more rows in the XLSX report")
    return "\n".join(out)


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    return path
