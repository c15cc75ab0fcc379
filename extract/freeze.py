"""Phụ lục IV 2.1 — freeze a branch database (READ ONLY), prove it, and undo it — per engine.

=============  =====================================================================  ========================
engine         freeze                                                                 proof (a write refused)
=============  =====================================================================  ========================
SQL Server     ``ALTER DATABASE [db] SET READ_ONLY WITH ROLLBACK IMMEDIATE`` (master)  error 3906
PostgreSQL     ``ALTER DATABASE "db" SET default_transaction_read_only = on``, the     SQLSTATE 25006 (source
               database's open sessions ended (``pg_terminate_backend``), and every    account), 42501 for
               role but the admin stripped of its write privileges and of CONNECT     every role that could
               (the source account keeps CONNECT and SELECT) — recorded, restored     write, on every
               by the unfreeze                                                        override path
MariaDB/MySQL  ``SET GLOBAL read_only = ON`` and ending the database's sessions;       error 1290
               ``FLUSH TABLES WITH READ LOCK`` held while step 2 counts and copies
SQLite         the file is opened read-only (URI ``mode=ro``)                          "readonly database"
=============  =====================================================================  ========================

The proof opens a *new* session with the branch's source account, without this tool's own
read-only session setting, and tries to create a table: only a refusal counts. MariaDB's
``read_only`` does not bind accounts holding READ ONLY ADMIN (root): the proof then fails and
says so, rather than calling an unfrozen server frozen.

PostgreSQL's read-only default is only a default: any session may override it (``SET
default_transaction_read_only = off``, ``BEGIN READ WRITE``, ``SET SESSION CHARACTERISTICS``, the
connection option ``-c default_transaction_read_only=off``). So the freeze also takes, for the frozen
window, every write privilege of every role but the admin (INSERT, UPDATE, DELETE, TRUNCATE, TRIGGER on
tables and views, column INSERT/UPDATE, UPDATE/USAGE on sequences, CREATE on schemas and on the database,
EXECUTE on SECURITY DEFINER routines) and CONNECT from every role but the admin and the source account; a
database owned by another role is owned by the admin for the window. Owners keep the power to grant
themselves back what is revoked, so owners are kept out by CONNECT, and the freeze fails, naming the role
and the object, if a role that can still connect could act as an owner (or as the admin, or write every
table through ``pg_write_all_data``). Superusers and CREATEROLE roles cannot be bound by any privilege:
the proof names them (``unbound``). What was taken is recorded on the database itself (``ALTER DATABASE …
SET ecm.freeze_record``, in the same transaction as the revocations) and in the proof; the unfreeze
rebuilds every recorded ACL exactly as it was (entry for entry, in order; an ACL that was NULL comes back
as its explicit default, which grants the same). The proof then tries, for every role that could write
before, INSERT, UPDATE and CREATE TABLE on each override path (``SET ROLE`` from the admin's session; the
source account through its own sessions), each in a transaction that is rolled back: only a refusal counts.

Freezing needs an administrative account (``sources.admin_url``; by default the source URL) — on
PostgreSQL a superuser. SQL Server cannot run on this machine: its statements are produced by the same
functions and asserted in the tests as compiled for the mssql dialect.
"""

from __future__ import annotations

import json
import time
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
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
    binds: str = ""  # whom the freeze binds on this engine, in a sentence
    # PostgreSQL: each object whose privileges the freeze took, with its ACL before and while frozen
    revoked: list[dict[str, str]] = field(default_factory=list)
    # PostgreSQL: each role that could write before the freeze, its write attempts and what binds it
    probes: list[dict[str, object]] = field(default_factory=list)
    # PostgreSQL: the roles no freeze can bind (superusers, CREATEROLE), named
    unbound: list[dict[str, str]] = field(default_factory=list)


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
    binds: str = ""  # whom the freeze binds, in a sentence (the proof carries it)
    # PostgreSQL: take every other role's write privileges and CONNECT for the window (recorded, restored)
    bind_roles: bool = False


