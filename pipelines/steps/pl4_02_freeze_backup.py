"""Phụ lục IV bước 2 — dừng hệ thống, READ ONLY, thống kê, backup: freeze + proof, counts, package."""

from __future__ import annotations

import shutil
from contextlib import ExitStack

from extract import review
from extract.backup import native_backup
from extract.custody import manifest_sha256
from extract.freeze import freeze_source, hold_still
from extract.legacy_schema import CATEGORY
from extract.package import write_package
from extract.source import count_rows, non_utf8_values, open_source, redact, reflect
from pipelines import progress
from pipelines.steps.base import StepContext, StepOutcome
from sign_off.minutes import render_backup_report
from sign_off.pki import demo_pki
from sign_off.signing import add_signature_fields, sign
from transform.errors import MigrationError
from validate.findings import Finding
from validate.report import md_table, write_json

BACKUP_SIGNER = "chi-cuc-technical"

STEP = "pl4_02_freeze_backup"


def run(ctx: StepContext) -> StepOutcome:
    cfg = ctx.cfg
    urls = {"SLXNK": cfg.resolved_url("slxnk"), "SXXK": cfg.resolved_url("sxxk")}
    admin = cfg.resolved_url("admin")
    proofs = {}
    for db, url in urls.items():  # freeze first, then open the reading sessions (freezing ends the others)
        try:
            proofs[db] = freeze_source(url, admin)
        except MigrationError as exc:  # the freeze statements may have run: `ecm unfreeze` must know of it
            ctx.store.add_branch_event(cfg.branch_code, "freeze", run_id=ctx.run_id, target=f"{db} {redact(url)}",
                                       by="ecm (step 2)", reason="freeze attempted; proof failed",
                                       detail={"error": str(exc)})
            raise
        ctx.store.add_branch_event(cfg.branch_code, "freeze", run_id=ctx.run_id, target=f"{db} {redact(url)}",
                                   by="ecm (step 2)", reason="Phụ lục IV 2.1: dừng hệ thống, READ ONLY",
                                   detail=vars(proofs[db]))
    with ExitStack() as still:
        held = {db: still.enter_context(hold_still(url, admin)) for db, url in urls.items()}
        return _count_and_back_up(ctx, urls, admin, proofs, held)


def _count_and_back_up(ctx: StepContext, urls: dict[str, str], admin: str | None, proofs: dict, held: dict) -> StepOutcome:  # type: ignore[type-arg]
    cfg = ctx.cfg
    engines = {db: open_source(url, label=db) for db, url in urls.items()}
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
        # the counts the branch's technical staff sign in buoc2_bao_cao_sao_luu.pdf (their signature is checked at
        # steps 3 and 7: `ecm verify`); this file states no signature status that signing could make false
        "signed_report": "buoc2_bao_cao_sao_luu.pdf",
    }
    rp = write_json(ctx.reports_dir / "buoc2_bao_cao_thong_ke.json", report)
    stock = ctx.reports_dir / "buoc1_bang_ke_chot_ton.json"
    # the signed backup report (Phụ lục IV 2.2): signed by the branch's technical staff before handover
    bpdf = render_backup_report(report, ctx.reports_dir / "buoc2_bao_cao_sao_luu.pdf")
    add_signature_fields(bpdf, only=BACKUP_SIGNER)
    if cfg.signing.demo_pki:
        pki = demo_pki(ctx.pki_dir)
        sign(bpdf, BACKUP_SIGNER, pki.p12(BACKUP_SIGNER), pki.passphrase(), reason="Xác nhận dữ liệu sao lưu (DEMO)")
    native = {}
    if cfg.sources.native_backup:
        tmp = ctx.run_dir / "native_tmp"
        for db, url in urls.items():
            nb = native_backup(db, url, tmp, admin)
            native[db] = (nb.path, nb.tool)
    man = write_package(cfg.branch_code, engines, ctx.package_dir, cfg.batch_rows, native=native,
                        on_rows=lambda table, n: progress.report(STEP, table, n),
                        attachments={"buoc2_bao_cao_thong_ke.json": rp, "buoc1_bang_ke_chot_ton.json": stock,
                                     "buoc2_bao_cao_sao_luu.pdf": bpdf})
    for db, e in engines.items():  # text that was not UTF-8: kept byte for byte (Latin-1), named for the gates
        odd = non_utf8_values(e)
        if odd:
            ctx.store.add_finding(ctx.run_id, Finding.raised(
                STEP, "non_utf8_text", db, [f"{o['table']}.{o['column']}: {o['row']}" for o in odd],
                f"{len(odd)} text values of {db} are not UTF-8; they were backed up byte for byte "
                "(read as single-byte text: TCVN3 is converted at step 5, anything else arrives "
                "as it is). Check them at the branch"))
    per_table = [{"table_name": k, "category": CATEGORY.get(k, "other"), "rows": v} for k, v in man.rows().items()]
    ctx.store.add_counts(ctx.run_id, STEP, "source", per_table)
    total = sum(man.rows().values())
    md = ("## Bước 2 — đóng băng và backup\n\nFrozen: " +
          ", ".join(f"{db} ({p.method}; write refused: {p.refused_with})" for db, p in proofs.items()) +
          f"\n\n{total} rows in {len(man.files)} tables.\n\n" +
          md_table(["category", "rows"], sorted(by_cat.items())) + "\n\n" +
          md_table(["table", "rows"], sorted(man.rows().items())))
    for e in engines.values():
        e.dispose()
    if native:
        shutil.rmtree(ctx.run_dir / "native_tmp", ignore_errors=True)  # its files now live in the package
    if native:
        md += "\n\nNative backups: " + ", ".join(f"{rel} ({nb['tool']}, {nb['bytes']} bytes)"
                                                for rel, nb in man.native_backups.items())
    return StepOutcome(rows_in=total, rows_out=total, markdown=md,
                       detail={"native_backups": man.native_backups, "held": held,
                               "frozen_at": min(p.at for p in proofs.values()), "package": str(ctx.package_dir),
                               "package_manifest_sha256": manifest_sha256(ctx.package_dir),
                               "backup_report": str(rp), "counts_by_category": by_cat,
                               "freeze": {db: vars(p) for db, p in proofs.items()}})
