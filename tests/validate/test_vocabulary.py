"""Every check id the steps can raise has a Vietnamese label, a what and a why (business staff read them)."""

from __future__ import annotations

import re
from pathlib import Path

from validate import findings
from validate import vocabulary as vn

ROOT = Path(__file__).resolve().parents[2]
PATTERNS = [r'"check_id": "([a-z_0-9]+)"', r'add_finding\([^,]+, [^,]+, "([a-z_0-9]+)"', r'CheckHit\("([a-z_0-9]+)"',
            r'_hit\("([a-z_0-9]+)"', r'check\("([a-z_0-9]+)"', r'"(schema_[a-z_]+_(?:table|column))"',
            r'Finding\.raised\(\s*[^,]+, "([a-z_0-9]+)"']


def _check_ids_in_code() -> set[str]:
    found: set[str] = set()
    for d in ("extract", "transform", "validate", "pipelines", "load", "sign_off"):
        for p in (ROOT / d).rglob("*.py"):
            text = p.read_text(encoding="utf-8")
            for pat in PATTERNS:
                found |= set(re.findall(pat, text))
    return found | set(findings._REVIEW) | set(findings._BY_CHECK)  # the register classifies them all


def test_every_check_in_the_code_has_vietnamese_text() -> None:
    ids = _check_ids_in_code()
    assert {"duplicate_key", "stock_balance", "handover_closing_stock", "schema_missing_table", "quarantine"} <= ids
    missing = sorted(i for i in ids if i not in vn.CHECKS)
    assert not missing, f"add these to validate/vocabulary.py CHECKS: {missing}"
    for cid, t in vn.CHECKS.items():
        assert t.label and t.what and t.why, cid


def test_gx_expectations_and_steps_read_in_vietnamese() -> None:
    assert vn.check_text("gx:expect_column_values_to_not_be_null").label == \
        "Kiểm tra tự động: giá trị không được trống"
    assert vn.step_label("gate_after_pl4_06_validate").startswith("Quyết định sau bước 6")
    assert all(vn.step_label(s).startswith(f"Bước {i}") for i, s in enumerate(vn.STEPS, start=1))
