"""The intermediate (staging) database of step 4: a DuckDB file.

Why DuckDB: the package is Parquet, and DuckDB restores Parquet natively and streams Arrow out, so
a restore is one ``CREATE TABLE … AS SELECT * FROM read_parquet(…)`` per table with no Python row
loop; see README "Architecture" for the measurement against SQLite.
Schemas: ``src_sxxk``/``src_slxnk`` hold the restored legacy tables; ``quarantine`` holds the
rows the conversion set aside, with their full source values.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from extract.contract import (
    ContractError,
    TableBinding,
    bad_detail_sql,
    bind,
    declared_duck_type,
    describe_parquet,
    key_json_sql,
    src_key_sql,
)
from extract.errors import ExtractError, SchemaMismatch
from extract.legacy_schema import TABLES_BY_DB
from extract.package import PackageManifest
from extract.source import check_ident


def src_schema(db: str) -> str:
    return f"src_{check_ident(db, 'database label').lower()}"


# DuckDB takes 80 % of RAM for its buffer pool by default; staging shares the machine with the flow,
# its Prefect server and PostgreSQL, so it gets a fixed budget and spills to disk beyond it
MEMORY_LIMIT = "512MB"


# never download anything at run time (no network but loopback): DuckDB's extension auto-install/-load are off
NO_DOWNLOADS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


def connect(path: Path, read_only: bool = False, memory_limit: str = MEMORY_LIMIT,
            temp_dir: Path | None = None, lock_wait_seconds: float = 15.0) -> duckdb.DuckDBPyConnection:
    """The staging database with its memory budget; beyond it DuckDB spills to ``temp_dir`` (default: beside
    the database, ``<staging>.tmp``), so a branch larger than memory is slower, never a failure. A file another
    process holds (the review desk reading a finding's rows) is waited for up to ``lock_wait_seconds``."""
    tmp = temp_dir or path.with_name(path.name + ".tmp")
    deadline = time.monotonic() + lock_wait_seconds
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config={
                "memory_limit": memory_limit, "temp_directory": str(tmp), **NO_DOWNLOADS})
        except duckdb.IOException as exc:  # another process holds the file (the desk reading rows for a moment)
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise ExtractError(f"cannot open staging database {path}: {exc}", table=str(path),
                                   hint="is another run using it? wait for it or pick another staging path") from exc
            time.sleep(0.2)
        except duckdb.Error as exc:
            raise ExtractError(f"cannot open staging database {path}: {exc}", table=str(path),
                               hint="is another run using it? wait for it or pick another staging path") from exc


@dataclass
class Restored:
    """What step 4 restored: rows read per declared table, rows set aside, and how the package was bound."""

    read: dict[str, int] = field(default_factory=dict)        # DB.Table (declared spelling) -> rows in the package
    staged: dict[str, int] = field(default_factory=dict)      # -> rows in staging (read - bad)
    bad: dict[str, int] = field(default_factory=dict)         # -> rows quarantined as Q-BAD-VALUE
    bindings: dict[str, list[TableBinding]] = field(default_factory=dict)  # db -> bindings
    extra_tables: dict[str, list[str]] = field(default_factory=dict)       # db -> found tables not in the contract


BAD_VALUES = "quarantine.bad_values"


