"""Biên bản xác nhận số liệu sau chuyển đổi (Phụ lục IV bước 7), rendered as PDF from report data.

The PDF embeds DejaVu Sans (full Vietnamese glyph coverage; licence in sign_off/fonts/). It carries six
signature blocks — technical and business staff of Tổng cục, Cục and Chi cục — that sign it with PAdES
signatures (sign_off/signing.py). The snapshot and evidence hashes are printed on the page and, in the same
file, embedded as ``ecm-binding.json`` before the first signature (the ``/Info`` keywords are only a label:
nothing reads them). A reissued revision says on the page which file it replaces, by whom and why.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fpdf import FPDF

FONT_DIR = Path(__file__).parent / "fonts"
PARTIES = [("tong-cuc", "Tổng cục Hải quan"), ("cuc", "Cục Hải quan"), ("chi-cuc", "Chi cục Hải quan")]
ROLES = [("technical", "Cán bộ kỹ thuật"), ("business", "Cán bộ nghiệp vụ")]
SIGNATURE_FIELDS = [f"{p}-{r}" for p, _ in PARTIES for r, _ in ROLES]


@dataclass
class MinutesData:
    branch_code: str
    branch_name: str
    department_name: str
    offices: list[tuple[str, str]]  # (legacy, new)
    run_id: str
    created_at: str
    rehearsal: bool
    snapshot_sha256: str
    evidence_sha256: str
    categories: list[tuple[str, int, int, int, int]]  # label, source, converted, excluded, quarantined
    central_rows: list[tuple[str, int]]
    sampling: list[dict[str, Any]]
    sampling_seed: int
    confidence: float
    max_defect_rate: float
    findings: list[dict[str, Any]] = field(default_factory=list)
    signed: bool = False
    balances: list[tuple[str, int, int]] = field(default_factory=list)  # check, compared, differing
    reissue: dict[str, Any] | None = None  # number, replaces_sha256, by, reason, at (`reissue_minutes`)


def _n(s: str) -> str:
    return unicodedata.normalize("NFC", s)


# The six signature fields sit at fixed places on the last page, shared with sign_off/signing.py, so that the
# printed boxes frame the fields exactly (PDF points, origin top-left here; signing.py converts).
GRID_TOP_PT, GRID_ROW_PT, FIELD_H_PT, GRID_X0_PT, GRID_COL_PT, FIELD_W_PT = 190, 110, 64, 30, 275, 250
MM = 25.4 / 72


def field_box_pt(party: int, role: int) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of a signature field in points from the page's top-left corner."""
    x0 = GRID_X0_PT + role * GRID_COL_PT
    top = GRID_TOP_PT + party * GRID_ROW_PT
    return x0, top, x0 + FIELD_W_PT, top + FIELD_H_PT


STATUS_VI = {"open": "Chưa quyết định", "accepted": "Chấp nhận", "corrected": "Đã hiệu chỉnh", "redo": "Làm lại",
             "superseded": "Đã thay thế (vòng trước)"}
SEVERITY_VI = {"critical": "Nghiêm trọng", "major": "Lớn", "minor": "Nhỏ"}


class _Pdf(FPDF):
    step_label = "Bước 7"

    def header(self) -> None:
        self.set_font("DejaVu", "", 8)
        self.cell(0, 5, _n(f"Phụ lục IV — Quyết định 865/QĐ-TCHQ — {self.step_label}"), align="R",
                  new_x="LMARGIN", new_y="NEXT")

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("DejaVu", "", 8)
        self.cell(0, 5, _n(f"Trang {self.page_no()}/{{nb}}"), align="C")


