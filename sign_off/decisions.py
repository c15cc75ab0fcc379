"""The discrepancy decisions of Phụ lục IV (steps 4–6): accept the difference, correct the data, or redo
from step 1. Pure rules; the gate in pipelines/steps/gate.py and `ecm decide` apply them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from transform.errors import SignOffError

Decision = Literal["accept", "correct", "redo"]
STATUS_OF: dict[str, str] = {"accept": "accepted", "correct": "corrected", "redo": "redo"}
STEP_ORDER = ["pl4_01_review", "pl4_02_freeze_backup", "pl4_03_handover", "pl4_04_restore", "pl4_05_convert",
              "pl4_06_validate", "pl4_07_sign_off", "pl4_08_load"]
# what each gate lets business staff decide (Phụ lục IV 4.2: accept or redo; 5.1/5.2/6.1: accept or adjust)
ALLOWED_AT_GATE: dict[str, tuple[Decision, ...]] = {
    "pl4_04_restore": ("accept", "redo"),
    "pl4_06_validate": ("accept", "correct", "redo"),
}
AUTO_DEMO = "auto-approve-demo"


def blocking(findings: Iterable[Mapping[str, Any]], gate: str, block: Mapping[str, Iterable[str]]
             ) -> list[Mapping[str, Any]]:
    """Open findings raised up to ``gate`` whose severity the policy makes blocking at that gate."""
    upto = STEP_ORDER.index(gate)
    return [f for f in findings if f["status"] == "open" and f["step"] in STEP_ORDER
            and STEP_ORDER.index(f["step"]) <= upto and gate in block.get(f["severity"], ())]


def check_decision(finding: Mapping[str, Any] | None, decision: str, reason: str | None, gate: str | None,
                   correction_rows: int = 0) -> None:
    """Refuse a decision the rules do not allow, saying why."""
    if finding is None:
        raise SignOffError("no such finding", hint="list the findings with `ecm status RUN_ID`")
    if finding["status"] != "open":
        raise SignOffError(f"finding {finding['finding_id']} is already {finding['status']}")
    if decision not in STATUS_OF:
        raise SignOffError(f"unknown decision {decision!r}; choose accept, correct or redo")
    if gate and decision not in ALLOWED_AT_GATE.get(gate, tuple(STATUS_OF)):
        raise SignOffError(f"at {gate} the choices are {', '.join(ALLOWED_AT_GATE[gate])}, not {decision}")
    if finding["severity"] == "critical" and decision == "accept" and not (reason and reason.strip()):
        raise SignOffError(f"finding {finding['finding_id']} is critical: accepting it needs a reason",
                           hint="add --reason \"…\"")
    if decision == "correct" and correction_rows == 0:
        raise SignOffError("a correction needs a file with at least one row (table,key,column,new_value)")


CORRECTION_COLUMNS = ("table", "key", "column", "new_value")
MAX_CORRECTION_ROWS = 100_000


def parse_corrections(text: str) -> list[dict[str, str]]:
    """A correction file: CSV with columns table,key,column,new_value (other columns are ignored).

    ``table`` is ``DB.table`` (e.g. ``SXXK.DNPLNHAP``); ``key`` the source key as the reports print it
    (``SOTK=1|MA_LH=NSX01|NAMDK=2013|MA_HQ=C47D|MA_NPL=VAI01``). Rows whose ``column`` is empty are skipped (the
    desk's template lists every row of a finding; only the filled-in ones are corrections).
    """
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    return _correction_rows(reader.fieldnames or [], ((i, r) for i, r in enumerate(reader, start=2)))


def parse_corrections_xlsx(data: bytes) -> list[dict[str, str]]:
    """The same correction rows from the first sheet of an XLSX workbook (the desk's template, filled in Excel)."""
    from openpyxl import load_workbook
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: say so, in the user's terms
        raise SignOffError(f"the correction file is not a readable XLSX workbook ({type(exc).__name__})",
                           hint="save it again from Excel as .xlsx, or send a CSV") from exc
    try:
        rows = wb.worksheets[0].iter_rows(values_only=True)
        header = [str(h).strip() if h is not None else "" for h in next(rows, ())]
        return _correction_rows(header, ((i, {h: _cell(v) for h, v in zip(header, r, strict=False) if h})
                                         for i, r in enumerate(rows, start=2)))
    finally:
        wb.close()


def read_correction_file(name: str, data: bytes) -> list[dict[str, str]]:
    """A correction file by its name: ``.xlsx`` or CSV (UTF-8)."""
    if name.lower().endswith(".xlsx"):
        return parse_corrections_xlsx(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SignOffError(f"the correction file {name} is not UTF-8 text (byte {exc.start})",
                           hint="save the CSV as UTF-8, or send the XLSX") from exc
    return parse_corrections(text)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _correction_rows(header: Iterable[str], rows: Iterable[tuple[int, Mapping[str, Any]]]) -> list[dict[str, str]]:
    missing = [c for c in CORRECTION_COLUMNS if c not in set(header)]
    if missing:
        raise SignOffError(f"correction file must have the columns {', '.join(CORRECTION_COLUMNS)} "
                           f"(missing: {', '.join(missing)})")
    out = []
    for i, r in rows:
        row = {c: ("" if r.get(c) is None else str(r.get(c))).strip() for c in CORRECTION_COLUMNS}
        row["new_value"] = "" if r.get("new_value") is None else str(r.get("new_value"))
        if not row["column"]:
            continue
        if "." not in row["table"] or "=" not in row["key"]:
            raise SignOffError(f"correction file line {i} is incomplete: table {row['table']!r}, key {row['key']!r}")
        out.append(row)
        if len(out) > MAX_CORRECTION_ROWS:
            raise SignOffError(f"correction file has more than {MAX_CORRECTION_ROWS:,} corrections",
                               hint="correct at the branch and redo from step 1 instead")
    return out


def key_conditions(key: str) -> list[tuple[str, str]]:
    """'A=1|B=x' → [('A', '1'), ('B', 'x')]."""
    return [tuple(p.split("=", 1)) for p in key.split("|") if p]  # type: ignore[misc]
