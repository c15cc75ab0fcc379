"""Step 1 checks on the live branch DBs, pushed down into SQL (read-only connections).

Each check returns the offending keys; transform/ and validate/ turn them into findings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from extract.legacy_schema import TABLES_BY_DB, LegacyTable, legacy_table
from extract.source import check_ident


@dataclass
class CheckHit:
    check_id: str
    table: str
    keys: list[dict[str, object]]
    message: str


Quote = Callable[[str], str]


def _quoter(engine: Engine) -> Quote:
    """Identifier quoting of the source's own dialect (``"x"``, ```x```, ``[x]``), after validation."""
    prep = engine.dialect.identifier_preparer
    return lambda name: prep.quote_identifier(check_ident(name))


def _length_fn(engine: Engine) -> str:
    """Character (not byte) length: MariaDB's LENGTH counts bytes, SQL Server calls it LEN."""
    return {"mysql": "CHAR_LENGTH", "mariadb": "CHAR_LENGTH", "mssql": "LEN"}.get(engine.dialect.name, "LENGTH")


def _key_expr(q: Quote, cols: list[str], alias: str = "") -> str:
    p = f"{alias}." if alias else ""
    return ", ".join(f"TRIM({p}{q(c)}) AS {q(c)}" if c.upper().startswith("MA_") else f"{p}{q(c)}" for c in cols)


def _rows(engine: Engine, sql: str) -> list[dict[str, object]]:
    with engine.connect() as c:
        return [dict(r) for r in c.execute(sa.text(sql)).mappings()]


def _keys_where(engine: Engine, db: str, table: str, cond: str, params: dict[str, object] | None = None,
                binds: tuple[sa.BindParameter[object], ...] = ()) -> list[dict[str, object]]:
    """The keys of the rows of ``db.table`` matching the SQL condition ``cond`` (identifiers already quoted)."""
    q = _quoter(engine)
    stmt = sa.text(f"SELECT {_key_expr(q, list(legacy_table(db, table).key))} FROM {q(table)} WHERE {cond}")
    with engine.connect() as c:
        return [dict(r) for r in c.execute(stmt.bindparams(*binds), params or {}).mappings()]


def _hit(check_id: str, table: str, rows: list[dict[str, object]], message: str) -> list[CheckHit]:
    return [CheckHit(check_id, table, rows, message)] if rows else []