def render_minutes(d: MinutesData, path: Path) -> Path:
    pdf = _Pdf(format="A4")
    pdf.add_font("DejaVu", "", str(FONT_DIR / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
    pdf.set_title(_n(f"Biên bản xác nhận số liệu sau chuyển đổi — {d.branch_code}"))
    pdf.set_author("ecustoms-migration")
    pdf.set_keywords(f"evidence-sha256:{d.evidence_sha256} snapshot-sha256:{d.snapshot_sha256} run:{d.run_id}")
    pdf.alias_nb_pages()
    pdf.add_page()
    w = pdf.epw

    def line(text: str, size: int = 10, bold: bool = False, align: str = "L", h: float = 6) -> None:
        pdf.set_font("DejaVu", "B" if bold else "", size)
        pdf.multi_cell(w, h, _n(text), align=align, new_x="LMARGIN", new_y="NEXT")

    def table(headers: list[str], rows: list[tuple[Any, ...]], widths: list[float]) -> None:
        pdf.set_font("DejaVu", "B", 8)
        for h, cw in zip(headers, widths, strict=True):
            pdf.cell(cw, 6, _n(h), border=1, align="C")
        pdf.ln()
        pdf.set_font("DejaVu", "", 8)
        for r in rows:
            for v, cw in zip(r, widths, strict=True):
                pdf.cell(cw, 5.5, _n(str(v)), border=1, align="R" if isinstance(v, int) else "L")
            pdf.ln()
        pdf.ln(2)

    line("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", 11, True, "C")
    line("Độc lập - Tự do - Hạnh phúc", 10, True, "C")
    pdf.ln(3)
    line("BIÊN BẢN XÁC NHẬN SỐ LIỆU SAU CHUYỂN ĐỔI", 14, True, "C")
    if d.rehearsal:
        line("(CHẠY THỬ — không có giá trị đưa vào vận hành chính thức)", 10, True, "C")
    pdf.ln(2)
    line(f"Đơn vị: {d.branch_name} ({d.branch_code}) — {d.department_name}")
    line("Mã đơn vị hải quan (cũ → mới): " + ", ".join(f"{a} → {b}" for a, b in d.offices))
    line(f"Mã lần chạy: {d.run_id}    Thời điểm lập: {d.created_at}")
    line(f"Mã băm dữ liệu đã chuyển đổi (SHA-256): {d.snapshot_sha256}", 8)
    line(f"Mã băm bộ hồ sơ chứng cứ (SHA-256): {d.evidence_sha256}", 8)
    if d.reissue:
        line(f"Lập lại lần {d.reissue['number']} ({d.reissue['at']}), cùng số liệu, thay bản có mã băm "
             f"{d.reissue['replaces_sha256']} — người lập lại: {d.reissue['by']}; lý do: {d.reissue['reason']}", 8, True)
    pdf.ln(2)
    line("1. Số liệu trước và sau chuyển đổi theo nhóm", 11, True)
    table(["Nhóm", "Bản ghi nguồn", "Đã chuyển đổi", "Loại theo quy tắc", "Cách ly"],
          list(d.categories), [50, 32, 32, 38, 28])
    line("2. Số bản ghi trong CSDL tập trung theo bảng", 11, True)
    table(["Bảng đích", "Số bản ghi"], list(d.central_rows), [90, 40])
    if d.balances:
        line("Đối chiếu cân đối nghiệp vụ (tính lại độc lập ở hai phía)", 10, True)
        table(["Kiểm tra", "Số cặp đối chiếu", "Sai lệch"], list(d.balances), [100, 40, 30])
    line("3. Kiểm tra chọn mẫu ngẫu nhiên", 11, True)
    line(f"Phương án: chấp nhận khi không có sai lệch; độ tin cậy {d.confidence:.0%}, tỷ lệ sai lệch tối đa "
         f"{d.max_defect_rate:.0%}; hạt giống ngẫu nhiên {d.sampling_seed}.", 9)
    table(["Bảng", "Tổng thể", "Cỡ mẫu", "Sai lệch"],
          [(s["table"], s["population"], s["sample"], s["mismatches"]) for s in d.sampling], [70, 35, 35, 30])
    line("4. Các phát hiện và quyết định xử lý", 11, True)
    current = [f for f in d.findings if f.get("status") != "superseded"]
    superseded = [f for f in d.findings if f.get("status") == "superseded"]
    if current:
        pdf.set_font("DejaVu", "", 7.5)
        with pdf.table(col_widths=(8, 30, 15, 28, 12, 50, 37), text_align="LEFT", line_height=3.6,
                       padding=0.8, first_row_as_headings=True) as t:
            t.row([_n(h) for h in ("Số", "Mã kiểm tra", "Mức độ", "Bảng", "Số khóa", "Nội dung",
                                   "Quyết định (người quyết định: lý do)")])
            for f in current:
                decided = STATUS_VI.get(str(f["status"]), str(f["status"]))
                if f.get("decided_by"):
                    decided += f" — {f['decided_by']}: {f.get('reason') or ''}"
                t.row([str(f.get("finding_id") or ""), _n(str(f["check_id"])),
                       _n(SEVERITY_VI.get(str(f["severity"]), str(f["severity"]))), _n(str(f.get("table_name") or "")),
                       f"{int(f['n_keys']):,}".replace(",", "."), _n(str(f.get("message") or "")), _n(decided)])
        pdf.ln(2)
    else:
        line("Không có phát hiện ở vòng chuyển đổi cuối cùng.", 9)
    if superseded:
        line(f"Các phát hiện số {', '.join(str(f['finding_id']) for f in superseded)} thuộc vòng chuyển đổi trước, "
             "đã được thay thế bởi vòng sau khi hiệu chỉnh (không tính vào số liệu trên; lưu trong bộ chứng cứ).", 8)
    pdf.add_page()
    line("5. Xác nhận của các bên", 11, True)
    line("Biên bản có giá trị khi mang đủ sáu chữ ký số PAdES hợp lệ của sáu cán bộ dưới đây, mỗi người ký vào ô "
         "của mình; mỗi chữ ký kèm dấu thời gian (RFC 3161) và dữ liệu thu hồi chứng thư để kiểm tra được lâu dài, "
         "kể cả sau khi chứng thư hết hạn. Các mã băm nêu trên cũng được gắn trong tệp ecm-binding.json của biên bản "
         "trước chữ ký đầu tiên, nên mọi chữ ký đều bao trùm. Hình hiển thị trong ô chỉ để đọc; giá trị là chữ ký số, "
         "kiểm tra ngoại tuyến bằng `ecm verify` hoặc `pdfsig`. Chỉ khi đủ sáu chữ ký hợp lệ, dữ liệu mới được nạp "
         "vào CSDL tập trung chính thức.", 9)
    for i, (_pk, pname) in enumerate(PARTIES):
        for j, (_rk, rname) in enumerate(ROLES):
            left, top, right, bottom = field_box_pt(i, j)
            pdf.set_xy(left * MM, top * MM - 6)
            pdf.set_font("DejaVu", "B", 9)
            pdf.cell((right - left) * MM, 6, _n(f"{rname} — {pname}"), border="LTR")
            pdf.rect(left * MM, top * MM, (right - left) * MM, (bottom - top) * MM)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def render_backup_report(report: dict[str, Any], path: Path) -> Path:
    """Báo cáo sao lưu dữ liệu (Phụ lục IV 2.2), signed by the branch's technical staff before handover."""
    pdf = _Pdf(format="A4")
    pdf.step_label = "Bước 2"
    pdf.add_font("DejaVu", "", str(FONT_DIR / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
    pdf.set_title(_n(f"Báo cáo sao lưu dữ liệu — {report['branch']}"))
    pdf.alias_nb_pages()
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 14)
    pdf.multi_cell(pdf.epw, 8, _n("BÁO CÁO SAO LƯU VÀ THỐNG KÊ DỮ LIỆU"), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 10)
    for line in (f"Chi cục: {report['branch']}    Mã lần chạy: {report['run_id']}",
                 "CSDL đã chuyển sang chế độ chỉ đọc (READ ONLY): " +
                 "; ".join(f"{db}: {p['method']}" for db, p in report["frozen"].items())):
        pdf.multi_cell(pdf.epw, 6, _n(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("DejaVu", "B", 9)
    pdf.cell(110, 6, _n("Bảng"), border=1)
    pdf.cell(40, 6, _n("Số bản ghi"), border=1, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 8)
    for t, n in sorted(report["counts_by_table"].items()):
        pdf.cell(110, 5, _n(t), border=1)
        pdf.cell(40, 5, str(n), border=1, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("DejaVu", "B", 9)
    pdf.cell(0, 6, _n("Cán bộ kỹ thuật Chi cục ký xác nhận (ô chữ ký số bên dưới)"), new_x="LMARGIN", new_y="NEXT")
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path
