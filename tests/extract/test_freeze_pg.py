"""Issue 12 item 7: the PostgreSQL freeze binds every account but the admin that performs it.

Each test builds its own database and roles (dropped afterwards) and attacks the frozen database as the
branch's other accounts would: a role with write grants opens its own session and overrides the read-only
default by each path — ``SET default_transaction_read_only = off``, ``BEGIN READ WRITE``, ``SET SESSION
CHARACTERISTICS AS TRANSACTION READ WRITE``, the connection option ``-c default_transaction_read_only=off``
— and commits INSERT, UPDATE, CREATE TABLE (and a SECURITY DEFINER function, a sequence); the same again
from a superuser's session with ``SET ROLE``. Only a refusal counts. The ACLs (``pg_class.relacl``,
``pg_namespace.nspacl``, ``pg_database.datacl``, column and function ACLs, the database's owner) are
compared before the freeze and after the unfreeze.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from extract import freeze
from extract.errors import SourceNotFrozen
from extract.freeze import freeze_source, unfreeze_source
from extract.source import count_rows, open_source, reflect
from sample_data.server import create_database, drop_database
from tests.conftest import unique_name, with_database

pytestmark = pytest.mark.db

PW = "pw-ecm-test"
OVERRIDE = "-c default_transaction_read_only=off"
PATHS = {  # path: (connection option, session statements, how each transaction begins)
    "SET default_transaction_read_only = off": (None, ["SET default_transaction_read_only = off"], "BEGIN"),
    "BEGIN READ WRITE": (None, [], "BEGIN READ WRITE"),
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE": (
        None, ["SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"], "BEGIN"),
    "options=-c default_transaction_read_only=off": (OVERRIDE, [], "BEGIN"),
}
REFUSED = ("42501", "25006")  # insufficient_privilege, read_only_sql_transaction
WRITES = ["INSERT INTO public.t VALUES ({n}, 'x')", "UPDATE public.t SET v = 'x'",
          "CREATE TABLE public.attack_{n} (x integer)", "SELECT public.sd()", "SELECT nextval('public.s')"]

# every ACL of the database, as it acts (a NULL ACL read as its default), and the database's owner
ACLS = """
SELECT 'database ' || datname, datdba::regrole::text || ' ' || coalesce(datacl, acldefault('d', datdba))::text
  FROM pg_database WHERE datname = current_database()
UNION ALL
SELECT 'schema ' || nspname,
       nspowner::regrole::text || ' ' || coalesce(nspacl, acldefault('n', nspowner))::text
  FROM pg_namespace
 WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname !~ '^pg_(toast|temp_)'
UNION ALL
SELECT 'relation ' || c.oid::regclass::text, c.relowner::regrole::text || ' ' ||
       coalesce(c.relacl,
                acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))::text
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
UNION ALL
SELECT 'column ' || a.attrelid::regclass::text || '.' || a.attname, coalesce(a.attacl, '{}')::text
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
   AND a.attnum > 0 AND coalesce(array_length(a.attacl, 1), 0) > 0
UNION ALL
SELECT 'function ' || p.oid::regprocedure::text, coalesce(p.proacl, acldefault('f', p.proowner))::text
  FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
