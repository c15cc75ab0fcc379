"""Execute one :class:`~transform.plan.model.TablePlan` in DuckDB over a staging table.

Everything per row happens in SQL; Python runs once per *distinct* value of a mapped column (functions.py) and
once per quarantined row (to keep its source values as JSON, as the quarantine list holds them). No window sorts
whole rows: windows run over the few columns they read and are joined back by row number (at scale, rows that
do not fit the memory budget would spill at every sort).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from extract.staging import src_schema
from transform import convert as cv
from transform.plan.functions import mapping_table, register_udfs
from transform.plan.model import TablePlan

ID_WINDOW = cv.ID_TYPE_WINDOW


@dataclass
class PlanResult:
    source: str
    fates: dict[tuple[str, str], int] = field(default_factory=dict)     # (kind, code or "") -> rows
    quarantine: list[dict[str, Any]] = field(default_factory=list)      # the sink's quarantine rows, in order
    text_fixes: list[tuple[str, str, str, str]] = field(default_factory=list)
    truncations: list[dict[str, str]] = field(default_factory=list)
    unmapped_units: set[str] = field(default_factory=set)
    converted: int = 0
    ids_issued: int = 0
    restored: int = 0


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def run_plan(con: duckdb.DuckDBPyConnection, plan: TablePlan, ctx: cv.ConvertContext, *, id_base: int,
             id_start: int, prior_keys: list[tuple[Any, ...]], limits: dict[str, int], truncate: list[str],
             src_key_columns: dict[str, tuple[str, ...]], taken_keys: list[tuple[tuple[Any, ...], str]] = (),
             taken_sql: str | None = None, lookups: dict[str, pa.Table] | None = None) -> PlanResult:
    """``taken_keys``: (key, detail) converted from elsewhere (another source database): ``Q-DUPLICATE-KEY``;
    ``taken_sql``: the same as a query over staging (k0…, _detail); ``lookups``: the tables named by
    ``plan.lookups`` that staging does not hold, registered for the plan's joins."""
    missing = set(plan.lookups) - set(lookups or {}) - temp_tables(con)  # (or tables made in staging before)
    if missing:
        raise ValueError(f"plan {plan.source} needs the lookup tables {sorted(missing)}")
    for name, table in (lookups or {}).items():
        con.register(name, table)
    try:
        return _run_plan(con, plan, ctx, id_base=id_base, id_start=id_start, prior_keys=prior_keys, limits=limits,
                         truncate=truncate, src_key_columns=src_key_columns, taken_keys=list(taken_keys),
                         taken_sql=taken_sql)
    finally:
        for name in [f"map_{m.name}" for m in plan.mappings] + list(lookups or {}):
            try:
                con.unregister(name)
            except duckdb.Error:
                pass


def temp_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The names of the connection's temporary tables (lookups and working tables made in staging)."""
    return {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()}


