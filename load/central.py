"""Step 8 writes: the converted snapshot into central, all of one branch in one transaction.

Idempotent: the branch's rows (its ID window) are deleted first, in the same transaction, so a
second load replaces the first and never duplicates. SQLite is the embedded default (executemany);
PostgreSQL central is written with psycopg 3 binary COPY from the snapshot's Arrow batches (encoded
by pgpq, no Python object per value), inside
the same transaction as the window delete: a failure anywhere leaves central as it was.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from load.central_model import CENTRAL, LEDGER, LOAD_ORDER, REFERENCES, central_metadata
from load.errors import CentralUnavailable, LoadError
from load.snapshot import iter_snapshot

WINDOW = 10**9


def open_central(url: str) -> sa.Engine:
    """Engine on central; creates missing tables and refuses a central whose tables differ from the model."""
    try:
        engine = sa.create_engine(url)
        md = central_metadata()
        md.create_all(engine)
        insp = sa.inspect(engine)
        problems = []
        for name, table in md.tables.items():
            have = {c["name"] for c in insp.get_columns(name)}
            missing = [c.name for c in table.columns if c.name not in have]
            if missing:
                problems.append(f"{name} lacks {', '.join(missing)}")
    except sa.exc.OperationalError as exc:
        raise CentralUnavailable(f"central database unavailable: {exc.orig}") from exc
    if problems:
        raise LoadError("central's tables differ from this version's central model: " + "; ".join(problems),
                        table=str(engine.url.render_as_string(hide_password=True)),
                        hint="migrate the central schema first (or, for a rehearsal central, start from an empty one)")
    return engine


def ledger(engine: sa.Engine, branch: str) -> list[dict[str, Any]]:
    """Central's own record of what was loaded and unloaded for ``branch``, oldest first."""
    md = central_metadata()
    t = md.tables[LEDGER]
    with engine.connect() as c:
        return [dict(r) for r in c.execute(sa.select(t).where(t.c.BRANCH == branch).order_by(t.c.ENTRY_ID)).mappings()]


def _ledger_entry(conn: sa.Connection, md: sa.MetaData, **values: Any) -> None:
    conn.execute(sa.insert(md.tables[LEDGER]).values(AT=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                                     **values))


def load_branch(engine: sa.Engine, snapshot: Path, base_id: int, branch: str,
                users: list[dict[str, Any]], roles: dict[str, str], tables: set[str] | None = None,
                append: bool = False, entry: dict[str, Any] | None = None) -> dict[str, int]:
    """Load the snapshot into central in one transaction; returns rows inserted per table.

    ``tables``: the central tables this run owns (default: all). Without ``append`` their rows in the
    branch's ID window are replaced; with ``append`` (incremental runs, whose IDs are all new) rows
    are only added, and a clash with an existing ID aborts the whole load.
    """
    md = central_metadata()
    owned = [n for n in LOAD_ORDER if tables is None or n in tables]
    loaded: dict[str, int] = {}
    _ensure_roles(engine, md, roles)  # shared by every branch: outside the branch's transaction (no lock waits)
    try:
        with engine.begin() as conn:
            if not append:
                _delete_branch(conn, md, base_id, owned)
            _delete_users(conn, md, branch)
            copy = _pg_copy_target(conn)
            for name in owned:
                table = md.tables[name]
                if copy is not None:
                    loaded[name] = _copy_table(copy, table, iter_snapshot(snapshot, name))
                    continue
                n = 0
                for batch in iter_snapshot(snapshot, name):
                    rows = batch.to_pylist()
                    if rows:
                        conn.execute(sa.insert(table), rows)
                        n += len(rows)
                loaded[name] = n
            for u in users:
                conn.execute(sa.insert(md.tables["CENTRAL_USER"]).values(
                    LOGIN=u["login"], FULL_NAME=u["full_name"], MA_HQ=u["office"], BRANCH=branch,
                    BRANCH_BASE_ID=base_id))
                for role in u["roles"]:
                    conn.execute(sa.insert(md.tables["CENTRAL_USER_ROLE"]).values(
                        LOGIN=u["login"], ROLE=role, MA_HQ=u["office"]))
            loaded["CENTRAL_USER"] = len(users)
            _ledger_entry(conn, md, BRANCH=branch, BRANCH_BASE_ID=base_id, ACTION="load",
                          ROWS=sum(v for k, v in loaded.items() if k != "CENTRAL_USER"), **(entry or {}))
    except (sa.exc.IntegrityError, *_pg_errors()) as exc:  # COPY raises psycopg's own errors
        msg = str(getattr(exc, "orig", exc))
        hint = ("a login of this branch already belongs to another branch in central: rename it in the branch's "
                "users file (or unload the other branch)") if "CENTRAL_USER" in msg else \
            "the snapshot breaks a central key or type; re-run step 5 and check its findings"
        raise LoadError(f"central refused the branch's rows (nothing was loaded): {msg}", hint=hint) from exc
    if engine.dialect.name == "postgresql":
        # fresh statistics after a bulk load, or the planner keeps its empty-table plans (no parallel
        # scans) for the checks and the reconciliation that follow
        # (SKIP_LOCKED: a table another branch's load is analysing right now is left to that one — no wait)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for name in owned:
                conn.exec_driver_sql(f'ANALYZE (SKIP_LOCKED) "{name}"')
    return loaded


