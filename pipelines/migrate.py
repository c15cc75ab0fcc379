"""The ``migrate-branch`` flow: one flow run takes one branch through the eight steps of Phụ lục IV.

The flow body is a table of contents; each step is one task (named after its step id) whose body
lives in ``pipelines/steps/pl4_0N_*.py``. Every step's result is a typed record in the control store.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from extract.source import redact
from load.control_store import ControlStore
from pipelines import memory, runlock
from pipelines.config import BranchConfig
from pipelines.lifecycle import reconcile_with_central
from pipelines.steps import (
    gate,
    pl4_01_review,
    pl4_02_freeze_backup,
    pl4_03_handover,
    pl4_04_restore,
    pl4_05_convert,
    pl4_06_validate,
    pl4_07_sign_off,
    pl4_08_load,
)
from pipelines.steps.base import StepContext, StepOutcome
from pipelines.steps.gate import RedoFromStep1
from pipelines.steps.pl4_07_sign_off import AwaitingSignatures
from pipelines.summary import write_summary
from pipelines.wave import slots
from pipelines.wave.slots import WaveSlots
from transform.errors import MigrationError, SignOffError, StepFailed

StepFn = Callable[[StepContext], StepOutcome]


def _retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only errors marked transient (a dropped connection); bad data and config never retry."""
    try:
        state.result()
    except MigrationError as exc:
        return exc.transient
    except Exception:  # noqa: BLE001 - unknown errors are terminal
        return False
    return False


def _execute(step: str, fn: StepFn, cfg: BranchConfig, run_id: str, auto_approve_demo: bool,
             resuming: bool = False) -> dict[str, Any]:
    """Run one step: record start/finish in the control store, publish its artifact, wrap failures once."""
    store = ControlStore(cfg.resolved_url("control"))
    ctx = StepContext(cfg, store, run_id, auto_approve_demo, resuming)
    log = get_run_logger()
    store.step_started(run_id, step)
    t0 = time.perf_counter()
    try:
        out = fn(ctx)
    except (RedoFromStep1, AwaitingSignatures) as exc:
        secs = time.perf_counter() - t0
        state = "redo-from-step-1" if isinstance(exc, RedoFromStep1) else "waiting-signatures"
        store.step_finished(run_id, step, "completed" if state.startswith("redo") else "waiting", None, None, secs,
                            {"outcome": state}, str(exc))
        store.end_run(run_id, state, error=str(exc))
        log.warning("run %s ends: %s (%s)", run_id, state, exc)
        raise
    except Exception as exc:
        secs = time.perf_counter() - t0
        store.step_finished(run_id, step, "failed", None, None, secs, error=str(exc))
        store.end_run(run_id, "failed", error=f"{step}: {exc}")
        log.error("step %s failed after %.1fs: %s", step, secs, exc)
        if isinstance(exc, MigrationError) and exc.transient:
            raise
        raise StepFailed(step, exc) from exc
    finally:
        memory.trim()
    secs = time.perf_counter() - t0
    store.step_finished(run_id, step, out.status, out.rows_in, out.rows_out, secs, out.detail)  # type: ignore[arg-type]
    if out.markdown:
        create_markdown_artifact(markdown=out.markdown, key=f"{cfg.branch_code.lower()}-{step.replace('_', '-')}",
                                 description=f"{cfg.branch_code} {step}")
    log.info("step %s %s in %.2fs (rows in %s, out %s)", step, out.status, secs, out.rows_in, out.rows_out)
    return {"step": step, "status": out.status, "rows_in": out.rows_in, "rows_out": out.rows_out, "seconds": secs,
            **({"outcome": out.detail["outcome"]} if "outcome" in out.detail else {})}


