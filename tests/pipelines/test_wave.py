"""A wave end to end, the way HQ runs one: a Prefect server, two workers on two hosts (network namespaces joined
by a bridge; each reaches the Prefect server, PostgreSQL and MariaDB only over its veth address), four branches
(two on one MariaDB server, one on PostgreSQL, one on SQLite files) into one PostgreSQL central, at most one
branch per source server at a time. One worker's host goes down mid-branch; the wave sees it, re-submits the
branch, which goes on after its last completed step on the other worker. At the end every branch is migrated
exactly once (central checked per ID window), no limit was exceeded (from the slots' records) and the wave
report is complete."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

from load.central import branch_counts, open_central
from load.control_store import ControlStore
from load.wave_store import WaveStore
from pipelines.config import load_config
from pipelines.steps.base import StepContext
from sample_data.demo import write_config
from sample_data.server import copy_sample_db, create_database, drop_database
from tests import hosts
from tests.conftest import unique_name, with_database

pytestmark = [pytest.mark.db, pytest.mark.flow]
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
POLICY = {"policy": {"decision_timeout_seconds": 60, "poll_seconds": 1}}


def _wait(pred, timeout: float, what: str, every: float = 0.5):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture
def net():  # type: ignore[no-untyped-def]
    why = hosts.available()
    if why:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true requires network namespaces for the wave test: {why}")
        pytest.skip(f"wave test needs network namespaces: {why}")
    with hosts.Hosts(["w1", "w2"]) as h, hosts.Forwarder((h.gateway, 5432), ("127.0.0.1", 5432)), \
            hosts.Forwarder((h.gateway, 3306), ("127.0.0.1", 3306)):
        yield h


@pytest.fixture
def databases(net: hosts.Hosts, mariadb_admin_url: str, pg_admin_url: str, sample_branch: Path):  # type: ignore[no-untyped-def]
    """Two MariaDB branches on one server, one PostgreSQL branch, central and control in PostgreSQL — every URL
    through the bridge address, as the workers see them."""
    gw = net.gateway
    via = {"mariadb": lambda u: u.replace("127.0.0.1", gw), "pg": lambda u: u.replace("127.0.0.1", gw)}
    made: list[str] = []
    my = {(b, db): with_database(mariadb_admin_url, unique_name(f"ecm_w_{b}_{db.lower()}"))
          for b in ("a", "b") for db in ("SLXNK", "SXXK")}
    pg = {db: with_database(pg_admin_url, unique_name(f"ecm_w_c_{db.lower()}"), "postgresql+pyodbc")
          + "?driver=PostgreSQL+Unicode" for db in ("SLXNK", "SXXK")}
    central = with_database(pg_admin_url, unique_name("ecm_w_central"))
    control = with_database(pg_admin_url, unique_name("ecm_w_control"))
    prefect_db = with_database(pg_admin_url, unique_name("ecm_w_prefect"))
    reader = unique_name("ecm_r")
    adm = sa.create_engine(mariadb_admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        for (_b, db), url in my.items():
            create_database(url)
            made.append(url)
            copy_sample_db(sample_branch / f"{db.lower()}.sqlite", db, url)
        for db, url in pg.items():
            create_database(url)
            made.append(url)
            copy_sample_db(sample_branch / f"{db.lower()}.sqlite", db, url)
        for url in (central, control, prefect_db):
            create_database(url)
            made.append(url)
        with adm.connect() as c:  # the branches read MariaDB with an account that has no admin rights
            c.exec_driver_sql(f"CREATE USER '{reader}'@'%' IDENTIFIED BY 'pw-{reader}'")
            for url in my.values():
                c.exec_driver_sql(f"GRANT SELECT ON `{sa.engine.make_url(url).database}`.* TO '{reader}'@'%'")
        as_reader = {k: via["mariadb"](sa.engine.make_url(u).set(username=reader, password="${ECM_TEST_READER_PW}")
                                       .render_as_string(False)).replace("%7B", "{").replace("%7D", "}")
                     .replace("%24", "$") for k, u in my.items()}
        yield {"mariadb": as_reader, "mariadb_admin": via["mariadb"](mariadb_admin_url),
               "reader_pw": f"pw-{reader}", "pg": {k: via["pg"](v) for k, v in pg.items()},
               "central": via["pg"](central), "control": via["pg"](control), "central_local": central,
               "prefect_db": prefect_db}
    finally:
        with adm.connect() as c:
            c.exec_driver_sql("SET GLOBAL read_only = OFF")
            c.exec_driver_sql(f"DROP USER IF EXISTS '{reader}'@'%'")
        adm.dispose()
        from extract.freeze import unfreeze_source
        for url in pg.values():
            unfreeze_source(url)
        for url in made:
            drop_database(url)


def _branch_configs(tmp_path: Path, sample_branch: Path, dbs: dict) -> list[Path]:  # type: ignore[type-arg]
    users = json.loads((sample_branch / "users.json").read_text(encoding="utf-8"))
    out = []
    sqlite_src = tmp_path / "src_d"
    shutil.copytree(sample_branch, sqlite_src)
    for i, (code, slx, sxx) in enumerate([
            ("C47D", dbs["mariadb"][("a", "SLXNK")], dbs["mariadb"][("a", "SXXK")]),
            ("C47E", dbs["mariadb"][("b", "SLXNK")], dbs["mariadb"][("b", "SXXK")]),
            ("C47F", dbs["pg"]["SLXNK"], dbs["pg"]["SXXK"]),
            ("C47G", None, None)], start=1):
        d = tmp_path / code.lower()
        d.mkdir()
        ufile = d / "users.json"  # each branch's staff are other people, with other logins
        ufile.write_text(json.dumps([{**u, "login": f"{code.lower()}_{u['login']}"} for u in users],
                                    ensure_ascii=False), encoding="utf-8")
        admin = dbs["mariadb_admin"] if slx and slx.startswith("mariadb") else None
        p = write_config(d, sqlite_src if slx is None else sample_branch, code=code, id_chi_cuc=i, rehearsal=False,
                         slxnk_url=slx, sxxk_url=sxx, admin_url=admin, central_url=dbs["central"])
        text = p.read_text(encoding="utf-8")
        text = text.replace(f'control_url = "sqlite:///{(d / "control.sqlite").as_posix()}"',
                            f'control_url = "{dbs["control"]}"')
        text = text.replace(f'users_file = "{((sqlite_src if slx is None else sample_branch) / "users.json").as_posix()}"',
                            f'users_file = "{ufile.as_posix()}"')
        text = text.replace("[sources]", "[policy]\ndecision_timeout_seconds = 60\npoll_seconds = 1\n\n[sources]")
        p.write_text(text, encoding="utf-8")
        assert load_config(p).control_url == dbs["control"]
        out.append(p)
    return out


def test_a_wave_of_four_branches_on_two_workers_survives_a_lost_host(  # type: ignore[no-untyped-def]
        net: hosts.Hosts, databases, sample_branch: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECM_TEST_READER_PW", databases["reader_pw"])  # the configs name it as ${ECM_TEST_READER_PW}
    gw = net.gateway
    port = 4200 + net.subnet
    api = f"http://{gw}:{port}/api"
    base_env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "PREFECT_API_URL": api,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false",
                "ECM_PROJECT_DIR": str(ROOT), "ECM_LEASE_HEARTBEAT_SECONDS": "2", "ECM_LEASE_STALE_SECONDS": "12",
                "PREFECT_LOGGING_LEVEL": "WARNING",
                "ECM_TEST_READER_PW": databases["reader_pw"]}
    server_env = {**base_env, "PREFECT_HOME": str(tmp_path / "server_home"),
                  "PREFECT_API_DATABASE_CONNECTION_URL": databases["prefect_db"].replace(
                      "postgresql+psycopg", "postgresql+asyncpg"),
                  "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "2",
                  # leases in Redis (the machine's), not in the server's memory: they survive its restart
                  "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
                  "PREFECT_REDIS_MESSAGING_HOST": os.environ.get("ECM_TEST_REDIS_HOST", "127.0.0.1"),
                  "PREFECT_REDIS_MESSAGING_DB": "7"}
    procs: list[subprocess.Popen] = []  # type: ignore[type-arg]
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(cmd: list[str], env: dict[str, str], name: str, host: str | None = None):  # type: ignore[no-untyped-def]
        f = (logs / f"{name}.log").open("wb")
        if host is None:
            p = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
        else:  # its own host: own network namespace and own host name
            p = net.popen(host, ["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$@"', "sh", *cmd],
                          env=env, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
        procs.append(p)
        return p

    try:
        start([str(BIN / "prefect"), "server", "start", "--host", gw, "--port", str(port)], server_env, "server")
        _wait(lambda: _healthy(api), 180, "the Prefect server")
        cli_env = {**base_env, "PREFECT_HOME": str(tmp_path / "hq_home")}
        for cmd in (["work-pool", "create", "ecm-branches", "--type", "process"], ["--no-prompt", "deploy", "--all"]):
            r = subprocess.run([str(BIN / "prefect"), *cmd], env=cli_env, cwd=ROOT, capture_output=True, text=True,
                               timeout=300)
            assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        for host in ("w1", "w2"):
            start([str(BIN / "prefect"), "worker", "start", "--pool", "ecm-branches", "--type", "process",
                   "--name", host, "--limit", "2"], {**base_env, "PREFECT_HOME": str(tmp_path / f"{host}_home")},
                  f"worker-{host}", host=host)
        cfgs = _branch_configs(tmp_path, sample_branch, databases)
        plan = tmp_path / "wave.toml"
        plan.write_text(f'''wave = "dot-thu"
mode = "production"
control_url = "{databases['control']}"
auto_approve_demo = true
poll_seconds = 1
lease_seconds = 60
[limits]
total = 4
per_source_server = 1
per_central = 2
''' + "".join(f'[[branch]]\nconfig = "{p.relative_to(tmp_path).as_posix()}"\npriority = {i}\n'
              for i, p in enumerate(cfgs)), encoding="utf-8")
        wave = start([str(BIN / "ecm"), "wave", "run", str(plan)], cli_env, "wave")
        # one host goes down while its branch restores, converts or validates (its source slot given back)
        control = ControlStore(databases["control"])

        def victim():  # type: ignore[no-untyped-def]
            for cfg in cfgs:
                code = load_config(cfg).branch_code
                rid = f"{code.lower()}-dot-thu"
                steps = {s.step: s.status for s in control.steps(rid)}
                lease = control.lease(code)
                if lease and any(steps.get(s) == "running" for s in (
                        "pl4_04_restore", "gate_after_pl4_04_restore", "pl4_05_convert", "pl4_06_validate")):
                    return code, lease
            return None
        _code, lease = _wait(victim, 400, "a branch past its hand-over on a worker", every=0.2)
        host = lease["holder"].split(":")[0]
        assert host in ("w1", "w2"), lease  # the branch runs on a worker host, not here
        codes = [load_config(p).branch_code for p in cfgs]
        on_host = {c for c in codes if (control.lease(c) or {}).get("holder", "").startswith(host + ":")}
        killed = net.kill(host)  # the host goes down: its worker and every branch run it was running
        assert killed and on_host
        # and the Prefect server restarts while another branch holds a concurrency slot: nothing is lost
        wstore = WaveStore(databases["control"])
        _wait(lambda: any(s["released_at"] is None and s["branch"] not in on_host for s in wstore.slots("dot-thu")),
              300, "a slot held by a branch of the other host", every=0.2)
        server = procs[0]
        server.terminate()
        server.wait(timeout=60)
        start([str(BIN / "prefect"), "server", "start", "--host", gw, "--port", str(port)], server_env, "server2")
        _wait(lambda: _healthy(api), 180, "the Prefect server to come back")
        out = _wait(lambda: wave.poll() is not None, 900, "the wave to end", every=2)
        del out
        wave_log = (logs / "wave.log").read_text(encoding="utf-8", errors="replace")
        assert wave.returncode == 0, wave_log[-4000:]
        # submitting a branch again with its key returns the run already there: never started twice
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from pipelines.wave.flow import _submit
        from pipelines.wave.plan import load_plan
        lp = load_plan(plan)
        first = {r["branch"]: r["flow_run_id"] for r in WaveStore(databases["control"]).branches("dot-thu")
                 if r["attempt"] == 1}
        with temporary_settings({PREFECT_API_URL: api}):
            assert _submit(lp, lp.branches[0], 1, resume=False) == first[lp.branches[0].code]
            with get_client(sync_client=True) as client:
                per_deployment = {}
                for name in ("migrate-branch/migrate-branch", "resume-run/resume-run"):
                    dep = client.read_deployment_by_name(name)
                    per_deployment[name] = len(client.read_flow_runs(
                        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])), limit=200))
        # one run per branch, and one resumed run per branch of the lost host — nothing more
        assert per_deployment == {"migrate-branch/migrate-branch": 4, "resume-run/resume-run": len(on_host)}
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        for h in ("w1", "w2"):
            net.kill(h)
    report = json.loads((tmp_path / "out" / "waves" / "dot-thu" / "wave_report.json").read_text(encoding="utf-8"))
    by = {r["branch"]: r for r in report["branches"]}
    assert set(by) == {"C47D", "C47E", "C47F", "C47G"}
    assert all(r["state"] == "completed" and r["steps_done"] == 8 for r in by.values()), report["branches"]
    for c, r in by.items():  # the branches of the lost host went on elsewhere, once each; the others ran once
        assert (r["attempts"], "worker lost" in r["notes"]) == ((2, True) if c in on_host else (1, False)), r
    # exactly once: central holds each branch's converted rows in its own ID window, once
    eng = open_central(databases["central_local"])
    try:
        for cfg in cfgs:
            c = load_config(cfg)
            rid = f"{c.branch_code.lower()}-dot-thu"
            converted = control.step_detail(rid, "pl4_05_convert")["central_rows"]
            base = StepContext(c, control, rid).base_id
            assert {k: v for k, v in branch_counts(eng, base).items() if v} == converted, c.branch_code
            assert [e["action"] for e in control.branch_events(c.branch_code)].count("migrated") == 1
    finally:
        eng.dispose()
    # the limits held: at most one branch per source server, from the slots' records
    assert report["limits_respected"], report["slots"]
    slots = WaveStore(databases["control"]).slots("dot-thu")
    mdb = [s for s in slots if s["limit_name"].endswith("-3306")]
    assert {s["branch"] for s in mdb} == {"C47D", "C47E"}
    spans = sorted((s["acquired_at"], s["released_at"]) for s in mdb)
    assert all(a_end <= b_start for (_a, a_end), (b_start, _b) in zip(spans, spans[1:], strict=False)), spans
    assert {r["limit"]: r["peak"] for r in report["slots"]}[mdb[0]["limit_name"]] == 1
    # the XLSX report for people
    assert (tmp_path / "out" / "waves" / "dot-thu" / "bao_cao_dot_chuyen_doi.xlsx").exists()
