"""The ``migrate-wave`` flow: one ``migrate-branch`` flow run per branch of a wave plan, submitted through the
deployment and run by whichever worker of the pool takes it.

- Each submission carries an idempotency key (wave, branch, attempt): submitting the wave again — after the wave's
  own process died, or by mistake — returns the branch runs already there and never starts a branch twice.
- At most ``limits.total`` branch runs at work at once; a run waiting for people (a decision gate, signatures)
  does not count, so it does not hold up the others. The per-server limits are Prefect global concurrency limits
  the branch runs hold themselves (pipelines/wave/slots.py).
- A branch run whose worker died (its lease heartbeat went stale: pipelines/runlock.py) is marked crashed in
  Prefect and submitted again through the ``resume-run`` deployment: it goes on after its last completed step;
  the branch lease makes two runs of one branch at once impossible, the custody checks refuse unverified files.
- A branch that fails does not stop the wave. The wave ends when every branch is done or waits for people, with
  the wave report (pipelines/wave/report.py).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from load.control_store import ControlStore
from load.wave_store import WaveStore
from pipelines import runlock
from pipelines.config import interpolate_env
from pipelines.wave.plan import LoadedPlan, PlannedBranch, load_plan
from pipelines.wave.report import write_wave_report
from pipelines.wave.slots import WaveSlots

ACTIVE = ("submitted", "scheduled", "pending", "running")
CONTROL_FINAL = ("completed", "failed", "redo-from-step-1", "closed")
_control: dict[str, ControlStore] = {}


def control_store(b: PlannedBranch) -> ControlStore:
    """One control store per URL for the wave's life (a poll must not open new connections each time)."""
    url = b.config.resolved_url("control")
    if url not in _control:
        _control[url] = ControlStore(url)
    return _control[url]


def wave_store(url: str) -> WaveStore:
    """The wave's store; its URL may name credentials as ${ENV} (resolved here, never passed on resolved)."""
    return WaveStore(interpolate_env(url))
WAITING = ("waiting-decision", "waiting-signatures")
FINAL = ("completed", "failed", "redo-from-step-1", "cancelled", "not-started", "gave-up")


def ensure_limits(lp: LoadedPlan) -> dict[str, int]:
    """Create (or resize) the Prefect global concurrency limits the wave's branch runs hold."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectNotFound
    sizes = lp.limit_sizes()
    with get_client(sync_client=True) as client:
        for name, size in sizes.items():
            try:
                cur = client.read_global_concurrency_limit_by_name(name)
                if cur.limit != size or not cur.active:
                    client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=size, active=True))
            except ObjectNotFound:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=size))
    return sizes


def run_id_for(wave: str, branch: str) -> str:
    """The branch run's id in its control store: fixed by the wave, so that a resubmission finds it."""
    return f"{branch.lower()}-{wave}"


def key_for(lp: LoadedPlan, code: str, attempt: int) -> str:
    """Prefect's idempotency key of a submission: mode, wave, branch and attempt."""
    return f"{lp.plan.mode}:{lp.plan.wave}:{code}:{attempt}"


def _submit(lp: LoadedPlan, b: PlannedBranch, attempt: int, resume: bool) -> str:
    from prefect.deployments import run_deployment
    ws = WaveSlots(wave=lp.plan.wave, control_url=lp.plan.control_url, source_limits=b.source_limits,
                   central_limit=b.central_limit, lease_seconds=lp.plan.lease_seconds)
    params: dict[str, Any] = {"config": b.config.model_dump(mode="json"), "run_id": run_id_for(lp.plan.wave, b.code),
                              "wave": ws.model_dump(), "auto_approve_demo": lp.plan.auto_approve_demo}
    fr = run_deployment(lp.plan.resume_deployment if resume else lp.plan.deployment, parameters=params,
                        idempotency_key=key_for(lp, b.code, attempt), timeout=0, as_subflow=False,
                        flow_run_name=f"{b.code}-{lp.plan.wave}-{attempt}", tags=["wave", lp.plan.wave])
    return str(fr.id)