def _step_task(step: str, fn: StepFn, retries: int = 0) -> Any:
    @task(name=step.replace("_", "-"), cache_policy=NO_CACHE, retries=retries, retry_delay_seconds=5,
          retry_condition_fn=_retry_transient)
    def _t(cfg: BranchConfig, run_id: str, auto_approve_demo: bool = False, resuming: bool = False
           ) -> dict[str, Any]:
        return _execute(step, fn, cfg, run_id, auto_approve_demo, resuming)
    return _t


review_branch = _step_task("pl4_01_review", pl4_01_review.run, retries=2)
freeze_and_backup = _step_task("pl4_02_freeze_backup", pl4_02_freeze_backup.run, retries=2)
hand_over = _step_task("pl4_03_handover", pl4_03_handover.run, retries=2)
restore_to_staging = _step_task("pl4_04_restore", pl4_04_restore.run, retries=2)
convert_records = _step_task("pl4_05_convert", pl4_05_convert.run)
validate_converted = _step_task("pl4_06_validate", pl4_06_validate.run)
sign_minutes = _step_task("pl4_07_sign_off", pl4_07_sign_off.run)
load_central = _step_task("pl4_08_load", pl4_08_load.run, retries=2)
decide_after_restore = _step_task(gate.gate_name("pl4_04_restore"), lambda c: gate.run(c, "pl4_04_restore"))
decide_after_validation = _step_task(gate.gate_name("pl4_06_validate"), lambda c: gate.run(c, "pl4_06_validate"))


def new_run_id(branch: str) -> str:
    return f"{branch.lower()}-{datetime.now(timezone.utc):%Y%m%dt%H%M%S}-{uuid.uuid4().hex[:6]}"


@flow(name="migrate-branch", flow_run_name="{config.branch_code}", validate_parameters=True)
def migrate_branch(config: BranchConfig, run_id: str | None = None, auto_approve_demo: bool = False,
                   replace: dict[str, str] | None = None, wave: WaveSlots | None = None) -> dict[str, Any]:
    """Phụ lục IV, steps 1–8, for one branch. Returns the run summary (also written as summary.json).

    One run per branch at a time (pipelines/runlock.py); a migrated branch is not run over unless ``replace``
    says who and why (``{"by": …, "reason": …}``, recorded). Submitted by a wave, ``wave`` names the concurrency
    limits its steps hold (pipelines/wave/slots.py)."""
    run_id = run_id or new_run_id(config.branch_code)
    memory.return_freed_memory_to_os()
    store = ControlStore(config.resolved_url("control"))
    runlock.take(store, config.branch_code, run_id)
    try:
        if not config.rehearsal:  # what central's ledger says happened, even if a killed run could not record it
            reconcile_with_central(config, store)
        runlock.refuse_over_migrated(store, config.branch_code, config.rehearsal, config.incremental, replace, run_id)
        return _migrate(config, store, run_id, auto_approve_demo, wave=wave)
    except BaseException as exc:
        _end_if_running(store, run_id, exc)
        raise
    finally:
        runlock.give_back(store, config.branch_code, run_id)


