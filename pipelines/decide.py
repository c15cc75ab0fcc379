"""`ecm decide`: record a decision in the control store (and apply a correction file), then resume the run."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from extract import staging
from load.control_store import ControlStore, now
from pipelines.config import BranchConfig, load_config
from sign_off.decisions import STATUS_OF, STEP_ORDER, check_decision, read_correction_file
from transform.errors import SignOffError


def current_gate(store: ControlStore, run_id: str) -> str | None:
    """The gate the run waits at (or last stood at), e.g. ``pl4_06_validate``; None before the first gate."""
    gates = [s for s in store.steps(run_id) if s.step.startswith("gate_after_") and s.status == "running"]
    return gates[-1].step.removeprefix("gate_after_") if gates else None


@dataclass(frozen=True)
class Decider:
    """Who decides: the name recorded on the finding, and how it came (desk login and address, or the CLI)."""

    by: str
    via: str = "cli"
    login: str | None = None
    address: str | None = None


def decide_findings(cfg: BranchConfig, store: ControlStore, run_id: str, finding_ids: list[int], decision: str,
                    reason: str, decider: Decider, corrections: list[dict[str, str]] | None = None,
                    source_file: str | None = None) -> list[tuple[int, bool]]:
    """Record one decision on one or more findings of a run — the one path of `ecm decide` and the desk.

    Every finding is checked first (open, allowed at the gate, a reason where policy says); nothing is recorded if
    one is refused. Corrections (one finding only) are applied to staging with an audit row each. Returns, per
    finding, whether this decision was recorded (False: someone else decided it meanwhile; it is left as it is)."""
    if not finding_ids:
        raise SignOffError("no finding chosen")
    rows = corrections or []
    if rows and len(finding_ids) != 1:
        raise SignOffError("a correction belongs to one finding; decide the others separately")
    run = store.run(run_id)
    gate = current_gate(store, run_id)
    if run is None or run["status"] != "waiting-decision" or gate is None:
        raise SignOffError(f"run {run_id} is not waiting at a decision gate (it is "
                           f"{run['status'] if run else 'unknown'}): findings are decided while the run waits",
                           hint=f"see `ecm status {run_id}`")
    found = [store.finding(run_id, fid) for fid in finding_ids]
    for f in found:
        check_decision(f, decision, reason, gate, len(rows))
        if f is not None and f["step"] in STEP_ORDER and STEP_ORDER.index(f["step"]) > STEP_ORDER.index(gate):
            raise SignOffError(f"finding {f['finding_id']} was raised after {gate}; it is decided at a later gate")
    out = []
    for fid in finding_ids:  # claimed first: of two deciders at once, one wins and the other changes nothing
        ok = store.decide(run_id, fid, STATUS_OF[decision], decision, reason, decider.by, via=decider.via,
                          address=decider.address, login=decider.login)
        out.append((fid, ok))
        if not ok and rows:
            raise SignOffError(f"finding {fid} was decided meanwhile by someone else; the correction is not applied")
    if rows:
        try:
            con = staging.connect(cfg.staging_path, memory_limit=cfg.staging_memory_limit,
                                  temp_dir=cfg.staging_temp_dir, lock_wait_seconds=5)
            try:
                audit = staging.apply_corrections(con, rows)
            finally:
                con.close()
        except Exception:
            store.reopen(run_id, finding_ids[0], "the correction could not be applied")
            raise
        store.add_corrections([{**a, "run_id": run_id, "finding_id": finding_ids[0], "applied_by": decider.by,
                                "applied_at": now(), "source_file": source_file or f"{decider.via}"} for a in audit])
    return out


def record_decision(config: Path, run_id: str, finding_id: int, decision: str, reason: str, by: str,
                    correction_file: Path | None) -> str:
    cfg = load_config(config)
    store = ControlStore(cfg.resolved_url("control"))
    run = store.run(run_id)
    if run is None:
        raise SignOffError(f"unknown run {run_id!r}", hint="see `ecm status latest`")
    rows = []
    if correction_file is not None:
        if not correction_file.exists():
            raise SignOffError(f"correction file not found: {correction_file}")
        rows = read_correction_file(correction_file.name, correction_file.read_bytes())
    [(_fid, ok)] = decide_findings(cfg, store, run_id, [finding_id], decision, reason, Decider(by=by, via="cli"),
                                   rows, str(correction_file) if correction_file else None)
    msg = (f"finding {finding_id}: {STATUS_OF[decision]} by {by}" if ok else
           f"finding {finding_id}: decided meanwhile by someone else; left as it is")
    resumed = ""
    if run["status"] == "waiting-decision" and run.get("flow_run_id"):
        resumed = "; run resumed" if _resume(store, run_id, run["flow_run_id"], by) else \
            "; the run was not paused (it will read the decision from the control store)"
    return msg + (f" ({len(rows)} corrections applied)" if rows else "") + resumed


def resume_after_decisions(store: ControlStore, run_id: str, by: str) -> bool:
    """Resume a run waiting at a gate (the gate re-reads the control store and pauses again if anything blocking is
    still open)."""
    run = store.run(run_id)
    if run is None or run["status"] != "waiting-decision" or not run.get("flow_run_id"):
        return False
    return _resume(store, run_id, run["flow_run_id"], by)


def resume_if_waiting(config: Path, run_id: str, waiting: str, by: str) -> str:
    """Resume a run paused in state ``waiting`` (used by `ecm sign --run`)."""
    cfg = load_config(config)
    store = ControlStore(cfg.resolved_url("control"))
    run = store.run(run_id)
    if run is None:
        raise SignOffError(f"unknown run {run_id!r}", hint="see `ecm status latest`")
    if run["status"] != waiting or not run.get("flow_run_id"):
        return f"run {run_id} is {run['status']}: nothing to resume"
    ok = _resume(store, run_id, run["flow_run_id"], by, waiting=waiting)
    if ok:
        return "run resumed"
    if waiting == "waiting-signatures" and (store.run(run_id) or {}).get("ended_at"):
        return f"the run's wait timed out; continue it with `ecm resume --run {run_id} --config {config}`"
    return "the run was not paused"


def _resume(store: ControlStore, run_id: str, flow_run_id: str, by: str, patience: float = 60.0,
            waiting: str = "waiting-decision") -> bool:
    """Resume the paused flow run. The gate marks the run waiting just before it pauses, so a fast decision
    can arrive first: retry until the run is paused, or is no longer waiting."""
    from prefect.flow_runs import resume_flow_run
    deadline = time.monotonic() + patience
    while True:
        try:
            resume_flow_run(UUID(flow_run_id), run_input={"note": f"ecm by {by}"}
                            if waiting == "waiting-decision" else None)
            return True
        except Exception:  # noqa: BLE001 - not paused yet (or already resumed): look again
            run = store.run(run_id)  # ended_at: the flow run is over (its wait timed out) — nothing to resume
            if run is None or run["status"] != waiting or run.get("ended_at") or time.monotonic() > deadline:
                return False
            time.sleep(1)
