"""Phụ lục IV bước 5.2/6 — kiểm tra, đối chiếu: counts before/after, balances, seeded sample."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pyarrow.parquet as pq
import sqlalchemy as sa
from prefect.artifacts import create_table_artifact

from extract import staging
from load.central_model import CENTRAL
from pipelines.config import BranchConfig
from pipelines.steps.base import StepContext, StepOutcome
from pipelines.steps.pl4_04_restore import gx_check
from pipelines.steps.users import add_unknown_roles, branch_users
from transform.codes import new_office_code, office_map
from transform.scope import target_in_scope
from validate.expectations import SuiteRunner, converted_suites, render_html
from validate.findings import Finding
from validate.reconcile import (
    central_declarations,
    central_declarations_by_office,
    central_stock,
    declarations_by_office,
    eligible_declarations,
    quarantined_declarations,
    snapshot_declarations,
    snapshot_integrity,
    stock_balance,
)
from validate.report import md_table, write_xlsx
from validate.run_report import write_run_report
from validate.sample_check import compare, sample_rows, source_rows
from validate.sampling import CORRESPONDENCE, STRATA

STEP = "pl4_06_validate"


def run(ctx: StepContext) -> StepOutcome:
    cfg = ctx.cfg
    ctx.verified_snapshot("step 6, before validating")
    con = staging.connect(cfg.staging_path, read_only=True, memory_limit=cfg.staging_memory_limit, temp_dir=cfg.staging_temp_dir)
    checks: list[dict[str, Any]] = []
    try:
        decl_scope = cfg.scope != "catalogs"
        earlier_decls: dict[tuple[str, str], int] = {}
        earlier_stock: dict[tuple[str, str], Decimal] = {}
        if cfg.incremental:  # what earlier runs already put in central counts as "after" too
            central = sa.create_engine(cfg.resolved_url("rehearsal_central" if cfg.rehearsal else "central"))
            earlier_decls = central_declarations(central, ctx.base_id)
            earlier_stock = central_stock(central, ctx.base_id)
        # 1. counts before/after by source DB × type (Số liệu TRƯỚC / SAU chuyển đổi)
        before = eligible_declarations(con, cfg.offices) if decl_scope else {}
        after = snapshot_declarations(con, ctx.snapshot_dir) if decl_scope else {}
        for k, v in earlier_decls.items():
            after[k] = after.get(k, 0) + v
        quarantined = quarantined_declarations(con)
        omap = office_map(cfg.office_map)
        by_office = declarations_by_office(
            con, ctx.snapshot_dir, cfg.offices, lambda o: new_office_code(o, omap) or o,
            central_declarations_by_office(central, ctx.base_id) if cfg.incremental else None) if decl_scope else []
        count_rows = []
        for k in sorted(set(before) | set(after)):
            b, a = before.get(k, 0), after.get(k, 0)
            q = quarantined.get(k, 0)
            status = "pass" if b == a + q else "fail"
            count_rows.append((k[0], k[1], b, a, q, status))
            checks.append({"check_id": "count_before_after", "table_name": "DTO_KHAI_MD", "key": f"{k[0]}|{k[1]}",
                           "field": "rows", "expected": str(b), "actual": str(a + q), "status": status})
        # 2. business balance: stock per enterprise × material
        bal = stock_balance(con, ctx.snapshot_dir, cfg.offices) if decl_scope else {}
        for k, v in earlier_stock.items():
            src, dst = bal.get(k, (Decimal(0), Decimal(0)))
            bal[k] = (src, dst + v)
        for (dv, npl), (src, dst) in sorted(bal.items()):
            status = "pass" if src == dst else "fail"
            checks.append({"check_id": "stock_balance", "table_name": "DSX_NPL_NHAP_TL", "key": f"{dv}|{npl}",
                           "field": "TON", "expected": str(src), "actual": str(dst), "status": status})
        # 3. the converted tables: keys unique, references resolvable (SQL), and the GX suites (batch by batch)
        owned = {t for t in CENTRAL if target_in_scope(t, cfg.scope)}
        checks.extend(snapshot_integrity(con, ctx.snapshot_dir, {t: CENTRAL[t].key for t in CENTRAL}, owned))
        runner, suites = SuiteRunner(), converted_suites(sorted(_new_offices(cfg)))
        gx_results = []
        for t in sorted(owned):
            pf = pq.ParquetFile(ctx.snapshot_dir / f"{t}.parquet")
            if pf.metadata.num_rows:
                key, specs = list(CENTRAL[t].key), suites.get(t, [])
                cols = runner.columns(specs, key, ["_SRC_KEY"], available=pf.schema_arrow.names)
                gx_results += runner.run(t, pf.iter_batches(batch_size=cfg.batch_rows, columns=cols), specs, key,
                                         index=["_SRC_KEY"])
        render_html("Kiểm tra dữ liệu sau chuyển đổi (bước 6)", gx_results, ctx.reports_dir / "gx_buoc6.html")
        checks.extend(gx_check(r) for r in gx_results)
        # 4. seeded random sample, stratified by table × office × type, field by field through the
        #    declared correspondence table
        plan, sample_totals = [], []
        for table in CORRESPONDENCE:
            if not target_in_scope(table, cfg.scope):
                continue
            sc = cfg.sampling
            rows, strata_plan = sample_rows(con, ctx.snapshot_dir / f"{table}.parquet", STRATA[table], sc.seed,
                                            table, sc.confidence, sc.max_defect_rate)
            results = compare(table, rows, source_rows(con, [r["_SRC_KEY"] for r in rows], staging.src_schema))
            checks.extend(results)
            bad = len({r["key"] for r in results if r["status"] == "fail"})
            for p in strata_plan:
                plan.append(p)
            pop, n = sum(p["population"] for p in strata_plan), sum(p["sample"] for p in strata_plan)
            plan_total = {"table": table, "population": pop, "sample": n, "mismatches": bad,
                          "strata": len(strata_plan)}
            sample_totals.append(plan_total)
            checks.append({"check_id": "sample_table", "table_name": table, "key": f"seed={sc.seed}",
                           "field": f"{len(strata_plan)} strata, {n} records", "expected": "0 mismatches",
                           "actual": f"{bad} mismatches", "status": "pass" if bad == 0 else "fail"})
    finally:
        con.close()
    ctx.store.add_checks(ctx.run_id, STEP, checks)
    # the users to be granted at step 8: an unknown legacy role is a finding now, before the minutes
    _users, unknown_roles = branch_users(cfg)
    if unknown_roles:
        add_unknown_roles(ctx, STEP, unknown_roles)
    fails = [c for c in checks if c["status"] == "fail"]
    by_check: dict[str, list[str]] = {}
    for c in fails:
        by_check.setdefault(c["check_id"], []).append(f"{c['table_name']}|{c['key']}|{c['field']}")
    for check_id, keys in by_check.items():
        ctx.store.add_finding(ctx.run_id, Finding.raised(STEP, check_id, None, keys,
                                                         f"{len(keys)} failing comparisons in {check_id}"))
    write_xlsx(ctx.reports_dir / "buoc6_doi_chieu.xlsx", {
        "Số liệu trước-sau": (["CSDL", "Mã loại hình", "Trước (đủ điều kiện)", "Sau (đã chuyển)", "Cách ly",
                               "Kết quả"], count_rows),
        "Cân đối tồn": (["Mã DN", "Mã NPL", "Tồn nguồn", "Tồn sau chuyển đổi"],
                        [(k[0], k[1], v[0], v[1]) for k, v in sorted(bal.items())]),
        "Kế hoạch chọn mẫu": (["Bảng", "Tổng thể", "Cỡ mẫu", "Sai lệch", "Số tầng"],
                              [(r["table"], r["population"], r["sample"], r["mismatches"], r["strata"])
                               for r in sample_totals]),
        "Các tầng mẫu": (["Bảng", "Tầng (đơn vị × loại hình)", "Tổng thể", "Cỡ mẫu"],
                         [(p["table"], p["stratum"], p["population"], p["sample"]) for p in plan]),
    })
    create_table_artifact(key=f"{cfg.branch_code.lower()}-findings",
                          table=[{"#": f["finding_id"], "severity": f["severity"], "check": f["check_id"],
                                  "table": f["table_name"], "keys": f["n_keys"], "status": f["status"]}
                                 for f in ctx.store.findings(ctx.run_id)] or [{"findings": "none"}],
                          description=f"{cfg.branch_code}: findings after step 6")
    write_run_report(ctx.store, ctx.run_id, ctx.reports_dir, cfg.staging_path)
    md = (f"## Bước 6 — đối chiếu\n\n{len(checks)} comparisons, {len(fails)} failing.\n\n" +
          md_table(["db", "Ma_LH", "before", "after", "quarantined", "status"], count_rows) + "\n\n" +
          f"Sampling (zero-acceptance, confidence {cfg.sampling.confidence:.0%}, max defect rate "
          f"{cfg.sampling.max_defect_rate:.0%}, seed {cfg.sampling.seed}):\n\n" +
          md_table(["table", "population", "sample", "mismatches", "strata"],
                   [(r["table"], r["population"], r["sample"], r["mismatches"], r["strata"]) for r in sample_totals]))
    return StepOutcome(rows_in=len(checks), rows_out=len(checks) - len(fails), markdown=md, detail={
        "comparisons": len(checks), "failing": len(fails), "sampling": sample_totals, "sampling_strata": plan,
        "sampling_seed": cfg.sampling.seed, "confidence": cfg.sampling.confidence,
        "max_defect_rate": cfg.sampling.max_defect_rate, "before_after": count_rows,
        "before_after_by_office": by_office,
        "stock_pairs": len(bal)})


def _new_offices(cfg: BranchConfig) -> set[str]:
    omap = office_map(cfg.office_map)
    return {new_office_code(o, omap) or o for o in cfg.offices}
