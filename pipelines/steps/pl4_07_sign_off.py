"""Phụ lục IV bước 7 — xác nhận số liệu: minutes from the control store + the evidence bundle.

Real signatures are the signatures issue; this step records the minutes as UNSIGNED and never
pretends otherwise. Step 8 then refuses a non-rehearsal load.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

from extract.legacy_schema import CATEGORY
from extract.package import sha256_file
from load.snapshot import read_manifest
from pipelines.steps.base import StepContext, StepOutcome
from sign_off.evidence import build_bundle, verify_bundle
from sign_off.minutes import SIGNATURE_FIELDS, MinutesData, render_minutes
from sign_off.pki import demo_pki
from sign_off.signing import add_signature_fields, sign, verify_minutes
from transform.errors import SignOffError
from transform.codes import new_office_code, office_map

STEP = "pl4_07_sign_off"


class AwaitingSignatures(SignOffError):
    """The signature wait timed out: the run stays 'waiting-signatures' (nothing is loaded)."""
CATEGORY_LABEL = {"declarations": "Tờ khai", "gc": "Gia công (GC)", "sxxk": "Sản xuất xuất khẩu (SXXK)",
                  "cx": "Chế xuất (CX)", "other": "Khác"}


def run(ctx: StepContext) -> StepOutcome:
    if ctx.resuming:
        return _resume_waiting(ctx)
    cfg, store, rid = ctx.cfg, ctx.store, ctx.run_id
    acct = store.accounting(rid)
    cats: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for a in acct:
        c = cats[CATEGORY.get(a["source_table"], "other")]
        c[0] += a["rows"]
        c[{"converted": 1, "excluded": 2, "quarantined": 3}[a["fate"]]] += a["rows"]
    s6 = store.step_detail(rid, "pl4_06_validate")
    snap = _converted_snapshot(ctx, "re-run from step 5")
    findings = store.findings(rid)
    evidence_dir = _evidence_dir(ctx)
    files: dict[str, Path] = {"package_manifest.json": ctx.received_dir / "manifest.json",
                              "snapshot_manifest.json": ctx.snapshot_dir / "manifest.json"}
    ehash = build_bundle(evidence_dir, files, {
        "accounting.json": acct, "checks.json": store.checks(rid), "findings.json": findings,
        "sampling.json": {"seed": cfg.sampling.seed, "confidence": cfg.sampling.confidence,
                          "max_defect_rate": cfg.sampling.max_defect_rate, "plan": s6.get("sampling", [])},
        "rules_and_maps.json": {"office_map": cfg.office_map, "unit_map": cfg.unit_map,
                                "rule_set": "CDDL-2014 (transform/rules.py)"},
        "run.json": {"run_id": rid, "branch": cfg.branch_code, "rehearsal": cfg.rehearsal},
    })
    omap = office_map(cfg.office_map)
    data = MinutesData(
        branch_code=cfg.branch_code, branch_name=cfg.branch_name, department_name=cfg.department_name,
        offices=[(o, new_office_code(o, omap) or "") for o in cfg.offices], run_id=rid,
        created_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), rehearsal=cfg.rehearsal,
        snapshot_sha256=str(snap["snapshot_sha256"]), evidence_sha256=ehash,
        categories=[(CATEGORY_LABEL[k], *v) for k, v in sorted(cats.items())],
        central_rows=[(k, v["rows"]) for k, v in snap["tables"].items()],  # type: ignore[union-attr]
        sampling=s6.get("sampling", []), sampling_seed=cfg.sampling.seed, confidence=cfg.sampling.confidence,
        max_defect_rate=cfg.sampling.max_defect_rate, findings=findings, signed=False,
        balances=_balances(store.checks(rid)))
    pdf = render_minutes(data, _minutes_path(ctx))
    add_signature_fields(pdf)
    signed, note = False, "unsigned: waiting for the six signatures (`ecm sign`)"
    if cfg.signing.demo_pki:  # the sample branch: the six DEMO signers sign, as six people would
        pki = demo_pki(ctx.pki_dir)
        for field in SIGNATURE_FIELDS:
            sign(pdf, field, pki.p12(field), pki.passphrase(), reason="Xác nhận số liệu (DEMO)")
        v = verify_minutes(pdf, [pki.trust], [pki.crl], [pki.intermediate], evidence_dir)
        if not v.ok:
            raise SignOffError("the demo signatures do not verify: " + "; ".join(v.problems()), table=str(pdf))
        signed, note = True, "signed by the six DEMO signers; verified offline (trust list + CRL)"
    elif cfg.signing.trust:  # real signers: wait until all six signatures are there and verify
        store.add_document(rid, "minutes", str(pdf), sha256_file(pdf), signed=False, note=note)
        signed, note = _wait_for_signatures(ctx, pdf, evidence_dir)
    store.add_document(rid, "minutes", str(pdf), sha256_file(pdf), signed=signed, note=note)
    md = (f"## Bước 7 — biên bản xác nhận\n\nMinutes: `{pdf}` — {note}.\n\n"
          f"Evidence bundle `{evidence_dir}` SHA-256 `{ehash}`.")
    return StepOutcome(rows_in=None, rows_out=None, markdown=md, detail={
        "minutes": str(pdf), "signed": signed, "evidence": str(evidence_dir), "evidence_sha256": ehash})


def _minutes_path(ctx: StepContext) -> Path:
    return ctx.reports_dir / "bien_ban_xac_nhan_so_lieu.pdf"


def _evidence_dir(ctx: StepContext) -> Path:
    return ctx.run_dir / "evidence"


def _converted_snapshot(ctx: StepContext, redo: str) -> dict[str, object]:
    """The snapshot's manifest, provided it is still the one step 5 converted (never sign other figures)."""
    snap = read_manifest(ctx.snapshot_dir)
    if snap["snapshot_sha256"] != ctx.store.step_detail(ctx.run_id, "pl4_05_convert").get("snapshot_sha256"):
        raise SignOffError("the converted snapshot changed after step 5", table=str(ctx.snapshot_dir),
                           hint=f"{redo}; never sign figures that are not the converted ones")
    return snap