def restore(con: duckdb.DuckDBPyConnection, package_root: Path, man: PackageManifest) -> Restored:
    """Restore every package file into staging through the input contract (extract/contract.py).

    Each declared table is created under its declared name with its declared column types, whatever the
    package's spelling and storage forms; an absent table is created empty; a missing column is NULL.
    Rows holding a value that does not cast go to ``quarantine.bad_values`` with their table, key, the
    columns and raw values, and every source value (as JSON) — they never reach the staging table.
    Tables the contract does not know are restored as they are, under their own names.
    """
    out = Restored()
    con.execute("CREATE SCHEMA IF NOT EXISTS quarantine")
    con.execute(f"CREATE OR REPLACE TABLE {BAD_VALUES} (source_table VARCHAR, source_key VARCHAR, key_json VARCHAR, "
                "detail VARCHAR, source_values VARCHAR)")
    by_db: dict[str, dict[str, str]] = {}
    stems: dict[tuple[str, str], str] = {}
    for f in man.files:
        by_db.setdefault(f.db, {})[f.table] = str((package_root / f.path).resolve())
        stems[(f.db, f.table)] = check_ident(Path(f.path).stem, "package file name")
    for db in sorted(set(by_db) | ({"SXXK", "SLXNK"} & set(TABLES_BY_DB))):
        schema = src_schema(db)
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        paths = by_db.get(db, {})
        found = {t: describe_parquet(con, p) for t, p in paths.items()}
        try:
            bindings, extra = bind(db, found) if db in TABLES_BY_DB else ([], sorted(found))
        except ContractError as exc:
            raise SchemaMismatch(f"the package of {db} cannot be bound to the e-Customs V4 schema: {exc}",
                                 table=db, hint="keep one of the two at the branch (step 1) and redo from step 1") from exc
        out.bindings[db], out.extra_tables[db] = bindings, extra
        for b in bindings:
            target = f'"{schema}"."{b.table.name}"'
            name = b.qualified
            if b.found is None:
                cols = ", ".join(f'"{c.declared}" {declared_duck_type(c.legacy_type)}' for c in b.columns)
                con.execute(f"CREATE OR REPLACE TABLE {target} ({cols})")
                out.read[name] = out.staged[name] = out.bad[name] = 0
                continue
            src = f"read_parquet({sql_str(paths[b.found])})"
            bad = b.bad_predicate()
            where = f" WHERE NOT coalesce({bad}, false)" if bad else ""
            con.execute(f"CREATE OR REPLACE TABLE {target} AS {b.select_sql(src)}{where}")
            n_bad = 0
            if bad:
                con.execute(f"INSERT INTO {BAD_VALUES} SELECT {sql_str(name)}, {src_key_sql(b)}, {key_json_sql(b)}, "
                            f"{bad_detail_sql(b)}, to_json(r)::VARCHAR FROM {src} r WHERE coalesce({bad}, false)")
                n_bad = con.execute(f"SELECT count(*) FROM {BAD_VALUES} WHERE source_table = ?", [name]).fetchall()[0][0]
            staged = con.execute(f"SELECT count(*) FROM {target}").fetchall()[0][0]
            out.read[name], out.staged[name], out.bad[name] = int(staged) + int(n_bad), int(staged), int(n_bad)
        for t in extra:  # under its package file name (a plain identifier even when the table's is not)
            st = stems[(db, t)]
            con.execute(f'CREATE OR REPLACE TABLE "{schema}"."{st}" AS SELECT * FROM read_parquet({sql_str(paths[t])})')
            n = con.execute(f'SELECT count(*) FROM "{schema}"."{st}"').fetchall()[0][0]
            out.read[f"{db}.{t}"] = out.staged[f"{db}.{t}"] = int(n)
    return out


def bad_values(con: duckdb.DuckDBPyConnection) -> list[dict[str, object]]:
    """The rows step 4 set aside because a value does not cast (small: one row per bad source row)."""
    # (asked first, not caught after: a missing table would let DuckDB's replacement scan find a Python object)
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'quarantine' "
                       "AND table_name = 'bad_values'").fetchall()[0][0]:
        return []
    rows = con.execute(f"SELECT source_table, source_key, key_json, detail, source_values FROM {BAD_VALUES} "
                       "ORDER BY source_table, source_key").fetchall()
    return [dict(zip(("source_table", "source_key", "key_json", "detail", "source_values"), r)) for r in rows]