def _ensure_roles(engine: sa.Engine, md: sa.MetaData, roles: dict[str, str]) -> None:
    """The central roles a branch's users need, created if missing, each in its own short transaction. Two
    branches loading at once would otherwise both insert the same role inside their long transactions, and the
    second would wait for the first to commit (a unique key) — the one thing their loads share."""
    table = md.tables["ROLE"]
    for role, desc in roles.items():
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as pg_insert
                conn.execute(pg_insert(table).values(ROLE=role, DESCRIPTION=desc).on_conflict_do_nothing())
            elif conn.execute(sa.select(table.c.ROLE).where(table.c.ROLE == role)).first() is None:
                try:
                    conn.execute(sa.insert(table).values(ROLE=role, DESCRIPTION=desc))
                except sa.exc.IntegrityError:
                    pass  # created meanwhile by another load


def _pg_errors() -> tuple[type[BaseException], ...]:
    try:
        import psycopg
        return (psycopg.errors.IntegrityError, psycopg.errors.DataError)
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return ()


def _pg_copy_target(conn: sa.Connection) -> Any | None:
    """The psycopg 3 connection under ``conn`` when central is PostgreSQL via psycopg, else None."""
    if conn.dialect.name != "postgresql" or conn.dialect.driver != "psycopg":
        return None
    return conn.connection.driver_connection


def pg_copy_schema(table: sa.Table) -> pa.Schema:
    """The Arrow types whose PostgreSQL binary form each column of ``table`` receives exactly.

    Binary COPY carries no type information: every value must be in the column's own binary
    format (an int4 sent to a smallint column is refused), so batches are cast to these types first.
    """
    from sqlalchemy.dialects import postgresql
    fields = []
    for c in table.columns:
        ddl = c.type.compile(dialect=postgresql.dialect()).upper()
        base = ddl.split("(")[0].split()[0]
        if base == "NUMERIC":
            t: pa.DataType = pa.decimal128(c.type.precision or 38, c.type.scale or 0)  # type: ignore[attr-defined]
        elif base in _PG_ARROW:
            t = _PG_ARROW[base]
        else:
            raise LoadError(f"no COPY type for {table.name}.{c.name} ({ddl})", table=table.name)
        fields.append(pa.field(c.name, t))
    return pa.schema(fields)


_PG_ARROW: dict[str, pa.DataType] = {
    "BIGINT": pa.int64(), "INTEGER": pa.int32(), "SMALLINT": pa.int16(), "VARCHAR": pa.string(),
    "CHAR": pa.string(), "TEXT": pa.string(), "TIMESTAMP": pa.timestamp("us"), "FLOAT": pa.float64(),
    "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(), "DATE": pa.date32()}


def _copy_table(pg: Any, table: sa.Table, batches: Any) -> int:
    """Binary COPY of Arrow batches into one table; returns the rows written.

    The batches are encoded to PostgreSQL's binary COPY format column by column in native code
    (pgpq), with no Python object per value; the values are cast to the columns' exact types first
    (a cast that would lose a digit fails instead).
    """
    from pgpq import ArrowToPostgresBinaryEncoder
    from psycopg import sql
    schema = pg_copy_schema(table)
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table.name), sql.SQL(", ").join(sql.Identifier(n) for n in schema.names))
    encoder = ArrowToPostgresBinaryEncoder(schema)
    n = 0
    with pg.cursor() as cur, cur.copy(stmt) as cp:
        cp.write(encoder.write_header())
        for batch in batches:
            cols = [batch.column(batch.schema.get_field_index(f.name)).cast(f.type, safe=True) for f in schema]
            cp.write(encoder.write_batch(pa.RecordBatch.from_arrays(cols, schema=schema)))
            n += batch.num_rows
        cp.write(encoder.finish())
    return n


