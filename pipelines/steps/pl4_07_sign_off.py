"""Phụ lục IV bước 7 — xác nhận số liệu: minutes from the control store + the evidence bundle, signed by six.

The minutes carry the snapshot and evidence hashes on the page and in the signed binding (``ecm-binding.json``,
written before the first signature: sign_off/signing.py). The sample branch signs with the six DEMO signers;
otherwise the step waits for `ecm sign`, which refuses any certificate that would not verify. A signature that
does not verify anyway (made with another tool) stops the step; :func:`reissue_minutes` (``ecm minutes
reissue``) then renders a new revision with the same figures, recorded, and the six sign again — steps 1–6 are
not repeated.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from extract.legacy_schema import CATEGORY
from extract.package import sha256_file
from load.control_store import ControlStore
from pipelines.config import BranchConfig
from pipelines.steps.base import StepContext, StepOutcome, config_anchors
from sign_off.certs import Anchors
from sign_off.evidence import build_bundle, verify_bundle
from sign_off.minutes import SIGNATURE_FIELDS, MinutesData, render_minutes
from sign_off.pki import demo_pki
from sign_off.signing import (
    BINDING_NAME,
    MinutesVerification,
    add_archive_timestamp,
    add_signature_fields,
    binding_in,
    has_trusted_archive_timestamp,
    minutes_binding,
    sign,
    verify_minutes,
)
from sign_off.trust_services import Services, running_services
from transform.codes import new_office_code, office_map
from transform.errors import SignOffError

STEP = "pl4_07_sign_off"


class AwaitingSignatures(SignOffError):
    """The signature wait timed out: the run stays 'waiting-signatures' (nothing is loaded)."""


CATEGORY_LABEL = {"declarations": "Tờ khai", "gc": "Gia công (GC)", "sxxk": "Sản xuất xuất khẩu (SXXK)",
                  "cx": "Chế xuất (CX)", "other": "Khác"}


def config_services(cfg: BranchConfig) -> Services | None:
    """The configured time-stamping authority and OCSP responder (production); None without a TSA."""
    sg = cfg.signing
    return Services(tsa_url=sg.tsa_url, ocsp_url=sg.ocsp_url) if sg.tsa_url else None


def _verify(pdf: Path, anchors: Anchors, evidence_dir: Path) -> MinutesVerification:
    return verify_minutes(pdf, list(anchors.trust), list(anchors.crls), list(anchors.intermediates), evidence_dir,
                          revocation=anchors.revocation)


def _with_notes(note: str, anchors: Anchors) -> str:
    return "; ".join([note, *anchors.notes()])


def run(ctx: StepContext) -> StepOutcome:
    if ctx.resuming:
        return _resume_waiting(ctx)
    cfg, store, rid = ctx.cfg, ctx.store, ctx.run_id
    snap = _converted_snapshot(ctx, "re-run from step 5")
    evidence_dir = _evidence_dir(ctx)
    files, data = _evidence_inputs(ctx)
    ehash = build_bundle(evidence_dir, files, data)
    pdf = _render(ctx, snap, ehash, _minutes_path(ctx))
    if cfg.signing.demo_pki:  # the sample branch: the six DEMO signers sign, as six people would
        pki = demo_pki(ctx.pki_dir)  # renews its CRLs when stale: revocation is checked, hard-fail
        anchors = config_anchors(cfg)
        with running_services(ctx.pki_dir) as services:  # the DEMO TSA and OCSP responder, on 127.0.0.1
            for field in SIGNATURE_FIELDS:
                sign(pdf, field, pki.p12(field), pki.passphrase(), reason="Xác nhận số liệu (DEMO)", anchors=anchors,
                     services=services)
            archived = add_archive_timestamp(pdf, anchors, services)
        v = _verify(pdf, anchors, evidence_dir)
        if not v.ok:
            raise SignOffError("the demo signatures do not verify: " + "; ".join(v.problems()), table=str(pdf))
        signed, note = True, _with_notes(
            "signed by the six DEMO signers, each time-stamped, revocation data embedded, archive time-stamp "
            f"{archived:%Y-%m-%d %H:%M:%S %Z} (PAdES B-LTA); verified offline (evidence bound in {BINDING_NAME})",
            anchors)
    elif cfg.signing.trust:  # real signers: wait until all six signatures are there and verify
        note = _with_notes("unsigned: waiting for the six signatures (`ecm sign`)", config_anchors(cfg))
        store.add_document(rid, "minutes", str(pdf), sha256_file(pdf), signed=False, note=note)
        signed, note = _wait_for_signatures(ctx, pdf, evidence_dir)
    else:
        signed, note = False, "unsigned: waiting for the six signatures (`ecm sign`)"
    store.add_document(rid, "minutes", str(pdf), sha256_file(pdf), signed=signed, note=note)
    md = (f"## Bước 7 — biên bản xác nhận\n\nMinutes: `{pdf}` — {note}.\n\n"
          f"Evidence bundle `{evidence_dir}` SHA-256 `{ehash}` (bound in the minutes' `{BINDING_NAME}`).")
    return StepOutcome(rows_in=None, rows_out=None, markdown=md, detail={
        "minutes": str(pdf), "signed": signed, "evidence": str(evidence_dir), "evidence_sha256": ehash})


def _evidence_inputs(ctx: StepContext) -> tuple[dict[str, Path], dict[str, Any]]:
    """What the evidence bundle holds, all from the control store and the run's files (deterministic: the same
    records give the same bundle hash — which is how a reissue proves it carries the same figures)."""
    cfg, store, rid = ctx.cfg, ctx.store, ctx.run_id
    s6 = store.step_detail(rid, "pl4_06_validate")
    files: dict[str, Path] = {"package_manifest.json": ctx.received_dir / "manifest.json",
                              "snapshot_manifest.json": ctx.snapshot_dir / "manifest.json"}
    data = {
        "accounting.json": store.accounting(rid), "checks.json": store.checks(rid), "findings.json": store.findings(rid),
        "sampling.json": {"seed": cfg.sampling.seed, "confidence": cfg.sampling.confidence,
                          "max_defect_rate": cfg.sampling.max_defect_rate, "plan": s6.get("sampling", [])},
        "rules_and_maps.json": {"office_map": cfg.office_map, "unit_map": cfg.unit_map,
                                "rule_set": "CDDL-2014 (transform/rules.py)"},
        "run.json": {"run_id": rid, "branch": cfg.branch_code, "rehearsal": cfg.rehearsal},
    }
    return files, data


def _render(ctx: StepContext, snap: dict[str, Any], ehash: str, path: Path,
            reissue: dict[str, Any] | None = None) -> Path:
    """Render the minutes from the control store, add the six fields and embed the signed binding."""
    cfg, store, rid = ctx.cfg, ctx.store, ctx.run_id
    acct = store.accounting(rid)
    cats: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for a in acct:
        c = cats[CATEGORY.get(a["source_table"], "other")]
        c[0] += a["rows"]
        c[{"converted": 1, "excluded": 2, "quarantined": 3}[a["fate"]]] += a["rows"]
    s6 = store.step_detail(rid, "pl4_06_validate")
    omap = office_map(cfg.office_map)
    data = MinutesData(
        branch_code=cfg.branch_code, branch_name=cfg.branch_name, department_name=cfg.department_name,
        offices=[(o, new_office_code(o, omap) or "") for o in cfg.offices], run_id=rid,
        created_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), rehearsal=cfg.rehearsal,
        snapshot_sha256=str(snap["snapshot_sha256"]), evidence_sha256=ehash,
        categories=[(CATEGORY_LABEL[k], *v) for k, v in sorted(cats.items())],
        central_rows=[(k, v["rows"]) for k, v in snap["tables"].items()],
        sampling=s6.get("sampling", []), sampling_seed=cfg.sampling.seed, confidence=cfg.sampling.confidence,
        max_defect_rate=cfg.sampling.max_defect_rate, findings=store.findings(rid), signed=False,
        balances=_balances(store.checks(rid)), reissue=reissue)
    pdf = render_minutes(data, path)
    add_signature_fields(pdf, binding=minutes_binding(
        run_id=rid, branch=cfg.branch_code, snapshot_sha256=str(snap["snapshot_sha256"]),
        evidence_dir=_evidence_dir(ctx), evidence_sha256=ehash, reissue=reissue))
    return pdf


def _minutes_path(ctx: StepContext) -> Path:
    return ctx.reports_dir / "bien_ban_xac_nhan_so_lieu.pdf"


def _evidence_dir(ctx: StepContext) -> Path:
    return ctx.run_dir / "evidence"


def _converted_snapshot(ctx: StepContext, redo: str) -> dict[str, Any]:
    """The snapshot's manifest, provided it is still the one step 5 converted — the manifest and every file it
    lists, re-hashed now (extract/custody.py): never sign other figures."""
    from extract.errors import PackageIntegrityError
    try:
        return ctx.verified_snapshot("step 7, before the minutes")
    except PackageIntegrityError as exc:
        raise SignOffError(f"the converted snapshot changed after step 5: {exc.message}", table=exc.table,
                           hint=f"{redo}; never sign figures that are not the converted ones") from exc


def _resume_waiting(ctx: StepContext) -> StepOutcome:
    """`ecm resume`: the minutes were rendered (and maybe partly signed) by this run before its wait timed
    out, or reissued since. Never render them again (that would drop the signatures): check that nothing they
    certify moved, then wait for — or find — the six signatures."""
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


def _reissue_hint(ctx: StepContext) -> str:
    return (f"render a new revision of the minutes with the same figures: `ecm minutes reissue --run {ctx.run_id} "
            "--config BRANCH.toml --by NAME --reason TEXT`; then the six sign it (`ecm sign`) and `ecm resume "
            f"--run {ctx.run_id}` continues — steps 1–6 are not repeated")


def _wait_for_signatures(ctx: StepContext, pdf: Path, evidence_dir: Path) -> tuple[bool, str]:
    """Pause until `ecm sign --run RUN_ID` reports a new signature; done when all six verify.

    A timeout ends the run in the state 'waiting-signatures'; `ecm status` lists who has not signed. A
    signature that does not verify, or minutes changed outside signing, stop the step (waiting cannot fix them):
    the hint names the reissue.
    """
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run

    cfg, store, rid = ctx.cfg, ctx.store, ctx.run_id
    anchors = config_anchors(cfg)
    rounds = 0
    while True:
        v = _verify(pdf, anchors, evidence_dir)
        if v.tampered:
            raise SignOffError("the minutes do not verify: " + "; ".join(v.problems()[:6]), table=str(pdf),
                               hint=_reissue_hint(ctx))
        if v.ok:
            services = config_services(cfg)
            if services is None:
                return True, _with_notes("signed by all six parties and roles; verified offline; NO archive "
                                         "time-stamp (no signing.tsa_url configured)", anchors)
            if not has_trusted_archive_timestamp(pdf, anchors):
                archived = add_archive_timestamp(pdf, anchors, services)
                v = _verify(pdf, anchors, evidence_dir)
                if not v.ok:
                    raise SignOffError("the minutes do not verify after the archive time-stamp: "
                                       + "; ".join(v.problems()[:6]), table=str(pdf), hint=_reissue_hint(ctx))
                return True, _with_notes("signed by all six parties and roles; archive time-stamp "
                                         f"{archived:%Y-%m-%d %H:%M:%S %Z} (PAdES B-LTA); verified offline", anchors)
            return True, _with_notes("signed by all six parties and roles, archive time-stamp present; verified "
                                     "offline", anchors)
        store.set_run_status(rid, "waiting-signatures")
        store.add_document(rid, "minutes", str(pdf), sha256_file(pdf), signed=False,
                           note=_with_notes("waiting for: " + ", ".join(v.missing_fields), anchors))
        rounds += 1
        try:
            pause_flow_run(timeout=cfg.policy.decision_timeout_seconds, poll_interval=cfg.policy.poll_seconds,
                           key=f"signatures-{rounds}")
        except FlowPauseTimeout:
            raise AwaitingSignatures(f"still waiting for {len(v.missing_fields)} signatures: "
                                     + ", ".join(v.missing_fields), table=str(pdf),
                                     hint=f"sign with `ecm sign {pdf} --field F --p12 FILE --run {rid}`") from None
        store.set_run_status(rid, "running")


REISSUABLE = ("waiting-signatures", "failed")


def reissue_minutes(cfg: BranchConfig, run_id: str, by: str, reason: str) -> str:
    """A new revision of a run's minutes with the same figures, for when a signature on them cannot verify.

    Refused unless the run is this branch's, stopped at step 7 (waiting for signatures, or failed there) and
    not loaded; the snapshot must still be step 5's and the evidence bundle — rebuilt from the control store —
    must hash exactly as the one the minutes bind (the same figures, or nothing is rendered). The old file is
    kept beside the new one; who, why and both SHA-256 are recorded (a branch event and the documents); the run
    is left 'waiting-signatures' so that the six sign the new revision and `ecm resume` continues. Returns
    a one-line summary.
    """
    if not by.strip() or not reason.strip():
        raise SignOffError("a reissue needs who (--by) and why (--reason)", hint="both are recorded")
    store = ControlStore(cfg.resolved_url("control"))
    run = store.run(run_id)
    if run is None:
        raise SignOffError(f"unknown run {run_id!r}", hint="see `ecm status latest`")
    if run["branch"] != cfg.branch_code:
        raise SignOffError(f"run {run_id} belongs to branch {run['branch']}, not {cfg.branch_code}",
                           hint="pass that branch's config")
    steps = {s.step: s for s in store.steps(run_id)}
    if "pl4_08_load" in steps and steps["pl4_08_load"].status == "completed":
        raise SignOffError(f"run {run_id} was loaded with these minutes: they cannot be reissued",
                           hint="a correction after loading is a new run (`ecm unload`, then `ecm run`)")
    if run["status"] not in REISSUABLE or "pl4_07_sign_off" not in steps:
        at7 = steps["pl4_07_sign_off"].status if "pl4_07_sign_off" in steps else "not reached"
        raise SignOffError(f"run {run_id} is {run['status']} (step 7 {at7}): only minutes of a run stopped at "
                           "step 7 can be reissued", hint=f"see `ecm status {run_id}`")
    ctx = StepContext(cfg, store, run_id)
    pdf, evidence_dir = _minutes_path(ctx), _evidence_dir(ctx)
    if not pdf.exists():
        raise SignOffError(f"run {run_id} has no minutes", table=str(pdf), hint="start a new run (`ecm run`)")
    snap = _converted_snapshot(ctx, "start a new run")
    ehash = verify_bundle(evidence_dir)
    old_binding = binding_in(pdf)
    files, data = _evidence_inputs(ctx)
    with tempfile.TemporaryDirectory() as tmp:
        rebuilt = build_bundle(Path(tmp) / "evidence", files, data)
    if rebuilt != ehash:
        raise SignOffError(f"the evidence rebuilt from the control store ({rebuilt[:16]}…) is not the run's bundle "
                           f"({ehash[:16]}…): the figures changed since the minutes were rendered",
                           table=str(evidence_dir), hint="start a new run (`ecm run`); never reissue other figures")
    if old_binding is not None and (old_binding.get("evidence_sha256") != ehash
                                    or old_binding.get("snapshot_sha256") != snap["snapshot_sha256"]):
        raise SignOffError(f"the minutes bind other figures than the run's evidence and snapshot ({BINDING_NAME})",
                           table=str(pdf), hint="start a new run (`ecm run`)")
    old_sha = sha256_file(pdf)
    number = 1 + sum(1 for e in store.branch_events(cfg.branch_code)
                     if e["action"] == "minutes-reissue" and e["run_id"] == run_id)
    kept = pdf.with_name(f"{pdf.stem}.superseded-{number}-{old_sha[:12]}.pdf")
    shutil.copy2(pdf, kept)
    at = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    reissue = {"number": number, "replaces_sha256": old_sha, "by": by.strip(), "reason": reason.strip(), "at": at}
    try:
        verdict = "; ".join(_verify(pdf, config_anchors(cfg), evidence_dir).problems()[:6])
    except Exception as exc:  # noqa: BLE001 - the reason is recorded, whatever made the old file unreadable
        verdict = f"cannot be verified: {exc}"
    tmp_pdf = pdf.with_name(f".{pdf.stem}.reissue.pdf")
    _render(ctx, snap, ehash, tmp_pdf, reissue=reissue)
    tmp_pdf.replace(pdf)
    new_sha = sha256_file(pdf)
    store.add_branch_event(cfg.branch_code, "minutes-reissue", run_id=run_id, target=str(pdf), by=by.strip(),
                           reason=reason.strip(), detail={
                               "number": number, "old_sha256": old_sha, "new_sha256": new_sha,
                               "superseded": str(kept), "evidence_sha256": ehash,
                               "snapshot_sha256": snap["snapshot_sha256"], "old_minutes_verification": verdict})
    store.add_document(run_id, f"minutes-superseded-{number}", str(kept), old_sha, signed=False,
                       note=f"replaced by reissue {number} ({by.strip()}: {reason.strip()}); {verdict}")
    store.add_document(run_id, "minutes", str(pdf), new_sha, signed=False,
                       note=f"reissue {number} by {by.strip()} ({reason.strip()}), same figures; waiting for the "
                            "six signatures")
    store.set_run_status(run_id, "waiting-signatures")
    return (f"minutes of run {run_id} reissued (revision {number}) by {by.strip()}: {old_sha[:16]}… → "
            f"{new_sha[:16]}… (old file kept: {kept.name}); same figures (evidence {ehash[:16]}…); next: the six "
            f"sign {pdf} (`ecm sign … --run {run_id}`), then `ecm resume --run {run_id} --config …`")


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