def _run_plan(con: duckdb.DuckDBPyConnection, plan: TablePlan, ctx: cv.ConvertContext, *, id_base: int,
              id_start: int, prior_keys: list[tuple[Any, ...]], limits: dict[str, int], truncate: list[str],
              src_key_columns: dict[str, tuple[str, ...]], taken_keys: list[tuple[tuple[Any, ...], str]],
              taken_sql: str | None = None) -> PlanResult:
    """Give every row of ``plan.source`` its fate and compute the target rows: the temp view ``plan_rows`` over
    ``plan_rows0`` (every row's values) and ``plan_fate`` (fates, IDs, columns after the fates), read by
    :func:`converted_batches`, :func:`converted_keys`, :func:`quarantined_keys`; dropped by :func:`release`.

    ``id_start``: IDs already issued in this (table, type digit) sequence (an incremental run continues it);
    ``prior_keys``: keys converted by earlier runs of the branch (excluded as R-ALREADY-CONVERTED);
    ``limits``: the target's text column sizes; ``truncate``: target columns the config allows to cut;
    ``src_key_columns``: per source table, the key columns that name a row in the quarantine and reports.
    """
    register_udfs(con)
    res = PlanResult(plan.source)
    _drop_working(con)
    if plan.source_sql:  # rows of several tables: materialized in the plan's order (_ord), then the derived columns
        if not plan.order:
            raise ValueError(f"plan {plan.source}: rows of several tables need a declared (total) order")
        con.execute(f"CREATE TEMP TABLE plan_src0 AS SELECT * FROM ({plan.source_sql}) AS s "
                    f"ORDER BY {', '.join(plan.order)}")
        if plan.derive:  # (windows over the few columns they read, joined back: no sort of whole rows)
            derived = ", ".join(f"({v}) AS {_q(k)}" for k, v in plan.derive.items())
            con.execute(f"CREATE TEMP TABLE plan_derived AS SELECT s.rowid AS _ord, {derived} FROM plan_src0 AS s")
            con.execute("CREATE TEMP TABLE plan_src AS SELECT s.*, d.* FROM plan_src0 AS s "
                        "JOIN plan_derived AS d ON d._ord = s.rowid")
            con.execute("DROP TABLE plan_derived")
        else:
            con.execute("CREATE TEMP TABLE plan_src AS SELECT s.*, s.rowid AS _ord FROM plan_src0 AS s")
        con.execute("DROP TABLE plan_src0")
        src, row_source = "plan_src", "s._SOURCE"
        rid, order_join = "s._ord + 1", ""
    else:
        src, row_source = f"{_q(src_schema(plan.source_db))}.{_q(plan.source_table)}", f"'{plan.source}'"
        # the total order as a number per row, sorted over the order columns only and joined back
        con.execute(f"CREATE TEMP TABLE plan_order AS SELECT s.rowid AS _srow, row_number() OVER "
                    f"(ORDER BY {', '.join([*plan.order, 's.rowid'])}) AS _rid FROM {src} AS s")
        rid, order_join = "o._rid", "JOIN plan_order AS o ON o._srow = s.rowid"
    # 1. the mapping tables, one Python call per distinct value
    joins = []
    for m in plan.mappings:
        where = f" WHERE {m.where}" if m.where else ""
        values = con.sql(f"SELECT DISTINCT {m.source} AS v FROM {src} AS s{where}").to_arrow_table().column("v")
        con.register(f"map_{m.name}", mapping_table(ctx, m.fn, values.combine_chunks()))
        joins.append(f"LEFT JOIN map_{m.name} AS {m.name} ON {m.name}.v IS NOT DISTINCT FROM ({m.source})")
    # the source values of the mapped columns whose mapping feeds a side report (text fixes, unmapped units)
    side = [m for m in plan.mappings if m.name in {f"text_{c.lower()}" for c in plan.text_fix_columns} |
            {f"unit_{c.lower()}" for c in plan.unit_columns}]
    key_n = len(plan.key)
    # keys converted before this table: by an earlier run (excluded), or from elsewhere in this run (a duplicate)
    existing: dict[tuple[Any, ...], tuple[str, str | None]] = {tuple(k): ("R-ALREADY-CONVERTED", None)
                                                               for k in prior_keys}
    existing.update({tuple(k): ("Q-DUPLICATE-KEY", detail) for k, detail in taken_keys})
    keys = list(existing)  # one Arrow table, not one INSERT per key (a branch has tens of thousands)
    cols = {f"k{i}": pa.array([None if k[i] is None else str(k[i]) for k in keys], pa.string()) for i in range(key_n)}
    cols["_code"] = pa.array([existing[k][0] for k in keys], pa.string())
    cols["_detail"] = pa.array([existing[k][1] for k in keys], pa.string())
    con.register("plan_prior_in", pa.table(cols))
    try:
        con.execute("CREATE TEMP TABLE plan_prior AS SELECT * FROM plan_prior_in")
    finally:
        con.unregister("plan_prior_in")
    if taken_sql:  # (a key taken elsewhere is a duplicate, also when an earlier run converted it)
        ks = ", ".join(f"k{i}" for i in range(key_n))
        same = " AND ".join(f"plan_prior.k{i} IS NOT DISTINCT FROM t.k{i}" for i in range(key_n))
        con.execute(f"DELETE FROM plan_prior WHERE EXISTS (SELECT 1 FROM ({taken_sql}) AS t WHERE {same})")
        con.execute(f"INSERT INTO plan_prior SELECT {ks}, 'Q-DUPLICATE-KEY', _detail FROM ({taken_sql})")
    # 2. the cascade before the key check
    pre = " ".join(f"WHEN {r.when} THEN '{r.code}'" for r in plan.cascade) or "WHEN false THEN NULL"
    key_rule = " ".join(f"WHEN {r.when} THEN '{r.code}'" for r in plan.key_rules) or "WHEN false THEN NULL"
    key_rule_detail = " ".join(f"WHEN {r.when} THEN {r.detail}" for r in plan.key_rules) or "WHEN false THEN NULL"
    pre_detail = " ".join(f"WHEN {r.when} THEN {r.detail}" for r in plan.cascade) or "WHEN false THEN NULL"
    # 3. target values (before truncation), truncation of allowed columns, the first value too long
    # (a column the config allows to cut keeps its value before the cut as t_<column>; the others are stored once)
    cut = cut_columns(plan, truncate, limits)
    tgt = ", ".join(f"({expr}) AS {_q(('t_' if col in cut else '') + col)}" for col, expr in plan.columns.items())
    final = [f"left({_q('t_' + col)}, {limits[col]}) AS {_q(col)}" for col in cut]
    too_long = " ".join(
        f"WHEN length({_q(col)}) > {n} THEN '{col} has ' || length({_q(col)}) || ' characters, target allows {n}'"
        for col, n in limits.items() if col in plan.columns)
    key_sql = ", ".join(f"({k}) AS k{i}" for i, k in enumerate(plan.key))
    prior_match = " AND ".join(f"p.k{i} IS NOT DISTINCT FROM CAST(r.k{i} AS VARCHAR)" for i in range(key_n))
    part = ", ".join(f"r.k{i}" for i in range(key_n))
    def key_text(table: str) -> str:
        return f"'{table}|' || " + " || '|' || ".join(
            f"'{c}=' || coalesce(CAST(py_strip(CAST(s.{_q(c)} AS VARCHAR)) AS VARCHAR), 'None')"
            for c in src_key_columns[table])
    if plan.source_sql:
        src_key = "CASE s._SOURCE " + " ".join(f"WHEN '{t}' THEN {key_text(t)}" for t in plan.sources) + " END"
    else:
        src_key = key_text(plan.source)
    after_key = " ".join(f"WHEN _rid = _first AND {r.when} THEN '{r.code}'" for r in plan.after_key)
    after_detail = " ".join(f"WHEN _code = '{r.code}' AND _pre IS NULL AND _prior IS NULL THEN {r.detail}"
                            for r in plan.after_key)
    # the first occurrence of each key (every row is one when the plan does not deduplicate)
    first_of_key = ("_rid" if not plan.dedup else
                    f"min(_rid) FILTER (WHERE _pre IS NULL AND _key_rule IS NULL"
                    f"{' AND _too_long IS NULL' if plan.too_long_frees_key else ''})"
                    f" OVER (PARTITION BY {part})")
    first = "''" if plan.too_long_frees_key else "CASE WHEN _too_long IS NULL THEN '' ELSE 'Q-VALUE-TOO-LONG' END"
    # 4. every row's values, without windows (plan_rows0); then its fate, ID and the fate-dependent columns
    # (plan_fate: windows over the few columns they read); plan_rows is the view that joins both
    con.execute(f"""
        CREATE TEMP TABLE plan_rows0 AS
        WITH base AS (
            SELECT s.rowid AS _srow, {rid} AS _rid, {row_source} AS _source,
                   {src_key} AS _src_key,
                   CASE {pre} ELSE NULL END AS _pre, CASE {pre_detail} ELSE NULL END AS _pre_detail,
                   CASE {key_rule} ELSE NULL END AS _key_rule, CASE {key_rule_detail} ELSE NULL END AS _key_rule_detail,
                   {key_sql}{', ' + tgt if tgt else ''}{''.join(f", ({v}) AS {_q(k)}" for k, v in plan.carry.items())}{''.join(f", ({m.source}) AS {_q('_m_' + m.name)}" for m in side)}
            FROM {src} AS s {order_join} {' '.join(joins)} {' '.join(plan.joins)}
        ), fitted AS (
            SELECT base.*{''.join(', ' + f for f in final)} FROM base
        )
        SELECT fitted.*, CASE {too_long or 'WHEN false THEN NULL'} ELSE NULL END AS _too_long FROM fitted
    """)
    late = "".join(f", ({v}) AS {_q(k)}" for k, v in plan.late_columns.items())
    con.execute(f"""
        CREATE TEMP TABLE plan_fate AS
        WITH r AS (
            SELECT r.*, p._code AS _prior, p._detail AS _prior_detail,
                   {first_of_key} AS _first
            FROM plan_rows0 AS r LEFT JOIN plan_prior p ON {prior_match}
        ), coded AS (
        SELECT *,
               CASE WHEN _pre IS NOT NULL THEN _pre
                    WHEN _prior IS NOT NULL THEN _prior
                    {after_key}
                    WHEN _rid = _first THEN {first}
                    WHEN _first IS NULL OR _rid < _first THEN coalesce(_key_rule, 'Q-VALUE-TOO-LONG')
                    ELSE 'Q-DUPLICATE-KEY' END AS _code
        FROM r
        ), fated AS (
        SELECT *, CASE WHEN _code = '' THEN 'converted' WHEN _code LIKE 'Q-%' THEN 'quarantined' ELSE 'excluded' END
                      AS _kind,
               -- the rules issue an ID to every row they convert, also to one the length check then sets aside
               CASE WHEN {'false' if plan.id_column is None else 'true'} AND _code IN ('', 'Q-VALUE-TOO-LONG') THEN {id_base} + {plan.id_type_digit} * {ID_WINDOW}
                         + {id_start} + row_number() OVER (PARTITION BY _code IN ('', 'Q-VALUE-TOO-LONG') ORDER BY _rid)
                    END AS _id,
               CASE WHEN _pre IS NOT NULL THEN _pre_detail WHEN _prior IS NOT NULL THEN _prior_detail
                    {after_detail}
                    WHEN _key_rule IS NOT NULL AND _code = _key_rule THEN _key_rule_detail
                    WHEN _code = 'Q-VALUE-TOO-LONG' THEN _too_long WHEN _code = 'Q-DUPLICATE-KEY' THEN {plan.key_detail}
                    END AS _detail
        FROM coded)
        SELECT _rid, _code, _kind, _id, _detail{late} FROM fated
    """)
    con.execute("CREATE TEMP VIEW plan_rows AS SELECT r.*, f.* EXCLUDE (_rid) FROM plan_rows0 AS r "
                "JOIN plan_fate AS f ON f._rid = r._rid")
    if plan.child_target:  # the second table's rows, while the lookups it joins are registered
        cols = ", ".join(f"({v}) AS {_q(k)}" for k, v in plan.child_columns.items())
        con.execute(f"CREATE OR REPLACE TEMP TABLE plan_child AS SELECT {cols}, r._src_key AS _src_key "
                    f"FROM plan_rows AS r {plan.child_from} WHERE r._kind = 'converted' "
                    f"ORDER BY {', '.join([*plan.child_order])}")
    n_conv, n_ids = con.execute("SELECT count(*) FILTER (WHERE _kind = 'converted'), count(_id) FROM plan_rows"
                                ).fetchall()[0]
    if id_start + n_ids >= ID_WINDOW:
        raise cv.IdWindowOverflow(f"ID window of type {plan.id_type_digit} for {plan.target} is exhausted at 1e8 "
                                  "rows", table=plan.target, hint="split the branch or widen the ID layout")
    for source, kind, code, n in con.execute("SELECT _source, _kind, _code, count(*) FROM plan_rows GROUP BY ALL "
                                             "ORDER BY ALL").fetchall():
        res.fates[(source, kind, code)] = n
    res.converted, res.ids_issued, res.restored = n_conv, n_ids, sum(res.fates.values())
    # the rows the rules carried to the target (converted, or cut by the length check): their side records
    reached = "(_kind = 'converted' OR _code = 'Q-VALUE-TOO-LONG')"
    fixes = []  # row by row (in the order the rules build rows: ``report_order``), within a row column by column
    order_cols = [*plan.report_order, "_rid"]
    for i, (tcol, label) in enumerate(plan.text_fix_columns.items()):
        name = f"text_{tcol.lower()}"
        for *pos, source, before, after in con.execute(
                f"SELECT {', '.join(order_cols)}, r._source, m.v, m.fixed FROM plan_rows r JOIN map_{name} m "
                f"ON m.v IS NOT DISTINCT FROM r.{_q('_m_' + name)} WHERE {reached} AND m.converted").fetchall():
            fixes.append((tuple(pos), i, (source, label, before, after)))
    res.text_fixes = [f for _p, _i, f in sorted(fixes, key=lambda x: (x[0], x[1]))]
    cuts = []  # row by row, and within a row in the config's order (as the rules cut them)
    order = [c.split(".", 1)[1] for c in truncate if c.split(".", 1)[0] == plan.target]
    for i, tcol in enumerate(dict.fromkeys(order)):
        n = limits.get(tcol)
        if n and tcol in plan.columns:
            for rid, key, before, after in con.execute(
                    f"SELECT _rid, _src_key, {_q('t_' + tcol)}, {_q(tcol)} FROM plan_rows WHERE {reached} AND "
                    f"length({_q('t_' + tcol)}) > {n}").fetchall():
                cuts.append((rid, i, {"rule": "T-TRUNCATE", "source_key": key, "column": f"{plan.target}.{tcol}",
                                      "before": before, "after": after}))
    res.truncations = [c for _r, _i, c in sorted(cuts, key=lambda x: (x[0], x[1]))]
    for tcol in plan.unit_columns:
        name = f"unit_{tcol.lower()}"
        res.unmapped_units |= {u for (u,) in con.execute(
            f"SELECT DISTINCT r.{_q(('t_' if tcol in cut else '') + tcol)} FROM plan_rows r JOIN map_{name} m ON m.v IS NOT DISTINCT FROM "
            f"r.{_q('_m_' + name)} WHERE {reached} AND m.unmapped"
        ).fetchall()}
    # quarantined rows keep every source value (as the Python sink writes them)
    # (the plan's own columns — named with a leading '_' — are not source values)
    qrows = con.sql(f"SELECT r._source AS __source, r._code AS __code, r._detail AS __detail, r._src_key AS __key, "
                    f"s.* FROM plan_rows r JOIN {src} s ON s.rowid = r._srow WHERE r._kind = 'quarantined' "
                    "ORDER BY r._rid").to_arrow_table()
    for batch in qrows.to_batches():  # every batch: DuckDB splits results at 122,880 rows
        for row in cv.upper_rows(batch):
            source, code, detail, key = row["__SOURCE"], row["__CODE"], row["__DETAIL"], row["__KEY"]
            row = {k: v for k, v in row.items() if not k.startswith("_")}
            res.quarantine.append({"source_table": source, "reason": code, "detail": detail or "",
                                   "source_key": key,
                                   "source_values": json.dumps(row, ensure_ascii=False, default=str)})
    return res