def present_tables(engine: Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def missing_tables(engine: Engine, db: str) -> list[CheckHit]:
    have = present_tables(engine)
    gone = [{"table": t.name} for t in TABLES_BY_DB[db] if t.name not in have]
    return [CheckHit("missing_table", db, gone, f"{len(gone)} expected e-Customs V4 tables are missing from {db}")] \
        if gone else []


def _present(engine: Engine, db: str) -> list[LegacyTable]:
    """The expected tables of ``db`` that the source actually has (missing ones are their own finding)."""
    have = present_tables(engine)
    return [t for t in TABLES_BY_DB[db] if t.name in have]


def duplicate_keys(engine: Engine, db: str) -> list[CheckHit]:
    q = _quoter(engine)
    hits = []
    for t in _present(engine, db):
        cols = list(t.key)
        grp = ", ".join(f"TRIM({q(c)})" if c.upper().startswith("MA_") else q(c) for c in cols)
        sql = f"SELECT {_key_expr(q, cols)}, COUNT(*) AS {q('n')} FROM {q(t.name)} GROUP BY {grp} HAVING COUNT(*) > 1"
        rows = _rows(engine, sql)
        if rows:
            hits.append(CheckHit("duplicate_key", f"{db}.{t.name}", rows,
                                 f"{len(rows)} keys occur more than once in {t.name}"))
    return hits


def null_keys(engine: Engine, db: str) -> list[CheckHit]:
    q = _quoter(engine)
    hits = []
    for t in _present(engine, db):
        rows = _keys_where(engine, db, t.name, " OR ".join(f"{q(c)} IS NULL" for c in t.key))
        hits += _hit("null_key", f"{db}.{t.name}", rows, f"{len(rows)} rows with NULL in a key column")
    return hits


def _lines_per_declaration(q: Quote, db: str) -> tuple[str, str, str, list[str], str]:
    decl, goods, sohang = ("DTOKHAIMD", "DHANGMDDK", "SOHANG") if db == "SXXK" else ("DToKhaiMD", "DHangMD", "SoHang")
    key = list(legacy_table(db, decl).key)
    grp = ", ".join(f"TRIM({q(c)})" if c.upper().startswith("MA_") else q(c) for c in key)
    sel = ", ".join(f"TRIM({q(c)}) AS {q(c)}" if c.upper().startswith("MA_") else q(c) for c in key)
    # goods counted once per declaration key, then joined (no correlated sub-query: linear in both tables)
    on = " AND ".join(f"g.{q(c)} = " + (f"TRIM(d.{q(c)})" if c.upper().startswith("MA_") else f"d.{q(c)}")
                      for c in key)
    sql = (f"SELECT {_key_expr(q, key, 'd')}, d.{q(sohang)} AS {q('declared')}, COALESCE(g.{q('n')}, 0) AS "
           f"{q('lines')} FROM {q(decl)} d "
           f"LEFT JOIN (SELECT {sel}, COUNT(*) AS {q('n')} FROM {q(goods)} GROUP BY {grp}) g ON {on}")
    return decl, goods, sohang, key, sql


def declarations_without_goods(engine: Engine, db: str) -> list[CheckHit]:
    q = _quoter(engine)
    decl, _goods, _sohang, key, sql = _lines_per_declaration(q, db)
    rows = [{k: r[k] for k in key} for r in _rows(engine, sql) if not r["lines"]]
    return [CheckHit("decl_without_goods", f"{db}.{decl}", rows, f"{len(rows)} declarations have no goods lines")] \
        if rows else []


def sohang_mismatch(engine: Engine, db: str) -> list[CheckHit]:
    q = _quoter(engine)
    decl, _goods, sohang, _key, sql = _lines_per_declaration(q, db)
    rows = [r for r in _rows(engine, sql) if r["lines"] and r["declared"] != r["lines"]]
    return [CheckHit("sohang_mismatch", f"{db}.{decl}", rows,
                     f"{len(rows)} declarations whose {sohang} differs from their goods lines")] if rows else []


def orphan_catalog_rows(engine: Engine, db: str) -> list[CheckHit]:
    q = _quoter(engine)
    hits = []
    if db == "SLXNK":
        on = (f"c.{q('So_HD')} = h.{q('So_HD')} AND TRIM(c.{q('Ma_HQHD')}) = TRIM(h.{q('Ma_HQHD')}) "
              f"AND c.{q('DVGC')} = h.{q('DVGC')} AND c.{q('Ngay_Ky')} = h.{q('Ngay_Ky')}")
        have = present_tables(engine)
        for child in ("DLOAISPGC", "DNPLHD", "DSPGC", "DThietBi", "ecsDHangMau", "DDMuc"):
            if child not in have or "DHDGC" not in have:
                continue
            key = list(legacy_table(db, child).key)
            sql = f"SELECT {_key_expr(q, key, 'c')} FROM {q(child)} c WHERE NOT EXISTS (SELECT 1 FROM {q('DHDGC')} h WHERE {on})"
            rows = _rows(engine, sql)
            if rows:
                hits.append(CheckHit("orphan_catalog", f"SLXNK.{child}", rows,
                                     f"{len(rows)} rows of {child} whose contract is missing from DHDGC"))
    else:
        key = list(legacy_table(db, "DDINHMUC").key)
        sql = (f"SELECT {_key_expr(q, key, 'n')} FROM {q('DDINHMUC')} n WHERE "
               f"NOT EXISTS (SELECT 1 FROM {q('SSP')} s WHERE s.{q('MA_SP')} = n.{q('MA_SP')} "
               f"AND s.{q('MA_DV')} = n.{q('MA_DV')} AND TRIM(s.{q('MA_HQ')}) = TRIM(n.{q('MA_HQ')})) "
               f"OR NOT EXISTS (SELECT 1 FROM {q('SNPL')} p WHERE p.{q('MA_NPL')} = n.{q('MA_NPL')} "
               f"AND p.{q('MA_DV')} = n.{q('MA_DV')} AND TRIM(p.{q('MA_HQ')}) = TRIM(n.{q('MA_HQ')}))")
        rows = _rows(engine, sql)
        if rows:
            hits.append(CheckHit("orphan_catalog", "SXXK.DDINHMUC", rows,
                                 f"{len(rows)} norms whose product or material is missing from SSP/SNPL"))
    return hits


def closing_stock(engine: Engine, offices: list[str]) -> list[dict[str, object]]:
    """Bảng kê chốt tồn: per enterprise × material, imported and remaining quantity (SXXK)."""
    q = _quoter(engine)
    placeholders = ", ".join(f":o{i}" for i in range(len(offices)))
    dv, npl = f"TRIM(n.{q('MA_DV')})", f"TRIM(n.{q('MA_NPL')})"
    sql = (f"SELECT {dv} AS {q('MA_DV')}, {npl} AS {q('MA_NPL')}, COUNT(*) AS {q('so_dong')}, "
           f"SUM(n.{q('LUONG')}) AS {q('luong')}, SUM(n.{q('TON')}) AS {q('ton')} FROM {q('DNPLNHAP')} n "
           f"WHERE TRIM(n.{q('MA_HQ')}) IN ({placeholders}) AND n.{q('MA_NPL')} IS NOT NULL "
           f"GROUP BY {dv}, {npl} ORDER BY 1, 2")
    with engine.connect() as c:
        return [dict(r) for r in c.execute(sa.text(sql), {f"o{i}": o for i, o in enumerate(offices)}).mappings()]


def counts_by_office_type(engine: Engine, db: str) -> list[dict[str, object]]:
    q = _quoter(engine)
    decl = "DTOKHAIMD" if db == "SXXK" else "DToKhaiMD"
    hq, lh = ("MA_HQ", "MA_LH") if db == "SXXK" else ("Ma_HQ", "Ma_LH")
    sql = (f"SELECT TRIM({q(hq)}) AS {q('office')}, TRIM({q(lh)}) AS {q('ma_lh')}, COUNT(*) AS {q('rows')} "
           f"FROM {q(decl)} GROUP BY TRIM({q(hq)}), TRIM({q(lh)}) ORDER BY 1, 2")
    return [{"table_name": f"{db}.{decl}", **r} for r in _rows(engine, sql)]


# (table, date columns) checked for impossible values; (table, quantity columns) for negative ones
DATE_COLUMNS: dict[str, dict[str, list[str]]] = {
    "SXXK": {"DTOKHAIMD": ["NGAY_DK"]},
    "SLXNK": {"DToKhaiMD": ["Ngay_DK"], "DHDGC": ["Ngay_Ky", "Ngay_DK"]},
}
QTY_COLUMNS: dict[str, dict[str, list[str]]] = {
    "SXXK": {"DHANGMDDK": ["LUONG"], "DHANGMDTH": ["LUONG"], "DHANGMDDC": ["LUONG"], "DNPLNHAP": ["LUONG", "TON"],
             "DDINHMUC": ["DM_SD", "TL_HH"]},
    "SLXNK": {"DHangMD": ["Luong"], "DNPLHD": ["SL_DK"], "DSPGC": ["SL_DK"], "DDMuc": ["DMGC", "TLHH"]},
}
TEXT_COLUMNS: dict[str, dict[str, list[str]]] = {
    "SXXK": {"DHANGMDDK": ["TEN_HANG"], "DHANGMDTH": ["TEN_HANG"], "SNPL": ["TEN_NPL"], "SSP": ["TEN_SP"]},
    "SLXNK": {"DHangMD": ["Ten_Hang"], "DThietBi": ["Ten_TB"], "ecsDHangMau": ["Ten_HM"], "DNPLHD": ["Ten_NPL"],
              "DSPGC": ["Ten_SP"], "DHDGC": ["So_HD", "DVDT"]},
}


def impossible_dates(engine: Engine, db: str, lo: str, hi: str) -> list[CheckHit]:
    q = _quoter(engine)
    hits, have = [], present_tables(engine)
    for table, cols in DATE_COLUMNS[db].items():
        if table not in have:
            continue
        cond = " OR ".join(f"({q(c)} < :lo OR {q(c)} > :hi)" for c in cols)
        # typed binds: PostgreSQL and SQL Server do not compare a timestamp with a string parameter
        rows = _keys_where(engine, db, table, cond, {"lo": datetime.fromisoformat(lo), "hi": datetime.fromisoformat(hi)},
                           (sa.bindparam("lo", type_=sa.DateTime()), sa.bindparam("hi", type_=sa.DateTime())))
        hits += _hit("impossible_date", f"{db}.{table}", rows,
                     f"{len(rows)} rows of {table} with a date before {lo[:10]} or after {hi[:10]}")
    return hits


def negative_quantities(engine: Engine, db: str) -> list[CheckHit]:
    q = _quoter(engine)
    hits, have = [], present_tables(engine)
    for table, cols in QTY_COLUMNS[db].items():
        if table not in have:
            continue
        rows = _keys_where(engine, db, table, " OR ".join(f"{q(c)} < 0" for c in cols))
        hits += _hit("negative_qty", f"{db}.{table}", rows,
                     f"{len(rows)} rows of {table} with a negative {'/'.join(cols)}")
    return hits


def stock_above_import(engine: Engine) -> list[CheckHit]:
    q = _quoter(engine)
    if "DNPLNHAP" not in present_tables(engine):
        return []
    rows = _keys_where(engine, "SXXK", "DNPLNHAP", f"{q('TON')} > {q('LUONG')}")
    return _hit("ton_gt_luong", "SXXK.DNPLNHAP", rows, f"{len(rows)} stock rows with TON > LUONG")


def tcvn3_text(engine: Engine, db: str, looks_tcvn3: Callable[[str | None], bool],
               batch_rows: int = 50_000) -> list[CheckHit]:
    """Text still in TCVN3 (hazard 2), found by streaming the name columns (the test is not SQL-expressible)."""
    q = _quoter(engine)
    hits, have = [], present_tables(engine)
    for table, cols in TEXT_COLUMNS[db].items():
        if table not in have:
            continue
        key = list(legacy_table(db, table).key)
        sql = f"SELECT {_key_expr(q, key)}, {', '.join(q(c) for c in cols)} FROM {q(table)}"
        found = []
        with engine.connect() as c:
            res = c.execution_options(stream_results=True, yield_per=batch_rows).execute(sa.text(sql)).mappings()
            for r in res:
                bad = [col for col in cols if looks_tcvn3(r[col])]
                if bad:
                    found.append({**{k: r[k] for k in key}, "columns": bad})
        if found:
            hits.append(CheckHit("tcvn3_text", f"{db}.{table}", found,
                                 f"{len(found)} rows of {table} hold TCVN3 text (converted to Unicode in step 5)"))
    return hits


# SXXK columns wider than their central counterparts (domain doc §4.4): central length
WIDER_THAN_CENTRAL: dict[str, int] = {"DV_DT": 256, "VAN_DON": 35, "SO_HD": 50, "SO_HDTM": 30}


def long_text(engine: Engine) -> list[CheckHit]:
    q = _quoter(engine)
    if "DTOKHAIMD" not in present_tables(engine):
        return []
    cond = " OR ".join(f"{_length_fn(engine)}({q(c)}) > {n}" for c, n in WIDER_THAN_CENTRAL.items())
    rows = _keys_where(engine, "SXXK", "DTOKHAIMD", cond)
    return _hit("long_text", "SXXK.DTOKHAIMD", rows, f"{len(rows)} declarations hold text longer than central "
                "allows (quarantined in step 5 unless a truncation rule is configured)")
