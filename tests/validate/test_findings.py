"""The typed finding and its register: every check a step raises is classified in one place."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from validate.findings import Finding, classify

STEPS = Path(__file__).resolve().parents[2] / "pipelines" / "steps"


def _raised_in_code() -> list[tuple[str, str]]:
    """(step constant or name, check id literal) of every Finding.raised(...) with a literal check id."""
    out = []
    for p in sorted(STEPS.glob("*.py")):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        step = next((n.value.value for n in ast.walk(tree) if isinstance(n, ast.Assign) and
                     any(isinstance(t, ast.Name) and t.id == "STEP" for t in n.targets)
                     and isinstance(n.value, ast.Constant)), None)
        for n in ast.walk(tree):
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "raised":
                cid = n.args[1]
                if isinstance(cid, ast.Constant):
                    out.append((step or p.stem, cid.value))
    return out


def test_every_check_the_steps_raise_is_in_the_register() -> None:
    raised = _raised_in_code()
    assert len(raised) >= 8
    for step, cid in raised:
        if step.startswith("pl4_"):
            category, severity = classify(step, cid)
        else:  # users.py: raised at steps 6 and 8
            category, severity = classify("pl4_06_validate", cid)
        assert category in ("source_data_error", "mapping_gap", "conversion_error", "load_error")
        assert severity in ("critical", "major", "minor")


def test_the_register_keeps_the_severities_the_minutes_rely_on() -> None:
    assert classify("pl4_01_review", "null_key") == ("source_data_error", "critical")
    assert classify("pl4_04_restore", "gx:expect_column_values_to_not_be_null") == ("source_data_error", "minor")
    assert classify("pl4_04_restore", "schema_missing_column") == ("source_data_error", "critical")
    assert classify("pl4_05_convert", "quarantine") == ("source_data_error", "major")
    assert classify("pl4_06_validate", "stock_balance") == ("conversion_error", "critical")
    assert classify("pl4_03_handover", "package_rows") == ("source_data_error", "critical")
    assert classify("pl4_08_load", "central_mismatch") == ("load_error", "critical")
    with pytest.raises(KeyError, match="no_such_check"):
        classify("pl4_05_convert", "no_such_check")


def test_identity_is_check_table_and_the_set_of_keys() -> None:
    a = Finding.raised("pl4_05_convert", "quarantine", "SXXK.SNPL", [{"K": 1}, {"K": 2}], "m")
    b = Finding.raised("pl4_05_convert", "quarantine", "SXXK.SNPL", [{"K": 2}, {"K": 1}, {"K": 1}], "other text")
    c = Finding.raised("pl4_05_convert", "quarantine", "SXXK.DNPLNHAP", [{"K": 1}, {"K": 2}], "m")
    assert a.identity == b.identity != c.identity
    assert (a.n_keys, a.owner) == (2, "Chi cục (nghiệp vụ)")
    assert Finding.raised("pl4_05_convert", "unmapped_unit", None, ["X"], "m").owner == "Tổng cục (nghiệp vụ)"
    big = Finding.raised("pl4_05_convert", "quarantine", "T", list(range(10_001)), "m")
    assert big.identity is None  # not every key is stored: no acceptance carries over
