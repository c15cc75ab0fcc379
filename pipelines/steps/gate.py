"""Decision gates (Phụ lục IV 4.2, 5.1, 5.2, 6.1): business staff decide every blocking finding.

Three ways to decide: (a) the review desk (``ecm desk``, pipelines/desk/), in a browser, logged in; (b)
``ecm decide RUN_ID FINDING …`` from any shell; both record the decision in the control store (with who, when,
from where: ``decision_log``) and resume the run; (c) the paused flow run's form in the Prefect UI
(``DecisionForm``). The control store is the source of truth either way. Nothing is decided by default,
except under ``--auto-approve-demo``, which records itself as the decider.
"""

from __future__ import annotations

from typing import Literal

from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import BaseModel

from pipelines.steps.base import StepContext, StepOutcome
from sign_off.decisions import ALLOWED_AT_GATE, AUTO_DEMO, STATUS_OF, blocking, check_decision
from transform.errors import SignOffError
from validate.report import md_table, write_xlsx


class FindingDecision(BaseModel):
    finding_id: int
    decision: Literal["accept", "redo"]
    reason: str = ""
    by: str


class DecisionForm(RunInput):
    """What the Prefect UI shows when a run waits for decisions (corrections go through `ecm decide --correct`)."""

    decisions: list[FindingDecision] = []
    note: str = ""


class RedoFromStep1(SignOffError):
    """Business staff decided that the branch must correct its data and redo from step 1."""


def gate_name(after: str) -> str:
    return f"gate_after_{after}"


def run(ctx: StepContext, after: str) -> StepOutcome:
    store, rid, policy = ctx.store, ctx.run_id, ctx.cfg.policy
    corrections_before = len(store.corrections(rid))
    rounds = 0
    while True:
        findings = store.findings(rid)
        redo = [f for f in findings if f["status"] == "redo"]
        if redo:
            path = write_xlsx(ctx.reports_dir / "lam_lai_tu_buoc_1.xlsx", {
                "Việc Chi cục phải làm": (["Mã", "Mức độ", "Bảng", "Số khóa", "Lý do", "Người quyết định", "Khóa"],
                                          [(f["check_id"], f["severity"], f["table_name"], f["n_keys"], f["reason"],
                                            f["decided_by"], f["keys_json"]) for f in redo])})
            raise RedoFromStep1(f"{len(redo)} findings were decided 'redo from step 1'", table=str(path),
                                hint=f"send {path.name} to the branch; start a new run once it has corrected its data")
        if ctx.auto_approve_demo:
            for f in findings:
                if f["status"] == "open":
                    store.decide(rid, f["finding_id"], "accepted", "accept",
                                 "accepted automatically: demo run (--auto-approve-demo)", AUTO_DEMO, via=AUTO_DEMO)
            break
        waiting = blocking(findings, after, policy.block)
        if not waiting:
            break
        rounds += 1
        store.set_run_status(rid, "waiting-decision")
        form = pause_flow_run(wait_for_input=DecisionForm, timeout=policy.decision_timeout_seconds,
                              poll_interval=policy.poll_seconds, key=f"{gate_name(after)}-{rounds}".replace("_", "-"))
        store.set_run_status(rid, "running")
        for d in (form.decisions if form else []):
            f = store.finding(rid, d.finding_id)
            check_decision(f, d.decision, d.reason, after)
            store.decide(rid, d.finding_id, STATUS_OF[d.decision], d.decision, d.reason, d.by, via="prefect-ui")
    corrected = len(store.corrections(rid)) - corrections_before
    decided = [f for f in store.findings(rid) if f["status"] != "open"]
    md = f"## Quyết định sau {after}\n\n" + md_table(
        ["#", "check", "severity", "status", "by", "reason"],
        [(f["finding_id"], f["check_id"], f["severity"], f["status"], f["decided_by"], f["reason"]) for f in decided])
    return StepOutcome(rows_in=None, rows_out=None, markdown=md, detail={
        "outcome": "rerun" if corrected else "continue", "corrections_applied": corrected, "pauses": rounds,
        "allowed": list(ALLOWED_AT_GATE.get(after, ()))})
