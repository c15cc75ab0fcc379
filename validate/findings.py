"""Findings: the typed model every step raises, and their classification — category and severity by check, one
register for the whole product (the discrepancy register's vocabulary; `validate/vocabulary.py` says it in
Vietnamese)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
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
}

# the other steps' checks (exact ids first, then each step's default)
_BY_CHECK: dict[str, tuple[Category, Severity]] = {
    "non_utf8_text": ("source_data_error", "major"),  # step 2
    "schema_absent_optional_table": ("source_data_error", "minor"),  # step 4: the restored schema against V4
    "schema_missing_table": ("source_data_error", "critical"),
    "schema_missing_column": ("source_data_error", "critical"),
    "schema_extra_column": ("source_data_error", "minor"),
    "schema_extra_table": ("source_data_error", "minor"),
    "schema_retyped_column": ("source_data_error", "minor"),
    "bad_value": ("source_data_error", "major"),
    "quarantine": ("source_data_error", "major"),  # step 5
    "unmapped_office": ("mapping_gap", "minor"),
    "unmapped_unit": ("mapping_gap", "minor"),
    "truncated": ("mapping_gap", "minor"),
    "unknown_role": ("mapping_gap", "minor"),  # steps 6 and 8: a legacy role without a central one
    "central_mismatch": ("load_error", "critical"),  # step 8
}
_STEP_DEFAULT: dict[str, tuple[Category, Severity]] = {
    "pl4_03_handover": ("source_data_error", "critical"),  # the package differs from the reports handed over
    "pl4_06_validate": ("conversion_error", "critical"),  # a failing reconciliation
}
_GX: tuple[Category, Severity] = ("source_data_error", "minor")  # a GX expectation on the restored data (step 4)
OWNERS: dict[str, str] = {"source_data_error": "Chi cục (nghiệp vụ)", "mapping_gap": "Tổng cục (nghiệp vụ)"}
MAX_STORED_KEYS = 10_000


def classify_review_hit(check_id: str) -> tuple[Category, Severity]:
    return _REVIEW.get(check_id, ("source_data_error", "major"))


def classify(step: str, check_id: str) -> tuple[Category, Severity]:
    """Category and severity of a finding raised by ``step`` for ``check_id``."""
    if step == "pl4_01_review":
        return classify_review_hit(check_id)
    if check_id.startswith("gx:"):
        return _GX
    if check_id in _BY_CHECK:
        return _BY_CHECK[check_id]
    if step in _STEP_DEFAULT:
        return _STEP_DEFAULT[step]
    raise KeyError(f"check {check_id!r} of step {step} has no category/severity in validate/findings.py")


@dataclass(frozen=True)
class Finding:
    """A discrepancy a step raises: which check, on which table, which rows (keys), in the register's terms.

    Build it with :meth:`raised` (classified by the register); the control store records it and gives it its
    number. Its :attr:`identity` (check, table, set of keys) is what a correction round compares."""

    step: str
    check_id: str
    table: str | None
    keys: Sequence[Any]
    message: str
    category: str
    severity: str
    n_keys: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", list(self.keys))
        object.__setattr__(self, "n_keys", len(self.keys))

    @classmethod
    def raised(cls, step: str, check_id: str, table: str | None, keys: Sequence[Any], message: str) -> Finding:
        category, severity = classify(step, check_id)
        return cls(step, check_id, table, keys, message, category, severity)

    @property
    def owner(self) -> str:
        """Who must act on it (the minutes' column): the branch for its data, HQ business for a mapping gap,
        HQ technical staff for the rest."""
        return OWNERS.get(self.category, "Tổng cục (kỹ thuật)")

    @property
    def identity(self) -> str | None:
        """None when not every key is stored (then no acceptance carries over: nobody saw the rest)."""
        return finding_identity(self.check_id, self.table, list(self.keys)) if self.n_keys <= MAX_STORED_KEYS \
            else None


def finding_identity(check_id: str, table: str | None, keys: list[Any]) -> str:
    """What makes two findings the same finding across correction rounds: the check, the table and the set of
    keys (order and repetition do not matter). A decision to accept carries over to a finding of the next round
    with the same identity; a finding whose keys changed (a correction fixed some rows) is decided again."""
    canon = sorted({json.dumps(k, sort_keys=True, ensure_ascii=False, default=str) for k in keys})
    blob = json.dumps([check_id, table or "", canon], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
