"""One run per branch at a time; a killed run is seen as crashed and its branch can run again; a migrated branch
is not run over (issue: chain of custody, items 4 and 6). Real processes: `ecm run` in subprocesses, kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

from load.control_store import ControlStore
from pipelines.migrate import migrate_branch
from pipelines.runlock import BranchBusy, BranchMigrated
from sample_data.generator import GenParams, generate_branch
from tests.conftest import make_config

pytestmark = pytest.mark.flow


@pytest.fixture(scope="module", autouse=True)
def harness():  # type: ignore[no-untyped-def]
    with prefect_test_harness(server_startup_timeout=120):
        yield


def _ecm(*args: str, home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PREFECT_HOME": str(home), "COLUMNS": "200",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    return subprocess.Popen([sys.executable, "-c", "from pipelines.cli import main; main()", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _wait_for(cond, seconds: float = 180):  # type: ignore[no-untyped-def]
    t0 = time.time()
    while time.time() - t0 < seconds:
        v = cond()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


@pytest.fixture(scope="module")
def waiting_branch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A branch with critical findings: without --auto-approve-demo its run waits at the step-4 gate (60 s in
    these configs) — a run that is alive and busy for as long as the test needs."""
    d = tmp_path_factory.mktemp("waiting") / "branch"
    generate_branch(d, GenParams(seed=3, defects={"duplicate_key": 0.05}))
    return d


def test_a_second_run_of_the_branch_is_refused_at_once_naming_the_first(tmp_path: Path, waiting_branch: Path) -> None:
    cfg = make_config(tmp_path, waiting_branch)
    store = ControlStore(cfg.control_url)
    cfg_file = cfg.output_dir / "branch.toml"
    first = _ecm("run", "--config", str(cfg_file), home=tmp_path / "ph1")
    try:
        lease = _wait_for(lambda: store.lease(cfg.branch_code))
        _wait_for(lambda: (store.run(lease["run_id"]) or {}).get("status") == "waiting-decision")
        t0 = time.time()
        second = _ecm("run", "--config", str(cfg_file), "--auto-approve-demo", home=tmp_path / "ph2")
        out2, _ = second.communicate(timeout=180)
        assert second.returncode == 2, out2
        assert f"is being migrated by run {lease['run_id']}" in out2 and "Traceback" not in out2, out2
        assert store.run(lease["run_id"])["status"] == "waiting-decision"  # the first one is untouched
        assert len(store.latest_runs(10)) == 1  # the refused one left no run behind
        assert time.time() - t0 < 120
    finally:
        first.kill()
        first.wait(timeout=30)


def test_a_killed_run_shows_crashed_and_the_branch_runs_again(tmp_path: Path, waiting_branch: Path) -> None:
    cfg = make_config(tmp_path, waiting_branch)
    store = ControlStore(cfg.control_url)
    cfg_file = cfg.output_dir / "branch.toml"
    p = _ecm("run", "--config", str(cfg_file), home=tmp_path / "ph1")
    run_id = _wait_for(lambda: (store.lease(cfg.branch_code) or {}).get("run_id"))
    _wait_for(lambda: (store.run(run_id) or {}).get("status") == "waiting-decision")
    os.kill(p.pid, signal.SIGKILL)  # kill -9 mid-run: no finally, no lease given back
    p.wait(timeout=30)
    st = _ecm("status", run_id, "--config", str(cfg_file), home=tmp_path / "ph1")
    out, _ = st.communicate(timeout=120)
    assert f"{run_id} — crashed" in out, out
    # the next run takes the dead holder's lease over (recorded) and completes
    s = migrate_branch(config=cfg, auto_approve_demo=True)
    assert s["status"] == "completed"
    assert store.run(run_id)["status"] == "crashed"
    ev = [e for e in store.branch_events(cfg.branch_code) if e["action"] == "lease-taken-over"]
    assert ev and ev[-1]["detail"]["run_id"] == run_id