def unload_branch(engine: sa.Engine, base_id: int, branch: str, by: str | None = None,
                  reason: str | None = None) -> dict[str, int]:
    """Remove a branch from central (its ID window and its users) in one transaction — with its ledger entry;
    rows removed per table."""
    md = central_metadata()
    removed: dict[str, int] = {}
    with engine.begin() as conn:
        for name in reversed(LOAD_ORDER):
            col = md.tables[name].c[CENTRAL[name].window]
            res = conn.execute(sa.delete(md.tables[name]).where(col > base_id, col <= base_id + WINDOW))
            removed[name] = int(res.rowcount or 0)
        users = md.tables["CENTRAL_USER"]
        n_users = conn.execute(sa.select(sa.func.count()).select_from(users).where(users.c.BRANCH == branch))
        removed["CENTRAL_USER"] = int(n_users.scalar_one())
        _delete_users(conn, md, branch)
        _ledger_entry(conn, md, BRANCH=branch, BRANCH_BASE_ID=base_id, ACTION="unload",
                      ROWS=sum(v for k, v in removed.items() if k != "CENTRAL_USER"), BY_WHOM=by, REASON=reason)
    return removed


def _delete_branch(conn: sa.Connection, md: sa.MetaData, base_id: int, tables: list[str]) -> None:
    for name in reversed(tables):
        col = md.tables[name].c[CENTRAL[name].window]
        conn.execute(sa.delete(md.tables[name]).where(col > base_id, col <= base_id + WINDOW))


def _delete_users(conn: sa.Connection, md: sa.MetaData, branch: str) -> None:
    users = md.tables["CENTRAL_USER"]
    logins = sa.select(users.c.LOGIN).where(users.c.BRANCH == branch)
    conn.execute(sa.delete(md.tables["CENTRAL_USER_ROLE"]).where(md.tables["CENTRAL_USER_ROLE"].c.LOGIN.in_(logins)))
    conn.execute(sa.delete(users).where(users.c.BRANCH == branch))


def branch_counts(engine: sa.Engine, base_id: int) -> dict[str, int]:
    md = central_metadata()
    out = {}
    with engine.connect() as conn:
        for name in LOAD_ORDER:
            col = md.tables[name].c[CENTRAL[name].window]
            q = sa.select(sa.func.count()).select_from(md.tables[name]).where(col > base_id, col <= base_id + WINDOW)
            out[name] = int(conn.execute(q).scalar_one())
    return out


def iter_branch_rows(engine: sa.Engine, table: str, base_id: int, batch_rows: int = 50_000):  # type: ignore[no-untyped-def]
    """The branch's rows of one central table, streamed in primary-key order."""
    md = central_metadata()
    t = md.tables[table]
    col = t.c[CENTRAL[table].window]
    stmt = sa.select(t).where(col > base_id, col <= base_id + WINDOW).order_by(*[t.c[k] for k in CENTRAL[table].key])
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=batch_rows).execute(stmt)
        for row in result.mappings():
            yield dict(row)


def central_integrity(engine: sa.Engine, base_id: int, tables: set[str]) -> list[dict[str, object]]:
    """Central's own invariants for the branch's rows: keys unique, references resolve (anywhere in central).

    Checked on central itself after the load (PostgreSQL enforces the primary keys too; the
    references are not declared as foreign keys because central also holds rows of branches
    converted before them), so the proof does not rest on the snapshot's checks alone.
    """
    md = central_metadata()
    out: list[dict[str, object]] = []

    def window(t: sa.Table, name: str) -> sa.ColumnElement[bool]:
        col = t.c[CENTRAL[name].window]
        return sa.and_(col > base_id, col <= base_id + WINDOW)

    with engine.connect() as conn:
        for name in sorted(tables):
            t = md.tables[name]
            keys = [t.c[k] for k in CENTRAL[name].key]
            dup = sa.select(*keys).where(window(t, name)).group_by(*keys).having(sa.func.count() > 1).subquery()
            n = int(conn.execute(sa.select(sa.func.count()).select_from(dup)).scalar_one())
            out.append({"check_id": "central_unique_key", "table_name": name, "key": ", ".join(CENTRAL[name].key),
                        "field": "primary key", "expected": "0 duplicated keys", "actual": f"{n} duplicated keys",
                        "status": "pass" if n == 0 else "fail"})
        for child, col, parent, pcol in REFERENCES:
            if child not in tables:
                continue
            c, p = md.tables[child], md.tables[parent].alias("p")
            q = (sa.select(sa.func.count()).select_from(c)
                 .where(window(c, child), c.c[col].is_not(None), c.c[col] != 0,
                        ~sa.exists().where(p.c[pcol] == c.c[col])))
            n = int(conn.execute(q).scalar_one())
            out.append({"check_id": "central_reference", "table_name": child, "key": f"{col} → {parent}.{pcol}",
                        "field": col, "expected": "0 unresolved", "actual": f"{n} unresolved",
                        "status": "pass" if n == 0 else "fail"})
    return out