def _prefect_state(flow_run_id: str) -> tuple[str, datetime | None, datetime | None]:
    """The flow run's state type, when it started running (None before it starts) and since when it is in that
    state."""
    from prefect.client.orchestration import get_client
    with get_client(sync_client=True) as client:
        fr = client.read_flow_run(flow_run_id)  # type: ignore[arg-type]
    st = fr.state
    return ((st.type.value.lower() if st is not None else "scheduled"), fr.start_time,
            st.timestamp if st is not None else None)


def _mark_crashed(flow_run_id: str, why: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run_id, Crashed(message=why), force=True)  # type: ignore[arg-type]


def branch_state(b: PlannedBranch, wave: str, flow_run_id: str) -> tuple[str, str]:
    """(state, why) of a submitted branch run, from Prefect and from the branch's control store.

    Prefect's final states are the run's own report. A run Prefect still believes running is crashed when the
    control store says its holder is dead (its process gone on this host, or its lease heartbeat stale) and it
    has been running longer than a heartbeat takes to go stale — a worker that lost its host reports nothing."""
    pstate, started, since = _prefect_state(flow_run_id)
    store = control_store(b)
    run = store.run(run_id_for(wave, b.code))
    status = runlock.effective_status(store, run) if run else None
    if status in CONTROL_FINAL or (status in WAITING and pstate in ("completed", "crashed", "failed")):
        return str(status), ""  # the run said how it ended: that is final, whatever Prefect saw of its process
    age = (datetime.now(timezone.utc) - started).total_seconds() if started else 0.0
    if pstate == "crashed":
        return "crashed", f"Prefect: crashed; control store: {status}"
    if pstate in ("completed", "failed", "cancelled"):
        if status in ("completed", "redo-from-step-1", "failed", *WAITING):
            return str(status), ""
        return pstate, f"control store: {status}"
    if pstate == "cancelling":
        return "cancelled", ""
    if pstate in ("paused", "running") and status in WAITING and age <= runlock.STALE_AFTER_SECONDS:
        return str(status), ""
    if pstate == "paused":  # waiting for people — unless its host went down meanwhile (the heartbeat says)
        if status == "crashed" and age > runlock.STALE_AFTER_SECONDS:
            return "crashed", "worker lost while the run waited at a decision gate"
        return "waiting-decision", ""
    if pstate == "running":
        if status in WAITING:
            return str(status), ""
        if (status == "crashed" or run is None) and age > runlock.STALE_AFTER_SECONDS:
            return "crashed", ("worker lost: its lease heartbeat stopped" if run else "worker lost before the run "
                               "took its branch") + f" (Prefect still says running for {age:.0f} s)"
        return "running", ""
    if pstate == "pending" and since is not None:  # a worker took it and never started it (its host went down)
        age = (datetime.now(timezone.utc) - since).total_seconds()
        if age > max(120.0, 4 * runlock.STALE_AFTER_SECONDS):
            return "crashed", f"worker lost: the run stayed pending for {age:.0f} s"
    return pstate, ""