def test_a_lease_held_elsewhere_is_refused_until_closed(tmp_path: Path, sample_branch: Path) -> None:
    cfg = make_config(tmp_path, sample_branch)
    store = ControlStore(cfg.control_url)
    store.start_run("c47d-elsewhere", cfg.branch_code, True, {})
    assert store.take_lease(cfg.branch_code, "c47d-elsewhere", "another-host:4242")  # alive or not: unknown here
    with pytest.raises(BranchBusy, match="c47d-elsewhere on another-host:4242"):
        migrate_branch(config=cfg, auto_approve_demo=True)
    from pipelines.runlock import close_run
    with pytest.raises(Exception, match="who"):
        close_run(store, "c47d-elsewhere", "", "")
    close_run(store, "c47d-elsewhere", "Trần Văn Kỹ Thuật", "host lost in the cut-over night")
    assert store.run("c47d-elsewhere")["status"] == "closed" and store.lease(cfg.branch_code) is None
    assert migrate_branch(config=cfg, auto_approve_demo=True)["run_id"]


def test_a_migrated_branch_is_not_run_over(tmp_path: Path, sample_branch: Path) -> None:
    cfg = make_config(tmp_path, sample_branch, rehearsal=False, signing={"demo_pki": True})
    first = migrate_branch(config=cfg, auto_approve_demo=True)
    store = ControlStore(cfg.control_url)
    assert store.branch_state(cfg.branch_code)["migrated"], first
    with pytest.raises(BranchMigrated, match="is migrated"):
        migrate_branch(config=cfg, auto_approve_demo=True)
    assert len(store.latest_runs(10)) == 1  # refused before anything ran or was recorded as a run
    again = migrate_branch(config=cfg, auto_approve_demo=True,
                           replace={"by": "Nguyễn Văn An (Tổng cục)", "reason": "re-run after source correction"})
    assert again["run_id"] != first["run_id"]
    assert [e["by"] for e in store.branch_events(cfg.branch_code) if e["action"] == "replace"] == \
        ["Nguyễn Văn An (Tổng cục)"]


def test_a_run_killed_right_after_its_load_committed_leaves_the_branch_migrated(tmp_path: Path,
                                                                               sample_branch: Path) -> None:
    """The load and central's ledger entry commit together; a kill -9 right after (before the run recorded the
    branch as migrated) cannot open the sources again nor let a new run replace the branch."""
    import sqlite3

    from pipelines.lifecycle import unfreeze
    from transform.errors import ConfigError
    from pipelines.config import load_config
    from sample_data.demo import write_config
    path = write_config(tmp_path, sample_branch, rehearsal=False, demo_pki=True)  # the file the subprocess reads
    cfg = load_config(path)
    store = ControlStore(cfg.control_url)
    central = Path(cfg.central_url.removeprefix("sqlite:///"))
    p = _ecm("run", "--config", str(cfg.output_dir / "branch.toml"), "--auto-approve-demo", home=tmp_path / "ph")

    def loaded() -> bool:
        if not central.exists():
            return False
        try:
            with sqlite3.connect(central, timeout=0.1) as c:
                return bool(c.execute("SELECT count(*) FROM ECM_LOAD_LEDGER").fetchone()[0])
        except sqlite3.Error:
            return False
    _wait_for(loaded, 300)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    with sqlite3.connect(central) as c:
        rows, entries = c.execute('SELECT count(*) FROM "DTO_KHAI_MD"').fetchone()[0], \
            c.execute("SELECT ACTION, ROWS FROM ECM_LOAD_LEDGER").fetchall()
    assert rows > 0 and entries and entries[0][0] == "load"  # rows and ledger: together, never apart
    with pytest.raises(ConfigError, match="is migrated"):
        unfreeze(cfg, "Trần Văn Kỹ Thuật", "drill")  # reconciled from central's ledger first
    with pytest.raises(BranchMigrated):
        migrate_branch(config=cfg, auto_approve_demo=True)
    assert any(e["action"] == "migrated" for e in store.branch_events(cfg.branch_code))


