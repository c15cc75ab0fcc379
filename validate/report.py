"""Report renderings: the same data as XLSX (business staff), Markdown (Prefect artifacts), JSON."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font

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


def write_xlsx(path: Path, sheets: dict[str, Sheet]) -> Path:
    """One sheet per entry; Vietnamese headers in bold; values as they are (NFC text)."""
    wb = Workbook()
    wb.remove(wb.active)
    for title, (headers, rows) in sheets.items():
        ws = wb.create_sheet(title=nfc(title)[:31])
        ws.append([nfc(h) for h in headers])
        for c in ws[1]:
            c.font = Font(bold=True)
        for r in rows:
            ws.append([cell_text(v) for v in r])
        for i, h in enumerate(headers, start=1):
            ws.column_dimensions[ws.cell(1, i).column_letter].width = max(12, min(50, len(str(h)) + 4))
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
