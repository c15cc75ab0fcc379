"""Phụ lục IV bước 4 — phục hồi vào CSDL trung gian, kiểm tra cấu trúc và số lượng."""

from __future__ import annotations

import json

from extract import staging
from extract.errors import SchemaMismatch
from extract.legacy_schema import TABLES_BY_DB, expected_schema_json, legacy_table
from extract.package import PackageManifest
from pipelines.steps.base import StepContext, StepOutcome
from validate.expectations import ExpectationResult, SuiteRunner, legacy_suites, render_html
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
    gx_results = []
    try:
        restored = staging.restore(con, root, man)
        # Great Expectations on the restored legacy tables, batch by batch
        runner, suites = SuiteRunner(), legacy_suites(ctx.freeze_time())
        present = {db: staging.restored_columns(con, db) for db in {f.db for f in man.files}}
        for f in man.files:
            name = f"{f.db}.{f.table}"
            if f.rows and f.table in {t.name for t in TABLES_BY_DB.get(f.db, ())}:
                key, specs = list(legacy_table(f.db, f.table).key), suites.get(name, [])
                cols = runner.columns(specs, key, available=present[f.db].get(f.table, {}))
                gx_results += runner.run(name, staging.read_table(con, f.db, f.table, ctx.cfg.batch_rows,
                                                                  columns=cols), specs, key)
    finally:
        con.close()
    render_html("Kiểm tra dữ liệu nguồn sau phục hồi (bước 4)", gx_results, ctx.reports_dir / "gx_buoc4.html")
    ctx.store.add_checks(ctx.run_id, STEP, [gx_check(r) for r in gx_results])
    for r in gx_results:
        if not r.success:
            ctx.store.add_finding(ctx.run_id, STEP, f"gx:{r.expectation}", "source_data_error", "minor", r.table,
                                  r.unexpected_keys, f"{r.unexpected_count} rows fail {r.expectation} on {r.column}")
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


def gx_check(r: ExpectationResult) -> dict[str, object]:
    return {"check_id": f"gx:{r.expectation}", "table_name": r.table, "key": None, "field": r.column,
            "expected": f"0 of {r.element_count} unexpected", "actual": f"{r.unexpected_count} unexpected" +
            (f" ({r.error})" if r.error else ""), "status": "pass" if r.success else "fail"}