def _end_if_running(store: ControlStore, run_id: str, exc: BaseException) -> None:
    """A failure outside any step (waiting for a concurrency slot, the control store, a cancellation) still ends
    the run in the control store, so that nobody mistakes it for a crashed one; a step's own failure already did."""
    run = store.run(run_id)
    if run is not None and run["status"] in ("running", "waiting-decision"):
        store.end_run(run_id, "failed", error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


# the order in which a run's steps complete (the correction rounds repeat 5, 6 and the second gate)
ORDER = ("pl4_01_review", "pl4_02_freeze_backup", "pl4_03_handover", "pl4_04_restore", gate.gate_name("pl4_04_restore"),
         "pl4_05_convert", "pl4_06_validate", gate.gate_name("pl4_06_validate"), "pl4_07_sign_off", "pl4_08_load")


def _migrate(config: BranchConfig, store: ControlStore, run_id: str, auto_approve_demo: bool,
             done: tuple[str, ...] = (), resume_signing_step: bool = False, resumed: bool = False,
             wave: WaveSlots | None = None) -> dict[str, Any]:
    """The steps in order; ``done`` (a resumed run) are the steps already completed, skipped."""
    if not resumed:
        store.start_run(run_id, config.branch_code, config.rehearsal,
                        {**config.model_dump(mode="json"), "sources": {k: redact(v) for k, v in
                                                                        config.sources.model_dump().items()},
                         "central_url": redact(config.central_url)})
        get_run_logger().info("run %s for branch %s (rehearsal=%s)", run_id, config.branch_code, config.rehearsal)
    else:
        get_run_logger().info("run %s for branch %s resumes after %s", run_id, config.branch_code,
                              done[-1] if done else "nothing")
    store.set_run_status(run_id, "running", str(flow_run.id) if flow_run.id else None)
    a = (config, run_id, auto_approve_demo)

    def step(task: Any, name: str, **kw: Any) -> dict[str, Any]:
        if name in done:
            return {"step": name, "status": "completed", **store.step_detail(run_id, name)}
        with slots.holding(wave, name, config.branch_code, run_id):  # a wave's limits on servers (none alone)
            return task(*a, **kw)
    try:
        step(review_branch, "pl4_01_review")              # 1. rà soát, danh sách hiệu chỉnh, bảng kê chốt tồn
        step(freeze_and_backup, "pl4_02_freeze_backup")   # 2. READ ONLY, thống kê, backup
        step(hand_over, "pl4_03_handover")                # 3. bàn giao, kiểm tra khi nhận (đối chiếu với báo cáo)
        step(restore_to_staging, "pl4_04_restore")        # 4. phục hồi vào CSDL trung gian, kiểm tra cấu trúc/số lượng
        step(decide_after_restore, ORDER[4])              #    chấp nhận sai lệch hoặc làm lại từ bước 1
        for _round in range(config.policy.max_correction_rounds + 1):
            step(convert_records, "pl4_05_convert")       # 5. chuyển đổi GC, SXXK, CX
            step(validate_converted, "pl4_06_validate")   # 6. đối chiếu trước/sau, cân đối, chọn mẫu
            if step(decide_after_validation, ORDER[7]).get("outcome") != "rerun":  # chấp nhận / hiệu chỉnh / làm lại
                break
            done = ()  # a correction round: 5 and 6 again
        step(sign_minutes, "pl4_07_sign_off", resuming=resume_signing_step)  # 7. biên bản xác nhận
        step(load_central, "pl4_08_load")                 # 8. nạp CSDL tập trung, phân quyền
    except (gate.RedoFromStep1, AwaitingSignatures):
        return write_summary(config, store, run_id, [])
    store.end_run(run_id, "completed")
    return write_summary(config, store, run_id, [])


def completed_steps(store: ControlStore, run_id: str) -> tuple[str, ...]:
    """The steps of a run that completed, in order, up to the first that did not (a correction decided at the
    second gate sends 5 and 6 back)."""
    recs = {s.step: s for s in store.steps(run_id)}
    done: list[str] = []
    for name in ORDER:
        r = recs.get(name)
        if r is None or r.status != "completed":
            break
        done.append(name)
    if ORDER[7] in done and (recs[ORDER[7]].detail or {}).get("outcome") == "rerun":
        done = done[:done.index("pl4_05_convert")]
    return tuple(done)


def check_crash_resumable(store: ControlStore, run_id: str, branch_code: str) -> tuple[str, ...]:
    """A run of this branch that crashed or failed can go on after its last completed step; returns those steps."""
    run = store.run(run_id)
    status = runlock.effective_status(store, run) if run else "unknown"
    if run is None or status not in ("crashed", "failed"):
        raise SignOffError(f"run {run_id} is {status}: only a crashed or failed run goes on where it stopped "
                           "(a run waiting for signatures: `ecm resume` too)",
                           hint="see `ecm status latest`; start a new run with `ecm run`")
    if run["branch"] != branch_code:
        raise SignOffError(f"run {run_id} belongs to branch {run['branch']}, not {branch_code}",
                           hint="pass that branch's config")
    return completed_steps(store, run_id)


@flow(name="resume-run", flow_run_name="{config.branch_code}-resume-run", validate_parameters=True)
def resume_run(config: BranchConfig, run_id: str, auto_approve_demo: bool = False,
               wave: WaveSlots | None = None) -> dict[str, Any]:
    """Continue a crashed (killed) or failed run after its last completed step. What those steps wrote is checked
    by the steps that read it (the package and the snapshot are re-hashed against their producers' records);
    a step that was cut off runs again from its start — except step 7, which goes on with the same minutes."""
    memory.return_freed_memory_to_os()
    store = ControlStore(config.resolved_url("control"))
    done = check_crash_resumable(store, run_id, config.branch_code)
    runlock.take(store, config.branch_code, run_id)
    try:
        if not config.rehearsal:
            reconcile_with_central(config, store)
            mig = [e for e in store.branch_events(config.branch_code) if e["action"] == "migrated"]
            if store.branch_state(config.branch_code)["migrated"] and mig and mig[-1]["run_id"] != run_id:
                raise runlock.BranchMigrated(
                    f"branch {config.branch_code} was migrated by run {mig[-1]['run_id']} since run {run_id} stopped",
                    table=config.branch_code, hint="this run's figures are not central's: close it "
                    "(`ecm runs close`) — or unload the branch first if it must replace them")
        minutes = [d for d in store.documents(run_id) if d["kind"] == "minutes"]
        store.add_branch_event(config.branch_code, "resume-run", run_id=run_id, by="ecm resume",
                               reason=f"continues after {done[-1] if done else 'nothing'}")
        return _migrate(config, store, run_id, auto_approve_demo, done,
                        resume_signing_step=bool(minutes) and "pl4_07_sign_off" not in done, resumed=True,
                        wave=wave)
    except BaseException as exc:
        _end_if_running(store, run_id, exc)
        raise
    finally:
        runlock.give_back(store, config.branch_code, run_id)


def check_resumable(store: ControlStore, run_id: str, branch_code: str) -> None:
    """Only a run of this branch whose wait for the signatures ended can be resumed."""
    run = store.run(run_id)
    if run is None or run["status"] != "waiting-signatures":
        raise SignOffError(f"run {run_id} is {run['status'] if run else 'unknown'}: only a run waiting for "
                           "signatures can be resumed", hint="see `ecm status latest`; start a new run with `ecm run`")
    if run["branch"] != branch_code:
        raise SignOffError(f"run {run_id} belongs to branch {run['branch']}, not {branch_code}",
                           hint="pass that branch's config")


@flow(name="resume-signing", flow_run_name="{config.branch_code}-resume", validate_parameters=True)
def resume_signing(config: BranchConfig, run_id: str) -> dict[str, Any]:
    """Continue a run whose wait for the six signatures timed out: steps 7 (same minutes, signatures kept)
    and 8. Steps 1–6 are not repeated — their records and files are this run's own."""
    memory.return_freed_memory_to_os()
    store = ControlStore(config.resolved_url("control"))
    check_resumable(store, run_id, config.branch_code)
    runlock.take(store, config.branch_code, run_id)
    try:
        return _resume(config, store, run_id)
    finally:
        runlock.give_back(store, config.branch_code, run_id)


def _resume(config: BranchConfig, store: ControlStore, run_id: str) -> dict[str, Any]:
    get_run_logger().info("run %s for branch %s resumes at step 7", run_id, config.branch_code)
    store.set_run_status(run_id, "running", str(flow_run.id) if flow_run.id else None)
    try:
        sign_minutes(config, run_id, False, resuming=True)   # 7. the same minutes, waiting again
        load_central(config, run_id, False)                  # 8.
    except AwaitingSignatures:
        return write_summary(config, store, run_id, [])
    store.end_run(run_id, "completed")
    return write_summary(config, store, run_id, [])
