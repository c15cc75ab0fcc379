"""Sources on real engines: the statements per engine (SQL Server compiled, not run), and the db tier's
freeze / read / backup on this machine's MariaDB (through its ODBC driver) and PostgreSQL (psqlODBC)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql

from extract import review
from extract.backup import mssql_backup_statement, native_backup
from extract.errors import ExtractError, SourceNotFrozen
from extract.freeze import freeze_source, hold_still, plan_for, prove_frozen, unfreeze_source
from extract.legacy_schema import sa_metadata
from extract.package import verify_package, write_package
from extract.source import arrow_schema, iter_batches, open_source, reflect
from sample_data.server import copy_sample_db, create_database, drop_database
from tests.conftest import typed_select, unique_name, with_database
from validate.schema import canon_type

MSSQL_URL = "mssql+pyodbc://reader@branch-sql/SLXNK?driver=ODBC+Driver+18+for+SQL+Server"


def test_sql_server_freeze_and_backup_statements() -> None:
    p = plan_for("mssql", "SLXNK")
    assert p.freeze == ["ALTER DATABASE [SLXNK] SET READ_ONLY WITH ROLLBACK IMMEDIATE"]
    assert p.unfreeze == ["ALTER DATABASE [SLXNK] SET READ_WRITE WITH ROLLBACK IMMEDIATE"]
    assert p.admin_database == "master"
    assert mssql_backup_statement("SLXNK", r"D:\backup\SLXNK.bak") == \
        r"BACKUP DATABASE [SLXNK] TO DISK = N'D:\backup\SLXNK.bak' WITH CHECKSUM, COPY_ONLY, INIT"
    with pytest.raises(ExtractError):
        plan_for("mssql", "SLXNK]; DROP DATABASE x; --")


def test_sql_server_reads_and_step1_checks_compile_for_mssql() -> None:
    eng = sa.create_engine(MSSQL_URL)  # no connection is made
    t = sa_metadata("SLXNK").tables["DToKhaiMD"]
    sql = str(sa.select(t).compile(dialect=mssql.dialect()))
    assert sql.startswith("SELECT [DToKhaiMD].[SoTK]") and "FROM [DToKhaiMD]" in sql
    q = review._quoter(eng)
    assert q("DToKhaiMD") == "[DToKhaiMD]" and review._length_fn(eng) == "LEN"
    ddl = str(sa.schema.CreateTable(t).compile(dialect=mssql.dialect()))
    assert "[Ten_DV] NVARCHAR(" in ddl or "NVARCHAR" in ddl


def test_other_engines_plans() -> None:
    pg = plan_for("postgresql", "c47d_slxnk")
    assert pg.freeze == ['ALTER DATABASE "c47d_slxnk" SET default_transaction_read_only = on']
    assert "pg_terminate_backend" in (pg.end_session or "")
    my = plan_for("mariadb", "c47d_slxnk")
    assert my.freeze == ["SET GLOBAL read_only = ON"] and my.hold[-1] == "FLUSH TABLES WITH READ LOCK"
    assert plan_for("sqlite", "x").freeze == []


def test_psqlodbc_connection_string_uses_its_own_keywords() -> None:
    eng = sa.create_engine("postgresql+pyodbc://u:p%7Dx@db.example:5433/c47d?driver=PostgreSQL+Unicode")
    (cs,), _ = eng.dialect.create_connect_args(eng.url)
    assert "Server=db.example;Port=5433;Database=c47d;UID=u;PWD={p}}x}" in cs
    assert "UseDeclareFetch=1;Fetch=10000" in cs  # stream through a cursor (psqlODBC reads results whole otherwise)
    eng = sa.create_engine("postgresql+pyodbc://u@db.example/c47d?driver=PostgreSQL+Unicode&UseDeclareFetch=0")
    (cs,), _ = eng.dialect.create_connect_args(eng.url)
    assert "UseDeclareFetch=0" in cs and "UseDeclareFetch=1" not in cs  # the operator's DSN keyword wins


def test_reflected_types_of_each_engine_compare_equal() -> None:
    for found in ("VARCHAR(80)", "NVARCHAR(80)", "NATIONAL VARCHAR(80)"):
        assert canon_type(found) == canon_type("nvarchar(80)")
    for found in ("TIMESTAMP WITHOUT TIME ZONE", "DATETIME(fsp=6)", "DATETIME"):
        assert canon_type(found) == canon_type("datetime")
    assert canon_type("DOUBLE") == canon_type("DOUBLE PRECISION") == canon_type("float")
    assert canon_type("DECIMAL(18, 6)") == canon_type("numeric(18,6)")
    assert canon_type("VARCHAR(80)") != canon_type("VARCHAR(50)")


def test_sqlite_native_backup_is_a_consistent_copy(sample_branch: Path, tmp_path: Path) -> None:
    nb = native_backup("SXXK", f"sqlite:///{sample_branch / 'sxxk.sqlite'}", tmp_path)
    assert nb.path is not None
    a, b = sqlite3.connect(sample_branch / "sxxk.sqlite"), sqlite3.connect(nb.path)
    for (name,) in a.execute("SELECT name FROM sqlite_master WHERE type='table'"):
        assert a.execute(f'SELECT count(*) FROM "{name}"').fetchone() == b.execute(
            f'SELECT count(*) FROM "{name}"').fetchone()


# ---- db tier ---------------------------------------------------------------------------------------------

@pytest.fixture
def mariadb_branch(mariadb_admin_url: str, sample_branch: Path):  # type: ignore[no-untyped-def]
    """SLXNK of the sample branch in a fresh MariaDB database, read by a non-administrative account."""
    name, user = unique_name("ecm_t"), unique_name("ecm_r")
    admin_db = with_database(mariadb_admin_url, name)
    create_database(admin_db)
    copy_sample_db(sample_branch / "slxnk.sqlite", "SLXNK", admin_db)
    adm = sa.create_engine(mariadb_admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with adm.connect() as c:
        c.exec_driver_sql(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-{user}'")
        c.exec_driver_sql(f"GRANT SELECT, INSERT, CREATE, DROP ON `{name}`.* TO '{user}'@'%'")
    reader = sa.engine.make_url(admin_db).set(username=user, password=f"pw-{user}").render_as_string(False)
    yield reader, admin_db
    with adm.connect() as c:
        c.exec_driver_sql("SET GLOBAL read_only = OFF")
        c.exec_driver_sql(f"DROP USER IF EXISTS '{user}'@'%'")
    drop_database(admin_db)


@pytest.mark.db
def test_mariadb_freeze_is_proven_held_and_undone(mariadb_branch, mariadb_admin_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    reader, admin_db = mariadb_branch
    proof = freeze_source(reader, mariadb_admin_url)
    assert "1290" in proof.refused_with and proof.statements == ["SET GLOBAL read_only = ON"]
    # the reader's own writes are refused by the server, not by this tool's session setting
    raw = sa.create_engine(reader, poolclass=sa.pool.NullPool)
    with pytest.raises(sa.exc.DBAPIError, match="read-only|read_only|1290"), raw.begin() as c:
        c.exec_driver_sql("DELETE FROM DToKhaiMD")
    with hold_still(reader, mariadb_admin_url) as held:
        assert held[-1] == "FLUSH TABLES WITH READ LOCK"
        eng = open_source(reader)
        man = write_package("C47D", {"SLXNK": eng}, tmp_path / "pkg", 500,
                            native={"SLXNK": (native_backup("SLXNK", reader, tmp_path / "nb", mariadb_admin_url).path,
                                              "mariadb-dump")})
    verify_package(tmp_path / "pkg")
    dump = (tmp_path / "pkg" / "native" / "SLXNK.sql").read_text(encoding="utf-8")
    assert "CREATE TABLE `DToKhaiMD`" in dump
    assert man.rows()["SLXNK.DToKhaiMD"] > 0
    unfreeze_source(reader, mariadb_admin_url)
    with raw.begin() as c:
        c.exec_driver_sql("CREATE TABLE ecm_probe_after (x INT)")
        c.exec_driver_sql("DROP TABLE ecm_probe_after")
    raw.dispose()


@pytest.mark.db
def test_mariadb_admin_account_is_not_called_frozen(mariadb_branch, mariadb_admin_url: str) -> None:  # type: ignore[no-untyped-def]
    _reader, admin_db = mariadb_branch
    with pytest.raises(SourceNotFrozen) as e:
        freeze_source(admin_db, mariadb_admin_url)  # root holds READ ONLY ADMIN: read_only does not bind it
    assert "READ ONLY ADMIN" in str(e.value.hint)
    unfreeze_source(admin_db, mariadb_admin_url)


@pytest.mark.db
def test_text_survives_each_driver(mariadb_admin_url: str, pg_admin_url: str, sample_branch: Path,
                                   tmp_path: Path) -> None:
    """Same package content from SQLite, MariaDB (ODBC) and PostgreSQL (psqlODBC), text byte for byte."""
    want = _lines(_package_of(f"sqlite:///{sample_branch / 'slxnk.sqlite'}", tmp_path / "s"))
    assert any(v and any(ord(ch) >= 0x1EA0 for ch in v) for *_k, v, _q in want)  # Vietnamese in Unicode
    assert any(v and any(0xA0 <= ord(ch) <= 0xFF for ch in v) for *_k, v, _q in want)  # TCVN3 bytes
    for server, driver in ((mariadb_admin_url, None), (pg_admin_url, "postgresql+pyodbc")):
        url = with_database(server, unique_name("ecm_t"), driver)
        if driver:
            url += "?driver=PostgreSQL+Unicode"
        create_database(url)
        try:
            copy_sample_db(sample_branch / "slxnk.sqlite", "SLXNK", url)
            assert _lines(_package_of(url, tmp_path / unique_name("p"))) == want
            eng = open_source(url)  # each table's batches hold what the driver's typed rows hold
            for name, table in reflect(eng).tables.items():
                got = pa.Table.from_batches(list(iter_batches(eng, table, 300)), schema=arrow_schema(table))
                assert got.equals(typed_select(eng, table)), name
            eng.dispose()
        finally:
            drop_database(url)


def _lines(package: Path) -> list[tuple[object, ...]]:
    """Goods lines by key (CHAR codes trimmed: MariaDB strips CHAR padding, SQL Server and PostgreSQL keep it)."""
    t = pq.read_table(package / "SLXNK" / "DHangMD.parquet").to_pylist()
    return sorted((r["SoTK"], r["Ma_LH"].strip(), r["Ma_HQ"].strip(), r["NamDK"], r["STTHang"], r["Ten_Hang"],
                   r["Luong"]) for r in t)


def _package_of(url: str, root: Path) -> Path:
    eng = open_source(url)
    write_package("C47D", {"SLXNK": eng}, root, 1000)
    eng.dispose()
    assert reflect(open_source(url)).tables
    return root


@pytest.mark.db
def test_postgresql_freeze_ends_sessions_and_refuses_writes(pg_admin_url: str, sample_branch: Path,
                                                            tmp_path: Path) -> None:
    url = with_database(pg_admin_url, unique_name("ecm_t"), "postgresql+pyodbc") + "?driver=PostgreSQL+Unicode"
    create_database(url)
    try:
        copy_sample_db(sample_branch / "sxxk.sqlite", "SXXK", url)
        open_session = sa.create_engine(url).connect()  # a branch application still connected
        proof = freeze_source(url)
        assert "read-only transaction" in proof.refused_with
        with pytest.raises(sa.exc.DBAPIError):  # its session was ended by the freeze
            open_session.exec_driver_sql("SELECT 1").all()
        open_session.invalidate()
        nb = native_backup("SXXK", url, tmp_path)
        assert nb.path is not None and nb.path.read_bytes()[:5] == b"PGDMP"
        prove_frozen(url)  # still frozen for any new session
        unfreeze_source(url)
        with pytest.raises(SourceNotFrozen):
            prove_frozen(url)
    finally:
        drop_database(url)


@pytest.mark.db
def test_postgresql_session_the_admin_cannot_end_fails_the_freeze(pg_admin_url: str, sample_branch: Path) -> None:
    """An admin that owns the database but may not end a superuser's session (which it cannot even see in
    pg_stat_activity): the freeze fails at once, naming the session, and leaves the database read-only."""
    url = with_database(pg_admin_url, unique_name("ecm_t"), "postgresql+pyodbc") + "?driver=PostgreSQL+Unicode"
    owner = unique_name("ecm_t_owner")
    su = sa.create_engine(sa.make_url(pg_admin_url).set(database="postgres"), isolation_level="AUTOCOMMIT",
                          poolclass=sa.pool.NullPool)
    create_database(url)
    try:
        with su.connect() as c:
            c.exec_driver_sql(f"CREATE ROLE \"{owner}\" LOGIN PASSWORD 'pw-{owner}'")
            c.exec_driver_sql(f'ALTER DATABASE "{sa.make_url(url).database}" OWNER TO "{owner}"')
        copy_sample_db(sample_branch / "sxxk.sqlite", "SXXK", url)
        superuser_session = sa.create_engine(url, poolclass=sa.pool.NullPool).connect()  # postgres, superuser
        pid = superuser_session.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        weak_admin = sa.make_url(url).set(username=owner, password=f"pw-{owner}", database="postgres")
        t0 = time.monotonic()
        with pytest.raises(SourceNotFrozen) as e:
            freeze_source(url, weak_admin.render_as_string(hide_password=False))
        assert time.monotonic() - t0 < 10  # a refused session is not waited for
        assert f"session {pid}" in str(e.value) and "pg_signal_backend" in (e.value.hint or "")
        superuser_session.close()
        prove_frozen(url)  # the ALTER DATABASE stands: new sessions are read-only
        unfreeze_source(url)
    finally:
        drop_database(url)
        with su.connect() as c:
            c.exec_driver_sql(f'DROP ROLE IF EXISTS "{owner}"')
        su.dispose()


@pytest.mark.db
def test_postgresql_freeze_is_not_blocked_by_an_application_that_reconnects(pg_admin_url: str,
                                                                             sample_branch: Path) -> None:
    """A branch application that keeps opening sessions during the freeze: the sessions it opens after the
    freeze are read-only (not ended, not waited for); the one open before it is ended."""
    url = with_database(pg_admin_url, unique_name("ecm_t"), "postgresql+pyodbc") + "?driver=PostgreSQL+Unicode"
    create_database(url)
    stop = threading.Event()
    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    writes: list[float] = []

    def app(name: str) -> None:  # a pooled application: each session stays open a second, always one open
        while not stop.is_set():
            try:
                with eng.connect() as c:
                    try:
                        with c.begin():
                            c.exec_driver_sql(f"CREATE TABLE {name} (x int)")
                            c.exec_driver_sql(f"DROP TABLE {name}")
                            at = c.exec_driver_sql("SELECT extract(epoch FROM clock_timestamp())").scalar()
                        writes.append(float(at))  # the server's time of a write that committed
                    except sa.exc.DBAPIError:
                        pass  # refused: read-only
                    for _ in range(10):  # in use: it notices an ended session at once and reconnects
                        c.exec_driver_sql("SELECT 1")
                        stop.wait(0.1)
            except sa.exc.DBAPIError:
                pass  # ended by the freeze
    try:
        copy_sample_db(sample_branch / "sxxk.sqlite", "SXXK", url)
        before = eng.connect()  # open before the freeze: must be ended
        for i in range(2):
            threading.Thread(target=app, args=(f"ecm_app_{i}",), daemon=True).start()
            time.sleep(0.5)
        proof = freeze_source(url)  # would wait 15 s for the reconnecting sessions, then fail, if it counted them
        assert "read-only transaction" in proof.refused_with
        with sa.create_engine(pg_admin_url, poolclass=sa.pool.NullPool).connect() as c:
            frozen_at = float(c.exec_driver_sql("SELECT extract(epoch FROM clock_timestamp())").scalar())
        time.sleep(1.0)
        assert writes and all(at < frozen_at for at in writes)  # it wrote before, never after the freeze
        with pytest.raises(sa.exc.DBAPIError):
            before.exec_driver_sql("SELECT 1").all()
        before.invalidate()
    finally:
        stop.set()
        eng.dispose()
        unfreeze_source(url)
        drop_database(url)



@pytest.mark.db
def test_a_wrong_password_names_the_source_and_what_to_do(mariadb_branch, pg_admin_url: str) -> None:  # type: ignore[no-untyped-def]
    """No raw 'Access denied' from the driver: the source, its redacted URL, and the next action."""
    reader, _admin = mariadb_branch
    wrong = sa.engine.make_url(reader).set(password="not-the-password").render_as_string(False)
    with pytest.raises(ExtractError) as e:
        open_source(wrong, label="SLXNK")
    msg = str(e.value)
    assert "SLXNK" in msg and "refused the login" in msg and "not-the-password" not in msg
    assert "password" in (e.value.hint or "") and not e.value.transient
    # PostgreSQL through psqlODBC: an unknown database is not a login problem, and is said as such
    gone = with_database(pg_admin_url, "ecm_no_such_db", "postgresql+pyodbc") + "?driver=PostgreSQL+Unicode"
    with pytest.raises(ExtractError) as e2:
        open_source(gone, label="SXXK")
    assert "SXXK" in str(e2.value) and "ecm_no_such_db" in str(e2.value)


@pytest.mark.db
def test_step1_on_a_postgresql_export_that_stored_numbers_and_dates_as_text(pg_database: str) -> None:
    """Mixed-case tables, decimal and date text: step 1 compares numbers as numbers and dates as dates — no raw
    'operator does not exist: text < timestamp' from the server."""
    from extract import review
    adm = sa.create_engine(pg_database, isolation_level="AUTOCOMMIT")
    with adm.connect() as c:
        c.exec_driver_sql('CREATE TABLE "dnplnhap" ("Sotk" int, "Ma_Lh" char(5), "NAMDK" smallint, "ma_hq" char(6), '
                          '"MA_NPL" varchar(30), "Ma_Dv" varchar(14), "Luong" text, "Ton" text)')
        c.exec_driver_sql("INSERT INTO dnplnhap VALUES (1,'NSX01',2013,'C47D','V1','01','10.0','9.5'),"
                          "(2,'NSX01',2013,'C47D','V2','01','9.5','10.0'),(3,'NSX01',2013,'C47D','V3','01','-1','-2'),"
                          "(4,'NSX01',2013,'C47D','V4','01','12,5','1')")
        c.exec_driver_sql('CREATE TABLE "DToKhaiMD" ("SOTK" int, "MA_LH" char(5), "MA_HQ" char(6), "NAMDK" smallint, '
                          '"Ngay_Dk" text)')
        c.exec_driver_sql("INSERT INTO \"DToKhaiMD\" VALUES (1,'NSX01','C47D',2013,'2013-05-02 08:00:00.000'),"
                          "(2,'NSX01','C47D',2013,'1985-01-01 00:00:00.000')")
    adm.dispose()
    eng = open_source(pg_database, label="SXXK")
    above = review.stock_above_import(eng)  # '9.5' > '10.0' as text, not as numbers
    assert [[r["SOTK"] for r in h.keys] for h in above] == [[2]]
    neg = review.negative_quantities(eng, "SXXK")
    assert [(h.table, [r["SOTK"] for r in h.keys]) for h in neg] == [("SXXK.DNPLNHAP", [3])]
    dates = review.impossible_dates(eng, "SXXK", "1990-01-01", "2026-01-01 00:00:00")
    assert [[r["SOTK"] for r in h.keys] for h in dates] == [[2]]
    stock = {r["MA_NPL"]: r["luong"] for r in review.closing_stock(eng, ["C47D"])}
    assert stock["V4"] is None and float(stock["V1"]) == 10.0  # '12,5' is not a number here either (as at step 4)
