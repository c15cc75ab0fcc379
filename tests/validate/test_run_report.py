"""The business report as business staff open it: Vietnamese labels, failures first and coloured, numbers as
numbers, frozen headers with filters, and the quarantined rows (with their source values) and TCVN3 fixes."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import duckdb
from openpyxl import load_workbook

from load.control_store import ControlStore
from validate.findings import Finding
from validate.report import as_number
from validate.run_report import write_run_report

RID = "r1"


def test_numbers_become_numbers_but_codes_stay_text() -> None:
    assert as_number("150.000000") == 150.0 and as_number("12") == 12 and as_number(Decimal("1.50")) == 1.5
    for code in ("0312345678", "3673259153", "NPL01701", "0012", "1e5", "12345678901234567.5"):
        assert as_number(code) == code


def test_the_report_puts_failures_first_in_vietnamese_with_quarantine_and_tcvn3_sheets(tmp_path: Path) -> None:
    store = ControlStore(f"sqlite:///{tmp_path / 'c.sqlite'}")
    store.start_run(RID, "C47D", True, {})
    store.add_checks(RID, "pl4_06_validate", [
        {"check_id": "stock_balance", "table_name": "DSX_NPL_NHAP_TL", "key": f"310000000{i}|NPL0{i}",
         "field": "TON", "expected": "150.000000", "actual": "150.000000" if i != 7 else "90.000000",
         "status": "pass" if i != 7 else "fail"} for i in range(10)])
    store.add_finding(RID, Finding("pl4_01_review", "tcvn3_text", "SXXK.DHANGMDDK", ["k"], "m", "source_data_error", "minor"))
    store.add_finding(RID, Finding("pl4_06_validate", "stock_balance", None, ["a"], "m", "conversion_error", "critical"))
    staging = tmp_path / "staging.duckdb"
    con = duckdb.connect(str(staging))
    con.execute("CREATE SCHEMA quarantine; CREATE TABLE quarantine.rows (source_table VARCHAR, reason VARCHAR, "
                "detail VARCHAR, source_key VARCHAR, source_values VARCHAR)")
    con.execute("INSERT INTO quarantine.rows VALUES ('SXXK.SNPL', 'Q-DUPLICATE-KEY', 'MA_NPL=V', "
                "'SXXK.SNPL|MA_HQ=C47D|MA_NPL=V', ?)", [json.dumps({"MA_NPL": "V", "TEN_NPL": "Vải (trùng)"},
                                                                  ensure_ascii=False)])
    con.close()
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "buoc5_text_fixes.json").write_text(json.dumps(
        [{"table": "DHANG_MD", "column": "TEN_HANG", "before": "V¶i", "after": "Vải"}], ensure_ascii=False),
        encoding="utf-8")
    xlsx, page = write_run_report(store, RID, reports, staging)
    wb = load_workbook(xlsx)
    bal = wb["Cân đối"]
    assert bal.freeze_panes == "A2" and bal.auto_filter.ref == "A1:G11"
    first = [c.value for c in bal[2]]
    assert first[0] == "Không đạt" and first[1] == "Cân đối tồn" and first[6] == 90.0  # failure first, a number
    assert bal[2][0].fill.fgColor.rgb.endswith("FDE2E0") and not bal[3][0].fill.fgColor.rgb.endswith("FDE2E0")
    assert bal[3][5].number_format == "#,##0.###" and bal[3][5].value == 150  # a number, not "150.000000"
    found = wb["Phát hiện"]
    assert [c.value for c in found[1]][:4] == ["Số", "Trạng thái", "Mức độ", "Nội dung kiểm tra"]
    assert [c.value for c in found[2]][1:4] == ["Chờ quyết định", "Nghiêm trọng", "Cân đối tồn"]
    q = [[c.value for c in r] for r in wb["Dòng cách ly"].iter_rows(min_row=2)]
    assert q == [["SXXK.SNPL", "Q-DUPLICATE-KEY", "Trùng khóa (bản ghi sau bị cách ly)", "MA_NPL=V",
                  "SXXK.SNPL|MA_HQ=C47D|MA_NPL=V", "MA_NPL: V; TEN_NPL: Vải (trùng)"]]
    assert [c.value for c in wb["Sửa mã TCVN3"][2]] == ["DHANG_MD", "TEN_HANG", "V¶i", "Vải"]
    text = page.read_text(encoding="utf-8")
    assert "<tr class='bad'>" in text and "Decimal(" not in text and "Không đạt" in text
