"""Phụ lục IV bước 8 — nạp vào CSDL tập trung và phân quyền người dùng Chi cục.

Gate: the minutes must be signed; until signing exists only a rehearsal run (6277/TCHQ trial run)
may load, and it loads into the separate rehearsal central.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq

from extract import staging
from extract.package import sha256_file
from extract.source import redact
from load.central import WINDOW, branch_counts, central_integrity, iter_branch_rows, load_branch, open_central
from load.central_model import CENTRAL, LOAD_ORDER, central_metadata
from load.errors import LoadError, LoadRefused
from pipelines.steps.base import StepContext, StepOutcome
from pipelines.steps.pl4_05_convert import REGISTRY_FILE
from pipelines.steps.users import add_unknown_roles, branch_users
from sign_off import audit_folder
from sign_off.signing import verify_minutes
from transform import registry
from transform.errors import SignOffError
from transform.scope import target_in_scope
from validate.findings import Finding
from validate.fingerprint import reconcile
from validate.fingerprint_sql import kind_of, reconcile_pushdown
from validate.report import md_table, write_json
from validate.run_report import write_load_report_html

STEP = "pl4_08_load"


def _refuse_uncovered(ctx: StepContext, allowed: set[str]) -> None:
    """Under the 2025 codes, every office code in the snapshot must be one of the table's new codes."""
    found: set[str] = set()
    for spec in CENTRAL.values():
        cols = [c for c, _ in spec.columns if c in ("MA_HQ", "MA_HQ_HD")]
        if cols:
            t = pq.read_table(ctx.snapshot_dir / f"{spec.name}.parquet", columns=cols)
            for c in cols:
                found |= {v for v in t.column(c).unique().to_pylist() if v}
    gap = sorted(found - allowed)
    if gap:
        raise LoadRefused(f"the snapshot holds office codes the 2025 office table does not produce: {', '.join(gap)}",
                          table=str(ctx.cfg.office_table_2025),
                          hint="re-run step 5 with the same office table, or complete the table")


