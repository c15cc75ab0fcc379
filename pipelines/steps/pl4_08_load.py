"""Phụ lục IV bước 8 — nạp vào CSDL tập trung và phân quyền người dùng Chi cục.

Gate: the minutes must be signed; until signing exists only a rehearsal run (6277/TCHQ trial run)
may load, and it loads into the separate rehearsal central.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow.parquet as pq

from extract import staging
from load.central import branch_counts, iter_branch_rows, load_branch, open_central
from load.central_model import CENTRAL, LOAD_ORDER
from load.errors import LoadError, LoadRefused
from load.snapshot import read_manifest
from pipelines.steps.base import StepContext, StepOutcome
from pipelines.steps.pl4_05_convert import REGISTRY_FILE
from sign_off.signing import verify_minutes
from transform import registry
from transform.codes import new_office_code, office_map
from transform.roles import map_user_roles
from transform.scope import target_in_scope
from validate.fingerprint import reconcile
from validate.report import md_table, write_json

STEP = "pl4_08_load"


def run(ctx: StepContext) -> StepOutcome:
    cfg, store, rid = ctx.cfg, ctx.store, ctx.run_id
    minutes = [d for d in store.documents(rid) if d["kind"] == "minutes"]
    if not cfg.rehearsal:  # the gate: the minutes must verify completely, right now, offline
        if not minutes:
            raise LoadRefused("there are no minutes for this run", hint="run step 7 first")
        pdf = Path(minutes[-1]["path"])
        v = verify_minutes(pdf, *ctx.signing_anchors(), ctx.run_dir / "evidence")
        if not v.ok:
            raise LoadRefused("the minutes are not signed and verified; only a rehearsal run may load them: "
                              + "; ".join(v.problems()[:8]), table=pdf.name,
                              hint="collect the missing signatures with `ecm sign`, or re-run with "
                                   "`ecm run --rehearsal` to load the rehearsal central")
    url = cfg.resolved_url("rehearsal_central" if cfg.rehearsal else "central")
    omap = office_map(cfg.office_map)
    if cfg.users_file and not cfg.users_file.exists():
        raise LoadError(f"the branch users file is missing: {cfg.users_file}", table=str(cfg.users_file),
                        hint="export the branch's users (login, full_name, legacy_roles, office) to that file")
    users_raw = json.loads(cfg.users_file.read_text(encoding="utf-8")) if cfg.users_file else []
    users, unknown = map_user_roles(users_raw, lambda o: new_office_code(o, omap) or o)
    if unknown:
        store.add_finding(rid, STEP, "unknown_role", "mapping_gap", "minor", "users", unknown,
                          f"{len(unknown)} legacy roles have no central role; those grants were not made")
    engine = open_central(url)
    snap = read_manifest(ctx.snapshot_dir)
    owned = {t for t in LOAD_ORDER if target_in_scope(t, cfg.scope)}
    before = branch_counts(engine, ctx.base_id)
    loaded = load_branch(engine, ctx.snapshot_dir, ctx.base_id, cfg.branch_code, users,
                         {r: r for u in users for r in u["roles"]}, tables=owned, append=cfg.incremental)
    in_central = branch_counts(engine, ctx.base_id)
    snap_rows = {k: v["rows"] for k, v in snap["tables"].items()}  # type: ignore[union-attr]
    # what central must hold now: the snapshot for owned tables (plus earlier rows when appending),
    # and exactly what it held before for the tables this run does not own
    expected = {k: (snap_rows[k] + (before[k] if cfg.incremental else 0)) if k in owned else before[k]
                for k in snap_rows}
    diff = {k: (expected[k], in_central.get(k)) for k in expected if expected[k] != in_central.get(k)}
    store.add_counts(rid, STEP, "central", [{"table_name": k, "rows": v} for k, v in in_central.items()])
    if diff:
        raise LoadError("central row counts differ from the converted snapshot: " +
                        "; ".join(f"{k}: snapshot {a}, central {b}" for k, (a, b) in diff.items()),
                        hint="do not open the branch in central; investigate and re-run step 8")
    # the proof: every row of the branch in central equals the converted snapshot, column by column
    recs = []
    t0 = time.perf_counter()
    for name in sorted(owned):
        spec = CENTRAL[name]
        cols = [c for c, _ in spec.columns]
        recs.append(reconcile(name, list(spec.key), cols,
                              staging.iter_parquet_sorted(ctx.snapshot_dir / f"{name}.parquet", list(spec.key)),
                              iter_branch_rows(engine, name, ctx.base_id), allow_extra=cfg.incremental))
    recon_secs = time.perf_counter() - t0
    store.add_checks(rid, STEP, [{"check_id": "central_fingerprint", "table_name": r.table, "key": None,
                                  "field": f"{r.rows_snapshot} rows", "expected": r.digest,
                                  "actual": f"{r.n_diffs} differences", "status": "pass" if not r.n_diffs else "fail"}
                                 for r in recs])
    bad = [r for r in recs if r.n_diffs]
    recon_path = write_json(ctx.reports_dir / "buoc8_doi_chieu_tung_dong.json", [
        {"table": r.table, "rows_snapshot": r.rows_snapshot, "rows_central": r.rows_central, "digest": r.digest,
         "differences": r.n_diffs, "drill_down": [vars(d) for d in r.diffs]} for r in recs])
    if bad:
        keys = [f"{d.table}|{d.key}|{d.kind}|{','.join(d.columns)}" for r in bad for d in r.diffs]
        store.add_finding(rid, STEP, "central_mismatch", "load_error", "critical", None, keys,
                          f"{sum(r.n_diffs for r in bad)} rows of central differ from the converted snapshot")
        raise LoadError(f"central differs from the converted snapshot in {', '.join(r.table for r in bad)} "
                        f"({sum(r.n_diffs for r in bad)} rows); see {recon_path.name}", table=str(recon_path),
                        hint="do not open the branch in central; re-run step 8 and investigate the drill-down")
    # the IDs this run issued are now in central: remember them, so no later run issues them again
    delta = pq.read_table(ctx.snapshot_dir / REGISTRY_FILE).to_pylist()
    replace = () if cfg.incremental else tuple(k for k in registry.KINDS
                                                if target_in_scope(registry.TABLE_OF_KIND[k], cfg.scope))
    store.commit_registry(cfg.branch_code, rid, delta, replace_kinds=replace)
    report = write_json(ctx.reports_dir / "buoc8_bao_cao_nap.json", {
        "central": "rehearsal" if cfg.rehearsal else "production", "snapshot_sha256": snap["snapshot_sha256"],
        "rows": in_central, "users": len(users), "unknown_roles": unknown,
        "decommission": ["Gỡ bỏ service, ứng dụng e-Customs V4 tại Chi cục (Phụ lục IV, mục I.2)",
                         "Giữ CSDL nguồn ở chế độ READ ONLY đến khi hết thời hạn lưu trữ"]})
    total = sum(loaded.get(k, 0) for k in owned)
    md = (f"## Bước 8 — nạp CSDL tập trung ({'CHẠY THỬ' if cfg.rehearsal else 'chính thức'})\n\n{total} rows; "
          f"{len(users)} users.\n\n" + md_table(["table", "rows"], sorted(in_central.items())))
    return StepOutcome(rows_in=sum(snap_rows.values()), rows_out=total, markdown=md, detail={
        "scope": cfg.scope, "incremental": cfg.incremental, "inserted": {k: loaded.get(k, 0) for k in owned},
        "reconciled_rows": sum(r.rows_snapshot for r in recs), "reconcile_seconds": round(recon_secs, 3),
        "reconciliation": str(recon_path),
        "central": "rehearsal" if cfg.rehearsal else "production", "rows": in_central, "users": loaded.get(
            "CENTRAL_USER", 0), "load_report": str(report)})
