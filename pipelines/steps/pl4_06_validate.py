"""Phụ lục IV bước 5.2/6 — kiểm tra, đối chiếu: counts before/after, balances, seeded sample."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow.parquet as pq
import sqlalchemy as sa

from extract import staging
from pipelines.steps.base import StepContext, StepOutcome
from transform.scope import target_in_scope
from validate.reconcile import (
    central_declarations, central_stock, eligible_declarations, quarantined_declarations, snapshot_declarations,
    stock_balance,
)
from validate.report import md_table, write_xlsx
from validate.sampling import CORRESPONDENCE, draw, normalise, zero_acceptance_sample_size

STEP = "pl4_06_validate"


def run(ctx: StepContext) -> StepOutcome:
    cfg = ctx.cfg
    con = staging.connect(cfg.staging_path, read_only=True)
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
        # 3. seeded random sample, field by field, through the correspondence table
        plan, sample_rows = [], []
        for table, fields in CORRESPONDENCE.items():
            if not target_in_scope(table, cfg.scope):
                continue
            pf = pq.ParquetFile(ctx.snapshot_dir / f"{table}.parquet")
            pop = pf.metadata.num_rows
            n = zero_acceptance_sample_size(cfg.sampling.confidence, cfg.sampling.max_defect_rate, pop)
            picks = draw(pop, n, cfg.sampling.seed, table)
            bad = 0
            for row in _rows_at(pf, picks):
                src = _source_row(con, row["_SRC_KEY"])
                for tcol, scol, how in fields:
                    exp = normalise(src.get(scol) if src else None, how)
                    act = normalise(row.get(tcol), how)
                    ok = src is not None and exp == act
                    if not ok:
                        bad += 1
                        checks.append({"check_id": "sample_field", "table_name": table, "key": row["_SRC_KEY"],
                                       "field": tcol, "expected": str(exp), "actual": str(act), "status": "fail"})
            checks.append({"check_id": "sample_table", "table_name": table, "key": f"seed={cfg.sampling.seed}",
                           "field": f"{len(fields)} fields × {n} rows", "expected": "0 mismatches",
                           "actual": f"{bad} mismatches", "status": "pass" if bad == 0 else "fail"})
            plan.append({"table": table, "population": pop, "sample": n, "mismatches": bad})
            sample_rows.append((table, pop, n, bad))
    finally:
        con.close()
    ctx.store.add_checks(ctx.run_id, STEP, checks)
    fails = [c for c in checks if c["status"] == "fail"]
    by_check: dict[str, list[str]] = {}
    for c in fails:
        by_check.setdefault(c["check_id"], []).append(f"{c['table_name']}|{c['key']}|{c['field']}")
    for check_id, keys in by_check.items():
        ctx.store.add_finding(ctx.run_id, STEP, check_id, "conversion_error", "critical", None, keys,
                              f"{len(keys)} failing comparisons in {check_id}")
    write_xlsx(ctx.reports_dir / "buoc6_doi_chieu.xlsx", {
        "Số liệu trước-sau": (["CSDL", "Mã loại hình", "Trước (đủ điều kiện)", "Sau (đã chuyển)", "Cách ly",
                               "Kết quả"], count_rows),
        "Cân đối tồn": (["Mã DN", "Mã NPL", "Tồn nguồn", "Tồn sau chuyển đổi"],
                        [(k[0], k[1], v[0], v[1]) for k, v in sorted(bal.items())]),
        "Kế hoạch chọn mẫu": (["Bảng", "Tổng thể", "Cỡ mẫu", "Sai lệch"], sample_rows),
    })
    md = (f"## Bước 6 — đối chiếu\n\n{len(checks)} comparisons, {len(fails)} failing.\n\n" +
          md_table(["db", "Ma_LH", "before", "after", "quarantined", "status"], count_rows) + "\n\n" +
          f"Sampling (zero-acceptance, confidence {cfg.sampling.confidence:.0%}, max defect rate "
          f"{cfg.sampling.max_defect_rate:.0%}, seed {cfg.sampling.seed}):\n\n" +
          md_table(["table", "population", "sample", "mismatches"], sample_rows))
    return StepOutcome(rows_in=len(checks), rows_out=len(checks) - len(fails), markdown=md, detail={
        "comparisons": len(checks), "failing": len(fails), "sampling": plan,
        "sampling_seed": cfg.sampling.seed, "confidence": cfg.sampling.confidence,
        "max_defect_rate": cfg.sampling.max_defect_rate, "before_after": count_rows,
        "stock_pairs": len(bal)})


def _rows_at(pf: pq.ParquetFile, positions: list[int]) -> Iterator[dict[str, Any]]:
    """The rows at sorted ``positions`` of a Parquet file, reading one batch at a time."""
    wanted = iter(positions)
    nxt = next(wanted, None)
    offset = 0
    for batch in pf.iter_batches(batch_size=50_000):
        end = offset + batch.num_rows
        idx = []
        while nxt is not None and nxt < end:
            idx.append(nxt - offset)
            nxt = next(wanted, None)
        if idx:
            yield from batch.take(idx).to_pylist()
        if nxt is None:
            return
        offset = end


def _source_row(con: Any, src_key: str) -> dict[str, Any] | None:
    table, *parts = src_key.split("|")
    db, name = table.split(".", 1)
    conds, params = [], []
    for p in parts:
        col, val = p.split("=", 1)
        conds.append(f'trim(CAST("{col}" AS VARCHAR)) = ?')
        params.append(val)
    rows = con.sql(f'SELECT * FROM "{staging.src_schema(db)}"."{name}" WHERE {" AND ".join(conds)} LIMIT 2',
                   params=params).to_arrow_table().to_pylist()
    if len(rows) != 1:
        return None
    return {k.upper(): v for k, v in rows[0].items()}

