"""The correction template of a finding: an XLSX workbook listing every row of the finding with its source values,
to be filled in Excel (column, new value) and uploaded back at the desk — or given to `ecm decide --correct`."""

from __future__ import annotations

import io
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.worksheet.datavalidation import DataValidation

from pipelines.desk.rows import RowsPage
from sign_off.decisions import CORRECTION_COLUMNS

_FILL = PatternFill("solid", fgColor="FFF4CC")  # the cells to fill in
_HEAD = Font(bold=True)


def correction_template(table: str, page: RowsPage) -> bytes:
    """One line per source row of the finding (each row of a duplicate on its own line, told apart by ``@row``)."""
    wb = Workbook()
    ws = wb.active
    ws.title = "Hiệu chỉnh"
    src_cols = page.source_columns
    ws.append([*CORRECTION_COLUMNS, *(f"nguồn: {c}" for c in src_cols)])
    for cell in ws[1]:
        cell.font = _HEAD
    for r in page.rows:
        sources: list[tuple[str, dict[str, Any]]] = list(zip(r["source_keys"], r["source"], strict=True)) or \
            [(r["text"], {})]
        for key, values in sources:
            ws.append([table, key, None, None, *(_plain(values.get(c)) for c in src_cols)])
    last = ws.max_row
    for row in ws.iter_rows(min_row=2, max_row=last, min_col=3, max_col=4):
        for cell in row:
            cell.fill = _FILL
            cell.number_format = "@"  # typed as text: a code keeps its leading zeros
    if src_cols and last > 1:
        choices = ",".join(src_cols)
        if len(choices) <= 250:  # Excel's limit for an inline list
            dv = DataValidation(type="list", formula1=f'"{choices}"', allow_blank=True,
                                error="Chọn một cột của bảng nguồn.", errorTitle="Cột không có trong bảng")
            ws.add_data_validation(dv)
            dv.add(f"C2:C{last}")
    ws.freeze_panes = "C2"
    ws.auto_filter.ref = ws.dimensions
    for letter, width in (("A", 18), ("B", 60), ("C", 16), ("D", 18)):
        ws.column_dimensions[letter].width = width
    help_ws = wb.create_sheet("Hướng dẫn")
    for line in (
            "Cách dùng tệp hiệu chỉnh",
            "1. Ở sheet “Hiệu chỉnh”, mỗi dòng là một dòng dữ liệu nguồn của phát hiện (các cột “nguồn: …” là giá trị "
            "hiện tại, chỉ để xem).",
            "2. Với dòng cần sửa: chọn cột cần sửa ở cột “column” và ghi giá trị mới ở cột “new_value”.",
            "3. Để trống cột “column” ở các dòng không sửa — các dòng đó được bỏ qua.",
            "4. Không sửa cột “table” và “key”: khóa xác định đúng dòng cần sửa (“@row=…” phân biệt các dòng trùng "
            "khóa).",
            "5. Lưu tệp (.xlsx) và tải lên ở trang phát hiện trên bàn làm việc, kèm lý do. Mọi hiệu chỉnh được ghi "
            "nhật ký (giá trị cũ, giá trị mới, người sửa); bước 5–6 chạy lại sau khi hiệu chỉnh."):
        help_ws.append([line])
    help_ws["A1"].font = _HEAD
    help_ws.column_dimensions["A"].width = 120
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _plain(v: Any) -> Any:
    return v if v is None or isinstance(v, int | float | str) else str(v)
