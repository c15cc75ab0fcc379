"""Finding classification: category and severity by rule (the discrepancy register's vocabulary)."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

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


def finding_identity(check_id: str, table: str | None, keys: list[Any]) -> str:
    """What makes two findings the same finding across correction rounds: the check, the table and the set of
    keys (order and repetition do not matter). A decision to accept carries over to a finding of the next round
    with the same identity; a finding whose keys changed (a correction fixed some rows) is decided again."""
    canon = sorted({json.dumps(k, sort_keys=True, ensure_ascii=False, default=str) for k in keys})
    blob = json.dumps([check_id, table or "", canon], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
