"""Tier 3: the whole flow on generated branches, under a Prefect test harness (local, temporary API)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from prefect.testing.utilities import prefect_test_harness

from load.control_store import ControlStore
from pipelines.migrate import migrate_branch
from sample_data.generator import GenParams, generate_branch
from tests.conftest import make_config
from transform.codes import looks_tcvn3

pytestmark = pytest.mark.flow


@pytest.fixture(scope="session", autouse=True)
def harness():  # type: ignore[no-untyped-def]
    with prefect_test_harness(server_startup_timeout=120):
        yield


def _central(cfg) -> sqlite3.Connection:  # type: ignore[no-untyped-def]
    return sqlite3.connect(cfg.rehearsal_central_url.removeprefix("sqlite:///"))


def _eligible_from_source(branch: Path, offices: tuple[str, ...]) -> dict[str, int]:
    """Counts straight from the legacy SQLite files, independent of the pipeline code."""
    sx = sqlite3.connect(branch / "sxxk.sqlite")
    sl = sqlite3.connect(branch / "slxnk.sqlite")
    o = ",".join(f"'{x}'" for x in offices)
    sx_decl = sx.execute(f"SELECT count(*) FROM DTOKHAIMD WHERE trim(MA_HQ) IN ({o}) AND THANH_LY <> 'H'").fetchone()[0]
    sl_decl = sl.execute(f"""SELECT count(*) FROM DToKhaiMD d WHERE trim(Ma_HQ) IN ({o}) AND (substr(Ma_LH,2,2)='CX'
        OR (substr(Ma_LH,2,2)='GC' AND EXISTS (SELECT 1 FROM DHDGC h WHERE h.So_HD=d.So_HD AND h.Ma_HQHD=trim(d.Ma_HQ)
        AND h.DVGC=d.Ma_DV AND h.Ngay_Ky=d.Ngay_HD AND h.ThanhKhoan<>1)))""").fetchone()[0]
    stock = sx.execute(f"""SELECT count(*) FROM DNPLNHAP n JOIN DTOKHAIMD d ON d.SOTK=n.SOTK AND d.MA_LH=n.MA_LH
        AND d.MA_HQ=n.MA_HQ AND d.NAMDK=n.NAMDK WHERE trim(n.MA_HQ) IN ({o}) AND d.THANH_LY<>'H' AND n.TON>0""").fetchone()[0]
    contracts = sl.execute(f"SELECT count(*) FROM DHDGC WHERE Ma_HQHD IN ({o})").fetchone()[0]
    snpl = sx.execute(f"SELECT count(*) FROM SNPL WHERE trim(MA_HQ) IN ({o})").fetchone()[0]
    ssp = sx.execute(f"SELECT count(*) FROM SSP WHERE trim(MA_HQ) IN ({o})").fetchone()[0]
    return {"DTO_KHAI_MD": sx_decl + sl_decl, "DSX_NPL_NHAP": stock, "DGC_HD": contracts, "DSX_SP_NPL": snpl + ssp}


def test_eight_steps_on_the_sample_branch(tmp_path: Path, sample_branch: Path) -> None:
    cfg = make_config(tmp_path, sample_branch)
    s = migrate_branch(config=cfg, auto_approve_demo=True)
    assert [st["name"] for st in s["steps"]] == [
        "pl4_01_review", "pl4_02_freeze_backup", "pl4_03_handover", "pl4_04_restore", "pl4_05_convert",
        "pl4_06_validate", "pl4_07_sign_off", "pl4_08_load"]
    assert all(st["status"] == "completed" for st in s["steps"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["run_id"] == s["run_id"] and Path(summary["paths"]["minutes"]).exists()

    # central rows equal the eligible source rows, counted independently from the legacy files
    expected = _eligible_from_source(sample_branch, ("C47D", "C47D01"))
    central = _central(cfg)
    for table, n in expected.items():
        assert central.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == n, table
    # the price split keeps the stock: Σ TON of the pieces equals Σ TON of the migrated DNPLNHAP rows
    assert central.execute("SELECT round(sum(TON), 3) FROM DSX_NPL_NHAP_TL").fetchone() == \
        central.execute("SELECT round(sum(TON), 3) FROM DSX_NPL_NHAP").fetchone()
    assert central.execute("SELECT count(*) FROM DSX_NPL_NHAP_TL").fetchone()[0] > expected["DSX_NPL_NHAP"]
    # every central table equals the converted snapshot, and every source row has exactly one fate
    store = ControlStore(cfg.control_url)
    assert s["central_rows"] == s["converted_rows"]
    restored = {r["table_name"]: r["rows"] for r in store.counts(s["run_id"], "restored")}
    acct: dict[str, int] = {}
    for a in store.accounting(s["run_id"]):
        acct[a["source_table"]] = acct.get(a["source_table"], 0) + a["rows"]
    assert acct == restored and sum(restored.values()) > 5000
    assert not [a for a in store.accounting(s["run_id"]) if a["fate"] == "quarantined"]  # clean branch
    checks = store.checks(s["run_id"])
    assert checks and all(c["status"] != "fail" for c in checks)
    # the load report for auditors: offline, Vietnamese, carrying the signed snapshot's hash
    import unicodedata
    page = (Path(s["paths"]["reports"]) / "buoc8_bao_cao_nap.html").read_text(encoding="utf-8")
    snap_hash = json.loads((Path(s["paths"]["reports"]) / "buoc8_bao_cao_nap.json").read_text())["snapshot_sha256"]
    assert "Báo cáo nạp dữ liệu" in page and snap_hash in page and "http" not in page
    assert unicodedata.is_normalized("NFC", page)
    # users whose legacy roles have no central role are a finding of step 6, before the minutes are signed
    assert [f["step"] for f in store.findings(s["run_id"]) if f["check_id"] == "unknown_role"] == ["pl4_06_validate"]
    # the frozen source was never written to
    freeze = store.step_detail(s["run_id"], "pl4_02_freeze_backup")["freeze"]
    assert all("readonly" in p["refused_with"] for p in freeze.values())

    _auditor_checks(store.step_detail(s["run_id"], "pl4_08_load")["audit_folder"], tmp_path)

    # the full reconciliation finds exactly one changed value in central, by row and column
    recon = json.loads((Path(s["paths"]["reports"]) / "buoc8_doi_chieu_tung_dong.json").read_text())
    assert sum(r["rows_snapshot"] for r in recon) == sum(s["converted_rows"].values())
    tk_id = central.execute("SELECT TK_ID FROM DHANG_MD WHERE STT_HANG = 1 LIMIT 1").fetchone()[0]
    central.execute("UPDATE DHANG_MD SET LUONG = LUONG + 0.001 WHERE TK_ID = ? AND STT_HANG = 1", (tk_id,))
    central.commit()
    from extract.staging import iter_parquet_sorted
    from load.central import iter_branch_rows
    from load.central_model import CENTRAL
    from validate.fingerprint import reconcile
    spec = CENTRAL["DHANG_MD"]
    engine = sa.create_engine(cfg.rehearsal_central_url)
    r = reconcile("DHANG_MD", list(spec.key), [c for c, _ in spec.columns],
                  iter_parquet_sorted(Path(s["paths"]["snapshot"]) / "DHANG_MD.parquet", list(spec.key)),
                  iter_branch_rows(engine, "DHANG_MD", 14_701_000_000_000))
    assert [(d.key, d.kind, d.columns) for d in r.diffs] == [((tk_id, 1), "different", ["LUONG"])]

    # step 8 again (a second run of the same branch) replaces, never duplicates
    before = {t: central.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in expected}
    s2 = migrate_branch(config=cfg, auto_approve_demo=True)
    assert s2["run_id"] != s["run_id"]
    assert {t: central.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in expected} == before


def test_unsigned_minutes_never_load_outside_rehearsal(tmp_path: Path, sample_branch: Path) -> None:
    cfg = make_config(tmp_path, sample_branch, rehearsal=False, signing={"demo_pki": False})
    with pytest.raises(Exception, match="not signed"):
        migrate_branch(config=cfg)
    store = ControlStore(cfg.control_url)
    run = store.latest_runs(1)[0]
    steps = {s.step: s for s in store.steps(run["run_id"])}
    assert steps["pl4_07_sign_off"].status == "completed" and steps["pl4_08_load"].status == "failed"
    assert run["status"] == "failed"
    prod = cfg.central_url.removeprefix("sqlite:///")
    assert not Path(prod).exists() or sqlite3.connect(prod).execute(
        "SELECT count(*) FROM sqlite_master WHERE name='DTO_KHAI_MD'").fetchone()[0] == 0 or sqlite3.connect(
        prod).execute("SELECT count(*) FROM DTO_KHAI_MD").fetchone()[0] == 0


def _matches(manifest_key: dict, found: dict) -> bool:
    for k, v in manifest_key.items():
        mv, fv = str(v).strip(), str(found.get(k)).strip()
        if not (fv == mv or (len(mv) == 10 and fv.startswith(mv))):  # dates: '2013-05-05' vs '2013-05-05 00:00…'
            return False
    return True


def _src_key_dict(source_key: str) -> dict:
    _table, *parts = source_key.split("|")
    return dict(p.split("=", 1) for p in parts)


EXPECTED_REASONS = {
    "null_key": {"Q-NULL-KEY"}, "ton_gt_luong": {"Q-TON-GT-LUONG", "Q-NULL-KEY"}, "negative_qty": {"Q-NEGATIVE-QTY"},
    "impossible_date": {"Q-IMPOSSIBLE-DATE"}, "duplicate_key": {"Q-DUPLICATE-KEY"},
    "orphan_catalog": {"Q-UNKNOWN-ITEM", "Q-GC-NO-CONTRACT"}, "long_text": {"Q-VALUE-TOO-LONG"},
}


def test_every_injected_defect_is_found_by_the_right_check(tmp_path: Path) -> None:
    branch = tmp_path / "bad"
    m = generate_branch(branch, GenParams(seed=11, defects={
        "decl_without_goods": 0.03, "sohang_mismatch": 0.03, "orphan_catalog": 0.3, "duplicate_key": 0.05,
        "tcvn3_text": 0.05, "null_key": 0.03, "impossible_date": 0.03, "ton_gt_luong": 0.03, "negative_qty": 0.03,
        "long_text": 0.03}))
    cfg = make_config(tmp_path, branch)
    s = migrate_branch(config=cfg, auto_approve_demo=True)
    assert all(st["status"] == "completed" for st in s["steps"])
    store = ControlStore(cfg.control_url)

    # conservation on a defective branch: every restored row has exactly one fate
    restored = {r["table_name"]: r["rows"] for r in store.counts(s["run_id"], "restored")}
    acct: dict[str, int] = {}
    for a in store.accounting(s["run_id"]):
        acct[a["source_table"]] = acct.get(a["source_table"], 0) + a["rows"]
    assert acct == restored

    # step 1 reports every injected defect under the check named after it, with its key
    findings = [f for f in store.findings(s["run_id"]) if f["step"] == "pl4_01_review"]
    kinds = {d["defect"] for d in m["defects"]}
    assert kinds == {"decl_without_goods", "sohang_mismatch", "orphan_catalog", "duplicate_key", "tcvn3_text",
                     "null_key", "impossible_date", "ton_gt_luong", "negative_qty", "long_text"}
    for d in m["defects"]:
        keys = [k for f in findings if f["check_id"] == d["defect"] and f["table_name"] == d["table"]
                for k in json.loads(f["keys_json"])]
        assert any(_matches(d["key"], k) for k in keys), d

    # in step 5 a defective row that was eligible is quarantined under the reason its defect calls for
    import duckdb
    con = duckdb.connect(str(cfg.staging_path), read_only=True)
    q = con.execute("SELECT source_table, reason, source_key FROM quarantine.rows").fetchall()
    con.close()
    quarantined_kinds = set()
    for table, reason, key in q:
        on_row = [d for d in m["defects"] if d["table"] == table and _matches(d["key"], _src_key_dict(key))]
        allowed = set().union(*(EXPECTED_REASONS.get(d["defect"], set()) for d in on_row)) if on_row else set()
        if on_row and allowed:  # a row can carry two defects: its reason must be one of theirs
            assert reason in allowed, (on_row, reason)
            quarantined_kinds.update(d["defect"] for d in on_row if reason in EXPECTED_REASONS.get(d["defect"], ()))
    assert {"null_key", "duplicate_key", "orphan_catalog", "impossible_date", "ton_gt_luong", "long_text"} \
        <= quarantined_kinds
    # a declaration quarantined after conversion (value too long) takes its lines and stock with it:
    # nothing in the snapshot or in central points at a declaration that is not there
    refs = [c for c in store.checks(s["run_id"]) if c["check_id"] in ("snapshot_reference", "central_reference")]
    assert refs and all(c["status"] == "pass" for c in refs), [c for c in refs if c["status"] != "pass"]
    assert any(a["code"] == "Q-PARENT-QUARANTINED" for a in store.accounting(s["run_id"]))
    # TCVN3 text in converted rows was converted and logged, never silently passed on
    fixes = json.loads((Path(s["paths"]["reports"]) / "buoc5_text_fixes.json").read_text())
    assert any(f["table"] == "SXXK.DHANGMDDK" for f in fixes)
    assert all(not looks_tcvn3(f["after"]) for f in fixes)


def test_long_text_is_cut_only_under_the_configured_rule(tmp_path: Path) -> None:
    branch = tmp_path / "long"
    m = generate_branch(branch, GenParams(seed=5, defects={"long_text": 0.2}))
    cfg = make_config(tmp_path, branch, truncate=["2014"])
    s = migrate_branch(config=cfg, auto_approve_demo=True)
    store = ControlStore(cfg.control_url)
    assert not [a for a in store.accounting(s["run_id"]) if a["code"] == "Q-VALUE-TOO-LONG"]
    cuts = json.loads((Path(s["paths"]["reports"]) / "buoc5_truncations.json").read_text())
    assert cuts and all(c["column"] == "DTO_KHAI_MD.DV_DT" and len(c["after"]) == 256 for c in cuts)
    assert len(cuts) <= len([d for d in m["defects"] if d["defect"] == "long_text"])
    assert any(f["check_id"] == "truncated" for f in store.findings(s["run_id"]))


def _auditor_checks(folder_note: dict[str, str], tmp: Path) -> None:
    """The auditor's folder alone verifies in 2035 (signers' certificates long expired); any change is named."""
    import hashlib
    import shutil
    import subprocess

    from typer.testing import CliRunner

    from pipelines.cli import app
    folder, archive = Path(folder_note["folder"]), Path(folder_note["archive"])
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == folder_note["archive_sha256"]
    assert (archive.parent / (archive.name + ".sha256")).read_text().split()[0] == folder_note["archive_sha256"]
    assert subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=folder).returncode == 0
    guide = (folder / "HUONG_DAN_KIEM_TRA.txt").read_text(encoding="utf-8")
    assert "sha256sum -c SHA256SUMS" in guide and "ecm verify" in guide and "pdfsig" in guide

    from sign_off.audit_folder import anchors_in, fingerprints
    fp = fingerprints(anchors_in(folder)[0])[0][1]

    def verify(d: Path, *extra: str) -> tuple[int, str]:
        r = CliRunner().invoke(app, ["verify", str(d), "--at", "2035-01-01", *extra], terminal_width=200)
        return r.exit_code, r.output
    code, out = verify(folder)  # no trust anchor given: the folder's own root proves nothing
    assert code == 1 and "no trust anchor was given" in out and fp in out, out
    assert out.startswith("KẾT LUẬN: KHÔNG HỢP LỆ"), out  # the verdict first, even with pyHanko's complaints
    code, out = verify(folder, "--root-fingerprint", ":".join(fp[i:i + 2] for i in range(0, 64, 2)).lower())
    assert code == 0 and out.startswith("KẾT LUẬN: HỢP LỆ"), out
    assert "load report time-stamp" in out and "SHA256SUMS" in out
    tampered = [("bao_cao/buoc8_bao_cao_nap.json", "buoc8_bao_cao_nap.json"),
                ("chung_cu/findings.json", "findings.json"), ("tin_cay/demo_root.crl", "demo_root.crl")]
    for rel, name in tampered:
        copy = tmp / f"audit-{name}"
        shutil.copytree(folder, copy)
        with (copy / rel).open("ab") as f:
            f.write(b" ")
        code, out = verify(copy, "--root-fingerprint", fp)
        assert code == 1 and out.startswith("KẾT LUẬN: KHÔNG HỢP LỆ") and name in out, (rel, out)
    # the archivist renews the archive time-stamp: a second one, sums and archive rebuilt, still valid in 2035
    renewed = tmp / "audit-renewed"
    shutil.copytree(folder, renewed)
    r = CliRunner().invoke(app, ["timestamp", str(renewed), "--renew", "--config", str(tmp / "branch.toml")],
                           terminal_width=200)
    assert r.exit_code == 0 and "renew before then" in r.output, r.output
    code, out = verify(renewed, "--root-fingerprint", fp)
    assert code == 0 and "luu-tru-2" in out, out
    # a root of someone else's, added to the folder (sums rebuilt), is not trusted by being there
    forged = tmp / "audit-forged"
    shutil.copytree(folder, forged)
    from sign_off.pki import make_demo_pki
    other = make_demo_pki(tmp / "other-pki")
    shutil.copyfile(other.trust, forged / "tin_cay" / "evil_root.pem")
    from sign_off.audit_folder import refresh
    refresh(forged)
    code, out = verify(forged, "--root-fingerprint", fp)
    assert code == 0 and "evil" not in out.split("KẾT LUẬN")[0], out  # still only the named root is trusted
    assert "NOT trusted" in out
    # the load report's time-stamp deleted (sums rebuilt): named
    notsr = tmp / "audit-notsr"
    shutil.copytree(folder, notsr)
    (notsr / "bao_cao" / "buoc8_bao_cao_nap.json.tsr").unlink()
    refresh(notsr)
    code, out = verify(notsr, "--root-fingerprint", fp)
    assert code == 1 and ".tsr is missing" in out, out
    assert subprocess.run(["sha256sum", "--quiet", "-c", renewed.name + ".tar.gz.sha256"], cwd=tmp).returncode == 0
