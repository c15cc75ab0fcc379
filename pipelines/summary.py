"""The run summary (summary.json): steps with status, rows and seconds, plus the paths produced."""

from __future__ import annotations

from typing import Any

from extract.source import sqlite_path
from load.control_store import ControlStore
from pipelines.config import BranchConfig
from validate.report import write_json
from validate.run_report import write_run_report


def build_summary(cfg: BranchConfig, store: ControlStore, run_id: str) -> dict[str, Any]:
    run = store.run(run_id) or {}
    steps = store.steps(run_id)
    run_dir = cfg.run_dir_root / run_id
    detail = {s.step: s.detail for s in steps}
    central_url = cfg.resolved_url("rehearsal_central" if cfg.rehearsal else "central")
    cp = sqlite_path(central_url)
    return {
        "run_id": run_id, "branch": cfg.branch_code, "status": run.get("status"), "rehearsal": cfg.rehearsal,
        "steps": [{"name": s.step, "status": s.status, "rows_in": s.rows_in, "rows_out": s.rows_out,
                   "seconds": round(s.seconds or 0, 3)} for s in sorted(steps, key=lambda s: s.step)
                  if s.step.startswith("pl4_")],
        "decision_gates": [{"name": s.step, "status": s.status, "seconds": round(s.seconds or 0, 3), **s.detail}
                           for s in steps if s.step.startswith("gate_")],
        "findings": _findings_summary(store.findings(run_id)),
        "paths": {
            "package": str(run_dir / "package"), "received": detail.get("pl4_03_handover", {}).get("received"),
            "reports": str(run_dir / "reports"), "snapshot": str(run_dir / "converted"),
            "minutes": detail.get("pl4_07_sign_off", {}).get("minutes"),
            "evidence": detail.get("pl4_07_sign_off", {}).get("evidence"),
            "central_database": str(cp) if cp else "(server database)", "staging": str(cfg.staging_path),
        },
        "minutes_signed": detail.get("pl4_07_sign_off", {}).get("signed", False),
        "central_rows": detail.get("pl4_08_load", {}).get("rows", {}),
        "converted_rows": detail.get("pl4_05_convert", {}).get("central_rows", {}),
        "fates": detail.get("pl4_05_convert", {}).get("fates", {}),
    }


def _findings_summary(findings: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in findings:
        k = f"{f['severity']}/{f['status']}"
        out[k] = out.get(k, 0) + 1
    return dict(sorted(out.items()))


def write_summary(cfg: BranchConfig, store: ControlStore, run_id: str, _steps: list[Any]) -> dict[str, Any]:
    reports = cfg.run_dir_root / run_id / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    xlsx, page = write_run_report(store, run_id, reports, cfg.staging_path)
    s = build_summary(cfg, store, run_id)
    s["paths"]["business_report_xlsx"] = str(xlsx)
    s["paths"]["business_report_html"] = str(page)
    write_json(cfg.output_dir / "summary.json", s)
    write_json(cfg.run_dir_root / run_id / "summary.json", s)
    return s
