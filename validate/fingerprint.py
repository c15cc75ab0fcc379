"""Full row-by-row reconciliation of central against the converted snapshot (after step 8).

Both sides are streamed in primary-key order and merge-joined; each row is reduced to a canonical
form (text NFC and trimmed, decimals at the column's scale, dates ISO, floats round-tripped) so that
engine differences in representation do not show up as false differences, while any real change does
— and is named down to the row and the column.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal


def canon(v: Any) -> str | None:
    """Canonical text of one value (None stays None)."""
    if v is None:
        return None
    if isinstance(v, str):
        return unicodedata.normalize("NFC", v).strip()
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, Decimal):
        return format(v.normalize(), "f") if v == v.to_integral_value() else format(v.normalize(), "f")
    if isinstance(v, float):
        d = Decimal(repr(v)).normalize()
        return format(d, "f")
    if isinstance(v, int):
        return str(v)
    if isinstance(v, datetime):
        return v.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    if isinstance(v, date):
        return v.isoformat()
    return str(v)


def fingerprint(row: dict[str, Any], columns: Sequence[str]) -> str:
    """SHA-256 of the canonical row (what the load report lists per table as a digest of digests)."""
    text = "\x1f".join("\\N" if (c := canon(row.get(col))) is None else c for col in columns)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class RowDiff:
    table: str
    key: tuple[Any, ...]
    kind: Literal["missing_in_central", "extra_in_central", "different"]
    columns: list[str] = field(default_factory=list)
    expected: dict[str, Any] = field(default_factory=dict)
    actual: dict[str, Any] = field(default_factory=dict)


@dataclass
class TableReconciliation:
    table: str
    rows_snapshot: int = 0
    rows_central: int = 0
    digest: str = ""  # SHA-256 over the snapshot's row fingerprints in key order
    diffs: list[RowDiff] = field(default_factory=list)
    n_diffs: int = 0


def reconcile(table: str, key: Sequence[str], columns: Sequence[str], snapshot: Iterable[dict[str, Any]],
              central: Iterable[dict[str, Any]], allow_extra: bool = False, keep: int = 1000) -> TableReconciliation:
    """Merge-join two key-ordered row streams and name every differing row and column."""
    out = TableReconciliation(table)
    digest = hashlib.sha256()
    a_it: Iterator[dict[str, Any]] = iter(snapshot)
    b_it: Iterator[dict[str, Any]] = iter(central)
    a, b = next(a_it, None), next(b_it, None)

    def k(r: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(r[c] for c in key)

    def add(d: RowDiff) -> None:
        out.n_diffs += 1
        if len(out.diffs) < keep:
            out.diffs.append(d)

    while a is not None or b is not None:
        if b is None or (a is not None and k(a) < k(b)):
            assert a is not None
            out.rows_snapshot += 1
            digest.update(fingerprint(a, columns).encode())
            add(RowDiff(table, k(a), "missing_in_central"))
            a = next(a_it, None)
        elif a is None or k(b) < k(a):
            out.rows_central += 1
            if not allow_extra:
                add(RowDiff(table, k(b), "extra_in_central"))
            b = next(b_it, None)
        else:
            out.rows_snapshot += 1
            out.rows_central += 1
            digest.update(fingerprint(a, columns).encode())
            cols = [c for c in columns if canon(a.get(c)) != canon(b.get(c))]
            if cols:
                add(RowDiff(table, k(a), "different", cols, {c: a.get(c) for c in cols}, {c: b.get(c) for c in cols}))
            a, b = next(a_it, None), next(b_it, None)
    out.digest = digest.hexdigest()
    return out
