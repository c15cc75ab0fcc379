"""Put a generated sample branch on a database server (MariaDB, PostgreSQL, SQL Server) for the
real-engine runs: the legacy tables are created from the legacy schema and filled from the
generated SQLite files, batch by batch. Also creates and drops the databases (tests, README).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from extract.legacy_schema import sa_metadata
from extract.source import check_ident, iter_batches, open_source, redact
from transform.errors import MigrationError


def _server(url: str) -> tuple[sa.Engine, str]:
    u = make_url(url)
    name = check_ident(u.database or "", "database name")
    backend = u.get_backend_name()
    maint = {"postgresql": "postgres", "mssql": "master", "mysql": "mysql", "mariadb": "mysql"}[backend]
    eng = sa.create_engine(u.set(database=maint),
                           isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    return eng, name


def create_database(url: str, *, drop_existing: bool = False) -> None:
    """Create the database named in ``url`` (UTF-8 / utf8mb4) on its server."""
    eng, name = _server(url)
    q = eng.dialect.identifier_preparer.quote_identifier(name)
    with eng.connect() as c:
        if drop_existing:
            drop_database(url)
        if eng.dialect.name in ("mysql", "mariadb"):
            c.exec_driver_sql(f"CREATE DATABASE {q} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        elif eng.dialect.name == "postgresql":
            c.exec_driver_sql(f"CREATE DATABASE {q} ENCODING 'UTF8' TEMPLATE template0")
        else:
            c.exec_driver_sql(f"CREATE DATABASE {q}")
    eng.dispose()


def drop_database(url: str) -> None:
    """Drop the database named in ``url`` (ending its sessions on PostgreSQL); absent is fine."""
    eng, name = _server(url)
    q = eng.dialect.identifier_preparer.quote_identifier(name)
    with eng.connect() as c:
        if eng.dialect.name == "postgresql":
            c.exec_driver_sql(f"DROP DATABASE IF EXISTS {q} WITH (FORCE)")
        else:
            c.exec_driver_sql(f"DROP DATABASE IF EXISTS {q}")
    eng.dispose()


def copy_sample_db(sqlite_file: Path, db: str, url: str, batch_rows: int = 5_000) -> dict[str, int]:
    """Copy one generated legacy DB (``SLXNK`` or ``SXXK``) from SQLite into the database of ``url``."""
    src = open_source(f"sqlite:///{sqlite_file}")
    present = set(sa.inspect(src).get_table_names())
    md = sa_metadata(db)
    dst = sa.create_engine(url)
    tables = [t for t in md.sorted_tables if t.name in present]  # a generated 'missing table' defect stays missing
    copied: dict[str, int] = {}
    try:
        md.drop_all(dst, tables=tables)
        md.create_all(dst, tables=tables)
        for t in tables:
            n = 0
            with dst.begin() as c:
                for batch in iter_batches(src, t, batch_rows):
                    rows = batch.to_pylist()
                    if rows:
                        c.execute(t.insert(), rows)
                        n += len(rows)
            copied[t.name] = n
    except sa.exc.DBAPIError as exc:
        raise MigrationError(f"copying {db} into {redact(url)} failed: {exc.orig}",
                             hint="check that the database exists and the account may create tables") from exc
    finally:
        src.dispose()
        dst.dispose()
    return copied
