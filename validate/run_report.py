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
from transform.errors import MigrationError
from transform.rules import RULES
from validate import vocabulary as vn
from validate.report import FAIL_VALUES, Sheet, nfc, write_xlsx

FATE_VI = {"converted": "Đã chuyển đổi", "excluded": "Loại theo quy tắc", "quarantined": "Cách ly"}
QUARANTINE_SHEET_LIMIT = 50_000  # rows of the quarantine sheet; all of them stay in staging and in the evidence


def _failing_first(rows: list[Any], status: Any) -> list[Any]:
    """Rows whose check failed (or finding waits) first, the rest in their order."""
    return sorted(rows, key=lambda r: str(status(r)) not in ("fail", "open"))


def build_sheets(store: ControlStore, run_id: str, reports_dir: Path | None = None,
                 staging_path: Path | None = None) -> dict[str, Sheet]:
    run = store.run(run_id) or {}
    steps = store.steps(run_id)
    findings = store.findings(run_id)
    checks = store.checks(run_id)
    acct = store.accounting(run_id)
    s6 = next((s.detail for s in steps if s.step == "pl4_06_validate"), {})
    by_sev: dict[tuple[str, str], int] = {}
    for f in findings:
        by_sev[(f["severity"], f["status"])] = by_sev.get((f["severity"], f["status"]), 0) + 1
    findings = sorted(findings, key=lambda f: (f["status"] == "superseded", f["status"] != "open",
                                               vn.SEVERITY_ORDER.get(f["severity"], 9), f["finding_id"]))
    balance = [c for c in checks if c["check_id"] in ("stock_balance", "count_before_after", "central_fingerprint",
                                                      "handover_table_rows", "handover_closing_stock")]
    sheets: dict[str, Sheet] = {
        "Tổng hợp": (["Mục", "Giá trị"], [
            ("Mã lần chạy", run_id), ("Chi cục", run.get("branch")),
            ("Trạng thái", vn.RUN_STATUSES.get(run.get("status") or "", run.get("status"))),
            ("Chạy thử", "Có" if run.get("rehearsal") else "Không"),
            *[(vn.step_label(s.step), f"{vn.STEP_STATUSES.get(s.status, s.status)} — "
               f"{s.rows_in if s.rows_in is not None else '—'} → {s.rows_out if s.rows_out is not None else '—'} "
               f"dòng, {s.seconds or 0:.2f} giây") for s in steps],
            *[(f"Phát hiện {vn.SEVERITIES.get(sev, sev)} — {vn.FINDING_STATUSES.get(st, st)}", n)
              for (sev, st), n in sorted(by_sev.items(), key=lambda x: (vn.SEVERITY_ORDER.get(x[0][0], 9), x[0][1]))]]),
        "Phát hiện": (["Số", "Trạng thái", "Mức độ", "Nội dung kiểm tra", "Bảng", "Số dòng", "Nhóm", "Bước",
                       "Mô tả (kỹ thuật)", "Đơn vị xử lý", "Quyết định", "Lý do", "Người quyết định", "Thời điểm",
                       "Mã kiểm tra", "Khóa (tối đa 50)"],
                      [(f["finding_id"], vn.FINDING_STATUSES.get(f["status"], f["status"]),
                        vn.SEVERITIES.get(f["severity"], f["severity"]), vn.check_text(f["check_id"]).label,
                        f["table_name"], f["n_keys"], vn.CATEGORIES.get(f["category"], f["category"]),
                        vn.step_label(f["step"]), f["message"], f["owner"],
                        vn.DECISIONS.get(f["decision"] or "", f["decision"]), f["reason"], f["decided_by"],
                        f["decided_at"], f["check_id"],
                        json.dumps(json.loads(f["keys_json"] or "[]")[:50], ensure_ascii=False, default=str))
                       for f in findings]),
        "Trước-Sau theo bảng": (["Bảng nguồn", "Kết quả", "Quy tắc / lý do", "Diễn giải", "Số dòng"],
                                [(a["source_table"], FATE_VI.get(a["fate"]), a["code"],
                                  RULES[a["code"]][0] if a["code"] in RULES else "", a["rows"]) for a in acct]),
        "Trước-Sau theo loại hình": (["CSDL", "Mã loại hình", "Trước (đủ điều kiện)", "Sau (đã chuyển)", "Cách ly",
                                      "Kết quả"],
                                     [(*r[:5], vn.CHECK_STATUSES.get(r[5], r[5])) for r in
                                      _failing_first([tuple(r) for r in s6.get("before_after", [])], lambda r: r[5])]),
        "Trước-Sau theo đơn vị": (["Đơn vị hải quan", "Mã loại hình", "Trước (đủ điều kiện)", "Sau (đã chuyển)",
                                   "Cách ly", "Chênh lệch"],
                                  sorted([(*r[:5], r[2] - r[3] - r[4]) for r in s6.get("before_after_by_office", [])],
                                         key=lambda r: (r[5] == 0, str(r[0]), str(r[1])))),
        "Cân đối": (["Kết quả", "Kiểm tra", "Bảng", "Khóa", "Trường", "Nguồn / kỳ vọng", "Đích / thực tế"],
                    [(vn.CHECK_STATUSES.get(c["status"], c["status"]), vn.check_text(c["check_id"]).label,
                      c["table_name"], c["key"], c["field"], c["expected"], c["actual"])
                     for c in _failing_first(balance, lambda c: c["status"])]),
        "Chọn mẫu": (["Bảng", "Tầng", "Tổng thể", "Cỡ mẫu"],
                     [(p["table"], p["stratum"], p["population"], p["sample"]) for p in s6.get("sampling_strata", [])]),
        "Sai lệch mẫu": (["Bảng", "Khóa nguồn", "Trường", "Nguồn", "Sau chuyển đổi"],
                         [(c["table_name"], c["key"], c["field"], c["expected"], c["actual"]) for c in checks
                          if c["check_id"] == "sample_field" and c["status"] == "fail"]),
        "Hiệu chỉnh": (["Bảng", "Khóa", "Cột", "Giá trị cũ", "Giá trị mới", "Người thực hiện", "Thời điểm", "Tệp"],
                       [(c["table_name"], c["key"], c["column_name"], c["old_value"], c["new_value"], c["applied_by"],
                         c["applied_at"], c["source_file"]) for c in store.corrections(run_id)]),
    }
    if staging_path is not None:
        sheets["Dòng cách ly"] = (["Bảng nguồn", "Lý do", "Diễn giải", "Chi tiết", "Khóa nguồn", "Giá trị nguồn"],
                                  _quarantined(staging_path))
    fixes = (reports_dir / "buoc5_text_fixes.json") if reports_dir else None
    if fixes is not None and fixes.exists():
        sheets["Sửa mã TCVN3"] = (["Bảng", "Cột", "Trước (TCVN3)", "Sau (Unicode)"],
                                  [(x["table"], x["column"], x["before"], x["after"])
                                   for x in json.loads(fixes.read_text(encoding="utf-8"))])
    return sheets


