"""Phụ lục IV bước 1 — rà soát CSDL: checks on the live branch DBs, correction list, closing stock."""

from __future__ import annotations

from datetime import datetime, timezone

from extract import review
from extract.source import open_source
from pipelines.steps.base import StepContext, StepOutcome
from transform.codes import looks_tcvn3
from validate.findings import Finding
from validate.report import md_table, write_json, write_xlsx

STEP = "pl4_01_review"


def run(ctx: StepContext) -> StepOutcome:
    cfg = ctx.cfg
    hits = []
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    engines = {"SLXNK": open_source(cfg.resolved_url("slxnk"), label="SLXNK"),
               "SXXK": open_source(cfg.resolved_url("sxxk"), label="SXXK")}
    # every check runs on its own: an absent table skips only the checks that need it, and says so
    not_run: list[review.NotRun] = []
    for db, eng in engines.items():
        for check_id, (fn, needs) in review.CHECKS.items():
            why = review.not_run(eng, db, check_id, needs[db])
            if why:
                not_run.append(why)
                continue
            hits += fn(eng, db, looks_tcvn3, cfg.batch_rows) if check_id == "tcvn3_text" else fn(eng, db)
        hits += review.impossible_dates(eng, db, "1990-01-01", now)
    for check_id, fn, table in (("ton_gt_luong", review.stock_above_import, "DNPLNHAP"),
                                ("long_text", review.long_text, "DTOKHAIMD")):
        why = review.not_run(engines["SXXK"], "SXXK", check_id, (table,))
        if why:
            not_run.append(why)
        else:
            hits += fn(engines["SXXK"])
    stock = review.closing_stock(engines["SXXK"], cfg.offices)
    for h in hits:
        ctx.store.add_finding(ctx.run_id, Finding.raised(STEP, h.check_id, h.table, h.keys, h.message))
    rows = [(h.check_id, h.table, len(h.keys), h.message) for h in hits]
    xlsx = write_xlsx(ctx.reports_dir / "buoc1_danh_sach_hieu_chinh.xlsx", {
        "Danh sách hiệu chỉnh": (["Mã kiểm tra", "Bảng", "Số bản ghi", "Mô tả"], rows),
        "Chi tiết khóa": (["Mã kiểm tra", "Bảng", "Khóa"], [(h.check_id, h.table, k) for h in hits for k in h.keys]),
        "Kiểm tra không chạy": (["Mã kiểm tra", "CSDL", "Lý do"], [(n.check_id, n.db, n.reason) for n in not_run]),
        "Bảng kê chốt tồn": (["Mã doanh nghiệp", "Mã NPL", "Số dòng", "Lượng nhập", "Tồn"],
                             [(s["MA_DV"], s["MA_NPL"], s["so_dong"], s["luong"], s["ton"]) for s in stock]),
    })
    stock_json = write_json(ctx.reports_dir / "buoc1_bang_ke_chot_ton.json", stock)
    ctx.store.add_checks(ctx.run_id, STEP, [
        {"check_id": n.check_id, "table_name": n.db, "key": None, "field": None, "expected": "run",
         "actual": f"not run: {n.reason}", "status": "warn"} for n in not_run])
    n_keys = sum(len(h.keys) for h in hits)
    md = f"## Bước 1 — rà soát CSDL\n\n{len(hits)} checks found {n_keys} rows to correct.\n\n" + \
        md_table(["check", "table", "rows", "message"], rows)
    return StepOutcome(rows_in=None, rows_out=n_keys, markdown=md,
                       detail={"checks_failed": len(hits), "checks_not_run": [vars(n) for n in not_run], "rows_to_correct": n_keys, "correction_list": str(xlsx),
                               "closing_stock": str(stock_json), "closing_stock_rows": len(stock)})
