"""Phụ lục IV 2.1 — freeze a branch database (READ ONLY), prove it, and undo it — per engine.

=============  =====================================================================  ========================
engine         freeze                                                                 proof (a write refused)
=============  =====================================================================  ========================
SQL Server     ``ALTER DATABASE [db] SET READ_ONLY WITH ROLLBACK IMMEDIATE`` (master)  error 3906
PostgreSQL     ``ALTER DATABASE "db" SET default_transaction_read_only = on`` and      SQLSTATE 25006
               ending the database's open sessions (``pg_terminate_backend``)
MariaDB/MySQL  ``SET GLOBAL read_only = ON`` and ending the database's sessions;       error 1290
               ``FLUSH TABLES WITH READ LOCK`` held while step 2 counts and copies
SQLite         the file is opened read-only (URI ``mode=ro``)                          "readonly database"
=============  =====================================================================  ========================

The proof opens a *new* session with the branch's source account, without this tool's own
read-only session setting, and tries to create a table: only a refusal counts. MariaDB's
``read_only`` does not bind accounts holding READ ONLY ADMIN (root): the proof then fails and
says so, rather than calling an unfrozen server frozen.

Freezing needs an administrative account (``sources.admin_url``; by default the source URL).
SQL Server cannot run on this machine: its statements are produced by the same functions and
asserted in the tests as compiled for the mssql dialect.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.engine import URL, Dialect, make_url

from extract.errors import ExtractError, SourceNotFrozen, SourceUnavailable
from extract.source import check_ident, open_source, redact

PROBE_TABLE = "__ecm_freeze_probe"
_REFUSALS = ("read-only", "read only", "readonly", "read_only", "3906", "25006", "1290")


@dataclass(frozen=True)
class FreezeProof:
    engine: str
    database: str
    method: str
    statements: list[str]
    probe_sql: str
    refused_with: str
    at: str


@dataclass(frozen=True)
class FreezePlan:
    """The statements of one engine, for one database (data, so that tests can assert them)."""

    engine: str
    method: str
    admin_database: str | None  # where the admin session connects (the statements name the database)
    freeze: list[str]
    unfreeze: list[str]
    sessions_sql: str | None = None  # lists the other sessions on the database (to be ended)
    end_session: str | None = None  # ends one of them ({id})
    hold: list[str] = field(default_factory=list)  # held while counting and copying
    release: list[str] = field(default_factory=list)
    # PostgreSQL's read-only default binds only new sessions: one that survives could still write
    must_end_sessions: bool = False
    # the server's clock right after the freeze statements (epoch seconds): sessions_sql's {since}
    clock_sql: str | None = None


def dialect_of(backend: str) -> Dialect:
    from sqlalchemy.dialects import mssql, mysql, postgresql, sqlite
    return {"mssql": mssql, "postgresql": postgresql, "mysql": mysql, "mariadb": mysql,
            "sqlite": sqlite}[backend].dialect()


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def plan_for(backend: str, database: str) -> FreezePlan:
    """The freeze/unfreeze statements for ``database`` on ``backend`` (identifiers validated and quoted)."""
    if backend == "sqlite":
        return FreezePlan("sqlite", "read-only open (mode=ro)", None, [], [])
    db = dialect_of(backend).identifier_preparer.quote_identifier(check_ident(database, "database name"))
    if backend == "mssql":
        return FreezePlan("mssql", "ALTER DATABASE … SET READ_ONLY WITH ROLLBACK IMMEDIATE", "master",
                          [f"ALTER DATABASE {db} SET READ_ONLY WITH ROLLBACK IMMEDIATE"],
                          [f"ALTER DATABASE {db} SET READ_WRITE WITH ROLLBACK IMMEDIATE"])
    if backend == "postgresql":
        return FreezePlan(
            "postgresql", "default_transaction_read_only on the database; open sessions ended", "postgres",
            [f"ALTER DATABASE {db} SET default_transaction_read_only = on"],
            [f"ALTER DATABASE {db} RESET default_transaction_read_only"],
            # another role's session shows backend_type NULL to an admin without pg_read_all_stats: it is
            # still a client that could write, so it counts (a background worker has no usename)
            # only sessions started before the freeze: a later one (an application reconnecting) starts
            # read-only; an unknown start (hidden) counts as before
            sessions_sql=(f"SELECT pid FROM pg_stat_activity WHERE datname = {_lit(database)} "
                          "AND pid <> pg_backend_pid() AND (backend_type = 'client backend' "
                          "OR (backend_type IS NULL AND usename IS NOT NULL)) "
                          "AND (backend_start IS NULL OR backend_start < to_timestamp({since}))"),
            end_session="SELECT pg_terminate_backend({id})", must_end_sessions=True,
            clock_sql="SELECT extract(epoch FROM clock_timestamp())")
    if backend in ("mysql", "mariadb"):
        return FreezePlan(
            backend, "SET GLOBAL read_only = ON; sessions ended; FLUSH TABLES WITH READ LOCK while counting", None,
            ["SET GLOBAL read_only = ON"], ["SET GLOBAL read_only = OFF"],
            sessions_sql=(f"SELECT ID FROM information_schema.PROCESSLIST WHERE DB = {_lit(database)} "
                          "AND ID <> CONNECTION_ID()"),
            end_session="KILL CONNECTION {id}",
            # a long query elsewhere on the server must not stall the cut-over (nor the server's writes)
            hold=["SET SESSION lock_wait_timeout = 60", "FLUSH TABLES WITH READ LOCK"], release=["UNLOCK TABLES"])
    raise ExtractError(f"freezing a {backend} source is not supported", hint="use SQL Server, PostgreSQL, MariaDB "
                       "or SQLite sources")


def _admin_engine(url: str | URL, admin_url: str | None, plan: FreezePlan) -> sa.Engine:
    u = make_url(admin_url or url)
    if plan.admin_database:
        u = u.set(database=plan.admin_database)
    return sa.create_engine(u, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")


def _end_sessions_before(c: sa.Connection, plan: FreezePlan, since: float | None, database: str,
                         wait_s: float = 15.0) -> None:
    """End every session that started before the freeze, and see them gone (PostgreSQL).

    Ending is asynchronous (``pg_terminate_backend`` signals and returns), and a backend forked just
    before the freeze may show in ``pg_stat_activity`` a moment later: so terminate-and-look is repeated
    until two looks 0.5 s apart find none, for at most ``wait_s``. A session the admin may not end fails
    at once (it will not end by waiting). Sessions started after the freeze are read-only and ignored —
    an application that keeps reconnecting does not block the freeze.
    """
    sql = (plan.sessions_sql or "").replace("{since}", repr(since) if since is not None else "'infinity'")
    deadline, quiet = time.monotonic() + wait_s, False
    while True:
        old = [int(sid) for (sid,) in c.exec_driver_sql(sql).all()]
        refused = []
        for sid in old:
            try:
                c.exec_driver_sql((plan.end_session or "").format(id=sid))
            except sa.exc.DBAPIError as exc:
                refused.append(f"session {sid}: {str(exc.orig).splitlines()[0][:120]}")
        if refused or (old and time.monotonic() >= deadline):
            raise SourceNotFrozen(
                f"{len(refused) or len(old)} open sessions on {database} could not be ended "
                f"({'; '.join(refused[:3]) or 'sessions ' + ', '.join(map(str, old[:5]))}); they could still write",
                table=database,
                hint="give sources.admin_url the right to end sessions (pg_signal_backend or superuser), or stop "
                     "the branch's applications; the database is left READ ONLY for new sessions — run "
                     "`ecm unfreeze` to undo")
        if not old and quiet:
            return
        quiet = not old
        time.sleep(0.5 if quiet else 0.2)


def _run_admin(url: str | URL, admin_url: str | None, plan: FreezePlan, statements: list[str],
               end_sessions: bool) -> None:
    eng = _admin_engine(url, admin_url, plan)
    database = str(make_url(url).database)
    try:
        with eng.connect() as c:
            for sql in statements:
                c.exec_driver_sql(sql)
            if not (end_sessions and plan.sessions_sql and plan.end_session):
                return
            if plan.must_end_sessions:
                since = c.exec_driver_sql(plan.clock_sql).scalar() if plan.clock_sql else None
                _end_sessions_before(c, plan, float(since) if since is not None else None, database)
                return
            for (sid,) in c.exec_driver_sql(plan.sessions_sql).all():  # MariaDB: read_only binds them all
                try:
                    c.exec_driver_sql(plan.end_session.format(id=int(sid)))
                except sa.exc.DBAPIError:
                    pass  # gone meanwhile, or the admin's own; read_only holds it anyway (proven below)
    except sa.exc.DBAPIError as exc:
        raise SourceUnavailable(f"cannot run the freeze statements on {redact(eng.url)}: {exc.orig}",
                                table=database,
                                hint="check that sources.admin_url names an account allowed to alter the "
                                     "database") from exc
    finally:
        eng.dispose()


def freeze_source(url: str, admin_url: str | None = None) -> FreezeProof:
    """Freeze the source database of ``url`` and prove it with a refused write (see the module table)."""
    u = make_url(url)
    backend = u.get_backend_name()
    plan = plan_for(backend, u.database or "")
    if plan.freeze:
        _run_admin(url, admin_url, plan, plan.freeze, end_sessions=True)
    return prove_frozen(url, plan)


def prove_frozen(url: str, plan: FreezePlan | None = None, *, sqlite_read_only: bool = True) -> FreezeProof:
    """A new session of the source account, without this tool's read-only session setting, must fail to write.

    (``sqlite_read_only=False`` opens a SQLite file writable: the proof must then fail — for tests.)
    """
    u = make_url(url)
    backend = u.get_backend_name()
    plan = plan or plan_for(backend, u.database or "")
    probe_engine = open_source(url, read_only=backend == "sqlite" and sqlite_read_only)
    probe = f"CREATE TABLE {PROBE_TABLE} (x INTEGER)"
    try:
        with probe_engine.begin() as conn:
            conn.exec_driver_sql(probe)
        with probe_engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE {PROBE_TABLE}")
    except sa.exc.DBAPIError as exc:
        msg = str(exc.orig).strip().splitlines()[0][:300]
        if any(r in msg.lower() for r in _REFUSALS):
            return FreezeProof(backend, u.database or "", plan.method, plan.freeze, probe, msg,
                               datetime.now(timezone.utc).isoformat(timespec="seconds"))
        raise ExtractError(f"freeze probe on {redact(u)} failed for another reason: {msg}",
                           hint="check the source account and the server's logs") from exc
    finally:
        probe_engine.dispose()
    hint = "open the source read-only; do not continue the migration"
    if backend in ("mysql", "mariadb"):
        hint = ("MariaDB's read_only does not bind accounts with READ ONLY ADMIN/SUPER: give sources.*_url a "
                "non-administrative account (and sources.admin_url the administrative one)")
    if plan.freeze:
        hint += "; the server was left READ ONLY by the freeze statements — run `ecm unfreeze` to undo"
    raise SourceNotFrozen(f"a write to the frozen source {redact(u)} was accepted", table=str(u.database), hint=hint)


def unfreeze_source(url: str, admin_url: str | None = None) -> list[str]:
    """Undo :func:`freeze_source` (``ecm unfreeze``); returns the statements run."""
    u = make_url(url)
    plan = plan_for(u.get_backend_name(), u.database or "")
    if plan.unfreeze:
        _run_admin(url, admin_url, plan, plan.unfreeze, end_sessions=False)
    return plan.unfreeze


@contextmanager
def hold_still(url: str, admin_url: str | None = None) -> Iterator[list[str]]:
    """Hold the engine's global read lock while step 2 counts and copies (MariaDB); a no-op elsewhere."""
    u = make_url(url)
    plan = plan_for(u.get_backend_name(), u.database or "")
    if not plan.hold:
        yield []
        return
    eng = _admin_engine(url, admin_url, plan)
    try:
        with eng.connect() as c:
            for sql in plan.hold:
                c.exec_driver_sql(sql)
            try:
                yield plan.hold
            finally:
                for sql in plan.release:
                    c.exec_driver_sql(sql)
    finally:
        eng.dispose()
