"""db tier, whole flow: a branch in MariaDB (MariaDB ODBC driver) and a second branch in PostgreSQL
(psqlODBC), both into one PostgreSQL central (psycopg binary COPY); freeze, package, load,
idempotency, coexistence and unload. Every test database and account is created here and dropped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from prefect.testing.utilities import prefect_test_harness

from extract.freeze import unfreeze_source
from extract.package import verify_package
from load.central import branch_counts, iter_branch_rows, open_central
from load.central_model import LOAD_ORDER
from load.control_store import ControlStore
from pipelines import lifecycle
from pipelines.config import load_config
from pipelines.migrate import migrate_branch
from pipelines.steps import pl4_08_load
from pipelines.steps.base import StepContext
from sample_data.demo import write_config
from sample_data.server import copy_sample_db, create_database, drop_database
from tests.conftest import unique_name, with_database

pytestmark = [pytest.mark.db, pytest.mark.flow]
POLICY = {"policy": {"decision_timeout_seconds": 60, "poll_seconds": 1}}


@pytest.fixture(scope="module", autouse=True)
def harness():  # type: ignore[no-untyped-def]
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def servers(mariadb_admin_url: str, pg_admin_url: str, sample_branch: Path):  # type: ignore[no-untyped-def]
    """MariaDB SLXNK+SXXK (non-admin reader), PostgreSQL SLXNK+SXXK (psqlODBC), and a PostgreSQL central."""
    made: list[str] = []
    my = {db: with_database(mariadb_admin_url, unique_name(f"ecm_t_{db.lower()}")) for db in ("SLXNK", "SXXK")}
    pg = {db: with_database(pg_admin_url, unique_name(f"ecm_t_{db.lower()}"), "postgresql+pyodbc")
          + "?driver=PostgreSQL+Unicode" for db in ("SLXNK", "SXXK")}
    central = with_database(pg_admin_url, unique_name("ecm_t_central"))
    user = unique_name("ecm_r")
    adm = sa.create_engine(mariadb_admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        for db in ("SLXNK", "SXXK"):
            for url in (my[db], pg[db]):
                create_database(url)
                made.append(url)
                copy_sample_db(sample_branch / f"{db.lower()}.sqlite", db, url)
        create_database(central)
        made.append(central)
        with adm.connect() as c:
            c.exec_driver_sql(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-{user}'")
            for url in my.values():
                c.exec_driver_sql(f"GRANT SELECT ON `{sa.engine.make_url(url).database}`.* TO '{user}'@'%'")
        reader = {db: sa.engine.make_url(u).set(username=user, password="${ECM_TEST_READER_PW}")
                  .render_as_string(False).replace("%7B", "{").replace("%7D", "}").replace("%24", "$")
                  for db, u in my.items()}
        yield {"mariadb": reader, "mariadb_admin": mariadb_admin_url, "pg": pg, "central": central,
               "reader_pw": f"pw-{user}"}
    finally:
        with adm.connect() as c:
            c.exec_driver_sql("SET GLOBAL read_only = OFF")
            c.exec_driver_sql(f"DROP USER IF EXISTS '{user}'@'%'")
        for url in pg.values():
            unfreeze_source(url) if url in made else None
        for url in made:
            drop_database(url)


def _config(out: Path, branch: Path, **kw):  # type: ignore[no-untyped-def]
    out.mkdir(parents=True, exist_ok=True)
    return load_config(write_config(out, branch, rehearsal=False, demo_pki=True, **kw), POLICY)


def _window_rows(url: str, base: int) -> dict[str, list[dict[str, object]]]:
    eng = open_central(url)
    try:
        return {t: list(iter_branch_rows(eng, t, base)) for t in LOAD_ORDER}
    finally:
        eng.dispose()


def test_mariadb_and_postgresql_branches_into_postgresql_central(
        servers, sample_branch: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ECM_TEST_READER_PW", servers["reader_pw"])  # the password reaches the config as ${ENV}
    central = servers["central"]

    # branch A: MariaDB over its ODBC driver, read by an account without admin rights
    a = _config(tmp_path / "a", sample_branch, code="C47D", id_chi_cuc=1, slxnk_url=servers["mariadb"]["SLXNK"],
                sxxk_url=servers["mariadb"]["SXXK"], admin_url=servers["mariadb_admin"], central_url=central)
    sa_ = migrate_branch(config=a, auto_approve_demo=True)
    assert all(st["status"] == "completed" for st in sa_["steps"]), sa_["steps"]
    store_a = ControlStore(a.control_url)
    step2 = store_a.step_detail(sa_["run_id"], "pl4_02_freeze_backup")
    assert all("1290" in p["refused_with"] for p in step2["freeze"].values())  # the server refused the write
    assert step2["held"]["SXXK"][-1] == "FLUSH TABLES WITH READ LOCK"
    assert {Path(k).name for k in step2["native_backups"]} == {"SLXNK.sql", "SXXK.sql"}
    verify_package(Path(step2["package"]))  # both backups' checksums, from the manifest
    adm = sa.create_engine(servers["mariadb_admin"], poolclass=sa.pool.NullPool)
    with adm.connect() as c:  # the source stays frozen after a verified load
        assert c.exec_driver_sql("SELECT @@global.read_only").scalar() == 1
    assert store_a.branch_state("C47D")["migrated"]
    load_a = json.loads((Path(sa_["paths"]["reports"]) / "buoc8_bao_cao_nap.json").read_text())
    assert load_a["load"]["method"] == "binary COPY" and load_a["load"]["rows"] == sum(sa_["converted_rows"].values())
    assert all(c["status"] == "pass" for c in load_a["integrity"])
    assert sum(r["differences"] for r in load_a["reconciliation"]) == 0

    # the same branch from its SQLite files converts to the very same snapshot (every driver kept every value)
    s = _config(tmp_path / "s", sample_branch, code="C47D", id_chi_cuc=1)
    ss = migrate_branch(config=s, auto_approve_demo=True)
    load_s = json.loads((Path(ss["paths"]["reports"]) / "buoc8_bao_cao_nap.json").read_text())
    assert load_s["snapshot_sha256"] == load_a["snapshot_sha256"]

    # step 8 again: the same rows, no duplicates
    base_a = StepContext(a, store_a, sa_["run_id"]).base_id
    before = _window_rows(central, base_a)
    pl4_08_load.run(StepContext(a, store_a, sa_["run_id"], auto_approve_demo=True))
    assert _window_rows(central, base_a) == before
    assert {t: len(r) for t, r in before.items()} == sa_["converted_rows"] | {
        t: 0 for t in LOAD_ORDER if t not in sa_["converted_rows"]}

    # branch B: PostgreSQL through psqlODBC, into the same central, in its own window
    users_b = tmp_path / "users_c47e.json"  # B's staff are other people, with other logins
    users_b.write_text(json.dumps([{**u, "login": "c47e_" + u["login"]} for u in json.loads(
        (sample_branch / "users.json").read_text(encoding="utf-8"))], ensure_ascii=False), encoding="utf-8")
    b = _config(tmp_path / "b", sample_branch, code="C47E", id_chi_cuc=2, slxnk_url=servers["pg"]["SLXNK"],
                sxxk_url=servers["pg"]["SXXK"], central_url=central)
    b = load_config(tmp_path / "b" / "branch.toml", {**POLICY, "users_file": str(users_b)})
    sb = migrate_branch(config=b, auto_approve_demo=True)
    assert all(st["status"] == "completed" for st in sb["steps"]), sb["steps"]
    step2b = ControlStore(b.control_url).step_detail(sb["run_id"], "pl4_02_freeze_backup")
    assert all("read-only transaction" in p["refused_with"] for p in step2b["freeze"].values())
    assert {Path(k).name for k in step2b["native_backups"]} == {"SLXNK.pgdump", "SXXK.pgdump"}
    base_b = StepContext(b, ControlStore(b.control_url), sb["run_id"]).base_id
    eng = open_central(central)
    assert {k: v for k, v in branch_counts(eng, base_b).items() if v} == sb["converted_rows"]
    eng.dispose()
    assert _window_rows(central, base_a) == before  # branch A untouched by B's load

    # the switch-over-and-back drill: B leaves central, A stays exactly as it was
    with pytest.raises(Exception, match="--by"):
        lifecycle.unload(b, "", "")
    removed = lifecycle.unload(b, "Trần Thị B (Cục CNTT)", "diễn tập chuyển đổi dự phòng")
    assert sum(v for k, v in removed.items() if k != "CENTRAL_USER") == sum(sb["converted_rows"].values())
    eng = open_central(central)
    assert sum(branch_counts(eng, base_b).values()) == 0
    eng.dispose()
    assert _window_rows(central, base_a) == before
    ev = ControlStore(b.control_url).branch_events("C47E")
    assert [e["action"] for e in ev][-1] == "unload" and ev[-1]["by"] == "Trần Thị B (Cục CNTT)"
    # an unloaded branch may be unfrozen (recorded); a migrated one may not
    with pytest.raises(Exception, match="migrated"):
        lifecycle.unfreeze(a, "x", "y")
    lifecycle.unfreeze(b, "Trần Thị B", "hoàn tác diễn tập")
    assert ControlStore(b.control_url).branch_state("C47E")["frozen"] == {
        k: False for k in ControlStore(b.control_url).branch_state("C47E")["frozen"]}
