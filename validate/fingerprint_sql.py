"""The same full reconciliation, pushed into the databases (PostgreSQL central, DuckDB over the snapshot).

Each side reduces every row to MD5 over a canonical text of its columns (the canonical forms of
:mod:`validate.fingerprint`, expressed in each engine's SQL: integers as text, decimals at the
column's scale, timestamps as epoch microseconds, doubles as shortest round-trip text, text trimmed,
NULL as ``\\N``) and sums the two 64-bit halves of the MD5s: an order-free 128-bit digest plus the
count. Both sides run at once (PostgreSQL in its own process, DuckDB in this one). Equal digests and
counts prove the table equal row for row; otherwise the per-row (key, MD5) pairs of central are
brought over and joined to the snapshot's in DuckDB, and the rows that differ are compared column by
column with :func:`validate.fingerprint.canon`, exactly as the streaming path does.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from extract import staging
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa

from extract.staging import sql_path
from validate.fingerprint import RowDiff, TableReconciliation, canon

SEP = "chr(31)"
NULL_MARK = "chr(30)"  # NULL's stand-in: a control character, so that no text value hashes like NULL


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _canon_pg(col: str, kind: str) -> str:
    c = _q(col)
    expr = {"int": f"{c}::text", "text": f"btrim({c}::text)", "decimal": f"{c}::text",
            "timestamp": f"(extract(epoch from {c}) * 1000000)::bigint::text", "float": f"{c}::text"}[kind]
    return f"coalesce({expr}, {NULL_MARK})"


def _canon_duck(col: str, kind: str) -> str:
    c = _q(col)
    expr = {"int": f"CAST({c} AS VARCHAR)", "text": f"trim(CAST({c} AS VARCHAR))", "decimal": f"CAST({c} AS VARCHAR)",
            "timestamp": f"CAST(epoch_us({c}) AS VARCHAR)",
            # both print the shortest round-trip text; DuckDB writes integral doubles as "2.0", PostgreSQL "2"
            "float": f"regexp_replace(CAST({c} AS VARCHAR), '\\.0$', '')"}[kind]
    return f"coalesce({expr}, {NULL_MARK})"


def kind_of(sa_type: sa.types.TypeEngine) -> str:  # type: ignore[type-arg]
    if isinstance(sa_type, sa.Float):
        return "float"
    if isinstance(sa_type, sa.Numeric):
        return "decimal"
    if isinstance(sa_type, sa.Integer):
        return "int"
    if isinstance(sa_type, sa.DateTime):
        return "timestamp"
    return "text"


def _pg_row_hash(columns: list[tuple[str, str]]) -> str:
    return f"md5(concat_ws({SEP}, {', '.join(_canon_pg(c, k) for c, k in columns)}))"


def _duck_row_hash(columns: list[tuple[str, str]]) -> str:
    return f"md5(concat_ws({SEP}, {', '.join(_canon_duck(c, k) for c, k in columns)}))"


def _pg_digest(engine: sa.Engine, table: str, columns: list[tuple[str, str]], where: str) -> tuple[int, int, int]:
    h = _pg_row_hash(columns)
    sql = (f"SELECT count(*), coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint), 0), "
           f"coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint), 0) "
           f"FROM (SELECT {h} AS h FROM {_q(table)} WHERE {where}) s")
    with engine.connect() as c:
        _parallel(c)
        n, a, b = c.exec_driver_sql(sql).one()
    return int(n), int(a), int(b)


def _parallel(c: sa.Connection) -> None:
    """Session settings for hashing: doubles printed shortest-exact whatever the role's default (0 would
    print 15 digits and hide a one-ulp change), and PostgreSQL free to split the MD5s over its workers."""
    c.exec_driver_sql("SET extra_float_digits = 1")
    c.exec_driver_sql("SET parallel_setup_cost = 0")
    c.exec_driver_sql("SET parallel_tuple_cost = 0")


def _signed(expr: str) -> str:
    v = f"CAST(CAST({expr} AS UBIGINT) AS HUGEINT)"
    return f"(CASE WHEN {v} >= 9223372036854775808 THEN {v} - 18446744073709551616 ELSE {v} END)"


def _duck_digest(con: duckdb.DuckDBPyConnection, src: str, columns: list[tuple[str, str]]) -> tuple[int, int, int]:
    h = _duck_row_hash(columns)
    sql = (f"SELECT count(*), coalesce(sum({_signed(chr(39) + '0x' + chr(39) + ' || substr(h, 1, 16)')}), 0), "
           f"coalesce(sum({_signed(chr(39) + '0x' + chr(39) + ' || substr(h, 17, 16)')}), 0) "
           f"FROM (SELECT {h} AS h FROM {src}) s")
    n, a, b = con.execute(sql).fetchall()[0]
    return int(n), int(a), int(b)


def reconcile_pushdown(table: str, key: list[str], columns: list[tuple[str, str]], snapshot: Path,
                       engine: sa.Engine, where: str, allow_extra: bool = False,
                       keep: int = 1000, bucket_col: str | None = None) -> TableReconciliation:
    """Reconcile one central table (rows matching ``where``) with its snapshot file, in the databases.

    ``columns``: (name, kind) with kind one of int, text, decimal, timestamp, float (see :func:`kind_of`).
    ``bucket_col``: an integer column (the ID) by whose ranges a mismatch is narrowed down first
    (digests per range on both sides, rows only from the ranges that differ).
    """
    con = staging.scratch()
    src = f"read_parquet({sql_path(snapshot)})"
    try:
        with ThreadPoolExecutor(1) as pool:
            pg = pool.submit(_pg_digest, engine, table, columns, where)
            snap = _duck_digest(con, src, columns)
            cen = pg.result()
        out = TableReconciliation(table, rows_snapshot=snap[0], rows_central=cen[0],
                                  digest=f"md5sum:{snap[1] % 2**64:016x}{snap[2] % 2**64:016x}")
        if snap == cen:
            return out
        narrow = _differing_ranges(con, src, engine, table, columns, where, bucket_col) if bucket_col else None
        return _drill_down(out, con, src, engine, table, key, columns, where, allow_extra, keep, narrow)
    finally:
        con.close()


BUCKETS = 4096


def _differing_ranges(con: duckdb.DuckDBPyConnection, src: str, engine: sa.Engine, table: str,
                      columns: list[tuple[str, str]], where: str, col: str) -> tuple[str, str] | None:
    """Digests per ID range on both sides; the (PostgreSQL, DuckDB) conditions selecting the ranges that differ."""
    c = _q(col)
    with engine.connect() as conn:
        lo_pg, hi_pg = conn.exec_driver_sql(f"SELECT min({c}), max({c}) FROM {_q(table)} WHERE {where}").one()
    lo_d, hi_d = con.execute(f"SELECT min({c}), max({c}) FROM {src}").fetchall()[0]
    ends = [v for v in (lo_pg, hi_pg, lo_d, hi_d) if v is not None]
    if not ends:
        return None
    lo, hi = int(min(ends)), int(max(ends))
    width = max(1, -(-(hi - lo + 1) // BUCKETS))
    hp, hd = _pg_row_hash(columns), _duck_row_hash(columns)
    half = "substr(h, {}, 16)"
    with engine.connect() as conn:
        _parallel(conn)
        pg = {int(r[0]): tuple(int(x) for x in r[1:]) for r in conn.exec_driver_sql(
            f"SELECT b, count(*), sum(('x' || {half.format(1)})::bit(64)::bigint), "
            f"sum(('x' || {half.format(17)})::bit(64)::bigint) FROM (SELECT ({c} - {lo}) / {width} AS b, {hp} AS h "
            f"FROM {_q(table)} WHERE {where}) s GROUP BY b").all()}
    q = chr(39)
    duck = {int(r[0]): tuple(int(x) for x in r[1:]) for r in con.execute(
        f"SELECT b, count(*), sum({_signed(q + '0x' + q + ' || ' + half.format(1))}), "
        f"sum({_signed(q + '0x' + q + ' || ' + half.format(17))}) FROM (SELECT ({c} - {lo}) // {width} AS b, "
        f"{hd} AS h FROM {src}) s GROUP BY b").fetchall()}
    bad = sorted(b for b in set(pg) | set(duck) if pg.get(b) != duck.get(b))
    if not bad:
        return None
    ids = ", ".join(str(b) for b in bad)
    return f"({c} - {lo}) / {width} IN ({ids})", f"({c} - {lo}) // {width} IN ({ids})"


def _drill_down(out: TableReconciliation, con: duckdb.DuckDBPyConnection, src: str, engine: sa.Engine, table: str,
                key: list[str], columns: list[tuple[str, str]], where: str, allow_extra: bool,
                keep: int, narrow: tuple[str, str] | None = None) -> TableReconciliation:
    """Digests differ: find the rows (per-row MD5 joined in DuckDB), then name the columns (canon)."""
    keys_pg = ", ".join(_q(k) for k in key)
    pg_where, duck_where = (f"({where}) AND {narrow[0]}", narrow[1]) if narrow else (where, "TRUE")
    copy = (f"COPY (SELECT {keys_pg}, {_pg_row_hash(columns)} AS h FROM {_q(table)} WHERE {pg_where}) "
            "TO STDOUT (FORMAT csv, HEADER)")
    buf = io.BytesIO()
    with engine.connect() as c:
        _parallel(c)
        raw = c.connection.driver_connection
        with raw.cursor() as cur, cur.copy(copy) as cp:
            for chunk in cp:
                buf.write(chunk)
    buf.seek(0)
    # every column read as text, nothing guessed ("00123" stays "00123", "NA" stays "NA"); typed in DuckDB
    central = pacsv.read_csv(buf, convert_options=pacsv.ConvertOptions(
        column_types={n: pa.string() for n in [*key, "h"]}, null_values=[], strings_can_be_null=False))
    con.register("central_h", central)
    kinds = dict(columns)

    def ckey(k: str) -> str:
        kind = kinds.get(k, "text")
        return {"int": f"CAST(c.{_q(k)} AS BIGINT)", "timestamp": f"CAST(c.{_q(k)} AS TIMESTAMP)"}.get(kind, f"c.{_q(k)}")

    # decimals compare by their text at the column's scale (both engines print it the same way)
    on = " AND ".join((f"CAST(s.{_q(k)} AS VARCHAR) = c.{_q(k)}" if kinds.get(k) == "decimal" else f"s.{_q(k)} = {ckey(k)}")
                      for k in key)
    sel = ", ".join((f"coalesce(CAST(s.{_q(k)} AS VARCHAR), c.{_q(k)})" if kinds.get(k) == "decimal"
                     else f"coalesce(s.{_q(k)}, {ckey(k)})") + f" AS {_q(k)}" for k in key)
    rows = con.execute(
        f"SELECT {sel}, s.h IS NULL AS extra, c.h IS NULL AS missing FROM "
        f"(SELECT {', '.join(_q(k) for k in key)}, {_duck_row_hash(columns)} AS h FROM {src} WHERE {duck_where}) s "
        f"FULL OUTER JOIN central_h c ON {on} WHERE s.h IS DISTINCT FROM c.h ORDER BY ALL").fetchall()
    names = [c for c, _ in columns]
    dec_at = [i for i, k in enumerate(key) if kinds.get(k) == "decimal"]
    if dec_at:  # decimal keys came back as their text; make them values again
        rows = [tuple(Decimal(v) if i in dec_at and v is not None else v for i, v in enumerate(r)) for r in rows]
    different = [r[:len(key)] for r in rows if not r[-1] and not r[-2]]
    for r in rows:
        k = tuple(r[:len(key)])
        if r[-1]:
            out.n_diffs += 1
            if len(out.diffs) < keep:
                out.diffs.append(RowDiff(table, k, "missing_in_central"))
        elif r[-2] and not allow_extra:
            out.n_diffs += 1
            if len(out.diffs) < keep:
                out.diffs.append(RowDiff(table, k, "extra_in_central"))
    for k, a, b in _pair_rows(con, src, engine, table, key, names, where, different):
        cols = [c for c in names if canon(a.get(c)) != canon(b.get(c))]
        if cols:  # a representation-only difference (e.g. exponent spelling of a double) is not a difference
            out.n_diffs += 1
            if len(out.diffs) < keep:
                out.diffs.append(RowDiff(table, k, "different", cols, {c: a.get(c) for c in cols},
                                         {c: b.get(c) for c in cols}))
    return out


def _pair_rows(con: duckdb.DuckDBPyConnection, src: str, engine: sa.Engine, table: str, key: list[str],
               names: list[str], where: str, keys: list[tuple[Any, ...]]):  # type: ignore[no-untyped-def]
    """(key, snapshot row, central row) for the given keys, fetched in chunks from both sides."""
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        con.register("want", pa.table({k: [c[j] for c in chunk] for j, k in enumerate(key)}))
        on = " AND ".join(f"s.{_q(k)} = w.{_q(k)}" for k in key)
        snap_rows = con.sql(f"SELECT s.* FROM {src} s JOIN want w ON {on}").to_arrow_table().to_pylist()
        t = sa.table(table, *[sa.column(n) for n in names])
        cond = sa.or_(*[sa.and_(*[t.c[k] == v for k, v in zip(key, c, strict=True)]) for c in chunk])
        with engine.connect() as conn:
            cen_rows = [dict(r) for r in conn.execute(sa.select(t).where(sa.text(where)).where(cond)).mappings()]
        by_key = {tuple(r[k] for k in key): r for r in cen_rows}
        for r in snap_rows:
            k = tuple(r[c] for c in key)
            if k in by_key:
                yield k, r, by_key[k]
