"""Phụ lục IV bước 4 — phục hồi vào CSDL trung gian, kiểm tra cấu trúc và số lượng.

The package is restored through the input contract (extract/contract.py): declared names and types
whatever the branch's spelling and storage forms. Every structural difference is a finding that the
step-4 gate decides (Phụ lục IV 4.2: accept the difference, or redo from step 1):

- an absent optional table (minor: created empty, its checks "not run"),
- an absent required table or a missing column (critical: accepting it = empty table / NULL column),
- values that do not cast to their declared type (major: the rows are quarantined as Q-BAD-VALUE),
- extra columns and columns stored in another accepted form (minor, for the record).

Only a package whose rows do not add up (read ≠ the manifest's rows) stops the step: that is integrity,
not a difference to decide.
"""

from __future__ import annotations

import json

from extract import staging
from extract.custody import verify_package_custody
from extract.errors import PackageIntegrityError
from extract.legacy_schema import legacy_table
from extract.package import PackageManifest
from pipelines.steps.base import StepContext, StepOutcome
from validate.expectations import ExpectationResult, SuiteRunner, legacy_suites, render_html
from validate.findings import Finding
from validate.report import md_table
from validate.schema import SchemaDiff, diffs_from_bindings

STEP = "pl4_04_restore"


def run(ctx: StepContext) -> StepOutcome:
    root = ctx.received_dir
    # the received copy may have changed since step 3 verified it: every file again, right before it is read
    man = verify_package_custody(root, ctx.recorded_package_sha256(), "step 4, before restoring")
    ctx.cfg.staging_path.parent.mkdir(parents=True, exist_ok=True)
    if ctx.cfg.staging_path.exists():
        ctx.cfg.staging_path.unlink()
    con = staging.connect(ctx.cfg.staging_path, memory_limit=ctx.cfg.staging_memory_limit, temp_dir=ctx.cfg.staging_temp_dir)
    gx_results = []
    try:
        restored = staging.restore(con, root, man)
        bad_rows = staging.bad_values(con)
        # Great Expectations on the restored legacy tables (declared names and types), batch by batch
        runner, suites = SuiteRunner(), legacy_suites(ctx.freeze_time())
        for db, bindings in restored.bindings.items():
            present = staging.restored_columns(con, db)
            for b in bindings:
                if not restored.staged.get(b.qualified):
                    continue
                key, specs = list(legacy_table(db, b.table.name).key), suites.get(b.qualified, [])
                cols = runner.columns(specs, key, available=present.get(b.table.name, {}))
                gx_results += runner.run(b.qualified, staging.read_table(con, db, b.table.name, ctx.cfg.batch_rows,
                                                                         columns=cols), specs, key)
    finally:
        con.close()
    render_html("Kiểm tra dữ liệu nguồn sau phục hồi (bước 4)", gx_results, ctx.reports_dir / "gx_buoc4.html")
    ctx.store.add_checks(ctx.run_id, STEP, [gx_check(r) for r in gx_results])
    for r in gx_results:
        if not r.success:
            ctx.store.add_finding(ctx.run_id, Finding.raised(
                STEP, f"gx:{r.expectation}", r.table, r.unexpected_keys,
                f"{r.unexpected_count} rows fail {r.expectation} on {r.column}"))

    # counts: every row of the package is either in staging or set aside with its bad value
    package_rows = _package_rows(man, restored)
    count_rows = [{"check_id": "restored_count", "table_name": k, "key": None, "field": "rows",
                   "expected": str(n), "actual": f"{restored.read.get(k)} ({restored.staged.get(k)} staged, "
                   f"{restored.bad.get(k, 0)} quarantined Q-BAD-VALUE)",
                   "status": "pass" if restored.read.get(k) == n else "fail"} for k, n in sorted(package_rows.items())]
    diffs = [d for db, bs in restored.bindings.items() for d in diffs_from_bindings(db, bs, restored.extra_tables[db])]
    ctx.store.add_checks(ctx.run_id, STEP, count_rows + [d.as_check() for d in diffs])
    ctx.store.add_counts(ctx.run_id, STEP, "restored", [{"table_name": k, "rows": v} for k, v in restored.read.items()])
    bad_counts = [r for r in count_rows if r["status"] == "fail"]
    if bad_counts:
        raise PackageIntegrityError("restored staging differs from the package: " + "; ".join(
            f"{r['table_name']} rows {r['actual']} != {r['expected']}" for r in bad_counts),
            table=str(ctx.cfg.staging_path), hint="copy the package again from the branch (step 3) and re-run")
    _schema_findings(ctx, diffs)
    _bad_value_findings(ctx, bad_rows)
    report = ctx.reports_dir / "buoc4_cau_truc.json"
    report.write_text(json.dumps({
        "differences": [vars(d) for d in diffs],
        "bad_values": [{k: r[k] for k in ("source_table", "source_key", "detail")} for r in bad_rows],
        "tables": {k: {"read": restored.read[k], "staged": restored.staged[k], "bad": restored.bad.get(k, 0)}
                   for k in sorted(restored.read)},
        "spelling": {b.qualified: b.found for bs in restored.bindings.values() for b in bs},
    }, ensure_ascii=False, indent=1), encoding="utf-8")
    total = sum(restored.read.values())
    md = "## Bước 4 — phục hồi vào CSDL trung gian\n\n" + \
        f"{total} rows restored into `{ctx.cfg.staging_path.name}`; counts equal the step-2 report" + \
        (f"; {len(bad_rows)} rows set aside: a value does not cast to its declared type (Q-BAD-VALUE)" if bad_rows else "") + \
        ".\n\n" + (md_table(["db", "table", "column", "kind", "expected", "found"],
                            [(d.db, d.table, d.column, d.kind, d.expected, d.found) for d in diffs], limit=200)
                   if diffs else "Structure equals the expected e-Customs V4 schema.")
    return StepOutcome(rows_in=total, rows_out=total - len(bad_rows), markdown=md,
                       detail={"staging": str(ctx.cfg.staging_path), "schema_differences": len(diffs),
                               "bad_value_rows": len(bad_rows), "structure_report": str(report)})