def run(ctx: StepContext) -> StepOutcome:
    cfg, store, rid = ctx.cfg, ctx.store, ctx.run_id
    minutes = [d for d in store.documents(rid) if d["kind"] == "minutes"]
    if not cfg.rehearsal:  # the gate: the minutes must verify completely, right now, offline
        if not minutes:
            raise LoadRefused("there are no minutes for this run", hint="run step 7 first")
        pdf = Path(minutes[-1]["path"])
        v = verify_minutes(pdf, *ctx.signing_anchors(), ctx.run_dir / "evidence",
                           revocation=cfg.signing.revocation)
        if not v.ok:
            raise LoadRefused("the minutes are not signed and verified; only a rehearsal run may load them: "
                              + "; ".join(v.problems()[:8]) + ("" if cfg.signing.revocation == "required" else
                                                               " (revocation not checked: none available by "
                                                               "configuration)"), table=pdf.name,
                              hint="collect the missing signatures with `ecm sign`, or re-run with "
                                   "`ecm run --rehearsal` to load the rehearsal central")
    url = cfg.resolved_url("rehearsal_central" if cfg.rehearsal else "central")
    table_2025 = cfg.offices_2025()
    if table_2025 is not None:
        _refuse_uncovered(ctx, table_2025.new_codes())
    users, unknown = branch_users(cfg)
    if unknown and not any(f["check_id"] == "unknown_role" for f in store.findings(rid)):
        add_unknown_roles(ctx, STEP, unknown)  # normally already raised at step 6, before the minutes
    # the snapshot the signers vouched for, every file re-hashed right before it is loaded
    snap = ctx.verified_snapshot("step 8, before loading")
    engine = open_central(url)
    owned = {t for t in LOAD_ORDER if target_in_scope(t, cfg.scope)}
    before = branch_counts(engine, ctx.base_id)
    t_load = time.perf_counter()
    loaded = load_branch(engine, ctx.snapshot_dir, ctx.base_id, cfg.branch_code, users,
                         {r: r for u in users for r in u["roles"]}, tables=owned, append=cfg.incremental,
                         entry={"RUN_ID": rid, "SNAPSHOT_SHA256": snap["snapshot_sha256"],
                                "MINUTES_SHA256": minutes[-1]["sha256"] if minutes else None,
                                "BY_WHOM": "ecm (step 8)", "REASON": "Phụ lục IV bước 8"})
    load_secs = time.perf_counter() - t_load
    n_loaded = sum(loaded.get(k, 0) for k in owned)
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
    # central's own invariants: keys unique and references resolvable, on central itself
    integrity = central_integrity(engine, ctx.base_id, owned)
    # an unresolved reference the business already saw in the snapshot (step 6) and accepted stays as
    # accepted; anything beyond it was introduced by the load and fails
    known = {(c["table_name"], c["key"]): c["actual"] for c in store.checks(rid, "pl4_06_validate")
             if c["check_id"] == "snapshot_reference"}
    accepted = any(f["check_id"] == "snapshot_reference" and f["decision"] == "accept" for f in store.findings(rid))
    for c in integrity:
        if (c["status"] == "fail" and c["check_id"] == "central_reference" and accepted
                and known.get((c["table_name"], c["key"])) == c["actual"]):
            c["status"] = "warn"
            c["expected"] = f"{c['actual']} (accepted at step 6)"
    store.add_checks(rid, STEP, integrity)
    broken = [c for c in integrity if c["status"] == "fail"]
    if broken:
        raise LoadError("central's invariants do not hold after the load: " +
                        "; ".join(f"{c['table_name']} {c['key']}: {c['actual']}" for c in broken),
                        hint="do not open the branch in central; `ecm unload` it and investigate step 5")
    # the proof: every row of the branch in central equals the converted snapshot, column by column
    recs = []
    t0 = time.perf_counter()
    # set work in the databases (PostgreSQL through psycopg 3); otherwise the streaming merge-join
    pushdown = engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"
    model = central_metadata()
    for name in sorted(owned):
        spec = CENTRAL[name]
        cols = [c for c, _ in spec.columns]
        if pushdown:
            kinds = [(c, kind_of(model.tables[name].c[c].type)) for c in cols]
            where = f'"{spec.window}" > {ctx.base_id} AND "{spec.window}" <= {ctx.base_id + WINDOW}'
            recs.append(reconcile_pushdown(name, list(spec.key), kinds, ctx.snapshot_dir / f"{name}.parquet",
                                           engine, where, allow_extra=cfg.incremental,
                                           bucket_col=spec.window))
            continue
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
        store.add_finding(rid, Finding.raised(
            STEP, "central_mismatch", None, keys,
            f"{sum(r.n_diffs for r in bad)} rows of central differ from the converted snapshot"))
        raise LoadError(f"central differs from the converted snapshot in {', '.join(r.table for r in bad)} "
                        f"({sum(r.n_diffs for r in bad)} rows); see {recon_path.name}", table=str(recon_path),
                        hint="do not open the branch in central; re-run step 8 and investigate the drill-down")
    # the IDs this run issued are now in central: remember them, so no later run issues them again
    delta = (b.to_pylist() for b in pq.ParquetFile(ctx.snapshot_dir / REGISTRY_FILE).iter_batches(batch_size=10_000))
    replace = () if cfg.incremental else tuple(k for k in registry.KINDS
                                                if target_in_scope(registry.TABLE_OF_KIND[k], cfg.scope))
    store.commit_registry(cfg.branch_code, rid, delta, replace_kinds=replace)
    kind = "rehearsal" if cfg.rehearsal else "production"
    throughput = round(n_loaded / load_secs) if load_secs > 0 else None
    store.add_branch_event(cfg.branch_code, "load", run_id=rid, target=f"{kind} {redact(url)}", by="ecm (step 8)",
                           reason="Phụ lục IV bước 8", detail={"rows": n_loaded, "seconds": round(load_secs, 3),
                                                               "rows_per_second": throughput})
    if not cfg.rehearsal:
        store.add_branch_event(cfg.branch_code, "migrated", run_id=rid, target=redact(url), by="ecm (step 8)",
                               reason="central verified row by row against the signed snapshot")
    minutes_sha = minutes[-1]["sha256"] if minutes else None
    minutes_signed = _minutes_signed(Path(minutes[-1]["path"])) if minutes else None
    state = store.branch_state(cfg.branch_code)
    report = write_json(ctx.reports_dir / audit_folder.LOAD_REPORT, {
        "branch": cfg.branch_code, "run_id": rid, "central": kind, "central_url": redact(url),
        "loaded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "snapshot_sha256": snap["snapshot_sha256"], "minutes_sha256": minutes_sha,
        # the bytes the last signature covers: stays true when archive time-stamps are appended later
        "minutes_signed": minutes_signed, "tool": audit_folder.tool_versions(),
        "load": {"engine": engine.dialect.name, "method": "binary COPY" if engine.dialect.name == "postgresql"
                 else "executemany", "rows": n_loaded, "seconds": round(load_secs, 3), "rows_per_second": throughput},
        "integrity": integrity,  # status pass, or warn = the unresolved references accepted at step 6
        "reconciliation": [{"table": r.table, "rows": r.rows_snapshot, "digest": r.digest, "differences": r.n_diffs}
                           for r in recs],
        "proof": ("Mọi dòng của Chi cục trong CSDL tập trung trùng khớp từng cột với bản chụp dữ liệu đã chuyển "
                  "đổi có mã băm snapshot_sha256 ghi trong biên bản đã ký."),
        "sources_frozen": state["frozen"],
        "rows": in_central, "users": len(users), "unknown_roles": unknown,
        "decommission": ["Gỡ bỏ service, ứng dụng e-Customs V4 tại Chi cục (Phụ lục IV, mục I.2)",
                         "Thu hồi tài khoản người dùng e-Customs V4 tại Chi cục (đã cấp quyền trên hệ thống tập trung)",
                         "Giữ CSDL nguồn SLXNK, SXXK ở chế độ READ ONLY (không gỡ băng) đến khi hết thời hạn lưu trữ",
                         "Lưu bản sao lưu (gói Parquet và bản sao lưu gốc) cùng biên bản đã ký"]})
    report_html = write_load_report_html(json.loads(report.read_text(encoding="utf-8")),
                                         ctx.reports_dir / "buoc8_bao_cao_nap.html")
    store.add_document(rid, "load_report", str(report_html), sha256_file(report_html), False,
                       "Báo cáo nạp dữ liệu (HTML, ngoại tuyến)")
    folder_note = _audit_folder(ctx, Path(minutes[-1]["path"]), report) if minutes_signed else None
    total = n_loaded
    md = (f"## Bước 8 — nạp CSDL tập trung ({'CHẠY THỬ' if cfg.rehearsal else 'chính thức'})\n\n{total} rows "
          f"({engine.dialect.name}, {round(load_secs, 2)} s, {throughput} rows/s); {len(users)} users.\n\n" + md_table(["table", "rows"], sorted(in_central.items())))
    return StepOutcome(rows_in=sum(snap_rows.values()), rows_out=total, markdown=md, detail={
        "scope": cfg.scope, "incremental": cfg.incremental, "inserted": {k: loaded.get(k, 0) for k in owned},
        "reconciled_rows": sum(r.rows_snapshot for r in recs), "reconcile_seconds": round(recon_secs, 3),
        "reconcile_method": "pushdown (PostgreSQL + DuckDB)" if pushdown else "streaming merge-join",
        "load_seconds": round(load_secs, 3), "load_rows_per_second": throughput,
        "reconciliation": str(recon_path),
        "central": "rehearsal" if cfg.rehearsal else "production", "rows": in_central, "users": loaded.get(
            "CENTRAL_USER", 0), "load_report": str(report), "load_report_html": str(report_html),
        "audit_folder": folder_note})


