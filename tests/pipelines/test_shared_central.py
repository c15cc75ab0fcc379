"""db tier: two branches in one PostgreSQL (rehearsal) central.

- They load at the same moment, each in its own transaction over its own ID window, and neither waits for the
  other: both transactions are held open at the same point (every row written, not committed) by a barrier; a
  lock wait would keep one from reaching it. Then both commit and central holds each branch once.
- The switch-over-and-back drill (`ecm wave drill`): one branch unloaded and loaded again; the other stays
  byte-identical, the drilled one comes back with exactly its rows."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

import load.central as central_mod
from load.central import branch_counts, load_branch, open_central
from load.control_store import ControlStore
from pipelines.config import load_config
from pipelines.migrate import migrate_branch
from pipelines.steps.base import StepContext
from pipelines.steps.users import branch_users
from sample_data.demo import write_config

pytestmark = [pytest.mark.db, pytest.mark.flow]


@pytest.fixture(scope="module")
def two_branches(sample_branch: Path, tmp_path_factory: pytest.TempPathFactory, pg_admin_url: str):  # type: ignore[no-untyped-def]
    """Two sample branches (C47D, C47E) migrated by rehearsal runs into one PostgreSQL central."""
    from prefect.testing.utilities import prefect_test_harness

    from sample_data.server import create_database, drop_database
    from tests.conftest import unique_name, with_database
    pg_database = with_database(pg_admin_url, unique_name("ecm_t_shared"))
    create_database(pg_database)
    tmp_path = tmp_path_factory.mktemp("shared")
    users = json.loads((sample_branch / "users.json").read_text(encoding="utf-8"))
    runs = []
    try:
        with prefect_test_harness(server_startup_timeout=120):
            for i, code in enumerate(("C47D", "C47E"), start=1):
                d = tmp_path / code.lower()
                d.mkdir()
                ufile = d / "users.json"  # each branch's staff are other people, with other logins
                ufile.write_text(json.dumps([{**u, "login": f"{code.lower()}_{u['login']}"} for u in users],
                                            ensure_ascii=False), encoding="utf-8")
                path = write_config(d, sample_branch, code=code, id_chi_cuc=i, rehearsal=True,
                                    rehearsal_central_url=pg_database)
                text = path.read_text(encoding="utf-8").replace(
                    f'users_file = "{(sample_branch / "users.json").as_posix()}"', f'users_file = "{ufile.as_posix()}"')
                path.write_text(text, encoding="utf-8")
                cfg = load_config(path, {"policy": {"decision_timeout_seconds": 60}})
                s = migrate_branch(config=cfg, auto_approve_demo=True)
                assert s["status"] == "completed", s["steps"]
                store = ControlStore(cfg.control_url)
                runs.append((cfg, s["run_id"], StepContext(cfg, store, s["run_id"]).base_id, s["converted_rows"],
                             path))
        yield {"central": pg_database, "runs": runs, "dir": tmp_path}
    finally:
        drop_database(pg_database)


def test_two_branches_load_one_central_at_once_without_waiting(two_branches) -> None:  # type: ignore[no-untyped-def]
    pg_database, runs = two_branches["central"], two_branches["runs"]
    engine = open_central(pg_database)
    # as on the first night: central has neither branch nor any role yet (both loads need the same roles)
    from load.central import unload_branch
    for cfg, _r, base, _c, _p in runs:
        unload_branch(engine, base, cfg.branch_code)
    with engine.begin() as c:
        c.exec_driver_sql('DELETE FROM "ROLE"')
    watcher = sa.create_engine(pg_database, poolclass=sa.pool.NullPool)
    barrier = threading.Barrier(3, timeout=60)
    seen_waits: list[object] = []
    real_entry = central_mod._ledger_entry

    def entry_at_the_barrier(conn, md, **values):  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("SET LOCAL lock_timeout = '20s'")
        barrier.wait()  # every row of this branch written, not committed — and so is the other's
        barrier.wait()  # the watcher has looked
        real_entry(conn, md, **values)

    errors: list[BaseException] = []

    def load(cfg, base):  # type: ignore[no-untyped-def]
        try:
            us, _unknown = branch_users(cfg)
            load_branch(engine, cfg.run_dir_root / rid_of[cfg.branch_code] / "converted", base, cfg.branch_code, us,
                        {r: r for u in us for r in u["roles"]})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            barrier.abort()

    rid_of = {cfg.branch_code: rid for cfg, rid, _b, _c, _p in runs}
    central_mod._ledger_entry = entry_at_the_barrier  # type: ignore[assignment]
    try:
        threads = [threading.Thread(target=load, args=(cfg, base)) for cfg, _r, base, _c, _p in runs]
        for t in threads:
            t.start()
        barrier.wait()  # both transactions are open with all their rows: nothing may be waiting for a lock
        with watcher.connect() as c:
            seen_waits = list(c.exec_driver_sql(
                "SELECT a.pid, a.wait_event_type, a.wait_event, l.locktype, l.mode, l.relation::regclass::text "
                "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE NOT l.granted AND a.datname = current_database()").fetchall())
            open_tx = c.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'idle in transaction'").scalar()
        barrier.wait()
        for t in threads:
            t.join(timeout=120)
    finally:
        central_mod._ledger_entry = real_entry  # type: ignore[assignment]
        watcher.dispose()
    assert not errors, errors
    assert not seen_waits, seen_waits
    assert open_tx == 2  # both loads were open at the same moment
    for cfg, _rid, base, converted, _p in runs:  # each branch once, in its own window
        assert {k: v for k, v in branch_counts(engine, base).items() if v} == converted, cfg.branch_code
    engine.dispose()


def test_the_switch_over_and_back_drill_leaves_the_other_branch_byte_identical(two_branches) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from pipelines.wave.drill import window_digest
    d, runs = two_branches["dir"], two_branches["runs"]
    plan = d / "rehearsal.toml"
    plan.write_text('wave = "dien-tap"\nmode = "rehearsal"\ncontrol_url = "sqlite:///' + str(d / "w.sqlite") + '"\n'
                    + "".join(f'[[branch]]\nconfig = "{p.relative_to(d).as_posix()}"\n' for *_x, p in runs),
                    encoding="utf-8")
    digest = {cfg.branch_code: window_digest(two_branches["central"], base) for cfg, _r, base, _c, _p in runs}
    ecm = str(Path(sys.executable).with_name("ecm"))
    r = subprocess.run([ecm, "wave", "drill", str(plan), "--branch", "C47E", "--by", "Trần Thị B (Cục CNTT)",
                        "--reason", "diễn tập chuyển đổi dự phòng"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "drill passed" in r.stdout
    report = json.loads((d / "out" / "waves" / "dien-tap" / "drill_c47e.json").read_text(encoding="utf-8"))
    assert report["ok"] and report["rows_left_after_unload"] == 0
    by = {row["branch"]: row for row in report["branches"]}
    assert by["C47D"]["before"] == by["C47D"]["after_unload"] == by["C47D"]["after_reload"] == digest["C47D"]
    assert by["C47E"]["before"] == by["C47E"]["after_reload"] == digest["C47E"] != by["C47E"]["after_unload"]
    assert sum(v for k, v in report["rows_removed"].items() if k != "CENTRAL_USER") == sum(runs[1][3].values())
    events = [e["action"] for e in ControlStore(runs[1][0].control_url).branch_events("C47E")]
    assert events[-3:] == ["unload", "load", "drill-reload"]  # step 8 records its load, then the drill
    assert (d / "out" / "waves" / "dien-tap" / "dien_tap_c47e.xlsx").exists()
    # on a production plan the drill is refused, naming why
    prod = d / "prod.toml"
    prod.write_text(plan.read_text(encoding="utf-8").replace('mode = "rehearsal"', 'mode = "production"'),
                    encoding="utf-8")
    r = subprocess.run([ecm, "wave", "drill", str(prod), "--branch", "C47E", "--by", "x", "--reason", "y"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "rehearsal" in r.stderr and "Traceback" not in r.stderr
