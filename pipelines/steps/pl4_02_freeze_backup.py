"""Phụ lục IV bước 2 — dừng hệ thống, READ ONLY, thống kê, backup: freeze + proof, counts, package."""

from __future__ import annotations

from extract import review
from extract.legacy_schema import CATEGORY
from extract.package import write_package
from extract.source import count_rows, freeze_source, open_source, reflect
from pipelines import progress
from pipelines.steps.base import StepContext, StepOutcome
from sign_off.minutes import render_backup_report
from sign_off.pki import demo_pki
from sign_off.signing import add_signature_fields, sign
from validate.report import md_table, write_json

BACKUP_SIGNER = "chi-cuc-technical"

STEP = "pl4_02_freeze_backup"


def run(ctx: StepContext) -> StepOutcome:
    cfg = ctx.cfg
    engines = {"SLXNK": open_source(cfg.resolved_url("slxnk")), "SXXK": open_source(cfg.resolved_url("sxxk"))}
    proofs = {db: freeze_source(e) for db, e in engines.items()}
    by_type = []
    for db, e in engines.items():
        by_type += review.counts_by_office_type(e, db)
    ctx.store.add_counts(ctx.run_id, STEP, "by_office_type", by_type)
    # the statistics report counts the frozen source itself (SQL COUNT), independently of the backup
    counted = {f"{db}.{name}": count_rows(e, t) for db, e in engines.items()
               for name, t in sorted(reflect(e).tables.items())}
    by_cat: dict[str, int] = {}
    for k, v in counted.items():
        by_cat[CATEGORY.get(k, "other")] = by_cat.get(CATEGORY.get(k, "other"), 0) + v
    report = {
        "branch": cfg.branch_code, "run_id": ctx.run_id, "frozen": {db: vars(p) for db, p in proofs.items()},
        "counts_by_category": by_cat, "counts_by_table": counted, "counts_by_office_type": by_type,
        "signed": False, "signature_note": "Chưa ký số (chức năng ký số đang xây dựng).",
    }
    rp = write_json(ctx.reports_dir / "buoc2_bao_cao_thong_ke.json", report)
    stock = ctx.reports_dir / "buoc1_bang_ke_chot_ton.json"
    # the signed backup report (Phụ lục IV 2.2): signed by the branch's technical staff before handover
    bpdf = render_backup_report(report, ctx.reports_dir / "buoc2_bao_cao_sao_luu.pdf")
    add_signature_fields(bpdf, only=BACKUP_SIGNER)
    if cfg.signing.demo_pki:
        pki = demo_pki(ctx.pki_dir)
        sign(bpdf, BACKUP_SIGNER, pki.p12(BACKUP_SIGNER), pki.passphrase(), reason="Xác nhận dữ liệu sao lưu (DEMO)")
    man = write_package(cfg.branch_code, engines, ctx.package_dir, cfg.batch_rows,
                        on_rows=lambda table, n: progress.report(STEP, table, n),
                        attachments={"buoc2_bao_cao_thong_ke.json": rp, "buoc1_bang_ke_chot_ton.json": stock,
                                     "buoc2_bao_cao_sao_luu.pdf": bpdf})
    per_table = [{"table_name": k, "category": CATEGORY.get(k, "other"), "rows": v} for k, v in man.rows().items()]
    ctx.store.add_counts(ctx.run_id, STEP, "source", per_table)
    total = sum(man.rows().values())
    md = ("## Bước 2 — đóng băng và backup\n\nFrozen: " +
          ", ".join(f"{db} ({p.method}; write refused: {p.refused_with})" for db, p in proofs.items()) +
          f"\n\n{total} rows in {len(man.files)} tables.\n\n" +
          md_table(["category", "rows"], sorted(by_cat.items())) + "\n\n" +
          md_table(["table", "rows"], sorted(man.rows().items())))
    return StepOutcome(rows_in=total, rows_out=total, markdown=md,
                       detail={"frozen_at": min(p.at for p in proofs.values()), "package": str(ctx.package_dir),
                               "backup_report": str(rp), "counts_by_category": by_cat,
                               "freeze": {db: vars(p) for db, p in proofs.items()}})
