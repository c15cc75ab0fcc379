"""The discrepancy workflow: a run pauses at a decision gate and is resumed from another process by `ecm decide`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

import duckdb
import pytest
from prefect.settings import PREFECT_API_URL
from prefect.testing.utilities import prefect_test_harness

from extract import staging
from load.control_store import ControlStore
from sample_data.demo import write_config
from sample_data.generator import GenParams, generate_branch
from sign_off.decisions import blocking, check_decision, parse_corrections
from tests.conftest import wait_for_run
from transform.errors import SignOffError

pytestmark = pytest.mark.flow
ECM = str(Path(sys.executable).with_name("ecm"))


def test_blocking_follows_the_policy() -> None:
    f = [{"finding_id": 1, "step": "pl4_01_review", "severity": "critical", "status": "open"},
         {"finding_id": 2, "step": "pl4_05_convert", "severity": "major", "status": "open"},
         {"finding_id": 3, "step": "pl4_01_review", "severity": "minor", "status": "open"},
         {"finding_id": 4, "step": "pl4_01_review", "severity": "critical", "status": "accepted"}]
    block = {"critical": ["pl4_04_restore", "pl4_06_validate"], "major": ["pl4_06_validate"]}
    assert [x["finding_id"] for x in blocking(f, "pl4_04_restore", block)] == [1]
    assert [x["finding_id"] for x in blocking(f, "pl4_06_validate", block)] == [1, 2]


def test_decision_rules() -> None:
    crit = {"finding_id": 1, "severity": "critical", "status": "open"}
    with pytest.raises(SignOffError, match="needs a reason"):
        check_decision(crit, "accept", "  ", "pl4_06_validate")
    with pytest.raises(SignOffError, match="choices are accept, redo"):
        check_decision(crit, "correct", "x", "pl4_04_restore", 1)
    with pytest.raises(SignOffError, match="at least one row"):
        check_decision(crit, "correct", "x", "pl4_06_validate", 0)
    with pytest.raises(SignOffError, match="already accepted"):
        check_decision({**crit, "status": "accepted"}, "accept", "x", None)
    check_decision(crit, "accept", "đã đối chiếu với hồ sơ giấy", "pl4_06_validate")


def test_corrections_are_applied_with_an_audit_trail(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    con.execute('CREATE SCHEMA src_sxxk; CREATE TABLE src_sxxk."DNPLNHAP" ("SOTK" INT, "MA_HQ" VARCHAR, '
                '"MA_NPL" VARCHAR, "TON" DECIMAL(18,8)); INSERT INTO src_sxxk."DNPLNHAP" VALUES '
                "(1, 'C47D  ', 'VAI', 150), (2, 'C47D', NULL, 5)")
    rows = parse_corrections("table,key,column,new_value\nSXXK.DNPLNHAP,SOTK=1|MA_HQ=C47D|MA_NPL=VAI,TON,90\n"
                             "SXXK.DNPLNHAP,SOTK=2|MA_HQ=C47D|MA_NPL=None,MA_NPL,VAI\n")
    audit = staging.apply_corrections(con, rows)
    assert [(a["column_name"], a["old_value"], a["new_value"]) for a in audit] == [
        ("TON", "150.00000000", "90"), ("MA_NPL", None, "VAI")]
    assert con.execute('SELECT "TON" FROM src_sxxk."DNPLNHAP" WHERE "SOTK" = 1').fetchall()[0][0] == 90
    with pytest.raises(Exception, match="matches 0 rows"):
        staging.apply_corrections(con, parse_corrections("table,key,column,new_value\n"
                                                         "SXXK.DNPLNHAP,SOTK=9,TON,1\n"))


def test_run_waits_for_decisions_and_resumes_from_another_process(tmp_path: Path) -> None:
    branch = tmp_path / "branch"
    generate_branch(branch, GenParams(seed=3, defects={"duplicate_key": 0.05, "null_key": 0.05}))
    cfg_path = write_config(tmp_path, branch)
    with cfg_path.open("a", encoding="utf-8") as f:
        f.write("\n[policy]\npoll_seconds = 1\ndecision_timeout_seconds = 300\n")
    store = ControlStore(f"sqlite:///{tmp_path / 'control.sqlite'}")
    with prefect_test_harness(server_startup_timeout=120):
        env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_HOME": str(tmp_path / "ph")}
        run = subprocess.Popen([ECM, "run", "--config", str(cfg_path)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        try:
            waiting = wait_for_run(store, lambda r: r["status"] in ("waiting-decision", "failed", "completed"))
            assert waiting["status"] == "waiting-decision"
            rid = waiting["run_id"]
            crit = [f for f in store.findings(rid) if f["severity"] == "critical" and f["status"] == "open"]
            assert crit
            # the Prefect UI's pause form records no decision by default (no login there: the deciders policy
            # could not apply): a decision sent through it is refused
            from prefect.client.orchestration import get_client
            from prefect.flow_runs import resume_flow_run
            fr_id = UUID(waiting["flow_run_id"])

            def pause_key() -> str | None:
                with get_client(sync_client=True) as client:
                    st = client.read_flow_run(fr_id).state
                return st.state_details.pause_key if st is not None and st.is_paused() else None

            deadline = time.monotonic() + 120
            while pause_key() != "gate-after-pl4-04-restore-1":
                assert time.monotonic() < deadline, "the run did not pause at the gate"
                time.sleep(0.5)
            with pytest.raises(RuntimeError, match="'decisions' was unexpected"):  # Prefect refuses the input
                resume_flow_run(fr_id, run_input={"note": "x", "decisions": [{
                    "finding_id": crit[0]["finding_id"], "decision": "accept", "reason": "r", "by": "anyone"}]})
            assert pause_key() == "gate-after-pl4-04-restore-1"  # still paused at the same gate
            assert store.finding(rid, crit[0]["finding_id"])["status"] == "open"  # type: ignore[index]
            assert not store.decision_log(rid)
            # a critical finding cannot be accepted without a reason
            r = subprocess.run([ECM, "decide", rid, str(crit[0]["finding_id"]), "--accept", "--by", "Nguyễn Văn An",
                                "--config", str(cfg_path)], env=env, capture_output=True, text=True, timeout=120)
            assert r.returncode == 2 and "needs a reason" in r.stdout + r.stderr
            for f in crit:
                r = subprocess.run([ECM, "decide", rid, str(f["finding_id"]), "--accept", "--reason",
                                    "Đã đối chiếu với hồ sơ giấy", "--by", "Nguyễn Văn An (Tổng cục)",
                                    "--config", str(cfg_path)], env=env, capture_output=True, text=True, timeout=120)
                assert r.returncode == 0, r.stdout + r.stderr
            # the run resumes, converts, and waits again after step 6 for the major findings
            wait_for_run(store, lambda r: r["status"] == "waiting-decision" and any(
                s.step == "gate_after_pl4_06_validate" and s.status == "running" for s in store.steps(r["run_id"])))
            major = [f for f in store.findings(rid) if f["status"] == "open" and f["severity"] == "major"]
            r = subprocess.run([ECM, "decide", rid, str(major[0]["finding_id"]), "--redo", "--reason",
                                "Chi cục hiệu chỉnh dữ liệu tồn", "--by", "Trần Thị Lan (Cục)", "--config", str(cfg_path)],
                               env=env, capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr
            out, _ = run.communicate(timeout=180)
        finally:
            if run.poll() is None:
                run.kill()
    final = store.run(rid)
    assert final is not None and final["status"] == "redo-from-step-1", out[-3000:]
    decided = {f["finding_id"]: f for f in store.findings(rid)}
    assert all(decided[f["finding_id"]]["decided_by"] == "Nguyễn Văn An (Tổng cục)" for f in crit)
    assert decided[major[0]["finding_id"]]["status"] == "redo"
    assert (tmp_path / "runs" / rid / "reports" / "lam_lai_tu_buoc_1.xlsx").exists()
    steps = {s.step for s in store.steps(rid)}
    assert "pl4_07_sign_off" not in steps and "pl4_08_load" not in steps  # nothing signed or loaded
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "redo-from-step-1"