def _minutes_signed(pdf: Path) -> dict[str, object] | None:
    try:
        length, digest = audit_folder.signed_prefix(pdf)
    except (SignOffError, OSError):
        return None  # a rehearsal run's unsigned minutes
    return {"file": pdf.name, "bytes": length, "sha256": digest}


def _audit_folder(ctx: StepContext, pdf: Path, report: Path) -> dict[str, str]:
    """The auditor's folder and its archive (sign_off/audit_folder.py), the load report time-stamped first."""
    from pipelines.steps.pl4_07_sign_off import config_services
    from sign_off.ltv import last_archive_timestamp
    from sign_off.trust_services import running_services
    cfg = ctx.cfg
    services = config_services(cfg)
    if cfg.signing.demo_pki:
        with running_services(ctx.pki_dir) as demo:
            audit_folder.time_stamp_file(report, demo.tsa_url)
    elif services is not None:
        audit_folder.time_stamp_file(report, services.tsa_url)
    trust, crls, others = ctx.signing_anchors()
    last = last_archive_timestamp(pdf)
    extra = {}
    if last is not None:
        from asn1crypto import pem
        extra["tsa_luu_tru.pem"] = pem.armor("CERTIFICATE", last[1].dump())
    folder = ctx.run_dir / f"ho_so_kiem_tra_{ctx.run_id}"
    guide = audit_folder.guide_text(run_id=ctx.run_id, branch=cfg.branch_code, branch_name=cfg.branch_name,
                                    roots=audit_folder.fingerprints(trust), demo=cfg.signing.demo_pki,
                                    tsa=last is not None, root_file=trust[0].name if trust else "<tệp gốc>.pem",
                                    intermediate_file=others[0].name if others else "<chứng thư trung gian>.pem")
    archive, digest = audit_folder.build(folder, audit_folder.FolderInputs(
        run_id=ctx.run_id, branch=cfg.branch_code, minutes=pdf, evidence_dir=ctx.run_dir / "evidence",
        reports_dir=ctx.reports_dir, trust=trust, intermediates=others, crls=crls, extra_certs=extra), guide)
    ctx.store.add_document(ctx.run_id, "audit_folder", str(archive), digest, True,
                           f"hồ sơ kiểm tra (thư mục {folder.name}, SHA256SUMS; tệp nén + .sha256)")
    return {"folder": str(folder), "archive": str(archive), "archive_sha256": digest}
