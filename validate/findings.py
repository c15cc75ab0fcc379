"""Finding classification: category and severity by rule (the discrepancy register's vocabulary)."""

from __future__ import annotations

from typing import Literal

Category = Literal["source_data_error", "mapping_gap", "conversion_error", "load_error"]
Severity = Literal["critical", "major", "minor"]

_REVIEW: dict[str, tuple[Category, Severity]] = {
    "missing_table": ("source_data_error", "critical"),
    "decl_without_goods": ("source_data_error", "major"),
    "sohang_mismatch": ("source_data_error", "minor"),
    "orphan_catalog": ("source_data_error", "major"),
    "duplicate_key": ("source_data_error", "critical"),
    "null_key": ("source_data_error", "critical"),
    "impossible_date": ("source_data_error", "major"),
    "negative_qty": ("source_data_error", "major"),
    "ton_gt_luong": ("source_data_error", "major"),
    "tcvn3_text": ("source_data_error", "minor"),
    "long_text": ("source_data_error", "minor"),
    "quarantine": ("source_data_error", "major"),
    "unmapped_office": ("mapping_gap", "major"),
    "unmapped_unit": ("mapping_gap", "minor"),
    "count_mismatch": ("conversion_error", "critical"),
    "sample_mismatch": ("conversion_error", "critical"),
    "conservation": ("conversion_error", "critical"),
    "central_mismatch": ("load_error", "critical"),
}


def classify_review_hit(check_id: str) -> tuple[Category, Severity]:
    return _REVIEW.get(check_id, ("source_data_error", "major"))