def _package_rows(man: PackageManifest, restored: staging.Restored) -> dict[str, int]:
    """Rows per table as the package holds them, keyed by the declared spelling (absent tables: 0)."""
    spelling = {(b.db, b.found): b.qualified for bs in restored.bindings.values() for b in bs if b.found}
    out = {b.qualified: 0 for bs in restored.bindings.values() for b in bs}
    for f in man.files:
        out[spelling.get((f.db, f.table), f"{f.db}.{f.table}")] = f.rows
    return out


# finding per kind of difference: its check id (validate/findings.py classifies it) and message
_SCHEMA_FINDING: dict[str, str] = {
    "absent_optional": "schema_absent_optional_table",
    "missing_table": "schema_missing_table",
    "missing": "schema_missing_column",
    "extra": "schema_extra_column",
    "extra_table": "schema_extra_table",
    "retyped": "schema_retyped_column",
}
_SCHEMA_MESSAGE: dict[str, str] = {
    "absent_optional": "{n} optional tables are absent (the branch never used them): restored empty, their "
                       "checks not run",
    "missing_table": "{n} required tables are absent: accepting restores them empty (no rows of theirs are "
                     "converted); otherwise redo from step 1",
    "missing": "{n} required columns are absent: accepting restores them as NULL (recorded); otherwise redo "
               "from step 1",
    "extra": "{n} columns not in the e-Customs V4 schema: kept in the backup package, not converted",
    "extra_table": "{n} tables not in the e-Customs V4 schema: kept in the backup package, counted, not converted",
    "retyped": "{n} columns are stored in another form than declared (e.g. decimal text): cast at restore under "
               "the input contract; values that do not cast are quarantined (Q-BAD-VALUE)",
}


def _schema_findings(ctx: StepContext, diffs: list[SchemaDiff]) -> None:
    """One finding per database and kind of difference, naming every table/column."""
    groups: dict[tuple[str, str], list[str]] = {}
    for d in diffs:
        groups.setdefault((d.db, d.kind), []).append(f"{d.db}.{d.table}" + ("" if d.column == "*" else f".{d.column}")
                                                     + (f" ({d.found})" if d.kind == "retyped" else ""))
    for (db, kind), items in sorted(groups.items()):
        ctx.store.add_finding(ctx.run_id, Finding.raised(
            STEP, _SCHEMA_FINDING[kind], db, items,
            _SCHEMA_MESSAGE[kind].format(n=len(items)) + ": " + ", ".join(items[:12]) +
            (" …" if len(items) > 12 else "")))


def _bad_value_findings(ctx: StepContext, rows: list[dict[str, object]]) -> None:
    by_table: dict[str, list[dict[str, object]]] = {}
    for r in rows:
        by_table.setdefault(str(r["source_table"]), []).append(r)
    for table, rs in sorted(by_table.items()):
        keys = [f"{r['source_key']}: {r['detail']}" for r in rs]
        ctx.store.add_finding(ctx.run_id, Finding.raised(
            STEP, "bad_value", table, keys,
            f"{len(rs)} rows of {table} hold a value that does not cast to its declared type; they "
            f"are quarantined (Q-BAD-VALUE), e.g. {rs[0]['detail']}. Correct them at the branch "
            "(step 1) or accept that they are not migrated"))


def gx_check(r: ExpectationResult) -> dict[str, object]:
    return {"check_id": f"gx:{r.expectation}", "table_name": r.table, "key": None, "field": r.column,
            "expected": f"0 of {r.element_count} unexpected", "actual": f"{r.unexpected_count} unexpected" +
            (f" ({r.error})" if r.error else ""), "status": "pass" if r.success else "fail"}
