"""Reconciliation queries, written independently of transform/ (SQL over staging and the snapshot).

The selection rules are restated here in SQL on purpose: if the Python conversion and this SQL
disagree, one of them is wrong, and the before/after check says where.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import duckdb
import sqlalchemy as sa

from extract.staging import sql_path, sql_str
from load.central_model import REFERENCES  # the central model owns its references


def _offices(offices: list[str]) -> str:
    return ", ".join(sql_str(o) for o in offices)


def eligible_declarations(con: duckdb.DuckDBPyConnection, offices: list[str]) -> dict[tuple[str, str], int]:
    """Declarations that §3 selects, per (source DB, Ma_LH), counted straight from staging."""
    out: dict[tuple[str, str], int] = {}
    for db, _office, lh, n in _eligible_by_office(con, offices):
        out[(db, lh)] = out.get((db, lh), 0) + n
    return out


def _eligible_by_office(con: duckdb.DuckDBPyConnection, offices: list[str]) -> list[tuple[str, str, str, int]]:
    """(source DB, legacy Ma_HQ, Ma_LH, count) of the declarations §3 selects."""
    o = _offices(offices)
    sql = f"""
      SELECT 'SXXK' AS db, trim("MA_HQ"), trim("MA_LH") AS lh, count(*) FROM src_sxxk."DTOKHAIMD"
      WHERE trim("MA_HQ") IN ({o}) AND coalesce(trim("THANH_LY"), '') <> 'H' GROUP BY ALL
      UNION ALL
      SELECT 'SLXNK', trim(d."Ma_HQ"), trim(d."Ma_LH"), count(*) FROM src_slxnk."DToKhaiMD" d
      WHERE trim(d."Ma_HQ") IN ({o}) AND (
         substr(trim(d."Ma_LH"), 2, 2) = 'CX' OR (substr(trim(d."Ma_LH"), 2, 2) = 'GC' AND EXISTS (
           SELECT 1 FROM src_slxnk."DHDGC" h WHERE h."So_HD" = d."So_HD" AND trim(h."Ma_HQHD") = trim(d."Ma_HQ")
           AND h."DVGC" = d."Ma_DV" AND h."Ngay_Ky" = d."Ngay_HD" AND coalesce(h."ThanhKhoan", 0) <> 1)))
      GROUP BY ALL"""
    return [tuple(r) for r in con.execute(sql).fetchall()]  # type: ignore[misc]


def snapshot_declarations(con: duckdb.DuckDBPyConnection, snapshot: Path) -> dict[tuple[str, str], int]:
    p = str((snapshot / "DTO_KHAI_MD.parquet").resolve())
    rows = con.execute('SELECT "NGUON", "MA_LH", count(*) FROM read_parquet(?) GROUP BY ALL', [p]).fetchall()
    return {(db, lh): n for db, lh, n in rows}


def quarantined_declarations(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], int]:
    """Declarations step 5 quarantined, per (source DB, Ma_LH). Rows set aside at step 4 for a value that does not
    cast (Q-BAD-VALUE) never reached staging, so they are neither "before" here nor "after": step 4's finding and
    step 5's accounting hold them."""
    out: dict[tuple[str, str], int] = {}
    for db, _office, lh, n in _quarantined_by_office(con):
        out[(db, lh)] = out.get((db, lh), 0) + n
    return out


def _quarantined_by_office(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str, int]]:
    rows = con.execute("""
      SELECT split_part(source_table, '.', 1), trim(coalesce(json_extract_string(source_values, '$.MA_HQ'),
             json_extract_string(source_values, '$.Ma_HQ'))),
             trim(coalesce(json_extract_string(source_values, '$.MA_LH'), json_extract_string(source_values, '$.Ma_LH'))),
             count(*)
      FROM quarantine.rows WHERE source_table IN ('SXXK.DTOKHAIMD', 'SLXNK.DToKhaiMD')
        AND reason <> 'Q-BAD-VALUE' GROUP BY ALL""").fetchall()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def declarations_by_office(con: duckdb.DuckDBPyConnection, snapshot: Path, offices: list[str],
                           new_code: Callable[[str], str], earlier: dict[tuple[str, str], int] | None = None
                           ) -> list[tuple[str, str, int, int, int]]:
    """Before/after per office × type, for people to look at (the check itself is per source DB × type):
    (office as central names it, Ma_LH, before, after, quarantined). ``new_code`` maps a legacy office code to the
    central one (the 2014 reshaping and the rename map); ``earlier``: what earlier runs loaded, per (office, Ma_LH).
    """
    acc: dict[tuple[str, str], list[int]] = {}
    for _db, office, lh, n in _eligible_by_office(con, offices):
        acc.setdefault((new_code(office), lh), [0, 0, 0])[0] += n
    p = str((snapshot / "DTO_KHAI_MD.parquet").resolve())
    for office, lh, n in con.execute('SELECT "MA_HQ", "MA_LH", count(*) FROM read_parquet(?) GROUP BY ALL',
                                     [p]).fetchall():
        acc.setdefault((office, lh), [0, 0, 0])[1] += n
    for k, n in (earlier or {}).items():
        acc.setdefault(k, [0, 0, 0])[1] += n
    for _db, office, lh, n in _quarantined_by_office(con):
        acc.setdefault((new_code(office or ""), lh), [0, 0, 0])[2] += n
    return [(o, lh, b, a, q) for (o, lh), (b, a, q) in sorted(acc.items(), key=lambda kv: (str(kv[0][0]),
                                                                                          str(kv[0][1])))]