def converted_batches(con: duckdb.DuckDBPyConnection, plan: TablePlan, schema: pa.Schema, src_key_name: str,
                      batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The converted rows of the last :func:`run_plan`, in restore order, in the snapshot's schema."""
    cols = [f"_id AS {_q(plan.id_column)}" if plan.id_column and f.name == plan.id_column else
            f"_src_key AS {_q(src_key_name)}" if f.name == src_key_name else _q(f.name) for f in schema]
    reader = con.sql(f"SELECT {', '.join(cols)} FROM plan_rows WHERE _kind = 'converted' ORDER BY _rid"
                     ).to_arrow_reader(batch_rows)
    for b in reader:
        yield pa.RecordBatch.from_arrays([b.column(i).cast(f.type) for i, f in enumerate(schema)], schema=schema)


def cut_columns(plan: TablePlan, truncate: list[str], limits: dict[str, int]) -> list[str]:
    """The target columns of ``plan`` the config allows to cut (``TABLE.COLUMN`` in ``truncate``) that have a size."""
    return [c for c in dict.fromkeys(t.split(".", 1)[1] for t in truncate if t.split(".", 1)[0] == plan.target)
            if limits.get(c) and c in plan.columns]


def converted_keys(con: duckdb.DuckDBPyConnection, plan: TablePlan, value_columns: list[str],
                   batch_rows: int = 10_000) -> Iterator[tuple[Any, ...]]:
    """(key…, id, value columns…) of the converted rows, in restore order (for lookups and the ID registry), read
    in batches. A value column ``t_<column>``: the value before a T-TRUNCATE cut (the column itself where none is
    allowed). (Run no other statement on ``con`` while reading.)"""
    sel = ", ".join([*(f"k{i}" for i in range(len(plan.key))), "_id", *pre_cut(con, value_columns)])
    cur = con.execute(f"SELECT {sel} FROM plan_rows WHERE _kind = 'converted' ORDER BY _rid")
    while batch := cur.fetchmany(batch_rows):
        yield from batch


def pre_cut(con: duckdb.DuckDBPyConnection, columns: list[str]) -> list[str]:
    """``t_<column>`` names as the last plan's rows hold them: the value before a T-TRUNCATE cut, or the column
    itself where the config allows no cut (quoted)."""
    have = {c for (c,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'plan_rows0'"
                                      ).fetchall()}
    return [_q(c if c in have else c.removeprefix("t_")) for c in columns]


def quarantined_keys(con: duckdb.DuckDBPyConnection, plan: TablePlan) -> list[tuple[Any, ...]]:
    """(key…, reason) of the quarantined rows of the last :func:`run_plan`, in the order they were taken."""
    sel = ", ".join([*(f"k{i}" for i in range(len(plan.key))), "_code"])
    return con.execute(f"SELECT {sel} FROM plan_rows WHERE _kind = 'quarantined' ORDER BY _rid").fetchall()


def release(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the last plan's working tables (its rows can be as many as the source's: free the memory for the next)."""
    _drop_working(con)


def _drop_working(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("DROP VIEW IF EXISTS plan_rows")
    for table in ("plan_rows0", "plan_fate", "plan_order", "plan_src", "plan_src0", "plan_derived", "plan_prior",
                  "plan_child"):
        con.execute(f"DROP TABLE IF EXISTS {table}")


def child_batches(con: duckdb.DuckDBPyConnection, schema: pa.Schema, src_key_name: str,
                  batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The second table's rows of the last :func:`run_plan` (``TablePlan.child_target``), in the snapshot's schema."""
    cols = [f"_src_key AS {_q(f.name)}" if f.name == src_key_name else _q(f.name) for f in schema]
    reader = con.sql(f"SELECT {', '.join(cols)} FROM plan_child ORDER BY rowid").to_arrow_reader(batch_rows)
    for b in reader:
        yield pa.RecordBatch.from_arrays([b.column(i).cast(f.type) for i, f in enumerate(schema)], schema=schema)