def _quarantined(staging_path: Path) -> list[tuple[Any, ...]]:
    """The rows step 5 (and step 4, Q-BAD-VALUE) set aside, with every source value (first 50,000)."""
    from extract import staging
    if not staging_path.exists():
        return []
    try:
        con = staging.connect(staging_path, read_only=True, lock_wait_seconds=5)
    except MigrationError:
        return [("(dữ liệu trung gian đang được sử dụng)", "", "", "", "", "")]
    try:
        have = {tuple(r) for r in con.execute("SELECT table_schema, table_name FROM information_schema.tables"
                                              ).fetchall()}
        if ("quarantine", "rows") not in have:
            return []
        rows = con.execute("SELECT source_table, reason, detail, source_key, source_values FROM quarantine.rows "
                           f"ORDER BY source_table, reason, source_key LIMIT {QUARANTINE_SHEET_LIMIT}").fetchall()
    finally:
        con.close()
    out = []
    for table, reason, detail, key, values in rows:
        try:
            shown = "; ".join(f"{k}: {v}" for k, v in json.loads(values or "{}").items())
        except ValueError:
            shown = values
        out.append((table, reason, RULES[reason][0] if reason in RULES else "", detail, key, shown))
    return out


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], limit: int = 500) -> str:
    head = "".join(f"<th>{html.escape(str(nfc(h)))}</th>" for h in headers)
    def tr(r: Sequence[Any]) -> str:
        bad = any(isinstance(v, str) and v.strip().lower() in FAIL_VALUES for v in r)
        return ("<tr class='bad'>" if bad else "<tr>") + "".join(
            f"<td>{html.escape('' if v is None else str(nfc(v)))}</td>" for v in r) + "</tr>"
    body = "".join(tr(r) for r in list(rows)[:limit])
    more = f"<p class='more'>… còn {len(rows) - limit} dòng trong tệp XLSX</p>" if len(rows) > limit else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


CSS = """body{font-family:'DejaVu Sans',Arial,sans-serif;margin:24px;color:#222}h1{font-size:20px}
h2{font-size:16px;margin-top:28px;border-bottom:1px solid #ccc}table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #bbb;padding:3px 6px;vertical-align:top;max-width:420px;overflow-wrap:anywhere}
th{background:#eef}.more{color:#666}tr.bad td{background:#fde2e0}main{max-width:1200px}"""


def write_run_report(store: ControlStore, run_id: str, out_dir: Path, staging_path: Path | None = None
                     ) -> tuple[Path, Path]:
    """The report as it stands now (rewritten at each gate and at the end: every section whose step has run)."""
    sheets = build_sheets(store, run_id, out_dir, staging_path)
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
