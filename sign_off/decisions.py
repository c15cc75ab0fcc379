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


def parse_corrections(text: str) -> list[dict[str, str]]:
    """A correction file: CSV with columns table,key,column,new_value.

    ``table`` is ``DB.table`` (e.g. ``SXXK.DNPLNHAP``); ``key`` the source key as the reports print it
    (``SOTK=1|MA_LH=NSX01|NAMDK=2013|MA_HQ=C47D|MA_NPL=VAI01``).
    """
    rows = list(csv.DictReader(io.StringIO(text)))
    need = {"table", "key", "column", "new_value"}
    if not rows or not need <= set(rows[0]):
        raise SignOffError(f"correction file must have the columns {', '.join(sorted(need))}")
    for i, r in enumerate(rows, start=2):
        if "." not in r["table"] or "=" not in r["key"] or not r["column"]:
            raise SignOffError(f"correction file line {i} is incomplete: {r}")
    return rows


def key_conditions(key: str) -> list[tuple[str, str]]:
    """'A=1|B=x' → [('A', '1'), ('B', 'x')]."""
    return [tuple(p.split("=", 1)) for p in key.split("|") if p]  # type: ignore[misc]