def dialect_of(backend: str) -> Dialect:
    from sqlalchemy.dialects import mssql, mysql, postgresql, sqlite
    return {"mssql": mssql, "postgresql": postgresql, "mysql": mysql, "mariadb": mysql,
            "sqlite": sqlite}[backend].dialect()


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def plan_for(backend: str, database: str) -> FreezePlan:
    """The freeze/unfreeze statements for ``database`` on ``backend`` (identifiers validated and quoted)."""
    if backend == "sqlite":
        return FreezePlan("sqlite", "read-only open (mode=ro)", None, [], [],
                          binds="this tool's own sessions only: the file is opened read-only; another "
                                "program can still write it (stop the branch's application)")
    db = dialect_of(backend).identifier_preparer.quote_identifier(check_ident(database, "database name"))
    if backend == "mssql":
        return FreezePlan("mssql", "ALTER DATABASE … SET READ_ONLY WITH ROLLBACK IMMEDIATE", "master",
                          [f"ALTER DATABASE {db} SET READ_ONLY WITH ROLLBACK IMMEDIATE"],
                          [f"ALTER DATABASE {db} SET READ_WRITE WITH ROLLBACK IMMEDIATE"],
                          binds="every account: the database itself is read-only (only an account allowed to "
                                "ALTER DATABASE can set it back)")
    if backend == "postgresql":
        return FreezePlan(
            "postgresql", "default_transaction_read_only on the database; open sessions ended; every role "
            "but the admin without write privileges, and but the source account without CONNECT", "postgres",
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
            clock_sql="SELECT extract(epoch FROM clock_timestamp())", bind_roles=True,
            binds="every role but the admin: none keeps a write privilege on the database's objects, none "
                  "but the source account may connect, whatever the session overrides; superusers and "
                  "CREATEROLE roles cannot be bound by privileges and are named in the proof")
    if backend in ("mysql", "mariadb"):
        return FreezePlan(
            backend, "SET GLOBAL read_only = ON; sessions ended; FLUSH TABLES WITH READ LOCK while counting", None,
            ["SET GLOBAL read_only = ON"], ["SET GLOBAL read_only = OFF"],
            sessions_sql=(f"SELECT ID FROM information_schema.PROCESSLIST WHERE DB = {_lit(database)} "
                          "AND ID <> CONNECTION_ID()"),
            end_session="KILL CONNECTION {id}",
            # a long query elsewhere on the server must not stall the cut-over (nor the server's writes)
            hold=["SET SESSION lock_wait_timeout = 60", "FLUSH TABLES WITH READ LOCK"],
            release=["UNLOCK TABLES"],
            binds="every account without READ ONLY ADMIN (or SUPER, on older servers), server-wide; while "
                  "step 2 counts and copies, FLUSH TABLES WITH READ LOCK holds every account's writes")
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
    _end_sessions(c, sql, plan.end_session or "", database, wait_s)


def _end_sessions(c: sa.Connection, sql: str, end_session: str, database: str, wait_s: float = 15.0) -> None:
    """End the sessions ``sql`` lists until two looks 0.5 s apart find none (see above)."""
    deadline, quiet = time.monotonic() + wait_s, False
    while True:
        old = [int(sid) for (sid,) in c.exec_driver_sql(sql).all()]
        refused = []
        for sid in old:
            try:
                c.exec_driver_sql(end_session.format(id=sid))
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
    bound = _pg_bind_every_role(url, admin_url, u.database or "") if plan.bind_roles else None
    proof = prove_frozen(url, plan)
    if bound is None:
        return proof
    return replace(proof, statements=proof.statements + bound["statements"], revoked=bound["revoked"],
                   probes=bound["probes"], unbound=bound["unbound"])


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
            return FreezeProof(backend, u.database or "", plan.method, list(plan.freeze), probe, msg,
                               datetime.now(timezone.utc).isoformat(timespec="seconds"), binds=plan.binds)
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
    """Undo :func:`freeze_source` (``ecm unfreeze``); returns the statements run.

    Safe to repeat, and after a freeze that failed half-way: on PostgreSQL the privileges recorded on the
    database are restored (then the record is removed, in the same transaction); with no record there is
    nothing to restore."""
    u = make_url(url)
    plan = plan_for(u.get_backend_name(), u.database or "")
    done = _pg_restore(url, admin_url, plan, u.database or "") if plan.bind_roles else []
    if plan.unfreeze:
        _run_admin(url, admin_url, plan, plan.unfreeze, end_sessions=False)
    return done + plan.unfreeze


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


# ---- PostgreSQL: the freeze binds every role but the admin ---------------------------------------------

PG_RECORD = "ecm.freeze_record"  # what the freeze took, kept on the database itself (pg_db_role_setting)
PG_OPTION = "-c default_transaction_read_only=off"
# every way a session can override the read-only default: (by the connection option?, session statements,
# how each transaction begins)
PG_OVERRIDES: dict[str, tuple[bool, list[str], str]] = {
    "SET default_transaction_read_only = off": (False, ["SET default_transaction_read_only = off"], "BEGIN"),
    "BEGIN READ WRITE": (False, [], "BEGIN READ WRITE"),
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE": (
        False, ["SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"], "BEGIN"),
    "options=-c default_transaction_read_only=off": (True, [], "BEGIN"),
}
# per kind of object, the privileges the freeze takes from every role but the admin (CONNECT: and the reader)
_PG_TAKEN = {
    "database": ("CREATE", "CONNECT"),
    "schema": ("CREATE",),
    "table": ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "TRIGGER"),
    "sequence": ("UPDATE", "USAGE"),
    "column": ("INSERT", "UPDATE"),
    "function": ("EXECUTE",),  # SECURITY DEFINER routines only: they run with their owner's rights
}
_PG_ON = {"database": "DATABASE", "schema": "SCHEMA", "table": "TABLE", "sequence": "SEQUENCE",
          "column": "TABLE", "function": "ROUTINE"}
