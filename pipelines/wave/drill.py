"""The switch-over-and-back drill (the tax sector's 2024 failover practice) on a rehearsal wave: one branch is
unloaded from the rehearsal central and loaded again from its verified snapshot, while every other branch of that
central stays byte-identical. One command, one drill report.

Every branch's ID window is fingerprinted (SHA-256 over its rows in key order) before, after the unload and after
the reload: the others must not change at all; the drilled branch must be empty after the unload and come back
with exactly the rows it had."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from load.central import branch_counts, iter_branch_rows, open_central
from load.central_model import LOAD_ORDER
from load.control_store import ControlStore
from pipelines import lifecycle
from pipelines.steps import pl4_08_load
from pipelines.steps.base import StepContext
from pipelines.wave.plan import LoadedPlan, PlannedBranch
from transform.convert import branch_base_id
from transform.errors import ConfigError
from validate.report import write_json, write_xlsx


def window_digest(url: str, base_id: int) -> str:
    """SHA-256 of a branch's rows in central, every table in load order, rows in key order (streamed)."""
    h = hashlib.sha256()
    engine = open_central(url)
    try:
        for t in LOAD_ORDER:
            h.update(t.encode())
            for row in iter_branch_rows(engine, t, base_id):
                h.update(json.dumps(row, sort_keys=True, default=str, ensure_ascii=False).encode("utf-8"))
    finally:
        engine.dispose()
    return h.hexdigest()


def _completed_run(b: PlannedBranch) -> str:
    store = ControlStore(b.config.resolved_url("control"))
    runs = [r for r in store.latest_runs(200) if r["branch"] == b.code and r["status"] == "completed"]
    if not runs:
        raise ConfigError(f"branch {b.code} has no completed run to reload from", table=b.code,
                          hint="run the rehearsal wave first (`ecm wave run PLAN`)")
    return str(runs[0]["run_id"])


def drill(lp: LoadedPlan, code: str, by: str, reason: str) -> dict[str, Any]:
    if lp.plan.mode != "rehearsal":
        raise ConfigError(f"wave {lp.plan.wave} is a production wave: the drill runs on a rehearsal wave only",
                          hint="drill with the rehearsal plan of the same branches")
    target = next((b for b in lp.branches if b.code == code), None)
    if target is None:
        raise ConfigError(f"branch {code} is not in wave {lp.plan.wave}",
                          hint=f"one of {', '.join(b.code for b in lp.branches)}")
    url = target.config.resolved_url("rehearsal_central")
    peers = [b for b in lp.branches if b.config.resolved_url("rehearsal_central") == url]
    bases = {b.code: branch_base_id(b.config.id_cuc_hq, b.config.id_chi_cuc) for b in peers}
    run_id = _completed_run(target)
    t0 = time.time()
    before = {c: window_digest(url, base) for c, base in bases.items()}
    removed = lifecycle.unload(target.config, by, reason, rehearsal=True)
    after_unload = {c: window_digest(url, base) for c, base in bases.items()}
    engine = open_central(url)
    left = sum(branch_counts(engine, bases[code]).values())
    engine.dispose()
    store = ControlStore(target.config.resolved_url("control"))
    pl4_08_load.run(StepContext(target.config, store, run_id))  # the snapshot re-verified, loaded, reconciled
    store.add_branch_event(code, "drill-reload", run_id=run_id, by=by, reason=reason,
                           detail={"wave": lp.plan.wave})
    after_reload = {c: window_digest(url, base) for c, base in bases.items()}
    rows = [{"branch": c, "role": "drilled" if c == code else "unchanged", "before": before[c],
             "after_unload": after_unload[c], "after_reload": after_reload[c],
             "ok": (after_reload[c] == before[c]) and (c == code or after_unload[c] == before[c])} for c in bases]
    report = {"wave": lp.plan.wave, "branch": code, "run_id": run_id, "by": by, "reason": reason,
              "seconds": round(time.time() - t0, 1), "rows_removed": removed, "rows_left_after_unload": left,
              "branches": rows, "ok": left == 0 and all(r["ok"] for r in rows)}
    out = lp.plan.output_dir / lp.plan.wave
    report["files"] = {"json": str(out / f"drill_{code.lower()}.json"),
                       "xlsx": str(out / f"dien_tap_{code.lower()}.xlsx")}
    write_json(out / f"drill_{code.lower()}.json", report)
    write_xlsx(out / f"dien_tap_{code.lower()}.xlsx", {"Diễn tập chuyển đổi và quay lại": (
        ["Chi cục", "Vai trò", "Dấu vân tay trước", "Sau khi gỡ", "Sau khi nạp lại", "Kết quả"],
        [(r["branch"], "Diễn tập" if r["role"] == "drilled" else "Không được thay đổi", r["before"][:16],
          r["after_unload"][:16], r["after_reload"][:16], "Đạt" if r["ok"] else "Không đạt") for r in rows])})
    return report
