"""Decision gates (Phụ lục IV 4.2, 5.1, 5.2, 6.1): business staff decide every blocking finding.

Three ways to decide: (a) the review desk (``ecm desk``, pipelines/desk/), in a browser, logged in; (b)
``ecm decide RUN_ID FINDING …`` from any shell; both record the decision in the control store (with who, when,
from where: ``decision_log``) and resume the run; (c) the paused flow run's form in the Prefect UI
(``DecisionForm``) — only with ``policy.prefect_ui_decisions = true``, since that form has no login and the desk's
party policy cannot apply there; by default the form lists the findings and points to the desk. The control store
is the source of truth either way. Nothing is decided by default,
except under ``--auto-approve-demo``, which records itself as the decider.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import BaseModel

from pipelines import progress
from pipelines.steps.base import StepContext, StepOutcome
from sign_off.decisions import ALLOWED_AT_GATE, AUTO_DEMO, STATUS_OF, blocking, check_decision
from transform.errors import SignOffError
from validate.report import md_table, write_xlsx
from validate.run_report import write_run_report


class FindingDecision(BaseModel):
    finding_id: int
    decision: Literal["accept", "redo"]
    reason: str = ""
    by: str


class ResumeForm(RunInput):
    """What the Prefect UI shows when a run waits for decisions (the default): the findings and where to decide
    them; resuming here only makes the gate look at the control store again."""

    note: str = ""


class DecisionForm(ResumeForm):
    """With ``policy.prefect_ui_decisions = true``: the form records decisions too — without a login, so the desk's
    party policy cannot apply; they are logged as coming from the Prefect UI with the name typed in."""

    decisions: list[FindingDecision] = []


class RedoFromStep1(SignOffError):
    """Business staff decided that the branch must correct its data and redo from step 1."""


GATE_LABELS = {"pl4_04_restore": "after step 4 (Phụ lục IV 4.2)", "pl4_06_validate": "after step 6 (Phụ lục IV 5.x, 6.1)"}


def _form_description(waiting: list[Mapping[str, Any]], desk: str, run_id: str, form_decides: bool) -> str:
    """What the Prefect UI's pause form says: the blocking findings, and where they are decided."""
    how = ("The form below records a decision too (finding_id, accept or redo, reason, by) — without the desk's "
           "check of who may decide what." if form_decides else
           "Business staff decide there, logged in (the desk applies who may decide what); this form records no "
           "decision: the run resumes by itself once nothing blocks.")
    lines = [f"**{len(waiting)} blocking findings.** Decide them at the review desk: {desk} "
             f"(or `ecm decide {run_id} FINDING …`). {how}", "", "| # | severity | check | table | rows |",
             "|---|---|---|---|---|"]
    lines += [f"| {f['finding_id']} | {f['severity']} | {f['check_id']} | {f['table_name'] or ''} | {f['n_keys']} |"
              for f in waiting[:50]]
    if len(waiting) > 50:
        lines.append(f"| … | | {len(waiting) - 50} more at the desk | | |")
    return "\n".join(lines)


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
        # the business report as it stands at this gate: every section whose step has run, the run shown waiting
        write_run_report(store, rid, ctx.reports_dir, ctx.cfg.staging_path)
        by_sev = {s: sum(f["severity"] == s for f in waiting) for s in ("critical", "major", "minor")}
        desk = f"{ctx.cfg.desk_url.rstrip('/')}/runs/{rid}"
        progress.notify("waiting", run_id=rid, gate=after, gate_label=GATE_LABELS.get(after, after),
                        blocking=len(waiting), by_severity=by_sev, timeout=policy.decision_timeout_seconds,
                        desk_url=ctx.cfg.desk_url.rstrip("/"))
        form_class = DecisionForm if policy.prefect_ui_decisions else ResumeForm
        form = pause_flow_run(
            wait_for_input=form_class.with_initial_data(description=_form_description(
                waiting, desk, rid, policy.prefect_ui_decisions)),
            timeout=policy.decision_timeout_seconds, poll_interval=policy.poll_seconds,
            key=f"{gate_name(after)}-{rounds}".replace("_", "-"))
        store.set_run_status(rid, "running")
        progress.notify("resumed", run_id=rid, gate_label=GATE_LABELS.get(after, after))
        for d in (form.decisions if isinstance(form, DecisionForm) else []):
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