@flow(name="migrate-wave", flow_run_name="{plan}", validate_parameters=True)
def migrate_wave(plan: str) -> dict[str, Any]:
    """Submit and watch every branch of a wave plan; returns the wave report (also written as files)."""
    lp = load_plan(Path(plan))
    log = get_run_logger()
    store = wave_store(lp.plan.control_url)
    store.start_wave(lp.plan.wave, lp.plan.mode, lp.plan.model_dump(mode="json"),
                     str(flow_run.id) if flow_run.id else None)  # refused if this name ran as another mode
    ensure_limits(lp)
    log.info("wave %s (%s): %d branches, limits %s", lp.plan.wave, lp.plan.mode, len(lp.branches),
             lp.plan.limits.model_dump())
    state: dict[str, tuple[int, str]] = {}  # branch -> (attempt, state) of its latest submission
    for r in store.branches(lp.plan.wave):  # a wave submitted again picks up where its records stand
        if r["attempt"] >= state.get(r["branch"], (0, ""))[0]:
            state[r["branch"]] = (r["attempt"], r["state"])
    frs = {r["branch"]: r["flow_run_id"] for r in sorted(store.branches(lp.plan.wave), key=lambda r: r["attempt"])}
    while True:
        if (store.wave(lp.plan.wave) or {}).get("state") == "cancelled":  # `ecm wave cancel`
            log.warning("wave %s was cancelled: nothing more is submitted", lp.plan.wave)
            return write_wave_report(lp, store)
        now = datetime.now(timezone.utc)
        window = lp.plan.window
        for b in lp.branches:  # look at what was submitted
            attempt, st = state.get(b.code, (0, ""))
            if not attempt or st in FINAL:
                continue
            new, why = branch_state(b, lp.plan.wave, frs[b.code])
            if new == "crashed":
                run = control_store(b).run(run_id_for(lp.plan.wave, b.code))
                expired = store.slots_of_dead_holder(lp.plan.wave, run_id_for(lp.plan.wave, b.code))
                _mark_crashed(frs[b.code], why)
                store.branch_state(lp.plan.wave, b.code, attempt, "crashed", ended=True,
                                   note=f"{why}; {expired} slot(s) it held come back when their lease runs out")
                log.warning("wave %s: branch %s crashed (%s)", lp.plan.wave, b.code, why)
                if attempt >= lp.plan.max_attempts:
                    store.branch_state(lp.plan.wave, b.code, attempt, "gave-up", ended=True)
                    state[b.code] = (attempt, "gave-up")
                    continue
                resume = run is not None
                frs[b.code] = _submit(lp, b, attempt + 1, resume=resume)
                store.submitted(lp.plan.wave, b.code, attempt + 1, frs[b.code],
                                note="resumed after a crash" if resume else "submitted again after a crash")
                state[b.code] = (attempt + 1, "submitted")
                continue
            if new != st:
                store.branch_state(lp.plan.wave, b.code, attempt, new, run_id=run_id_for(lp.plan.wave, b.code),
                                   ended=new in FINAL, note=why or None)
                state[b.code] = (attempt, new)
                log.info("wave %s: branch %s is %s", lp.plan.wave, b.code, new)
        active = sum(1 for a, s in state.values() if s in ACTIVE)
        for b in lp.branches:  # submit what may start
            if b.code in state:
                continue
            if window is not None and now > window.end:
                store.submitted(lp.plan.wave, b.code, 1, "", note="the cut-over window closed before it started")
                store.branch_state(lp.plan.wave, b.code, 1, "not-started", ended=True)
                state[b.code] = (1, "not-started")
                continue
            if (window is not None and now < window.start) or active >= lp.plan.limits.total:
                break  # in priority order: the next one waits its turn
            frs[b.code] = _submit(lp, b, 1, resume=False)
            store.submitted(lp.plan.wave, b.code, 1, frs[b.code])
            state[b.code] = (1, "submitted")
            active += 1
            log.info("wave %s: branch %s submitted", lp.plan.wave, b.code)
        if len(state) == len(lp.branches) and all(s in FINAL or s in WAITING for _a, s in state.values()):
            break
        time.sleep(lp.plan.poll_seconds)
    waiting = sum(1 for _a, s in state.values() if s in WAITING)
    failed = sum(1 for _a, s in state.values() if s not in WAITING and s != "completed")
    store.end_wave(lp.plan.wave, "waiting-for-people" if waiting else ("ended-with-failures" if failed else
                                                                        "completed"))
    report = write_wave_report(lp, store)
    log.info("wave %s ends: %s", lp.plan.wave, {s for _a, s in state.values()})
    return report