_PG_ORDER = ("database", "schema", "table", "sequence", "column", "function")  # columns after their tables
_PG_USER_NS = "{n}.nspname NOT IN ('pg_catalog', 'information_schema') AND {n}.nspname !~ '^pg_(toast|temp_)'"
# every object of the current database whose ACL the freeze may change, one row per privilege of each ACL
# entry (a NULL ACL is read as its default: the owner's privileges, and PUBLIC's on databases and routines)
_PG_OBJECTS = """
WITH obj AS (
  SELECT 'database' AS kind, d.oid::text AS key, quote_ident(d.datname) AS name, NULL::text AS col,
         d.datdba AS owner, d.datacl AS acl, acldefault('d'::"char", d.datdba) AS dflt
    FROM pg_database d WHERE d.datname = current_database()
  UNION ALL
  SELECT 'schema', n.oid::text, quote_ident(n.nspname), NULL, n.nspowner, n.nspacl,
         acldefault('n'::"char", n.nspowner)
    FROM pg_namespace n WHERE <N>
  UNION ALL
  SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END, c.oid::text,
         quote_ident(n.nspname) || '.' || quote_ident(c.relname), NULL, c.relowner, c.relacl,
         acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND <N>
  UNION ALL
  SELECT 'column', a.attrelid::text || '.' || a.attnum::text,
         quote_ident(n.nspname) || '.' || quote_ident(c.relname), quote_ident(a.attname), c.relowner,
         a.attacl, NULL
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped AND <N>
  UNION ALL
  SELECT 'function', p.oid::text, quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '('
         || pg_get_function_identity_arguments(p.oid) || ')', NULL, p.proowner, p.proacl,
         acldefault('f'::"char", p.proowner)
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.prosecdef AND <N>
)
SELECT o.kind, o.key, o.name, o.col, o.owner::regrole::text, coalesce(o.acl, o.dflt, '{}'::aclitem[])::text,
       e.grantor::regrole::text, CASE WHEN e.grantee = 0 THEN 'PUBLIC' ELSE e.grantee::regrole::text END,
       e.privilege_type, e.is_grantable::int
  FROM obj o LEFT JOIN LATERAL aclexplode(coalesce(o.acl, o.dflt, '{}'::aclitem[])) WITH ORDINALITY
       AS e(grantor, grantee, privilege_type, is_grantable, ord) ON true
 ORDER BY o.kind, o.key, e.ord
""".replace("<N>", _PG_USER_NS.format(n="n"))
# roles no privilege binds (a superuser bypasses them all; a CREATEROLE role may grant itself any other role)
_PG_UNBOUND = """
SELECT r.oid::regrole::text, CASE WHEN r.rolsuper THEN 'superuser: bypasses every privilege, CONNECT included'
       ELSE 'CREATEROLE: may make itself a member of any non-superuser role (PostgreSQL 15)' END
  FROM pg_roles r
 WHERE (r.rolsuper OR r.rolcreaterole) AND r.oid <> {admin}
   AND (r.rolcanlogin
        OR EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.roleid = r.oid AND m.member <> {admin}))
 ORDER BY 1
"""
# a role that can still connect and can act as (SET ROLE to) a role that the revocations do not bind
_PG_ESCAPES = """
WITH cand AS (
  SELECT r.oid, r.oid::regrole::text AS name FROM pg_roles r
   WHERE r.rolcanlogin AND NOT r.rolsuper AND NOT r.rolcreaterole AND r.oid <> {admin}
     AND has_database_privilege(r.oid, current_database(), 'CONNECT')),
power AS (
  SELECT d.refobjid AS role, 'owner of ' || pg_describe_object(d.classid, d.objid, d.objsubid) AS what
    FROM pg_shdepend d JOIN pg_database db ON db.oid = d.dbid AND db.datname = current_database()
   WHERE d.deptype = 'o'
  UNION ALL SELECT oid, 'superuser' FROM pg_roles WHERE rolsuper
  UNION ALL SELECT oid, 'CREATEROLE' FROM pg_roles WHERE rolcreaterole
  UNION ALL SELECT oid, 'writes every table' FROM pg_roles WHERE rolname = 'pg_write_all_data'
  UNION ALL SELECT {admin}::oid, 'the admin account')
SELECT c.name, p.role::regrole::text, string_agg(p.what, ', ' ORDER BY p.what)
  FROM cand c JOIN power p ON pg_has_role(c.oid, p.role, 'MEMBER')
 GROUP BY 1, 2 ORDER BY 1, 2
"""
# sessions of the roles the freeze bars (no CONNECT any more) that are still open: they are ended
_PG_BARRED_SESSIONS = """
SELECT a.pid FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
 WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND NOT r.rolsuper
   AND NOT has_database_privilege(r.oid, a.datid, 'CONNECT')
"""
_PG_OWNED = """
SELECT d.refobjid::regrole::text, 'owns ' || pg_describe_object(d.classid, d.objid, d.objsubid)
  FROM pg_shdepend d JOIN pg_database db ON db.oid = d.dbid AND db.datname = current_database()
 WHERE d.deptype = 'o' ORDER BY 1, 2
"""

