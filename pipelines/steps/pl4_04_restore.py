"""Phụ lục IV bước 4 — phục hồi vào CSDL trung gian, kiểm tra cấu trúc và số lượng."""

from __future__ import annotations

import json

from extract import staging
from extract.errors import SchemaMismatch
from extract.legacy_schema import expected_schema_json
from extract.package import PackageManifest
from pipelines.steps.base import StepContext, StepOutcome
from validate.schema import compare_schema
from validate.report import md_table

STEP = "pl4_04_restore"


def run(ctx: StepContext) -> StepOutcome:
    root = ctx.received_dir
    man = PackageManifest.read(root)
    ctx.cfg.staging_path.parent.mkdir(parents=True, exist_ok=True)
    if ctx.cfg.staging_path.exists():
        ctx.cfg.staging_path.unlink()
    con = staging.connect(ctx.cfg.staging_path)
    try:
        restored = staging.restore(con, root, man)
    finally:
        con.close()
    diffs = []
    for db, sf in man.schema_files.items():
        found = json.loads((root / sf["path"]).read_text(encoding="utf-8"))
        diffs += compare_schema(db, expected_schema_json(db), found)
    count_rows = []
    for f in man.files:
        k = f"{f.db}.{f.table}"
        count_rows.append({"check_id": "restored_count", "table_name": k, "key": None, "field": "rows",
                           "expected": str(f.rows), "actual": str(restored.get(k)),
                           "status": "pass" if restored.get(k) == f.rows else "fail"})
    ctx.store.add_checks(ctx.run_id, STEP, count_rows + [d.as_check() for d in diffs])
    ctx.store.add_counts(ctx.run_id, STEP, "restored", [{"table_name": k, "rows": v} for k, v in restored.items()])
    bad_counts = [r for r in count_rows if r["status"] == "fail"]
    blocking = [d for d in diffs if d.kind == "missing"]
    if bad_counts or blocking:
        what = "; ".join([f"{r['table_name']} rows {r['actual']} != {r['expected']}" for r in bad_counts] +
                         [str(d) for d in blocking])
        raise SchemaMismatch(f"restored staging differs from the package: {what}", table=str(ctx.cfg.staging_path),
                             hint="decide with the branch: accept the difference or redo from step 1")
    total = sum(restored.values())
    md = "## Bước 4 — phục hồi vào CSDL trung gian\n\n" + \
        f"{total} rows restored into `{ctx.cfg.staging_path.name}`; counts equal the step-2 report.\n\n" + \
        (md_table(["db", "table", "column", "kind", "expected", "found"],
                  [(d.db, d.table, d.column, d.kind, d.expected, d.found) for d in diffs])
         if diffs else "Structure equals the expected e-Customs V4 schema.")
    return StepOutcome(rows_in=total, rows_out=total, markdown=md,
                       detail={"staging": str(ctx.cfg.staging_path), "schema_differences": len(diffs)})
