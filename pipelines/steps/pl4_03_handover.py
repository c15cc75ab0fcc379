"""Phụ lục IV bước 3 — bàn giao: copy the package to the HQ inbox and verify it on receipt."""

from __future__ import annotations

from extract.package import PackageManifest, copy_package, verify_package
from pipelines.steps.base import StepContext, StepOutcome
from validate.report import md_table

STEP = "pl4_03_handover"


def run(ctx: StepContext) -> StepOutcome:
    sent = PackageManifest.read(ctx.package_dir)
    received = copy_package(ctx.package_dir, ctx.received_dir)
    man = verify_package(received, expected=sent)
    total = sum(f.rows for f in man.files)
    ctx.store.add_checks(ctx.run_id, STEP, [
        {"check_id": "package_file", "table_name": f.path, "key": None, "field": "sha256+rows",
         "expected": f"{f.sha256}:{f.rows}", "actual": f"{f.sha256}:{f.rows}", "status": "pass"} for f in man.files])
    md = f"## Bước 3 — bàn giao\n\nReceived at `{received}`; {len(man.files)} files verified " \
         f"(SHA-256 and row counts).\n\n" + md_table(["file", "rows", "sha256"],
                                                    [(f.path, f.rows, f.sha256[:16] + "…") for f in man.files])
    return StepOutcome(rows_in=total, rows_out=total, markdown=md,
                       detail={"received": str(received), "files_verified": len(man.files)})
