"""Phụ lục IV bước 3 — bàn giao: copy the package to the HQ inbox and verify it on receipt."""

from __future__ import annotations

import json

from extract.custody import verify_package_custody
from extract.package import copy_package, verify_package
from pipelines.steps.base import StepContext, StepOutcome
from sign_off.signing import verify_minutes
from validate.crosscheck import cross_check
from validate.findings import Finding
from validate.report import md_table

STEP = "pl4_03_handover"


def run(ctx: StepContext) -> StepOutcome:
    # the sent package is step 2's (its manifest hashes as recorded, every file as its manifest says); the received
    # copy then has that same manifest and every file hashing to it (verify_package): the chain holds on receipt
    sent = verify_package_custody(ctx.package_dir, ctx.recorded_package_sha256(), "step 3, before sending")
    received = copy_package(ctx.package_dir, ctx.received_dir)
    man = verify_package(received, expected=sent)
    total = sum(f.rows for f in man.files)
    report = json.loads((received / "reports" / "buoc2_bao_cao_thong_ke.json").read_text(encoding="utf-8"))
    stock = json.loads((received / "reports" / "buoc1_bang_ke_chot_ton.json").read_text(encoding="utf-8"))
    sc = ctx.cfg.sampling
    cross = cross_check(received, man.rows(), report, stock, ctx.cfg.offices, sc.seed, sc.confidence,
                        sc.max_defect_rate, [(f.db, f.table, f.path) for f in man.files])
    ctx.store.add_checks(ctx.run_id, STEP, cross)
    failed: dict[str, list[str]] = {}
    for c in cross:
        if c["status"] == "fail":
            failed.setdefault(c["check_id"], []).append(f"{c['table_name']}|{c['key']}: report {c['expected']}, "
                                                        f"package {c['actual']}")
    # the backup report's signature is verified on receipt, before anything is restored
    trust, crls, others = ctx.signing_anchors()
    if trust:
        v = verify_minutes(received / "reports" / "buoc2_bao_cao_sao_luu.pdf", trust, crls, others,
                           required=["chi-cuc-technical"], revocation=ctx.cfg.signing.revocation)
        sig_check = {"check_id": "backup_report_signature", "table_name": "buoc2_bao_cao_sao_luu.pdf", "key": None,
                      "field": "chi-cuc-technical", "expected": "signed and verified",
                      "actual": "; ".join(v.problems()) or "signed and verified", "status": "pass" if v.ok else "fail"}
        cross.append(sig_check)
        ctx.store.add_checks(ctx.run_id, STEP, [sig_check])
        if not v.ok:
            failed.setdefault("backup_report_signature", []).extend(v.problems())
    for cid, keys in failed.items():
        ctx.store.add_finding(ctx.run_id, Finding.raised(
            STEP, cid, None, keys, f"{len(keys)} differences between the package and the reports handed over with it"))
    ctx.store.add_checks(ctx.run_id, STEP, [
        {"check_id": "package_file", "table_name": f.path, "key": None, "field": "sha256+rows",
         "expected": f"{f.sha256}:{f.rows}", "actual": f"{f.sha256}:{f.rows}", "status": "pass"} for f in man.files])
    md = f"## Bước 3 — bàn giao\n\nReceived at `{received}`; {len(man.files)} files verified " \
         f"(SHA-256 and row counts); {len(cross)} cross-checks against the handed-over reports, " \
         f"{sum(len(v) for v in failed.values())} differences.\n\n" + md_table(["file", "rows", "sha256"],
                                                    [(f.path, f.rows, f.sha256[:16] + "…") for f in man.files])
    return StepOutcome(rows_in=total, rows_out=total, markdown=md,
                       detail={"received": str(received), "files_verified": len(man.files),
                               "cross_checks": len(cross), "cross_check_differences": sum(len(v) for v in failed.values())})
