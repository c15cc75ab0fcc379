"""Step 7 waits for the six signatures; `ecm sign --run` from other processes completes it; step 8 then loads."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL
from prefect.testing.utilities import prefect_test_harness

from load.control_store import ControlStore
from sample_data.demo import write_config
from sign_off.pki import DEMO_SIGNERS, DemoPki, make_demo_pki
from tests.conftest import wait_for_run

pytestmark = pytest.mark.flow
ECM = str(Path(sys.executable).with_name("ecm"))


def _signers_config(tmp_path: Path, sample_branch: Path, wait_seconds: int) -> tuple[DemoPki, Path]:
    """A production config whose six signers are real people (a test PKI, no DEMO signing), step 7 waiting
    ``wait_seconds``. Nobody signs the backup report either: nothing blocks at the decision gates."""
    pki = make_demo_pki(tmp_path / "signers")
    cfg_path = write_config(tmp_path, sample_branch, rehearsal=False, demo_pki=False)
    text = cfg_path.read_text(encoding="utf-8").replace("demo_pki = false", (
        f'demo_pki = false\ntrust = ["{pki.trust}"]\ncrls = ["{pki.crl}", "{pki.root_crl}"]\n'
        f'other_certs = ["{pki.intermediate}"]'))
    cfg_path.write_text(text + f"\n[policy]\npoll_seconds = 1\ndecision_timeout_seconds = {wait_seconds}\n"
                        "block = {}\n", encoding="utf-8")
    return pki, cfg_path


def test_run_waits_for_signatures_then_loads(tmp_path: Path, sample_branch: Path) -> None:
    pki, cfg_path = _signers_config(tmp_path, sample_branch, wait_seconds=240)
    store = ControlStore(f"sqlite:///{tmp_path / 'control.sqlite'}")
    with prefect_test_harness(server_startup_timeout=120):
        env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_HOME": str(tmp_path / "ph"),
               "ECM_P12_PASSPHRASE": pki.passphrase().decode()}
        run = subprocess.Popen([ECM, "run", "--config", str(cfg_path)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        try:
            first = wait_for_run(store, lambda r: r["status"] in ("waiting-signatures", "failed", "completed"), 180)
            rid = first["run_id"]
            assert first["status"] == "waiting-signatures"
            pdf = tmp_path / "runs" / rid / "reports" / "bien_ban_xac_nhan_so_lieu.pdf"
            for field in DEMO_SIGNERS:
                r = subprocess.run([ECM, "sign", str(pdf), "--field", field, "--p12", str(pki.p12(field)),
                                    "--run", rid, "--config", str(cfg_path)], env=env, capture_output=True, text=True,
                                   timeout=120)
                assert r.returncode == 0, r.stdout + r.stderr
                assert pki.passphrase().decode() not in r.stdout + r.stderr
            out, _ = run.communicate(timeout=240)
        finally:
            if run.poll() is None:
                run.kill()
    final = store.run(rid)
    assert final is not None and final["status"] == "completed", out[-2000:]
    assert [d["signed"] for d in store.documents(rid) if d["kind"] == "minutes"] == [True]
    # the unsigned backup report was caught on receipt (step 3) and is on the register
    sig = [c for c in store.checks(rid) if c["check_id"] == "backup_report_signature"]
    assert sig and sig[0]["status"] == "fail" and "not signed" in sig[0]["actual"]
    assert any(f["check_id"] == "backup_report_signature" for f in store.findings(rid))
    central = sqlite3.connect(tmp_path / "central.sqlite")  # the real central, not the rehearsal one
    assert central.execute("SELECT count(*) FROM DTO_KHAI_MD").fetchone()[0] > 0
    v = subprocess.run([ECM, "verify", str(pdf), "--evidence", str(tmp_path / "runs" / rid / "evidence"),
                        "--trust", str(pki.trust), "--crl", str(pki.crl), "--crl", str(pki.root_crl),
                        "--certs", str(pki.intermediate)],
                       capture_output=True, text=True, timeout=120)
    assert v.returncode == 0, v.stdout + v.stderr


def test_a_run_whose_wait_timed_out_resumes_at_step_7_keeping_the_signatures(tmp_path: Path,
                                                                              sample_branch: Path) -> None:
    """Signers late: the wait times out (run 'waiting-signatures'); three sign; `ecm resume` waits again on
    the same minutes (not re-rendered: the three signatures stay) and times out; the other three sign; the
    next resume finds all six, verifies them and loads — steps 1–6 are not run again."""
    from pipelines.config import load_config
    from pipelines.migrate import migrate_branch, resume_signing
    from sign_off.signing import sign, verify_minutes
    from transform.errors import SignOffError

    pki, cfg_path = _signers_config(tmp_path, sample_branch, wait_seconds=3)
    cfg = load_config(cfg_path)
    store = ControlStore(f"sqlite:///{tmp_path / 'control.sqlite'}")

    rid = migrate_branch(config=cfg)["run_id"]
    assert store.run(rid)["status"] == "waiting-signatures"
    steps_before = {s.step: s for s in store.steps(rid)}
    pdf = tmp_path / "runs" / rid / "reports" / "bien_ban_xac_nhan_so_lieu.pdf"
    anchors = ([pki.trust], pki.crls, [pki.intermediate], tmp_path / "runs" / rid / "evidence")
    fields = list(DEMO_SIGNERS)
    for field in fields[:3]:
        sign(pdf, field, pki.p12(field), pki.passphrase())
    # `ecm sign --run` on a run whose wait is over says how to continue (at once, not after a minute's retries)
    from pipelines.decide import resume_if_waiting
    assert f"ecm resume --run {rid}" in resume_if_waiting(cfg_path, rid, "waiting-signatures", fields[2])

    resume_signing(config=cfg, run_id=rid)  # still three missing: waits, times out again
    assert store.run(rid)["status"] == "waiting-signatures"
    assert sorted(verify_minutes(pdf, *anchors).missing_fields) == sorted(fields[3:])  # the first three kept

    for field in fields[3:]:
        sign(pdf, field, pki.p12(field), pki.passphrase())
    resume_signing(config=cfg, run_id=rid)
    assert store.run(rid)["status"] == "completed"
    assert verify_minutes(pdf, *anchors).ok
    assert [d["signed"] for d in store.documents(rid) if d["kind"] == "minutes"] == [True]
    after = {s.step: s for s in store.steps(rid)}
    assert after["pl4_07_sign_off"].detail.get("resumed") and after["pl4_08_load"].status == "completed"
    for step in ("pl4_01_review", "pl4_05_convert", "pl4_06_validate"):  # not run again
        assert after[step] == steps_before[step]
    central = sqlite3.connect(tmp_path / "central.sqlite")
    assert central.execute("SELECT count(*) FROM DTO_KHAI_MD").fetchone()[0] > 0
    with pytest.raises(SignOffError, match="only a run waiting for signatures"):
        resume_signing(config=cfg, run_id=rid)


def test_a_wrong_signature_is_recovered_by_reissuing_the_minutes(tmp_path: Path, sample_branch: Path) -> None:
    """Five good signatures and one made with a revoked certificate (outside `ecm sign`, which refuses it): step 7
    fails naming it. `reissue_minutes` renders a new revision of the minutes with the same figures (the evidence
    bundle rebuilt from the control store must hash the same), recorded with who, why and both file hashes; the
    six sign again and `ecm resume` loads — steps 1–6 are not run again."""
    import hashlib

    from pipelines.config import load_config
    from pipelines.migrate import migrate_branch, resume_signing
    from pipelines.steps.pl4_07_sign_off import reissue_minutes
    from sign_off.signing import sign, verify_minutes
    from transform.errors import SignOffError

    pki, cfg_path = _signers_config(tmp_path, sample_branch, wait_seconds=3)
    cfg = load_config(cfg_path)
    store = ControlStore(f"sqlite:///{tmp_path / 'control.sqlite'}")
    rid = migrate_branch(config=cfg)["run_id"]
    assert store.run(rid)["status"] == "waiting-signatures"
    steps_before = {s.step: s for s in store.steps(rid)}
    pdf = tmp_path / "runs" / rid / "reports" / "bien_ban_xac_nhan_so_lieu.pdf"
    anchors = ([pki.trust], pki.crls, [pki.intermediate], tmp_path / "runs" / rid / "evidence")
    fields = list(DEMO_SIGNERS)
    for field in fields[:5]:
        sign(pdf, field, pki.p12(field), pki.passphrase())
    sign(pdf, fields[5], pki.p12("revoked"), pki.passphrase())
    with pytest.raises(Exception, match="revoked"):
        resume_signing(config=cfg, run_id=rid)
    failed = store.run(rid)
    assert failed["status"] == "failed" and "ecm minutes reissue" in failed["error"], failed["error"]
    old = hashlib.sha256(pdf.read_bytes()).hexdigest()
    old_binding = verify_minutes(pdf, *anchors).binding

    msg = reissue_minutes(cfg, rid, by="Trần Văn Kiểm (Cục CNTT)", reason="chi-cuc-business ký bằng chứng thư "
                          "đã thu hồi")
    new = hashlib.sha256(pdf.read_bytes()).hexdigest()
    assert new != old and old[:16] in msg and new[:16] in msg
    assert store.run(rid)["status"] == "waiting-signatures"
    ev = [e for e in store.branch_events(cfg.branch_code) if e["action"] == "minutes-reissue"]
    assert len(ev) == 1 and ev[0]["by"] == "Trần Văn Kiểm (Cục CNTT)" and "thu hồi" in ev[0]["reason"]
    assert ev[0]["detail"]["old_sha256"] == old and ev[0]["detail"]["new_sha256"] == new
    kept = Path(ev[0]["detail"]["superseded"])
    assert kept.exists() and hashlib.sha256(kept.read_bytes()).hexdigest() == old  # the old file is kept
    v = verify_minutes(pdf, *anchors)
    assert v.signatures == [] and sorted(v.missing_fields) == sorted(fields)
    assert v.binding is not None and old_binding is not None
    assert v.binding["evidence_sha256"] == old_binding["evidence_sha256"]  # the same figures
    assert v.binding["snapshot_sha256"] == old_binding["snapshot_sha256"]
    assert v.binding["reissue"]["replaces_sha256"] == old and v.binding["reissue"]["number"] == 1

    for field in fields:
        sign(pdf, field, pki.p12(field), pki.passphrase())
    resume_signing(config=cfg, run_id=rid)
    assert store.run(rid)["status"] == "completed"
    assert verify_minutes(pdf, *anchors).ok
    after = {s.step: s for s in store.steps(rid)}
    for step in ("pl4_01_review", "pl4_05_convert", "pl4_06_validate"):  # not run again
        assert after[step] == steps_before[step]
    central = sqlite3.connect(tmp_path / "central.sqlite")
    assert central.execute("SELECT count(*) FROM DTO_KHAI_MD").fetchone()[0] > 0
    with pytest.raises(SignOffError, match="loaded"):  # nothing to reissue once loaded
        reissue_minutes(cfg, rid, by="X", reason="y")