def test_a_killed_run_goes_on_after_its_last_completed_step(tmp_path: Path, waiting_branch: Path) -> None:
    from pipelines.migrate import resume_run
    cfg = make_config(tmp_path, waiting_branch)
    store = ControlStore(cfg.control_url)
    p = _ecm("run", "--config", str(cfg.output_dir / "branch.toml"), home=tmp_path / "ph1")
    run_id = _wait_for(lambda: (store.lease(cfg.branch_code) or {}).get("run_id"))
    _wait_for(lambda: (store.run(run_id) or {}).get("status") == "waiting-decision")
    os.kill(p.pid, signal.SIGKILL)  # killed while waiting at the step-4 gate
    p.wait(timeout=30)
    before = {s.step: (s.seconds, s.detail) for s in store.steps(run_id)}
    assert set(before) >= {"pl4_01_review", "pl4_04_restore"}
    s = resume_run(config=cfg, run_id=run_id, auto_approve_demo=True)
    assert s["status"] == "completed" and s["run_id"] == run_id
    after = {st.step: (st.seconds, st.detail) for st in store.steps(run_id)}
    for step in ("pl4_01_review", "pl4_02_freeze_backup", "pl4_03_handover", "pl4_04_restore"):
        assert after[step] == before[step], step  # not run again
    assert after["pl4_08_load"]  # the rest ran
    assert [e["action"] for e in store.branch_events(cfg.branch_code)].count("resume-run") == 1
    with pytest.raises(Exception, match="only a crashed or failed run"):
        resume_run(config=cfg, run_id=run_id, auto_approve_demo=True)  # a completed run does not go on


def test_a_holder_on_another_host_is_alive_while_its_heartbeat_is_recent_and_dead_after(tmp_path: Path) -> None:
    """A worker on another host cannot be asked whether its process lives; its lease heartbeat says so. Recent:
    the branch is busy; stale (the host went down): the run shows crashed and a new run takes the lease over."""
    from pipelines import runlock
    store = ControlStore(f"sqlite:///{tmp_path / 'control.sqlite'}")
    store.start_run("c47d-remote", "C47D", True, {})
    store.set_run_status("c47d-remote", "running")
    assert store.take_lease("C47D", "c47d-remote", "worker-host-2:777")
    assert store.renew_lease("C47D", "c47d-remote", "worker-host-2:777")
    assert not store.renew_lease("C47D", "c47d-remote", "worker-host-3:1")  # only the holder renews
    assert runlock.effective_status(store, store.run("c47d-remote")) == "running"  # type: ignore[arg-type]
    with pytest.raises(BranchBusy, match="worker-host-2:777"):
        runlock.take(store, "C47D", "c47d-next")
    with pytest.raises(BranchBusy, match="worker-host-2:777"):  # the same run resumed here while it lives there
        runlock.take(store, "C47D", "c47d-remote")
    # the heartbeat stops (the host is gone): stale after STALE_AFTER_SECONDS
    with store.engine.begin() as c:
        import sqlalchemy as sa

        from load.control_store import lease_heartbeats
        c.execute(sa.update(lease_heartbeats).values(renewed_at=time.time() - runlock.STALE_AFTER_SECONDS - 1))
    assert runlock.effective_status(store, store.run("c47d-remote")) == "crashed"  # type: ignore[arg-type]
    runlock.take(store, "C47D", "c47d-next")
    try:
        assert store.lease("C47D")["run_id"] == "c47d-next"  # type: ignore[index]
        assert store.run("c47d-remote")["status"] == "crashed"  # type: ignore[index]
        assert store.lease_renewed_at("C47D", "c47d-next") is not None  # the new holder beats
    finally:
        runlock.give_back(store, "C47D", "c47d-next")
    assert store.lease("C47D") is None and store.lease_renewed_at("C47D", "c47d-next") is None