def stock_balance(con: duckdb.DuckDBPyConnection, snapshot: Path, offices: list[str]
                  ) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    """Σ TON per enterprise × material: eligible DNPLNHAP rows vs DSX_NPL_NHAP_TL in the snapshot."""
    o = _offices(offices)
    p = str((snapshot / "DSX_NPL_NHAP_TL.parquet").resolve())
    src = con.execute(f"""
      SELECT trim(n."MA_DV"), trim(n."MA_NPL"), sum(n."TON")::DECIMAL(24,6) FROM src_sxxk."DNPLNHAP" n
      JOIN src_sxxk."DTOKHAIMD" d ON d."SOTK" = n."SOTK" AND trim(d."MA_LH") = trim(n."MA_LH")
        AND trim(d."MA_HQ") = trim(n."MA_HQ") AND d."NAMDK" = n."NAMDK"
      WHERE trim(n."MA_HQ") IN ({o}) AND coalesce(trim(d."THANH_LY"), '') <> 'H' AND n."TON" > 0
        AND n."TON" <= n."LUONG" AND n."MA_NPL" IS NOT NULL
      GROUP BY ALL""").fetchall()
    dst = con.execute('SELECT "MA_DV", "MA_NPL", sum("TON")::DECIMAL(24,6) FROM read_parquet(?) GROUP BY ALL',
                      [p]).fetchall()
    out: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
    for dv, npl, v in src:
        out[(dv, npl)] = (v, Decimal(0))
    for dv, npl, v in dst:
        out[(dv, npl)] = (out.get((dv, npl), (Decimal(0), Decimal(0)))[0], v)
    return out


def central_declarations(engine: "sa.Engine", base_id: int) -> dict[tuple[str, str], int]:
    """Declarations of the branch already in central (for incremental runs), per (source DB, Ma_LH)."""
    q = sa.text('SELECT "NGUON", "MA_LH", count(*) FROM "DTO_KHAI_MD" WHERE "TK_ID" > :lo AND "TK_ID" <= :hi '
                'GROUP BY "NGUON", "MA_LH"')
    return {(a, b): n for a, b, n in _central_rows(engine, q, base_id)}


def central_declarations_by_office(engine: "sa.Engine", base_id: int) -> dict[tuple[str, str], int]:
    """Declarations of the branch already in central, per (office, Ma_LH)."""
    q = sa.text('SELECT "MA_HQ", "MA_LH", count(*) FROM "DTO_KHAI_MD" WHERE "TK_ID" > :lo AND "TK_ID" <= :hi '
                'GROUP BY "MA_HQ", "MA_LH"')
    return {(a, b): n for a, b, n in _central_rows(engine, q, base_id)}


def central_stock(engine: "sa.Engine", base_id: int) -> dict[tuple[str, str], Decimal]:
    q = sa.text('SELECT "MA_DV", "MA_NPL", sum("TON") FROM "DSX_NPL_NHAP_TL" WHERE "HS_TL_ID" > :lo '
                'AND "HS_TL_ID" <= :hi GROUP BY "MA_DV", "MA_NPL"')
    return {(a, b): Decimal(str(v)).quantize(Decimal("0.000001")) for a, b, v in _central_rows(engine, q, base_id)}


def _central_rows(engine: "sa.Engine", q: "sa.TextClause", base_id: int) -> list[tuple]:  # type: ignore[type-arg]
    try:
        with engine.connect() as c:
            return [tuple(r) for r in c.execute(q, {"lo": base_id, "hi": base_id + 10**9})]
    except sa.exc.OperationalError:
        return []  # no central yet: nothing loaded before


def snapshot_integrity(con: duckdb.DuckDBPyConnection, snapshot: Path, keys: dict[str, tuple[str, ...]],
                       tables: set[str]) -> list[dict[str, object]]:
    """Primary keys unique and references resolvable inside the converted snapshot (pushed down to DuckDB)."""
    def f(t: str) -> str:
        return f"read_parquet({sql_path(snapshot / f'{t}.parquet')})"
    out: list[dict[str, object]] = []
    for t in sorted(tables):
        cols = ", ".join(f'"{c}"' for c in keys[t])
        dup = con.execute(f"SELECT count(*) FROM (SELECT {cols} FROM {f(t)} GROUP BY ALL HAVING count(*) > 1)"
                          ).fetchall()[0][0]
        out.append({"check_id": "snapshot_unique_key", "table_name": t, "key": cols, "field": "primary key",
                    "expected": "0 duplicated keys", "actual": f"{dup} duplicated keys",
                    "status": "pass" if dup == 0 else "fail"})
    for child, col, parent, pcol in REFERENCES:
        if child in tables and parent in tables:
            bad = con.execute(f'SELECT count(*) FROM {f(child)} c WHERE c."{col}" IS NOT NULL AND c."{col}" <> 0 '
                              f'AND NOT EXISTS (SELECT 1 FROM {f(parent)} p WHERE p."{pcol}" = c."{col}")'
                              ).fetchall()[0][0]
            out.append({"check_id": "snapshot_reference", "table_name": child, "key": f"{col} → {parent}.{pcol}",
                        "field": col, "expected": "0 unresolved", "actual": f"{bad} unresolved",
                        "status": "pass" if bad == 0 else "fail"})
    return out