def restored_columns(con: duckdb.DuckDBPyConnection, db: str) -> dict[str, dict[str, str]]:
    """{table: {column: duckdb type}} of one restored source schema."""
    rows = con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = ? ORDER BY table_name, ordinal_position", [src_schema(db)]).fetchall()
    out: dict[str, dict[str, str]] = {}
    for t, c, ty in rows:
        out.setdefault(t, {})[c] = ty
    return out


def read_table(con: duckdb.DuckDBPyConnection, db: str, table: str, batch_rows: int = 100_000,
               order_by: list[str] | None = None, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Stream one restored table out as Arrow record batches, optionally ordered, optionally only ``columns``."""
    check_ident(table, "table name")
    order = ""
    if order_by:
        order = " ORDER BY " + ", ".join(f'"{check_ident(c, "column")}"' for c in order_by)
    cols = ", ".join(f'"{check_ident(c, "column")}"' for c in columns) if columns else "*"
    reader = con.sql(f'SELECT {cols} FROM "{src_schema(db)}"."{table}"{order}').to_arrow_reader(batch_rows)
    yield from reader


def query_arrow(con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None) -> pa.Table:
    """A small query result (keys, counts) as an Arrow table."""
    return con.sql(sql, params=params or []).to_arrow_table()


_DECL_KEY = ("SOTK", "MA_LH", "MA_HQ", "NAMDK")


def _on(a: str, b: str) -> str:
    return (f'{a}."SoTK" = {b}."SoTK" AND trim({a}."Ma_LH") = trim({b}."Ma_LH" ) '
            f'AND trim({a}."Ma_HQ") = trim({b}."Ma_HQ") AND {a}."NamDK" = {b}."NamDK"')


# the ecsToKhaiMD fields of each declaration key (always from SLXNK: they extend SXXK declarations too)
ECS_BY_DECLARATION = """(SELECT "SoTK", trim("Ma_LH") AS "Ma_LH", trim("Ma_HQ") AS "Ma_HQ", "NamDK",
                          any_value("SoTN") AS s, any_value("NamTN") AS n, any_value("NgayTN") AS ng,
                          any_value("MessageId") AS m, any_value("HinhThucKhai") AS h
                   FROM src_slxnk."ecsToKhaiMD" GROUP BY ALL)"""


def ecs_join(alias: str = "e", on: str = "d") -> str:
    """``LEFT JOIN`` of :data:`ECS_BY_DECLARATION` as ``alias`` onto the declaration rows ``on``."""
    return f"LEFT JOIN {ECS_BY_DECLARATION} AS {alias} ON {_on(on, alias)}"


# declarations in key order, restore order among equal keys (a total order: IDs and duplicates reproducible)
DECLARATION_ORDER = ('"SoTK"', '"Ma_LH"', '"Ma_HQ"', '"NamDK"')


def declarations_with_ecs(con: duckdb.DuckDBPyConnection, db: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Declaration headers with their ecsToKhaiMD fields (always from SLXNK) as ``_ECS_*`` columns."""
    table = "DTOKHAIMD" if db == "SXXK" else "DToKhaiMD"
    sql = f"""
        SELECT d.*, e.s AS "_ECS_SOTN", e.n AS "_ECS_NAMTN", e.ng AS "_ECS_NGAYTN", e.m AS "_ECS_MESSAGEID",
               e.h AS "_ECS_HINHTHUCKHAI"
        FROM "{src_schema(db)}"."{table}" d {ecs_join()}
        ORDER BY {', '.join('d.' + c for c in DECLARATION_ORDER)}, d.rowid"""
    yield from con.sql(sql).to_arrow_reader(batch_rows)


_GOODS_COLS = ('"SOTK", "MA_LH", "MA_HQ", "NAMDK", "MA_PHU", "MA_NPL_SP", "STTHANG", "MA_HANGKB", "TEN_HANG", '
               '"NUOC_XX", "MA_DVT", "LUONG", "DGIA_KB", "DGIA_TT", "TRIGIA_KB", "TRIGIA_TT", "TS_XNK", "THUE_XNK"')


def sxxk_goods_sql() -> str:
    """Every SXXK goods line (TH, DC, DK) tagged with ``_SRC`` and its table (``_SOURCE``), ``_ROW`` its row in that
    table, DC lines with their latest DHANGMDDC_CT tax detail (``_CT_*``)."""
    s = "src_sxxk"
    return f"""
        WITH ct AS (
            SELECT *, row_number() OVER (PARTITION BY "SOTK", trim("MA_LH"), trim("MA_HQ"), "NAMDK", trim("MA_PHU"),
                                         "LAN_DC" ORDER BY "LAN_DC_CT" DESC) AS rn
            FROM {s}."DHANGMDDC_CT")
        SELECT 'TH' AS "_SRC", 'SXXK.DHANGMDTH' AS "_SOURCE", rowid AS "_ROW", NULL::INTEGER AS "LAN_DC",
               NULL::INTEGER AS "_CT_LAN_DC_CT", NULL::DOUBLE AS "_CT_THUE_XNK", NULL::DOUBLE AS "_CT_THUE_VAT",
               {_GOODS_COLS} FROM {s}."DHANGMDTH"
        UNION ALL
        SELECT 'DK', 'SXXK.DHANGMDDK', rowid, NULL, NULL, NULL, NULL, {_GOODS_COLS} FROM {s}."DHANGMDDK"
        UNION ALL
        SELECT 'DC', 'SXXK.DHANGMDDC', dc.rowid, dc."LAN_DC", ct."LAN_DC_CT", ct."THUE_XNK", ct."THUE_VAT",
               {', '.join('dc.' + c.strip() for c in _GOODS_COLS.split(','))}
        FROM {s}."DHANGMDDC" dc LEFT JOIN ct ON ct.rn = 1 AND ct."SOTK" = dc."SOTK" AND trim(ct."MA_LH") = trim(dc."MA_LH")
             AND trim(ct."MA_HQ") = trim(dc."MA_HQ") AND ct."NAMDK" = dc."NAMDK" AND trim(ct."MA_PHU") = trim(dc."MA_PHU")
             AND ct."LAN_DC" = dc."LAN_DC" """


# by declaration, kind (DC, DK, TH), MA_PHU, then the row of its table: a total order
GOODS_ORDER = ('"SOTK"', 'trim("MA_LH")', 'trim("MA_HQ")', '"NAMDK"', '"_SRC"', '"MA_PHU"', '"_ROW"')


def sxxk_goods_candidates(con: duckdb.DuckDBPyConnection, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Every SXXK goods line (TH, DC, DK) tagged with ``_SRC``, ordered by declaration, with the latest
    DHANGMDDC_CT tax detail of each DC line attached (``_CT_*``)."""
    yield from con.sql(f"SELECT * FROM ({sxxk_goods_sql()}) ORDER BY {', '.join(GOODS_ORDER)}"
                       ).to_arrow_reader(batch_rows)


def read_ordered(con: duckdb.DuckDBPyConnection, db: str, table: str, order_by: list[str],
                 batch_rows: int) -> Iterator[pa.RecordBatch]:
    """A restored table ordered by (trimmed) key columns, so groups arrive whole."""
    check_ident(table, "table name")
    yield from con.sql(f'SELECT * FROM "{src_schema(db)}"."{table}" ORDER BY {group_order(order_by)}'
                       ).to_arrow_reader(batch_rows)


def group_order(order_by: list[str], alias: str = "") -> str:
    """The order of :func:`read_ordered`: the trimmed key columns as text, then the restore order (a total order,
    so that which of two equal keys comes first — converted or duplicate — never depends on the sort)."""
    a = f"{alias}." if alias else ""
    cols = [f'trim(CAST({a}"{check_ident(c, "column")}" AS VARCHAR))' for c in order_by]
    return ", ".join([*cols, f"{a}rowid"])


def write_quarantine(con: duckdb.DuckDBPyConnection, rows: pa.Table) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS quarantine")
    con.register("q_in", rows)
    con.execute("CREATE OR REPLACE TABLE quarantine.rows AS SELECT * FROM q_in")
    con.unregister("q_in")


ROW_MARK = "@row"  # in a correction key: the staging row number, for rows whose key is not unique (duplicates)


def apply_corrections(con: duckdb.DuckDBPyConnection, rows: list[dict[str, str]]) -> list[dict[str, object]]:
    """Apply corrections to the restored source tables; returns the audit rows (old and new values).

    Every correction must hit exactly one row; otherwise nothing is changed and the error names the line. Rows that
    share a key (duplicates) are told apart by ``@row=N`` in the key (their row number in staging, shown by the desk).
    """
    audit = []
    con.execute("BEGIN TRANSACTION")
    try:
        for i, r in enumerate(rows, start=2):
            db, table = r["table"].split(".", 1)
            col = check_ident(r["column"], "column")
            conds, params = [], []
            parts = [p for p in r["key"].split("|") if p]
            if not parts or any("=" not in p for p in parts):
                raise ExtractError(f"correction line {i}: key {r['key']!r} is not COL=value|COL=value",
                                   table=r["table"], hint="copy the key as the report or the desk shows it")
            for k, v in (p.split("=", 1) for p in parts):
                if k == ROW_MARK and not (v.isascii() and v.isdigit()):
                    raise ExtractError(f"correction line {i}: {ROW_MARK}={v!r} is not a row number",
                                       table=r["table"])
                if k == ROW_MARK:  # one of several rows with the same key (a duplicate): its place in staging
                    conds.append("rowid = ?")
                    params.append(int(v))
                    continue
                conds.append(f'trim(CAST("{check_ident(k, "column")}" AS VARCHAR)) IS NOT DISTINCT FROM ?')
                params.append(None if v == "None" else v)
            where = " AND ".join(conds)
            target = f'"{src_schema(db)}"."{check_ident(table, "table name")}"'
            old = con.execute(f'SELECT "{col}" FROM {target} WHERE {where}', params).fetchall()
            if len(old) != 1:
                raise ExtractError(f"correction line {i} matches {len(old)} rows of {r['table']} (key {r['key']})",
                                   table=r["table"], hint="each line must name exactly one source row")
            new = None if r["new_value"] == "" else r["new_value"]
            con.execute(f'UPDATE {target} SET "{col}" = ? WHERE {where}', [new, *params])
            audit.append({"table_name": r["table"], "key": r["key"], "column_name": col,
                          "old_value": None if old[0][0] is None else str(old[0][0]), "new_value": new})
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return audit


def scratch(memory_limit: str = MEMORY_LIMIT, temp_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for one computation: the same budget, spilling to ``temp_dir`` (default: the system's
    temporary directory, never the current one), no downloads."""
    import tempfile
    tmp = temp_dir or Path(tempfile.gettempdir()) / "ecm-duckdb-spill"
    return duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": str(tmp), **NO_DOWNLOADS})


def iter_parquet_sorted(path: Path, key: list[str], batch_rows: int = 50_000) -> Iterator[dict[str, object]]:
    """Rows of a Parquet file in key order (DuckDB sorts out of core), dropping the snapshot's lineage column."""
    con = scratch()
    try:
        order = ", ".join(f'"{check_ident(k, "column")}"' for k in key)
        sql = f'SELECT * EXCLUDE ("_SRC_KEY") FROM read_parquet({sql_path(path)}) ORDER BY {order}'
        rel = con.sql(sql)
        for batch in rel.to_arrow_reader(batch_rows):
            yield from batch.to_pylist()
    finally:
        con.close()


def sql_str(value: str) -> str:
    """A SQL string literal (quotes doubled) — for paths and codes that DuckDB table functions take inline."""
    return "'" + value.replace("'", "''") + "'"


def sql_path(path: Path) -> str:
    return sql_str(str(path.resolve()))