def _resume_waiting(ctx: StepContext) -> StepOutcome:
    """`ecm resume`: the minutes were rendered (and maybe partly signed) by this run before its wait timed
    out. Never render them again (that would drop the signatures): check that nothing they certify moved,
    then wait for — or find — the six signatures."""
    pdf, evidence_dir = _minutes_path(ctx), _evidence_dir(ctx)
    if not pdf.exists():
        raise SignOffError(f"run {ctx.run_id} has no minutes to resume", table=str(pdf),
                           hint="start a new run (`ecm run`)")
    _converted_snapshot(ctx, "start a new run")
    ehash = verify_bundle(evidence_dir)  # altered evidence stops here, before anyone waits on it
    signed, note = _wait_for_signatures(ctx, pdf, evidence_dir)
    ctx.store.add_document(ctx.run_id, "minutes", str(pdf), sha256_file(pdf), signed=signed, note=note)
    md = f"## Bước 7 — biên bản xác nhận (tiếp tục)\n\nMinutes: `{pdf}` — {note}."
    return StepOutcome(rows_in=None, rows_out=None, markdown=md, detail={
        "minutes": str(pdf), "signed": signed, "evidence": str(evidence_dir), "evidence_sha256": ehash,
        "resumed": True})


def _wait_for_signatures(ctx: StepContext, pdf: Path, evidence_dir: Path) -> tuple[bool, str]:
    """Pause until `ecm sign --run RUN_ID` reports a new signature; done when all six verify.

    A timeout ends the run in the state 'waiting-signatures'; `ecm status` lists who has not signed.
    """
    from prefect.flow_runs import pause_flow_run
    from prefect.exceptions import FlowPauseTimeout

    cfg, store, rid = ctx.cfg, ctx.store, ctx.run_id
    sg = cfg.signing
    rounds = 0
    while True:
        v = verify_minutes(pdf, sg.trust, sg.crls, sg.other_certs, evidence_dir)
        bad = [r for r in v.signatures if not r.ok]
        if bad:
            raise SignOffError("a signature on the minutes does not verify: " + "; ".join(v.problems()),
                               table=str(pdf), hint="remove that signer's signature: render the minutes again")
        if v.ok:
            return True, "signed by all six parties and roles; verified offline"
        store.set_run_status(rid, "waiting-signatures")
        store.add_document(rid, "minutes", str(pdf), sha256_file(pdf), signed=False,
                           note="waiting for: " + ", ".join(v.missing_fields))
        rounds += 1
        try:
            pause_flow_run(timeout=cfg.policy.decision_timeout_seconds, poll_interval=cfg.policy.poll_seconds,
                           key=f"signatures-{rounds}")
        except FlowPauseTimeout:
            raise AwaitingSignatures(f"still waiting for {len(v.missing_fields)} signatures: "
                               + ", ".join(v.missing_fields), table=str(pdf),
                               hint=f"sign with `ecm sign {pdf} --field F --p12 FILE --run {rid}`") from None
        store.set_run_status(rid, "running")


BALANCE_LABELS = {"count_before_after": "Số tờ khai trước/sau theo loại hình",
                  "stock_balance": "Tồn NPL theo doanh nghiệp × mã NPL (Σ TON)",
                  "handover_closing_stock": "Bảng kê chốt tồn so với dữ liệu bàn giao",
                  "snapshot_reference": "Tham chiếu giữa các bảng sau chuyển đổi",
                  "snapshot_unique_key": "Khóa chính không trùng"}


def _balances(checks: list[dict[str, object]]) -> list[tuple[str, int, int]]:
    out = []
    for cid, label in BALANCE_LABELS.items():
        rows = [c for c in checks if c["check_id"] == cid]
        if rows:
            out.append((label, len(rows), sum(1 for c in rows if c["status"] == "fail")))
    return out
