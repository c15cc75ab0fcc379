"""The converted declarations as a table in staging (``lk_decls``), not a Python dict that grows with the branch.

One row per declaration key converted — by this run's declaration plans, or by earlier runs (from the ID registry,
``prior``): k0..k3 (SoTK, Ma_LH, Ma_HQ, NamDK as text, as every lookup joins keys), the TK_ID, the contract's
HD_ID, the enterprise, XUAT_NPL_SP and the source database (NULL: a registry written before it was recorded).
The children's plans join it by full key (``slxnk_lines.parent_joins``); the declaration plan of the other database
takes its keys as duplicates (:func:`taken_sql`); the few tables still converted by the Python rules get the
entries their rows name (:func:`entries_for`), never the whole table.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from transform.plan.engine import temp_tables
from transform.plan.slxnk_lines import DECLS

SCHEMA = pa.schema([("k0", pa.string()), ("k1", pa.string()), ("k2", pa.string()), ("k3", pa.string()),
                    ("tk_id", pa.int64()), ("hd_id", pa.int64()), ("ma_dv", pa.string()), ("xnsp", pa.string()),
                    ("db", pa.string()), ("prior", pa.bool_())])
# the rows of the Python rules' tables that name a (SLXNK) declaration, and how they name it: decl_key(row)
PARENT_KEYS = {
    "ecsNPLTCU": ("s.SoTK", "py_strip(s.Ma_LH)", "py_strip(s.Ma_HQ)", "s.NamDK"),
    "ecsNPLTCU_CT": ("s.SoTK", "py_strip(s.Ma_LH)", "py_strip(s.Ma_HQ)", "s.NamDK"),
    # (NamDK and year(NGAY_DK) were used interchangeably in 2014: hazard 10)
    "ecsCX_HUY_NPLSP_D": ("s.SO_TK", "py_strip(s.MA_LH)", "py_strip(s.MA_HQ)", "year(s.NGAY_DK)"),
}


def create(con: Any, entries: dict[tuple[Any, ...], tuple[Any, ...]], prior: set[tuple[Any, ...]]) -> None:
    """``lk_decls`` with the ``entries`` known before this run's declarations (the ID registry's)."""
    rows = [[*(None if v is None else str(v) for v in k), e[0], e[1], e[2], e[3], e[4] if len(e) > 4 else None,
             k in prior] for k, e in entries.items()]
    con.register("plan_decls_in", pa.table({f.name: pa.array([r[i] for r in rows], f.type)
                                            for i, f in enumerate(SCHEMA)}, schema=SCHEMA))
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {DECLS} AS SELECT * FROM plan_decls_in")
    finally:
        con.unregister("plan_decls_in")


def exists(con: Any) -> bool:
    return DECLS in temp_tables(con)


def add_converted(con: Any, db: str, hd: str, ma_dv: str, xnsp: str) -> None:
    """The declarations the last declaration plan converted (its ``plan_rows``), values before any T-TRUNCATE cut."""
    con.execute(f"INSERT INTO {DECLS} SELECT CAST(k0 AS VARCHAR), CAST(k1 AS VARCHAR), CAST(k2 AS VARCHAR), "
                f"CAST(k3 AS VARCHAR), _id, {hd}, {ma_dv}, {xnsp}, '{db}', false FROM plan_rows "
                "WHERE _kind = 'converted' ORDER BY _rid")


def taken_sql(db: str) -> str:
    """The keys converted from the other database: k0..k3 and the duplicate's detail, as the rules word it."""
    return (f"SELECT k0, k1, k2, k3, 'SoTK=' || k0 || ' Ma_LH=' || k1 || ' NamDK=' || k3 || ' already converted from ' "
            f"|| db AS _detail FROM {DECLS} WHERE db IS NOT NULL AND db <> '{db}'")


def entries_for(con: Any, table: str, schema: str = "src_slxnk") -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """{key as the rules build it from a row: entry} for the SLXNK declarations the rows of ``table`` name."""
    k = PARENT_KEYS[table]
    out = {}
    for row in con.execute(
            f"SELECT DISTINCT {', '.join(k)}, d.tk_id, d.hd_id, d.ma_dv, d.xnsp, d.db FROM {schema}.\"{table}\" AS s "
            f"JOIN {DECLS} AS d ON d.k0 = CAST({k[0]} AS VARCHAR) AND d.k1 = {k[1]} AND d.k2 = {k[2]} "
            f"AND d.k3 = CAST({k[3]} AS VARCHAR)").fetchall():
        out[tuple(row[:4])] = tuple(row[4:9])
    return out


def as_dict(con: Any) -> dict[tuple[str | None, ...], tuple[Any, ...]]:
    """The whole table as {key as text: (tk_id, hd_id, ma_dv, xnsp, db)} — for tests comparing with the rules."""
    return {tuple(r[:4]): tuple(r[4:9]) for r in con.execute(f"SELECT * FROM {DECLS}").fetchall()}