# {"kind", "key", "name", "col", "owner", "effective": the ACL's text,
#  "items": [[grantor, grantee, privilege, with grant option]]}
PgObject = dict


@dataclass(frozen=True)
class _PgRoles:
    admin: str  # regrole text (quoted when needed) of the admin session's user
    admin_oid: int
    reader: str  # the source account
    reader_super: bool

    @property
    def exempt(self) -> set[str]:  # pg_database_owner is the admin once the admin owns the database
        return {self.admin, "pg_database_owner"}


def _pg_x(c: sa.Connection, sql: str) -> sa.CursorResult[typing.Any]:
    """One statement, no parameters (a ``%`` in it is text, not a placeholder)."""
    return c.exec_driver_sql(sql, execution_options={"no_parameters": True})


@contextmanager
def _pg_transaction(c: sa.Connection, done: list[str]) -> Iterator[Callable[[list[str]], None]]:
    """An explicit transaction on the admin's autocommit connection: everything or nothing (a failure, or an
    interrupt, rolls it back). Yields ``run``, which executes statements and records them in ``done``."""
    def run(sqls: list[str]) -> None:
        for sql in sqls:
            _pg_x(c, sql)
        done.append("; ".join(sqls))

    _pg_x(c, "BEGIN")
    try:
        yield run
        _pg_x(c, "COMMIT")
    except BaseException:
        try:
            _pg_x(c, "ROLLBACK")
        except sa.exc.DBAPIError:
            pass
        raise