"""


@dataclass
class Branch:
    server: str  # psycopg URL of the superuser (postgres), on the branch database
    db: str
    roles: dict[str, str]

    def urls(self, driver: str = "postgresql+psycopg") -> tuple[str, str]:
        """(source URL: the branch's reader account; admin URL: the superuser) through ``driver``."""
        admin = make_url(self.server).set(drivername=driver)
        if driver == "postgresql+pyodbc":
            admin = admin.update_query_dict({"driver": "PostgreSQL Unicode"})
        source = admin.set(username=self.roles["reader"], password=PW)
        return source.render_as_string(hide_password=False), admin.render_as_string(hide_password=False)

    def sql(self, *statements: str, database: str | None = None) -> list[tuple[object, ...]]:
        eng = sa.create_engine(make_url(self.server).set(database=database or self.db),
                               isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        try:
            with eng.connect() as c:
                c.exec_driver_sql("SET default_transaction_read_only = off")  # the superuser may
                rows: list[tuple[object, ...]] = []
                for s in statements:
                    r = c.exec_driver_sql(s)
                    rows = [tuple(x) for x in r.all()] if r.returns_rows else []
                return rows
        finally:
            eng.dispose()

    def acls(self) -> dict[str, str]:
        return {k: v for k, v in self.sql(ACLS)}

    def data(self) -> tuple[object, ...]:
        return tuple(self.sql(
            "SELECT (SELECT array_agg(t ORDER BY id)::text FROM public.t), "
            "(SELECT last_value || ' ' || is_called FROM public.s), "
            "(SELECT count(*) FROM pg_class WHERE left(relname, 6) = 'attack'), "
            "(SELECT count(*) FROM pg_namespace WHERE left(nspname, 6) = 'attack')")[0])


@pytest.fixture
def branch(pg_admin_url: str):  # type: ignore[no-untyped-def]
    """A branch database: table public.t, sequence public.s, a SECURITY DEFINER function public.sd() owned by
    the superuser, a schema so owned by a non-admin role; roles: reader (SELECT), writer (INSERT, UPDATE,
    CREATE on public, USAGE on the sequence, an explicit CONNECT), grantor (INSERT WITH GRANT OPTION, a
    column UPDATE), chained (INSERT granted by grantor), owner (owns schema so and table so.t2), dbo."""
    db = unique_name("ecm_t")
    roles = {k: unique_name(f"ecm_t_{k}") for k in ("reader", "writer", "grantor", "chained", "owner", "dbo")}
    server = with_database(pg_admin_url, db)
    create_database(server)
    b = Branch(server, db, roles)
    r = roles
    try:
        b.sql(*[f"CREATE ROLE {name} LOGIN PASSWORD '{PW}'" for name in roles.values()], database="postgres")
        b.sql(
            "CREATE TABLE public.t (id integer PRIMARY KEY, v text)",
            "INSERT INTO public.t VALUES (1, 'a'), (2, 'b')",
            "CREATE SEQUENCE public.s",
            "CREATE FUNCTION public.sd() RETURNS integer LANGUAGE sql SECURITY DEFINER "
            "AS $$ INSERT INTO public.t VALUES (100, 'sd') RETURNING 1 $$",
            f"GRANT SELECT ON public.t TO {r['reader']}",
            f"GRANT SELECT (v) ON public.t TO {r['chained']}",
            f"GRANT SELECT, INSERT, UPDATE ON public.t TO {r['writer']}",
            f"GRANT USAGE ON SEQUENCE public.s TO {r['writer']}",
            f"GRANT CREATE ON SCHEMA public TO {r['writer']}",
            f"GRANT CONNECT ON DATABASE {db} TO {r['writer']}",
            f"GRANT INSERT ON public.t TO {r['grantor']} WITH GRANT OPTION",
            f"GRANT UPDATE (v) ON public.t TO {r['grantor']}",
            f"SET ROLE {r['grantor']}", f"GRANT INSERT ON public.t TO {r['chained']}", "RESET ROLE",
            f"CREATE SCHEMA so AUTHORIZATION {r['owner']}",
            f"GRANT USAGE ON SCHEMA so TO {r['reader']}",
            f"SET ROLE {r['owner']}", "CREATE TABLE so.t2 (id integer, v text)",
            "INSERT INTO so.t2 VALUES (1, 'a')",
            f"GRANT SELECT ON so.t2 TO {r['reader']}", "RESET ROLE")
        yield b
    finally:
        for driver in ("postgresql+psycopg",):
            try:  # a failed test must not leave the database frozen with the roles' privileges taken
                unfreeze_source(*b.urls(driver))
            except Exception:  # noqa: BLE001 - best effort before the drop
                pass
        drop_database(server)
        b.sql(*[f"DROP ROLE IF EXISTS {name}" for name in roles.values()], database="postgres")


def attack(b: Branch, login: str, writes: list[str], set_role: str | None = None,
           database: str | None = None) -> dict[tuple[str, str, str], str]:
    """Each override path, each write *committed*, in a new session of ``login`` (with ``SET ROLE set_role``
    first): ``refused: …`` (permission denied, read-only, or the session itself refused), ``WROTE`` or
    ``error: …`` (something else — not a refusal)."""
    u = make_url(b.server)
    who = f"{login} as {set_role}" if set_role else login
    out: dict[tuple[str, str, str], str] = {}
    for i, (path, (option, session, begin)) in enumerate(PATHS.items()):
        kw = {"options": option} if option else {}
        try:
            conn = psycopg.connect(host=u.host, port=u.port or 5432, dbname=database or b.db, user=login,
                                   password=PW, autocommit=True, **kw)
        except psycopg.OperationalError as exc:
            text = str(exc)
            msg = next((ln for ln in text.splitlines() if "FATAL" in ln), text.strip().splitlines()[0])
            said = "refused: " if "permission denied for database" in text else "error: "
            for w in writes:
                out[who, path, w] = said + msg.strip()
            continue
        with conn:
            if set_role:
                conn.execute(f"SET ROLE {set_role}")
            for s in session:
                conn.execute(s)
            for w in writes:
                sql = w.format(n=1000 + 10 * i + len(out) % 10, db=b.db)
                try:
                    conn.execute(begin)
                    conn.execute(sql)
                    conn.execute("COMMIT")
                    out[who, path, w] = "WROTE"
                except psycopg.Error as exc:
                    conn.execute("ROLLBACK")
                    msg = str(exc).strip().splitlines()[0]
                    out[who, path, w] = ("refused: " if exc.sqlstate in REFUSED else "error: ") + msg
    return out


def not_refused(got: dict[tuple[str, str, str], str]) -> dict[tuple[str, str, str], str]:
    return {k: v for k, v in got.items() if not v.startswith("refused")}


@pytest.mark.parametrize("driver", ["postgresql+psycopg", "postgresql+pyodbc"])
def test_a_role_with_write_grants_is_refused_on_every_override_path(branch: Branch, driver: str) -> None:
    """The writer, the grantor and the chained grantee, and the reader, each in its own sessions and from a
    superuser's session with SET ROLE: every override path, every write — refused. The proof tried each role
    that could write before, on every path, and every attempt was refused."""
    r = branch.roles
    before = branch.data()
    proof = freeze_source(*branch.urls(driver))
    got: dict[tuple[str, str, str], str] = {}
    for role in ("writer", "grantor", "chained", "reader"):
        got |= attack(branch, r[role], WRITES)
        got |= attack(branch, "postgres", WRITES, set_role=r[role])
    assert not not_refused(got), not_refused(got)
    assert branch.data() == before  # nothing was written, not even a sequence value
    probed = {p["role"]: p for p in proof.probes}
    for role in ("writer", "grantor", "chained", "owner"):
        p = probed[r[role]]
        assert {a["path"] for a in p["attempts"]} == set(PATHS), p
        assert p["attempts"] and all(a.get("refused_with") for a in p["attempts"]), p
        assert not p["connect"] and p["bound_by"] == "privileges and CONNECT", p
    writes = {a["write"].split()[0] + " " + a["write"].split()[1] for a in probed[r["writer"]]["attempts"]}
    assert writes == {"INSERT INTO", "UPDATE public.t", "CREATE TABLE"}, writes
    reader = probed[r["reader"]]  # in its own sessions: it keeps CONNECT, and reads
    assert reader["connect"] and all(a.get("refused_with") for a in reader["attempts"]), reader
    assert {a["path"] for a in reader["attempts"]} == set(PATHS)
    eng = open_source(branch.urls(driver)[0])
    assert count_rows(eng, reflect(eng).tables["t"]) == 2
    eng.dispose()


def test_a_table_owner_can_neither_connect_nor_write(branch: Branch) -> None:
    """An owner can always grant itself back what is revoked: it is kept out of the database (CONNECT), and
    its own write privileges are taken as well (so SET ROLE to it is refused too)."""
    owner = branch.roles["owner"]
    proof = freeze_source(*branch.urls())
    writes = ["INSERT INTO so.t2 VALUES ({n}, 'x')", "UPDATE so.t2 SET v = 'x'",
              "CREATE TABLE so.attack_{n} (x int)", f"GRANT INSERT ON so.t2 TO {owner}", "DROP TABLE so.t2"]
    got = attack(branch, owner, writes)
    got |= attack(branch, "postgres", writes[:3], set_role=owner)
    assert not not_refused(got), not_refused(got)
    assert branch.sql("SELECT count(*) FROM so.t2") == [(1,)]
    p = {p["role"]: p for p in proof.probes}[owner]
    assert "owns" in p["why"] and "so.t2" in p["why"] and p["bound_by"] == "privileges and CONNECT", p


def test_the_database_owner_is_bound_and_gets_its_database_back(branch: Branch) -> None:
    """A database owned by a branch account: it could reset the read-only default, grant itself CONNECT
    and create in public (pg_database_owner). For the frozen window the admin owns the database; the
    unfreeze gives it back, with the very same ACLs."""
    dbo, db = branch.roles["dbo"], branch.db
    branch.sql(f"ALTER DATABASE {db} OWNER TO {dbo}", database="postgres")
    before = branch.acls()
    freeze_source(*branch.urls())
    got = attack(branch, dbo, ["CREATE TABLE public.attack_{n} (x int)", "CREATE SCHEMA attack_{n}"])
    got |= attack(branch, dbo, [f"ALTER DATABASE {db} RESET default_transaction_read_only",
                                f"ALTER DATABASE {db} OWNER TO {dbo}"], database="postgres")
    assert not not_refused(got), not_refused(got)
    # from another database, it tries to let itself back in (PostgreSQL warns, and grants nothing)
    attack(branch, dbo, [f"GRANT CONNECT ON DATABASE {db} TO {dbo}"], database="postgres")
    assert not not_refused(attack(branch, dbo, ["CREATE TABLE public.attack_{n} (x int)"]))
    assert branch.data()[2:] == (0, 0)
    unfreeze_source(*branch.urls())
    assert branch.acls() == before
    assert branch.sql(f"SELECT datdba::regrole::text FROM pg_database WHERE datname = '{db}'") == [(dbo,)]


def test_unfreeze_restores_exactly_the_privileges_of_before(branch: Branch) -> None:
    """The freeze takes the write privileges (recorded with the proof and on the server) and CONNECT; the
    unfreeze gives back exactly what was there: every ACL equal, entry for entry, in the same order."""
    r, db = branch.roles, branch.db
    before = branch.acls()
    proof = freeze_source(*branch.urls())
    during = branch.acls()
    assert during != before
    has = branch.sql(f"SELECT has_table_privilege('{r['writer']}', 'public.t', 'INSERT'), "
                     f"has_table_privilege('{r['chained']}', 'public.t', 'INSERT'), "
                     f"has_column_privilege('{r['grantor']}', 'public.t', 'v', 'UPDATE'), "
                     f"has_schema_privilege('{r['writer']}', 'public', 'CREATE'), "
                     f"has_database_privilege('{r['writer']}', '{db}', 'CONNECT'), "
                     f"has_function_privilege('{r['reader']}', 'public.sd()', 'EXECUTE'), "
                     f"has_database_privilege('{r['reader']}', '{db}', 'CONNECT'), "
                     f"has_table_privilege('{r['reader']}', 'so.t2', 'SELECT')")
    assert has == [(False, False, False, False, False, False, True, True)]
    taken = {o["object"] for o in proof.revoked}
    assert {"table public.t", "column public.t (v)", "sequence public.s", "schema public", "schema so",
            "table so.t2", f"database {db}", "function public.sd()"} <= taken, taken
    done = unfreeze_source(*branch.urls())
    assert any(s.startswith("GRANT") for s in done), done
    assert branch.acls() == before
    got = attack(branch, r["writer"], ["INSERT INTO public.t VALUES ({n}, 'x')"])
    assert set(got.values()) == {"WROTE"}, got  # the writer writes again (the freeze is undone)


def test_a_role_that_can_connect_and_act_as_an_owner_fails_the_freeze(branch: Branch) -> None:
    """The reader (which keeps CONNECT) is a member of the owner of so.t2: it could SET ROLE to it and write.
    The freeze fails naming both and the table; the unfreeze restores every privilege."""
    r = branch.roles
    branch.sql(f"GRANT {r['owner']} TO {r['reader']}", database="postgres")
    before = branch.acls()
    with pytest.raises(SourceNotFrozen) as e:
        freeze_source(*branch.urls())
    msg = str(e.value)
    assert r["reader"] in msg and r["owner"] in msg and "so.t2" in msg, msg
    assert "ecm unfreeze" in (e.value.hint or "")
    unfreeze_source(*branch.urls())
    assert branch.acls() == before


def test_a_second_superuser_is_named_as_not_bound(branch: Branch) -> None:
    """A superuser bypasses every privilege: no freeze binds it. It is named in the proof (not hidden)."""
    su = unique_name("ecm_t_su")
    branch.sql(f"CREATE ROLE {su} LOGIN SUPERUSER", database="postgres")
    try:
        proof = freeze_source(*branch.urls())
        unbound = {u["role"]: u["why"] for u in proof.unbound}
        assert su in unbound and "superuser" in unbound[su]
        assert "postgres" not in unbound  # the admin
    finally:
        unfreeze_source(*branch.urls())
        branch.sql(f"DROP ROLE {su}", database="postgres")


def test_a_member_of_pg_write_all_data_is_kept_out(branch: Branch) -> None:
    """pg_write_all_data writes every table whatever the ACLs: only CONNECT binds such a role, and the proof
    says so (its writes under SET ROLE went through — rolled back — but it cannot open a session)."""
    member = branch.roles["dbo"]
    branch.sql(f"GRANT pg_write_all_data TO {member}", database="postgres")
    proof = freeze_source(*branch.urls())
    got = attack(branch, member, WRITES[:2])
    assert not not_refused(got), not_refused(got)
    p = {p["role"]: p for p in proof.probes}[member]
    assert "pg_write_all_data" in p["why"] and not p["connect"] and p["bound_by"] == "CONNECT", p
    assert branch.data()[0] == "{\"(1,a)\",\"(2,b)\"}"


def test_a_write_granted_to_public_binds_every_login_role(branch: Branch) -> None:
    """INSERT granted to PUBLIC: every role that can log in could write; each is probed, and refused."""
    dbo = branch.roles["dbo"]  # no grant of its own
    branch.sql("GRANT INSERT ON public.t TO PUBLIC")
    before = branch.acls()
    proof = freeze_source(*branch.urls())
    assert not not_refused(attack(branch, dbo, WRITES[:1]))
    assert not not_refused(attack(branch, "postgres", WRITES[:1], set_role=dbo))
    p = {p["role"]: p for p in proof.probes}[dbo]
    assert "PUBLIC had INSERT on table public.t" in p["why"] and p["bound_by"] == "privileges and CONNECT", p
    unfreeze_source(*branch.urls())
    assert branch.acls() == before


def test_a_session_opened_between_the_default_and_the_revocations_is_ended(
        branch: Branch, monkeypatch: pytest.MonkeyPatch) -> None:
    """CONNECT is checked when a session opens: a writer that gets in just after the freeze has ended the
    sessions that began before it (its read-only default overridden) is ended too — it keeps no way in."""
    late: list[psycopg.Connection] = []
    ending = freeze._end_sessions_before

    def end_then_connect(*args, **kw):  # type: ignore[no-untyped-def]
        ending(*args, **kw)
        late.append(psycopg.connect(host=make_url(branch.server).host, dbname=branch.db, password=PW,
                                    user=branch.roles["writer"], autocommit=True, options=OVERRIDE))

    monkeypatch.setattr(freeze, "_end_sessions_before", end_then_connect)
    freeze_source(*branch.urls())
    assert late
    with pytest.raises(psycopg.OperationalError, match="terminating connection"):
        late[0].execute("INSERT INTO public.t VALUES (77, 'late')")
    late[0].close()
    assert branch.data()[0] == "{\"(1,a)\",\"(2,b)\"}"


def test_freezing_twice_and_unfreezing_twice_are_safe(branch: Branch) -> None:
    """A second freeze keeps the first record (what was there before); a second unfreeze does nothing."""
    before = branch.acls()
    freeze_source(*branch.urls())
    frozen = branch.acls()
    freeze_source(*branch.urls())
    assert branch.acls() == frozen
    assert not not_refused(attack(branch, branch.roles["writer"], WRITES[:3]))
    unfreeze_source(*branch.urls())
    assert branch.acls() == before
    unfreeze_source(*branch.urls())
    assert branch.acls() == before
    got = attack(branch, branch.roles["writer"], ["INSERT INTO public.t VALUES ({n}, 'x')"])
    assert set(got.values()) == {"WROTE"}, got
