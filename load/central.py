"""Step 8 writes: the converted snapshot into central, all of one branch in one transaction.

Idempotent: the branch's rows (its ID window) are deleted first, in the same transaction, so a
second load replaces the first and never duplicates. SQLite is the embedded default; PostgreSQL
binary COPY is the "Real engines" issue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from load.central_model import CENTRAL, LOAD_ORDER, central_metadata
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


def load_branch(engine: sa.Engine, snapshot: Path, base_id: int, branch: str,
                users: list[dict[str, Any]], roles: dict[str, str], tables: set[str] | None = None,
                append: bool = False) -> dict[str, int]:
    """Load the snapshot into central in one transaction; returns rows inserted per table.

    ``tables``: the central tables this run owns (default: all). Without ``append`` their rows in the
    branch's ID window are replaced; with ``append`` (incremental runs, whose IDs are all new) rows
    are only added, and a clash with an existing ID aborts the whole load.
    """
    md = central_metadata()
    owned = [n for n in LOAD_ORDER if tables is None or n in tables]
    loaded: dict[str, int] = {}
    try:
        with engine.begin() as conn:
            if not append:
                _delete_branch(conn, md, base_id, owned)
            _delete_users(conn, md, branch)
            for name in owned:
                table = md.tables[name]
                n = 0
                for batch in iter_snapshot(snapshot, name):
                    rows = batch.to_pylist()
                    if rows:
                        conn.execute(sa.insert(table), rows)
                        n += len(rows)
                loaded[name] = n
            for role, desc in roles.items():
                exists = conn.execute(sa.select(md.tables["ROLE"].c.ROLE).where(md.tables["ROLE"].c.ROLE == role))
                if exists.first() is None:
                    conn.execute(sa.insert(md.tables["ROLE"]).values(ROLE=role, DESCRIPTION=desc))
            for u in users:
                conn.execute(sa.insert(md.tables["CENTRAL_USER"]).values(
                    LOGIN=u["login"], FULL_NAME=u["full_name"], MA_HQ=u["office"], BRANCH=branch,
                    BRANCH_BASE_ID=base_id))
                for role in u["roles"]:
                    conn.execute(sa.insert(md.tables["CENTRAL_USER_ROLE"]).values(
                        LOGIN=u["login"], ROLE=role, MA_HQ=u["office"]))
            loaded["CENTRAL_USER"] = len(users)
    except sa.exc.IntegrityError as exc:
        raise LoadError(f"central refused the branch's rows (nothing was loaded): {exc.orig}",
                        hint="the snapshot breaks a central key; re-run step 5 and check its findings") from exc
    return loaded


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
