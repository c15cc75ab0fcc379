"""The business-staff report of a run, built from the control store: one XLSX (a sheet per category) and a
self-contained HTML page of the same (inline CSS, no external links), in Vietnamese."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from load.control_store import ControlStore
from transform.rules import RULES
from validate.report import Sheet, nfc, write_xlsx

FATE_VI = {"converted": "Đã chuyển đổi", "excluded": "Loại theo quy tắc", "quarantined": "Cách ly"}
STATUS_VI = {"open": "Chưa xử lý", "accepted": "Chấp nhận", "corrected": "Đã hiệu chỉnh", "redo": "Làm lại từ bước 1"}
SEVERITY_VI = {"critical": "Nghiêm trọng", "major": "Lớn", "minor": "Nhỏ"}


def build_sheets(store: ControlStore, run_id: str) -> dict[str, Sheet]:
    run = store.run(run_id) or {}
    steps = store.steps(run_id)
    findings = store.findings(run_id)
    checks = store.checks(run_id)
    acct = store.accounting(run_id)
    s6 = next((s.detail for s in steps if s.step == "pl4_06_validate"), {})
    by_sev: dict[tuple[str, str], int] = {}
    for f in findings:
        by_sev[(f["severity"], f["status"])] = by_sev.get((f["severity"], f["status"]), 0) + 1
    return {
        "Tổng hợp": (["Mục", "Giá trị"], [
            ("Mã lần chạy", run_id), ("Chi cục", run.get("branch")), ("Trạng thái", run.get("status")),
            ("Chạy thử", "Có" if run.get("rehearsal") else "Không"),
            *[(f"Bước {s.step}", f"{s.status} — {s.rows_in if s.rows_in is not None else '—'} → "
               f"{s.rows_out if s.rows_out is not None else '—'} dòng, {s.seconds or 0:.2f} s") for s in steps],
            *[(f"Phát hiện {SEVERITY_VI.get(sev, sev)} / {STATUS_VI.get(st, st)}", n) for (sev, st), n in
              sorted(by_sev.items())]]),
        "Phát hiện": (["Số", "Bước", "Mã kiểm tra", "Nhóm", "Mức độ", "Bảng", "Số khóa", "Mô tả", "Đơn vị xử lý",
                       "Trạng thái", "Quyết định", "Lý do", "Người quyết định", "Thời điểm", "Khóa (tối đa 50)"],
                      [(f["finding_id"], f["step"], f["check_id"], f["category"], SEVERITY_VI.get(f["severity"]),
                        f["table_name"], f["n_keys"], f["message"], f["owner"], STATUS_VI.get(f["status"]),
                        f["decision"], f["reason"], f["decided_by"], f["decided_at"],
                        json.dumps(json.loads(f["keys_json"] or "[]")[:50], ensure_ascii=False, default=str))
                       for f in findings]),
        "Trước-Sau theo bảng": (["Bảng nguồn", "Kết quả", "Quy tắc / lý do", "Diễn giải", "Số dòng"],
                                [(a["source_table"], FATE_VI.get(a["fate"]), a["code"],
                                  RULES[a["code"]][0] if a["code"] in RULES else "", a["rows"]) for a in acct]),
        "Trước-Sau theo loại hình": (["CSDL", "Mã loại hình", "Trước (đủ điều kiện)", "Sau (đã chuyển)", "Cách ly",
                                      "Kết quả"], [tuple(r) for r in s6.get("before_after", [])]),
        "Cân đối": (["Kiểm tra", "Bảng", "Khóa", "Trường", "Nguồn / kỳ vọng", "Đích / thực tế", "Kết quả"],
                    [(c["check_id"], c["table_name"], c["key"], c["field"], c["expected"], c["actual"], c["status"])
                     for c in checks if c["check_id"] in ("stock_balance", "count_before_after", "central_fingerprint",
                                                          "handover_table_rows", "handover_closing_stock")]),
        "Chọn mẫu": (["Bảng", "Tầng", "Tổng thể", "Cỡ mẫu"],
                     [(p["table"], p["stratum"], p["population"], p["sample"]) for p in s6.get("sampling_strata", [])]),
        "Sai lệch mẫu": (["Bảng", "Khóa nguồn", "Trường", "Nguồn", "Sau chuyển đổi"],
                         [(c["table_name"], c["key"], c["field"], c["expected"], c["actual"]) for c in checks
                          if c["check_id"] == "sample_field"]),
        "Hiệu chỉnh": (["Bảng", "Khóa", "Cột", "Giá trị cũ", "Giá trị mới", "Người thực hiện", "Thời điểm", "Tệp"],
                       [(c["table_name"], c["key"], c["column_name"], c["old_value"], c["new_value"], c["applied_by"],
                         c["applied_at"], c["source_file"]) for c in store.corrections(run_id)]),
    }


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], limit: int = 500) -> str:
    head = "".join(f"<th>{html.escape(str(nfc(h)))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if v is None else str(nfc(v)))}</td>" for v in r)
                   + "</tr>" for r in list(rows)[:limit])
    more = f"<p class='more'>… còn {len(rows) - limit} dòng trong tệp XLSX</p>" if len(rows) > limit else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


CSS = """body{font-family:'DejaVu Sans',Arial,sans-serif;margin:24px;color:#222}h1{font-size:20px}
h2{font-size:16px;margin-top:28px;border-bottom:1px solid #ccc}table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #bbb;padding:3px 6px;vertical-align:top}th{background:#eef}.more{color:#666}"""


def write_run_report(store: ControlStore, run_id: str, out_dir: Path) -> tuple[Path, Path]:
    sheets = build_sheets(store, run_id)
    xlsx = write_xlsx(out_dir / "bao_cao_doi_chieu.xlsx", sheets)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<h2>{html.escape(nfc(t))}</h2>{_html_table(h, r)}" for t, (h, r) in sheets.items()]
    page = (f"<!DOCTYPE html><html lang='vi'><head><meta charset='utf-8'><title>Báo cáo đối chiếu {html.escape(run_id)}"
            f"</title><style>{CSS}</style></head><body><h1>Báo cáo đối chiếu chuyển đổi dữ liệu — "
            f"{html.escape(run_id)}</h1><p>Lập lúc {when}. Tệp này không cần kết nối mạng.</p>{''.join(parts)}"
            f"</body></html>")
    out = out_dir / "bao_cao_doi_chieu.html"
    out.write_text(nfc(page), encoding="utf-8")
    return xlsx, out


def write_load_report_html(report: dict[str, Any], path: Path) -> Path:
    """Step 8's load report for auditors: self-contained HTML in Vietnamese (beside the minutes)."""
    load = report.get("load", {})
    signed = report.get("minutes_signed") or {}
    head = [("Chi cục", report.get("branch")), ("Lần chạy", report.get("run_id")),
            ("Thời điểm nạp (UTC)", report.get("loaded_at")),
            ("CSDL tập trung", f"{report.get('central')} — {report.get('central_url')}"),
            ("Mã băm bản chụp dữ liệu (snapshot_sha256)", report.get("snapshot_sha256")),
            ("Biên bản đã ký: phần được chữ ký cuối bảo vệ (minutes_signed)",
             f"{signed.get('bytes')} byte đầu, SHA-256 {signed.get('sha256')}" if signed else "không có (chạy thử)"),
            ("Mã băm tệp biên bản lúc nạp (minutes_sha256)", report.get("minutes_sha256")),
            ("Nạp", f"{load.get('rows')} dòng, {load.get('seconds')} giây ({load.get('rows_per_second')} dòng/giây, "
                    f"{load.get('method')})"),
            ("Người dùng được cấp quyền", report.get("users"))]
    parts = [
        "<h2>Thông tin chung</h2>" + _html_table(["Mục", "Giá trị"], head),
        "<h2>Đối chiếu từng dòng với bản chụp đã ký</h2><p>" + html.escape(nfc(report.get("proof", ""))) + "</p>"
        + _html_table(["Bảng", "Số dòng", "Mã đối chiếu", "Số dòng khác biệt"],
                      [(r["table"], r["rows"], r["digest"], r["differences"]) for r in report.get("reconciliation", [])]),
        "<h2>Ràng buộc của CSDL tập trung</h2>"
        + _html_table(["Kiểm tra", "Bảng", "Khóa / tham chiếu", "Kỳ vọng", "Kết quả", "Trạng thái"],
                      [(c["check_id"], c["table_name"], c["key"], c["expected"], c["actual"], c["status"])
                       for c in report.get("integrity", [])]),
        "<h2>Số dòng của Chi cục trong CSDL tập trung</h2>"
        + _html_table(["Bảng", "Số dòng"], sorted((report.get("rows") or {}).items())),
        "<h2>Việc còn lại tại Chi cục</h2><ul>"
        + "".join(f"<li>{html.escape(nfc(x))}</li>" for x in report.get("decommission", [])) + "</ul>",
    ]
    page = (f"<!DOCTYPE html><html lang='vi'><head><meta charset='utf-8'><title>Báo cáo nạp dữ liệu "
            f"{html.escape(str(report.get('branch')))}</title><style>{CSS}</style></head><body>"
            f"<h1>Báo cáo nạp dữ liệu vào CSDL tập trung — {html.escape(str(report.get('branch')))}</h1>"
            f"<p>Tệp này không cần kết nối mạng.</p>{''.join(parts)}</body></html>")
    path.write_text(nfc(page), encoding="utf-8")
    return path
