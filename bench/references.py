"""What the pipeline is measured against, on the same rows:

* the physical limit of the load: psycopg binary COPY of the converted rows, already in memory as
  Python tuples, into an empty PostgreSQL database with central's tables;
* pgloader moving the same SQLite source into PostgreSQL (doubles and decimals kept exact), its row
  counts checked against SQLite's (it exits 0 even when a table loads nothing);
* reladiff comparing the same pairs of tables as step 8's reconciliation (snapshot in DuckDB, central
  in PostgreSQL), with no difference and with 100 changed rows.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from extract.staging import sql_path
from load.central import WINDOW, open_central, pg_copy_schema
from load.central_model import CENTRAL, LOAD_ORDER, central_metadata
from load.snapshot import SRC_KEY
from sample_data.server import create_database, drop_database
from validate.fingerprint_sql import kind_of, reconcile_pushdown


def fresh_db(admin_url: str, name: str) -> str:
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    create_database(url, drop_existing=True)
    return url


# ---- raw COPY ---------------------------------------------------------------------------------------

def raw_copy(snapshot: Path, url: str) -> dict[str, Any]:
    """The physical limit of the load, two ways, each into empty central tables; only the COPY is timed.

    * ``rows``: psycopg's binary COPY ``write_row`` over rows already in memory as Python tuples
      (the reference the benchmark issue names);
    * ``bytes``: the same rows already encoded in PostgreSQL's binary COPY format, written as is —
      what PostgreSQL itself can ingest over this socket, the stricter limit.
    """
    out: dict[str, Any] = {}
    md = central_metadata()
    for mode in ("rows", "bytes"):
        engine = open_central(url)
        with engine.begin() as conn:
            for name in reversed(LOAD_ORDER):
                conn.exec_driver_sql(f'TRUNCATE "{name}"')
        seconds, rows = 0.0, 0
        for name in LOAD_ORDER:
            t = md.tables[name]
            schema = pg_copy_schema(t)
            pf = pq.ParquetFile(snapshot / f"{name}.parquet")
            batches = [pa.RecordBatch.from_arrays(
                [b.column(b.schema.get_field_index(f.name)).cast(f.type) for f in schema], schema=schema)
                for b in pf.iter_batches(batch_size=50_000, columns=schema.names)]
            stmt = f'COPY "{name}" ({", ".join(chr(34) + c + chr(34) for c in schema.names)}) FROM STDIN (FORMAT BINARY)'
            if mode == "rows":
                payload: Any = [row for b in batches for row in zip(*[c.to_pylist() for c in b.columns], strict=True)]
            else:
                from pgpq import ArrowToPostgresBinaryEncoder
                enc = ArrowToPostgresBinaryEncoder(schema)
                payload = [enc.write_header(), *[enc.write_batch(b) for b in batches], enc.finish()]
            with engine.begin() as conn:
                pg = conn.connection.driver_connection
                t0 = time.perf_counter()
                with pg.cursor() as cur, cur.copy(stmt) as cp:
                    if mode == "rows":
                        cp.set_types(["numeric" if pa.types.is_decimal(f.type) else _PSYCOPG[str(f.type)]
                                      for f in schema])
                        for row in payload:
                            cp.write_row(row)
                    else:
                        for chunk in payload:
                            cp.write(chunk)
                seconds += time.perf_counter() - t0
            rows += sum(b.num_rows for b in batches)
            del payload, batches
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for name in LOAD_ORDER:  # as step 8 does after its load: both reconcilers get planner statistics
                conn.exec_driver_sql(f'ANALYZE "{name}"')
        engine.dispose()
        out[mode] = {"rows": rows, "seconds": round(seconds, 3),
                     "rows_per_second": round(rows / seconds) if seconds else None}
    return out


_PSYCOPG = {"int64": "int8", "int32": "int4", "int16": "int2", "string": "text", "timestamp[us]": "timestamp",
            "double": "float8"}


# ---- floors of the steps that read the source and restore the package ---------------------------------

def source_read(sqlite_files: dict[str, Path]) -> dict[str, Any]:
    """The floor of steps 1–2: every row of every table of the source files read once (Python's sqlite3, rows
    fetched in batches and dropped), nothing else."""
    import sqlite3
    rows, t0 = 0, time.perf_counter()
    for path in sqlite_files.values():
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            cur = con.execute(f'SELECT * FROM "{name}"')
            while batch := cur.fetchmany(50_000):
                rows += len(batch)
        con.close()
    seconds = time.perf_counter() - t0
    return {"rows": rows, "seconds": round(seconds, 3), "rows_per_second": round(rows / seconds)}


def restore_floor(package: Path, work: Path) -> dict[str, Any]:
    """The floor of step 4: the package's Parquet files read into tables of a new DuckDB file (no checks, no casts)."""
    import duckdb
    db = work / "restore_floor.duckdb"
    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db), config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    rows, t0 = 0, time.perf_counter()
    for f in sorted(package.glob("*/*.parquet")):
        con.execute(f'CREATE TABLE "{f.parent.name}_{f.stem}" AS SELECT * FROM read_parquet(?)', [str(f)])
        rows += con.execute(f'SELECT count(*) FROM "{f.parent.name}_{f.stem}"').fetchall()[0][0]
    con.execute("CHECKPOINT")
    seconds = time.perf_counter() - t0
    con.close()
    db.unlink(missing_ok=True)
    return {"rows": rows, "seconds": round(seconds, 3), "rows_per_second": round(rows / seconds)}


