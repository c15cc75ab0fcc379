"""The findings table of the minutes counts the final correction round only; earlier rounds are listed apart."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from load.control_store import ControlStore
from sign_off.minutes import MinutesData, render_minutes
from validate.findings import Finding


def _store(tmp: Path) -> ControlStore:
    store = ControlStore(f"sqlite:///{tmp / 'control.sqlite'}")
    store.start_run("r1", "C47D", False, {})
    return store


def test_a_correction_round_supersedes_the_findings_of_steps_5_and_6_only(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.add_finding("r1", Finding("pl4_01_review", "negative_stock", "DNPLNHAP", [1], "a", "source_data_error", "major"))
    store.add_finding("r1", Finding("pl4_05_convert", "quarantine", "DHANG_MD", [1, 2], "b", "conversion", "major"))
    store.add_finding("r1", Finding("pl4_06_validate", "stock_balance", "DNPLNHAP", [3], "c", "reconciliation", "critical"))
    f5 = [f for f in store.findings("r1") if f["step"] == "pl4_05_convert"][0]
    store.decide("r1", f5["finding_id"], "corrected", "correct", "sửa số lượng tồn", "Trần Thị Lan")
    assert store.supersede_findings("r1", ("pl4_05_convert", "pl4_06_validate")) == 2
    by_step = {f["step"]: f for f in store.findings("r1")}
    assert by_step["pl4_01_review"]["status"] == "open"
    assert by_step["pl4_05_convert"]["status"] == "superseded"
    assert by_step["pl4_05_convert"]["decision"] == "correct"  # what was decided stays on record
    assert by_step["pl4_05_convert"]["decided_by"] == "Trần Thị Lan"
    assert store.supersede_findings("r1", ("pl4_05_convert", "pl4_06_validate")) == 0


def test_the_minutes_count_only_the_final_round(tmp_path: Path) -> None:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    findings = [
        {"finding_id": 7, "check_id": "quarantine", "severity": "major", "table_name": "DHANG_MD", "n_keys": 22,
         "status": "superseded", "message": "vòng trước", "decided_by": "X", "reason": "sửa"},
        {"finding_id": 9, "check_id": "unknown_role", "severity": "minor", "table_name": "users", "n_keys": 3,
         "status": "accepted", "message": "3 legacy roles have no central role; those grants will not be made "
                                           "and the branch must ask for them", "decided_by": "Nguyễn Văn An",
         "reason": "Đã đối chiếu với hồ sơ giấy của Chi cục và xác nhận không cần quyền này"},
    ]
    d = MinutesData("C47D", "Chi cục Hải quan Biên Hòa", "Cục Hải quan Đồng Nai", [("C47D", "47D1")], "r1",
                    "2026-11-24", False, "a" * 64, "b" * 64, [("Tờ khai", 10, 8, 2, 0)], [("DTO_KHAI_MD", 8)],
                    [], 865, 0.95, 0.01, findings=findings)
    pdf = render_minutes(d, tmp_path / "m.pdf")
    text = " ".join(subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                                   text=True).stdout.split())
    assert "Các phát hiện số 7 thuộc vòng chuyển đổi trước" in text
    assert "vòng trước" not in text.replace("vòng chuyển đổi trước", "")  # the superseded row is not in the table
    for words in ("Chấp nhận", "Nguyễn", "them", "quyền này"):  # full text, Vietnamese
        assert words in text, words
    assert "chưa ký" not in text.lower() and "unsigned" not in text.lower()