def _pg_engine(url: str | URL, database: str | None = None, override: bool = False) -> sa.Engine:
    """An AUTOCOMMIT engine (transactions are begun and ended by statements); ``override``: with the
    connection option that turns the read-only default off."""
    u = make_url(url)
    if database:
        u = u.set(database=database)
    args: dict[str, str] = {}
    if u.get_driver_name() == "pyodbc":  # psqlODBC: no transaction of the driver's own around a cursor
        u = u.update_query_dict({"UseDeclareFetch": "0"})
        if override:
            u = u.update_query_dict({"pqopt": "{options='" + PG_OPTION + "'}"})
    elif override:
        args["options"] = PG_OPTION
    return sa.create_engine(u, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT", connect_args=args)


def _pg_label(o: PgObject) -> str:
    return f"{o['kind']} {o['name']}" + (f" ({o['col']})" if o["col"] else "")


def _pg_privs(o: PgObject, privs: list[str]) -> str:
    return ", ".join(f"{p} ({o['col']})" if o["kind"] == "column" else p for p in privs)


def _pg_on(o: PgObject) -> str:
    return f"{_PG_ON[o['kind']]} {o['name']}"


def _pg_as(grantor: str, owner: str, sql: str) -> list[str]:
    """``sql`` as ``grantor`` (a superuser's GRANT/REVOKE acts as the object's owner)."""
    return [sql] if grantor == owner else [f"SET ROLE {grantor}", sql, "RESET ROLE"]


def _pg_objects(c: sa.Connection) -> dict[tuple[str, str], PgObject]:
    objs: dict[tuple[str, str], PgObject] = {}
    for kind, key, name, col, owner, eff, grantor, grantee, priv, grantable in _pg_x(c, _PG_OBJECTS).all():
        o = objs.setdefault((kind, key), {"kind": kind, "key": key, "name": name, "col": col, "owner": owner,
                                          "effective": eff, "items": []})
        if priv is not None:
            o["items"].append([grantor, grantee, priv, bool(int(grantable))])
    return objs


def _pg_takes(o: PgObject, item: list[typing.Any], roles: _PgRoles) -> bool:
    _grantor, grantee, priv, _go = item
    if grantee in roles.exempt or priv not in _PG_TAKEN[o["kind"]]:
        return False
    return not (o["kind"] == "database" and priv == "CONNECT" and grantee == roles.reader)


def _pg_read_record(c: sa.Connection, database: str) -> dict[str, typing.Any] | None:
    rows = _pg_x(c, "SELECT s.cfg FROM pg_db_role_setting r JOIN pg_database d ON d.oid = r.setdatabase, "
                    f"unnest(r.setconfig) AS s(cfg) WHERE r.setrole = 0 AND d.datname = {_lit(database)} "
                    f"AND left(s.cfg, {len(PG_RECORD) + 1}) = '{PG_RECORD}='").all()
    return json.loads(str(rows[0][0]).split("=", 1)[1]) if rows else None


def _pg_roles(c: sa.Connection, url: str) -> _PgRoles:
    admin_oid, admin, admin_super = _pg_x(c, "SELECT oid::int, oid::regrole::text, rolsuper::int "
                                             "FROM pg_roles WHERE rolname = session_user").one()
    reader_engine = open_source(url)  # the source account, as this tool reads with it
    try:
        with reader_engine.connect() as rc:
            name = str(rc.exec_driver_sql("SELECT session_user").scalar())
    finally:
        reader_engine.dispose()
    reader, reader_super = _pg_x(c, "SELECT oid::regrole::text, rolsuper::int FROM pg_roles "
                                    f"WHERE rolname = {_lit(name)}").one()
    if not int(admin_super):
        raise SourceNotFrozen(
            f"the PostgreSQL freeze needs a superuser as its admin account: {admin} is not one, so it can "
            "neither take the other roles' write privileges nor try their writes (SET ROLE)",
            hint="set sources.admin_url to a superuser (postgres); the database is left READ ONLY for new "
                 "sessions — run `ecm unfreeze` to undo")
    return _PgRoles(str(admin), int(admin_oid), str(reader), bool(int(reader_super)))


def _pg_lock_down(c: sa.Connection, roles: _PgRoles,
                  database: str) -> tuple[dict[str, typing.Any], list[str]]:
    """One transaction: record what is there (a record already on the database — a second freeze — is kept,
    with what it holds), own the database, take every write privilege and CONNECT, CONNECT for the reader."""
    db = dialect_of("postgresql").identifier_preparer.quote_identifier(database)
    done: list[str] = []
    with _pg_transaction(c, done) as run:
        objs = _pg_objects(c)
        record = _pg_read_record(c, database) or {
            "database": database, "admin": roles.admin, "reader": roles.reader, "objects": [],
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        known = {(o["kind"], o["key"]) for o in record["objects"]}
        new = {k: o for k, o in objs.items() if k not in known
               and (o["kind"] == "database" or any(_pg_takes(o, it, roles) for it in o["items"]))}
        tables = {o["key"] for o in [*record["objects"], *new.values()] if o["kind"] == "table"}
        new |= {k: o for k, o in objs.items() if o["kind"] == "column" and k not in known
                and o["key"].split(".")[0] in tables}  # a table's REVOKE takes its columns' privileges too
        record["objects"] += list(new.values())
        text = json.dumps(record, separators=(",", ":"), ensure_ascii=True)
        _pg_x(c, f"ALTER DATABASE {db} SET {PG_RECORD} = {_lit(text)}")
        done.append(f"ALTER DATABASE {db} SET {PG_RECORD} = '…' "
                    f"({len(record['objects'])} objects and their ACLs)")
        owner = objs[next(k for k in objs if k[0] == "database")]["owner"]
        if owner != roles.admin:  # a database owner can reset the read-only default and grant itself CONNECT
            run([f"ALTER DATABASE {db} OWNER TO {roles.admin}"])
        for _ in range(20):
            todo: dict[tuple[str, str, str, str], tuple[PgObject, list[str]]] = {}
            for o in _pg_objects(c).values():
                for it in o["items"]:
                    if _pg_takes(o, it, roles):
                        todo.setdefault((o["kind"], o["key"], it[0], it[1]), (o, []))[1].append(it[2])
            if not todo:
                break
            # the owner's grants first (CASCADE takes what was granted on from them), then other grantors' own
            first = {k: v for k, v in todo.items() if k[2] == v[0]["owner"]} or todo
            for (_kind, _key, grantor, grantee), (o, privs) in first.items():
                run(_pg_as(grantor, o["owner"],
                           f"REVOKE {_pg_privs(o, privs)} ON {_pg_on(o)} FROM {grantee} CASCADE"))
        else:
            raise ExtractError(f"the privileges of {database} could not all be taken", table=database,
                               hint="check its grants (\\dp, \\l); nothing was changed")
        connect = f"has_database_privilege({_lit(roles.reader)}::regrole::oid, current_database(), 'CONNECT')"
        if (roles.reader not in roles.exempt and not roles.reader_super
                and not _pg_x(c, f"SELECT {connect}::int").scalar()):
            run([f"GRANT CONNECT ON DATABASE {db} TO {roles.reader}"])
    return record, done


def _pg_refusal(exc: sa.exc.DBAPIError) -> tuple[bool, str]:
    orig = exc.orig
    args = getattr(orig, "args", ())
    text = args[1] if len(args) > 1 and isinstance(args[1], str) else str(orig)  # pyodbc: (SQLSTATE, message)
    msg = (text.strip().splitlines() or [type(orig).__name__])[0][:300]
    state = getattr(orig, "sqlstate", None) or (args[0] if args and isinstance(args[0], str) else "")
    low = msg.lower()
    return state in ("42501", "25006") or "permission denied" in low or "read-only transaction" in low, msg


def _pg_attempts(engine_for: Callable[[bool], sa.Engine], role: str | None,
                 writes: list[str]) -> list[dict[str, object]]:
    """Each override path, in a new session (``SET ROLE role`` first), each write in a transaction that is
    rolled back whatever happens: refused (permission denied, read-only), or not."""
    out: list[dict[str, object]] = []
    for path, (option, session, begin) in PG_OVERRIDES.items():
        eng = engine_for(option)
        try:
            with eng.connect() as c:
                if option and str(_pg_x(c, "SHOW default_transaction_read_only").scalar()) != "off":
                    out += [{"path": path, "write": w, "not_tried": "the driver did not pass the connection "
                                                                    "option"} for w in writes]
                    continue
                if role:
                    _pg_x(c, f"SET ROLE {role}")
                for sql in session:
                    _pg_x(c, sql)
                for w in writes:
                    _pg_x(c, begin)
                    try:
                        _pg_x(c, w)
                        out.append({"path": path, "write": w,
                                    "accepted": "the write went through (rolled back)"})
                    except sa.exc.DBAPIError as exc:
                        refused, msg = _pg_refusal(exc)
                        out.append({"path": path, "write": w,
                                    ("refused_with" if refused else "failed_with"): msg})
                    finally:
                        try:
                            _pg_x(c, "ROLLBACK")  # a probe never keeps a write
                        except sa.exc.DBAPIError:
                            pass  # the session closes next: the server rolls back
        except sa.exc.DBAPIError as exc:  # the session itself was refused (no CONNECT): so is every write
            refused, msg = _pg_refusal(exc)
            out += [{"path": path, "write": w, ("refused_with" if refused else "failed_with"): msg}
                    for w in writes if not any(a["path"] == path and a["write"] == w for a in out)]
        finally:
            eng.dispose()
    return out


def _pg_writers(c: sa.Connection, record: dict[str, typing.Any], roles: _PgRoles,
                unbound: set[str]) -> dict[str, list[str]]:
    """Every role that could write before the freeze (but the admin, the reader and the unbound), and why."""
    why: dict[str, list[str]] = {}
    for role, what in _pg_x(c, _PG_OWNED).all():
        why.setdefault(str(role), []).append(str(what))
    dbo = next(o for o in record["objects"] if o["kind"] == "database")["owner"]
    why.setdefault(dbo, []).insert(0, f"owned database {record['database']}")
    public: list[str] = []
    for o in record["objects"]:
        if o["kind"] == "function":
            continue
        for _grantor, grantee, priv, _go in o["items"]:
            if priv in _PG_TAKEN[o["kind"]] and priv != "CONNECT":
                said = f"{priv} on {_pg_label(o)}"
                (public if grantee == "PUBLIC" else why.setdefault(grantee, [])).append(said)
    for (role,) in _pg_x(c, "SELECT r.oid::regrole::text FROM pg_roles r WHERE NOT r.rolsuper AND "
                            "r.rolname <> 'pg_write_all_data' "
                            "AND pg_has_role(r.oid, 'pg_write_all_data', 'MEMBER')").all():
        why.setdefault(str(role), []).append("member of pg_write_all_data")
    if public:  # PUBLIC could write: so could every role that can log in
        for (role,) in _pg_x(c, "SELECT oid::regrole::text FROM pg_roles WHERE rolcanlogin AND NOT rolsuper"):
            why.setdefault(str(role), []).append(f"PUBLIC had {public[0]}")
    return {r: w for r, w in why.items() if r not in roles.exempt and r not in unbound and r != roles.reader}


def _pg_writes(c: sa.Connection, record: dict[str, typing.Any], role: str) -> list[str]:
    """The writes to try as ``role``: INSERT and UPDATE on a table it could write (else any table), CREATE
    TABLE in a schema it could create in (else public), CREATE SCHEMA if it could create schemas."""
    target: dict[str, PgObject] = {}
    schema, schemas = None, False
    for o in record["objects"]:
        for _grantor, grantee, priv, _go in o["items"]:
            if grantee not in (role, "PUBLIC"):
                continue
            if o["kind"] in ("table", "column") and priv in ("INSERT", "UPDATE"):
                target.setdefault(priv, o)
            elif o["kind"] == "schema" and priv == "CREATE":
                schema = schema or o["name"]
            elif o["kind"] == "database" and priv == "CREATE":
                schemas = True
    fallback = _pg_x(c, "SELECT c.oid::text, quote_ident(n.nspname) || '.' || quote_ident(c.relname) "
                        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        f"WHERE c.relkind IN ('r', 'p') AND {_PG_USER_NS.format(n='n')} "
                        "ORDER BY 2 LIMIT 1").all()
    writes = []
    for priv in ("INSERT", "UPDATE"):
        o = target.get(priv)
        if o is None and not fallback:
            continue
        oid, table = (o["key"].split(".")[0], o["name"]) if o else fallback[0]
        col = o["col"] if o and o["col"] else _pg_x(
            c, f"SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = {int(oid)} AND attnum > 0 "
               "AND NOT attisdropped AND attgenerated = '' AND attidentity <> 'a' "
               "ORDER BY attnum LIMIT 1").scalar()
        if col:  # no row is touched: both refusals (privilege, read-only) come at ExecutorStart
            writes.append(f"INSERT INTO {table} ({col}) SELECT NULL WHERE false" if priv == "INSERT"
                          else f"UPDATE {table} SET {col} = NULL WHERE false")
    if schema is None:
        schema = _pg_x(c, "SELECT quote_ident(nspname) FROM pg_namespace n "
                          f"WHERE {_PG_USER_NS.format(n='n')} "
                          "ORDER BY nspname <> 'public', nspname LIMIT 1").scalar()
    if schema:
        writes.append(f"CREATE TABLE {schema}.{PROBE_TABLE} (x integer)")
    if schemas:
        writes.append(f"CREATE SCHEMA {PROBE_TABLE}")
    return writes


def _pg_verdict(role: str, why: list[str], connect: bool,
                attempts: list[dict[str, object]]) -> dict[str, object]:
    tried = [a for a in attempts if "not_tried" not in a]
    refused = bool(tried) and all("refused_with" in a for a in tried)
    bound_by = ("privileges and CONNECT" if refused and not connect else "privileges" if refused
                else "CONNECT" if not connect else None)
    shown = why[:4] + ([f"and {len(why) - 4} more"] if len(why) > 4 else [])
    return {"role": role, "why": "; ".join(shown), "connect": connect, "bound_by": bound_by,
            "attempts": attempts}


def _pg_bind_every_role(url: str, admin_url: str | None, database: str) -> dict[str, typing.Any]:
    """Take every other role's write privileges and CONNECT (recorded), end the barred roles' sessions, check
    that no role that can still connect can act as one that is not bound, and try every such role's writes."""
    admin = make_url(admin_url or url)
    eng = _pg_engine(admin, database)
    hint = ("the database is left frozen, what the freeze took recorded on it (ALTER DATABASE … SET "
            f"{PG_RECORD}) — `ecm unfreeze` restores every privilege")
    try:
        with eng.connect() as c:
            _pg_x(c, "SET default_transaction_read_only = off")  # the admin's own session writes
            roles = _pg_roles(c, url)
            record, statements = _pg_lock_down(c, roles, database)
            _end_sessions(c, _PG_BARRED_SESSIONS, "SELECT pg_terminate_backend({id})", database)
            unbound = [{"role": str(r), "why": str(w)}
                       for r, w in _pg_x(c, _PG_UNBOUND.format(admin=roles.admin_oid)).all()]
            escapes = [f"{who} can connect and can act as {as_} ({what})"
                       for who, as_, what in _pg_x(c, _PG_ESCAPES.format(admin=roles.admin_oid)).all()]
            if escapes:
                raise SourceNotFrozen(
                    f"the freeze of {database} does not bind every account: " + "; ".join(escapes[:5])
                    + (f" (and {len(escapes) - 5} more)" if len(escapes) > 5 else ""), table=database,
                    hint="an owner can always grant itself back what is revoked: revoke that membership (or "
                         "give sources.*_url a reader account that is a member of no owner); " + hint)
            writers = _pg_writers(c, record, roles, {u["role"] for u in unbound})
            plans = {role: _pg_writes(c, record, role) for role in [*writers, roles.reader]}
            connect = {role: bool(int(_pg_x(c, "SELECT coalesce(has_database_privilege(to_regrole("
                                               f"{_lit(role)}), current_database(), 'CONNECT'), false)::int")
                                          .scalar()))
                       for role in plans}  # a role dropped meanwhile cannot connect
            now = _pg_objects(c)
    except sa.exc.DBAPIError as exc:
        raise SourceUnavailable(f"cannot take the other roles' privileges on {redact(admin)}: {exc.orig}",
                                table=database, hint=hint) from exc
    finally:
        eng.dispose()
    probes = [_pg_verdict(role, why, connect[role],
                          _pg_attempts(lambda o: _pg_engine(admin, database, o), role, plans[role]))
              for role, why in writers.items()]
    if roles.reader not in roles.exempt and not roles.reader_super:  # the source account, in its own sessions
        own = _pg_attempts(lambda o: _pg_engine(url, None, o), None, plans[roles.reader])
        probes.append(_pg_verdict(roles.reader, ["the source account (its own sessions)"],
                                  connect[roles.reader], own))
    free = [p for p in probes if p["bound_by"] is None]
    if free:
        said = []
        for p in free:
            a = next(a for a in typing.cast(list, p["attempts"])
                     if "refused_with" not in a and "not_tried" not in a)
            said.append(f"{p['role']} ({p['why']}) through {a['path']}: {a['write']} — "
                        f"{a.get('accepted') or a.get('failed_with')}")
        raise SourceNotFrozen(f"the freeze of {database} does not bind every account: " + "; ".join(said[:5]),
                              table=database, hint=hint)
    revoked = [{"object": _pg_label(o), "before": o["effective"],
                "frozen": now[(o["kind"], o["key"])]["effective"] if (o["kind"], o["key"]) in now else "{}"}
               for o in record["objects"]]
    return {"statements": statements, "revoked": revoked, "probes": probes, "unbound": unbound}


def _pg_restore(url: str, admin_url: str | None, plan: FreezePlan, database: str) -> list[str]:
    """Give back what the freeze took, as recorded on the database: its owner, then every recorded ACL rebuilt
    entry for entry (REVOKE ALL, then the recorded grants in order, each as its grantor), checked equal, and
    the record removed — one transaction. No record: nothing to do."""
    eng = _admin_engine(url, admin_url, plan)
    try:
        with eng.connect() as c:
            record = _pg_read_record(c, database)
    finally:
        eng.dispose()
    if record is None:
        return []
    db = dialect_of("postgresql").identifier_preparer.quote_identifier(database)
    eng = _pg_engine(make_url(admin_url or url), database)
    done: list[str] = []
    kept = ("nothing was changed (the database stays frozen, its record kept): fix the cause, then run "
            "`ecm unfreeze` again")
    try:
        with eng.connect() as c:
            _pg_x(c, "SET default_transaction_read_only = off")
            with _pg_transaction(c, done) as run:
                owner = next(o for o in record["objects"] if o["kind"] == "database")["owner"]
                now = _pg_objects(c)
                if now[next(k for k in now if k[0] == "database")]["owner"] != owner:
                    run([f"ALTER DATABASE {db} OWNER TO {owner}"])
                for kind in _PG_ORDER:
                    now = _pg_objects(c)  # a table's REVOKE ALL takes its columns' privileges: columns after
                    for o in (o for o in record["objects"] if o["kind"] == kind):
                        cur = now.get((kind, o["key"]))
                        if cur is None and kind == "column":  # no column ACL left
                            cur = {**o, "items": [], "effective": "{}"}
                        if cur is None or cur["effective"] == o["effective"]:
                            continue  # gone meanwhile, or as it was
                        grantees = list(dict.fromkeys(it[1] for it in cur["items"]))
                        if grantees:
                            run([f"REVOKE {_pg_privs(o, ['ALL'])} ON {_pg_on(o)} FROM {', '.join(grantees)} "
                                 "CASCADE"])
                        grants: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
                        for grantor, grantee, priv, go in o["items"]:
                            grants.setdefault((grantor, grantee), ([], []))[1 if go else 0].append(priv)
                        for (grantor, grantee), (plain, with_go) in grants.items():
                            for privs, tail in ((plain, ""), (with_go, " WITH GRANT OPTION")):
                                if privs:
                                    grant = f"GRANT {_pg_privs(o, privs)} ON {_pg_on(o)} TO {grantee}{tail}"
                                    run(_pg_as(grantor, cur["owner"], grant))
                now = _pg_objects(c)
                differ = [f"{_pg_label(o)}: {now[k]['effective']} instead of {o['effective']}"
                          for o in record["objects"] for k in [(o["kind"], o["key"])]
                          if k in now and now[k]["effective"] != o["effective"]]
                if differ:
                    raise SourceUnavailable(f"the privileges of {database} could not be restored as "
                                            "recorded: " + "; ".join(differ[:3]), table=database, hint=kept)
                run([f"ALTER DATABASE {db} RESET {PG_RECORD}"])
    except sa.exc.DBAPIError as exc:
        raise SourceUnavailable(f"cannot restore the privileges of {database} on {redact(eng.url)}: "
                                f"{exc.orig}", table=database, hint=kept) from exc
    finally:
        eng.dispose()
    return done