# ---- pgloader ---------------------------------------------------------------------------------------

# pgloader prints Lisp doubles as "1813.26d0", which PostgreSQL refuses (the table then loads nothing
# and pgloader still exits 0): float-to-string writes them as plain decimals, no digit lost
PGLOADER_CASTS = ('type real to "double precision" drop typemod using float-to-string, '
                  'type float to "double precision" drop typemod using float-to-string, '
                  "type numeric to numeric keep typemod using float-to-string, "
                  "type decimal to numeric keep typemod using float-to-string")


def ensure_pgloader() -> str:
    if shutil.which("pgloader") is None:
        print("bench: pgloader missing — installing the Debian package", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "pgloader"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, capture_output=True)
    out = subprocess.run(["pgloader", "--version"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0]


def pgloader(sqlite_files: dict[str, Path], admin_url: str) -> dict[str, Any]:
    """Move each SQLite file into its own PostgreSQL database; time all; check every table's count."""
    version = ensure_pgloader()
    total, counts, problems = 0.0, {}, []
    for db, path in sqlite_files.items():
        url = fresh_db(admin_url, f"ecm_bench_pgl_{db.lower()}")
        u = make_url(url)
        target = f"postgresql://{u.username}@{u.host}:{u.port or 5432}/{u.database}"
        with tempfile.NamedTemporaryFile("w", suffix=".load", delete=False) as f:
            f.write(f"LOAD DATABASE FROM sqlite://{path} INTO {target}\n"
                    f" WITH include drop, create tables, no foreign keys, quote identifiers, workers = 2, "
                    f"concurrency = 1, prefetch rows = 25000\n"
                    f" CAST {PGLOADER_CASTS};\n")
            cmd = f.name
        t0 = time.perf_counter()
        res = subprocess.run(["pgloader", "--no-ssl-cert-verification", cmd], capture_output=True, text=True,
                             env={**os.environ, "PGPASSWORD": u.password or ""})
        total += time.perf_counter() - t0
        os.unlink(cmd)
        if res.returncode != 0:
            problems.append(f"{db}: pgloader exit {res.returncode}: {res.stderr[-400:]}")
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with eng.connect() as c:
            for (name,) in src.execute("SELECT name FROM sqlite_master WHERE type='table'"):
                want = src.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
                try:
                    got = c.exec_driver_sql(f'SELECT count(*) FROM "{name}"').scalar()
                except sa.exc.DBAPIError:
                    c.rollback()
                    got = None
                counts[f"{db}.{name}"] = {"sqlite": want, "postgresql": got}
                if got != want:
                    problems.append(f"{db}.{name}: sqlite {want}, pgloader loaded {got}")
        eng.dispose()
        drop_database(url)
    rows = sum(v["sqlite"] for v in counts.values())
    return {"version": version, "seconds": round(total, 3), "rows": rows, "rows_per_second": round(rows / total),
            "counts_ok": not problems, "problems": problems, "casts": PGLOADER_CASTS}


# ---- reconciliation: ours vs reladiff -----------------------------------------------------------------

def snapshot_duckdb(snapshot: Path, path: Path) -> Path:
    """The snapshot as DuckDB tables (what reladiff can read); not timed."""
    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    for name in LOAD_ORDER:
        con.execute(f'CREATE TABLE "{name}" AS SELECT * EXCLUDE ({SRC_KEY}) FROM '
                    f"read_parquet({sql_path(snapshot / f'{name}.parquet')})")
    con.close()
    return path


def ours(snapshot: Path, url: str, base: int, tables: list[str]) -> dict[str, Any]:
    engine = sa.create_engine(url)
    md = central_metadata()
    t0 = time.perf_counter()
    found: set[tuple[str, tuple[Any, ...]]] = set()
    rows = 0
    for name in tables:
        spec = CENTRAL[name]
        cols = [c for c, _ in spec.columns]
        where = f'"{spec.window}" > {base} AND "{spec.window}" <= {base + WINDOW}'
        r = reconcile_pushdown(name, list(spec.key), [(c, kind_of(md.tables[name].c[c].type)) for c in cols],
                               snapshot / f"{name}.parquet", engine, where, keep=10**6,
                               bucket_col=spec.window)
        rows += r.rows_snapshot
        found |= {(name, tuple(d.key)) for d in r.diffs}
    dt = time.perf_counter() - t0
    engine.dispose()
    return {"seconds": round(dt, 3), "rows": rows, "differences": len(found), "keys": found}


def reladiff_tables(duck: Path, url: str, tables: list[str], threads: int = 2) -> dict[str, Any]:
    """reladiff (in-process API, so no CLI start-up is counted) over the same tables; keys of the differences."""
    import logging

    from reladiff import connect_to_table, diff_tables
    for name in ("reladiff", "sqeleton"):
        logging.getLogger(name).setLevel(logging.ERROR)
    u = make_url(url)
    pg = f"postgresql://{u.username}@{u.host}:{u.port or 5432}/{u.database}"
    found: set[tuple[str, tuple[Any, ...]]] = set()
    t0 = time.perf_counter()
    for name in tables:
        spec = CENTRAL[name]
        extra = tuple(c for c, _ in spec.columns if c not in spec.key)
        a = connect_to_table(f"duckdb://{duck}", name, tuple(spec.key), thread_count=threads)
        b = connect_to_table(pg, name, tuple(spec.key), thread_count=threads)
        for _sign, row in diff_tables(a, b, extra_columns=extra, threaded=True, max_threadpool_size=threads):
            found.add((name, tuple(str(v) for v in row[:len(spec.key)])))
    dt = time.perf_counter() - t0
    return {"seconds": round(dt, 3), "differences": len(found), "keys": found}


def change_rows(url: str, table: str, column: str, n: int = 100) -> list[tuple[Any, ...]]:
    """Change ``column`` in ``n`` rows of ``table`` (spread over the table); returns their keys."""
    spec = CENTRAL[table]
    keys = ", ".join(f'"{k}"' for k in spec.key)
    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with eng.begin() as c:
        total = c.exec_driver_sql(f'SELECT count(*) FROM "{table}"').scalar()
        step = max(1, total // n)
        picked = c.exec_driver_sql(
            f'SELECT {keys} FROM (SELECT {keys}, row_number() OVER (ORDER BY {keys}) AS rn FROM "{table}") s '
            f"WHERE mod(rn - 1, {step}) = 0 ORDER BY {keys} LIMIT {n}").all()
        for k in picked:
            cond = " AND ".join(f'"{c}" = {v}' for c, v in zip(spec.key, k, strict=True))
            c.exec_driver_sql(f'UPDATE "{table}" SET "{column}" = "{column}" + 1 WHERE {cond}')
    eng.dispose()
    return [tuple(k) for k in picked]
