"""Step 1 checks on the live branch DBs, pushed down into SQL (read-only connections).

Each check returns the offending keys; transform/ and validate/ turn them into findings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


def _q(name: str) -> str:
    return f'"{check_ident(name)}"'


def _key_expr(cols: list[str], alias: str = "") -> str:
    p = f"{alias}." if alias else ""
    return ", ".join(f"TRIM({p}{_q(c)}) AS {_q(c)}" if c.upper().startswith("MA_") else f"{p}{_q(c)}" for c in cols)


def _rows(engine: Engine, sql: str) -> list[dict[str, object]]:
    with engine.connect() as c:
        return [dict(r) for r in c.execute(sa.text(sql)).mappings()]


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
    hits = []
    for t in _present(engine, db):
        cols = list(t.key)
        grp = ", ".join(f"TRIM({_q(c)})" if c.upper().startswith("MA_") else _q(c) for c in cols)
        sql = f"SELECT {_key_expr(cols)}, COUNT(*) AS n FROM {_q(t.name)} GROUP BY {grp} HAVING COUNT(*) > 1"
        rows = _rows(engine, sql)
        if rows:
            hits.append(CheckHit("duplicate_key", f"{db}.{t.name}", rows,
                                 f"{len(rows)} keys occur more than once in {t.name}"))
    return hits


def null_keys(engine: Engine, db: str) -> list[CheckHit]:
    hits = []
    for t in _present(engine, db):
        cond = " OR ".join(f"{_q(c)} IS NULL" for c in t.key)
        sql = f"SELECT {_key_expr(list(t.key))} FROM {_q(t.name)} WHERE {cond}"
        rows = _rows(engine, sql)
        if rows:
            hits.append(CheckHit("null_key", f"{db}.{t.name}", rows, f"{len(rows)} rows with NULL in a key column"))
    return hits


def _lines_per_declaration(db: str) -> tuple[str, str, str, list[str], str]:
    decl, goods, sohang = ("DTOKHAIMD", "DHANGMDDK", "SOHANG") if db == "SXXK" else ("DToKhaiMD", "DHangMD", "SoHang")
    key = list(legacy_table(db, decl).key)
    grp = ", ".join(f"TRIM({_q(c)})" if c.upper().startswith("MA_") else _q(c) for c in key)
    sel = ", ".join(f"TRIM({_q(c)}) AS {_q(c)}" if c.upper().startswith("MA_") else _q(c) for c in key)
    # goods counted once per declaration key, then joined (no correlated sub-query: linear in both tables)
    on = " AND ".join(f"g.{_q(c)} = " + (f"TRIM(d.{_q(c)})" if c.upper().startswith("MA_") else f"d.{_q(c)}")
                      for c in key)
    sql = (f"SELECT {_key_expr(key, 'd')}, d.{_q(sohang)} AS declared, COALESCE(g.n, 0) AS lines FROM {_q(decl)} d "
           f"LEFT JOIN (SELECT {sel}, COUNT(*) AS n FROM {_q(goods)} GROUP BY {grp}) g ON {on}")
    return decl, goods, sohang, key, sql


def declarations_without_goods(engine: Engine, db: str) -> list[CheckHit]:
    decl, _goods, _sohang, key, sql = _lines_per_declaration(db)
    rows = [{k: r[k] for k in key} for r in _rows(engine, sql) if not r["lines"]]
    return [CheckHit("decl_without_goods", f"{db}.{decl}", rows, f"{len(rows)} declarations have no goods lines")] \
        if rows else []


def sohang_mismatch(engine: Engine, db: str) -> list[CheckHit]:
    decl, _goods, sohang, _key, sql = _lines_per_declaration(db)
    rows = [r for r in _rows(engine, sql) if r["lines"] and r["declared"] != r["lines"]]
    return [CheckHit("sohang_mismatch", f"{db}.{decl}", rows,
                     f"{len(rows)} declarations whose {sohang} differs from their goods lines")] if rows else []


def orphan_catalog_rows(engine: Engine, db: str) -> list[CheckHit]:
    hits = []
    if db == "SLXNK":
        on = ("c.So_HD = h.So_HD AND TRIM(c.Ma_HQHD) = TRIM(h.Ma_HQHD) AND c.DVGC = h.DVGC "
              "AND c.Ngay_Ky = h.Ngay_Ky")
        have = present_tables(engine)
        for child in ("DLOAISPGC", "DNPLHD", "DSPGC", "DThietBi", "ecsDHangMau", "DDMuc"):
            if child not in have or "DHDGC" not in have:
                continue
            key = list(legacy_table(db, child).key)
            sql = f"SELECT {_key_expr(key, 'c')} FROM {_q(child)} c WHERE NOT EXISTS (SELECT 1 FROM DHDGC h WHERE {on})"
            rows = _rows(engine, sql)
            if rows:
                hits.append(CheckHit("orphan_catalog", f"SLXNK.{child}", rows,
                                     f"{len(rows)} rows of {child} whose contract is missing from DHDGC"))
    else:
        key = list(legacy_table(db, "DDINHMUC").key)
        sql = (f"SELECT {_key_expr(key, 'n')} FROM DDINHMUC n WHERE "
               "NOT EXISTS (SELECT 1 FROM SSP s WHERE s.MA_SP = n.MA_SP AND s.MA_DV = n.MA_DV "
               "AND TRIM(s.MA_HQ) = TRIM(n.MA_HQ)) OR NOT EXISTS (SELECT 1 FROM SNPL p WHERE p.MA_NPL = n.MA_NPL "
               "AND p.MA_DV = n.MA_DV AND TRIM(p.MA_HQ) = TRIM(n.MA_HQ))")
        rows = _rows(engine, sql)
        if rows:
            hits.append(CheckHit("orphan_catalog", "SXXK.DDINHMUC", rows,
                                 f"{len(rows)} norms whose product or material is missing from SSP/SNPL"))
    return hits


def closing_stock(engine: Engine, offices: list[str]) -> list[dict[str, object]]:
    """Bảng kê chốt tồn: per enterprise × material, imported and remaining quantity (SXXK)."""
    placeholders = ", ".join(f":o{i}" for i in range(len(offices)))
    sql = (f"SELECT TRIM(n.MA_DV) AS MA_DV, TRIM(n.MA_NPL) AS MA_NPL, COUNT(*) AS so_dong, "
           f"SUM(n.LUONG) AS luong, SUM(n.TON) AS ton FROM DNPLNHAP n "
           f"WHERE TRIM(n.MA_HQ) IN ({placeholders}) AND n.MA_NPL IS NOT NULL "
           f"GROUP BY TRIM(n.MA_DV), TRIM(n.MA_NPL) ORDER BY 1, 2")
    with engine.connect() as c:
        return [dict(r) for r in c.execute(sa.text(sql), {f"o{i}": o for i, o in enumerate(offices)}).mappings()]


def counts_by_office_type(engine: Engine, db: str) -> list[dict[str, object]]:
    decl = "DTOKHAIMD" if db == "SXXK" else "DToKhaiMD"
    sql = (f"SELECT TRIM(Ma_HQ) AS office, TRIM(Ma_LH) AS ma_lh, COUNT(*) AS rows FROM {_q(decl)} "
           "GROUP BY TRIM(Ma_HQ), TRIM(Ma_LH) ORDER BY 1, 2")
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
    hits, have = [], present_tables(engine)
    for table, cols in DATE_COLUMNS[db].items():
        if table not in have:
            continue
        key = list(legacy_table(db, table).key)
        cond = " OR ".join(f"({_q(c)} < :lo OR {_q(c)} > :hi)" for c in cols)
        with engine.connect() as c:
            rows = [dict(r) for r in c.execute(sa.text(f"SELECT {_key_expr(key)} FROM {_q(table)} WHERE {cond}"),
                                               {"lo": lo, "hi": hi}).mappings()]
        if rows:
            hits.append(CheckHit("impossible_date", f"{db}.{table}", rows,
                                 f"{len(rows)} rows of {table} with a date before {lo[:10]} or after {hi[:10]}"))
    return hits


def negative_quantities(engine: Engine, db: str) -> list[CheckHit]:
    hits, have = [], present_tables(engine)
    for table, cols in QTY_COLUMNS[db].items():
        if table not in have:
            continue
        key = list(legacy_table(db, table).key)
        cond = " OR ".join(f"{_q(c)} < 0" for c in cols)
        rows = _rows(engine, f"SELECT {_key_expr(key)} FROM {_q(table)} WHERE {cond}")
        if rows:
            hits.append(CheckHit("negative_qty", f"{db}.{table}", rows, f"{len(rows)} rows of {table} with a negative "
                                 f"{'/'.join(cols)}"))
    return hits


def stock_above_import(engine: Engine) -> list[CheckHit]:
    if "DNPLNHAP" not in present_tables(engine):
        return []
    key = list(legacy_table("SXXK", "DNPLNHAP").key)
    rows = _rows(engine, f"SELECT {_key_expr(key)} FROM DNPLNHAP WHERE TON > LUONG")
    return [CheckHit("ton_gt_luong", "SXXK.DNPLNHAP", rows, f"{len(rows)} stock rows with TON > LUONG")] if rows else []


def tcvn3_text(engine: Engine, db: str, looks_tcvn3: Callable[[str | None], bool],
               batch_rows: int = 50_000) -> list[CheckHit]:
    """Text still in TCVN3 (hazard 2), found by streaming the name columns (the test is not SQL-expressible)."""
    hits, have = [], present_tables(engine)
    for table, cols in TEXT_COLUMNS[db].items():
        if table not in have:
            continue
        key = list(legacy_table(db, table).key)
        sql = f"SELECT {_key_expr(key)}, {', '.join(_q(c) for c in cols)} FROM {_q(table)}"
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
    if "DTOKHAIMD" not in present_tables(engine):
        return []
    key = list(legacy_table("SXXK", "DTOKHAIMD").key)
    cond = " OR ".join(f"length({_q(c)}) > {n}" for c, n in WIDER_THAN_CENTRAL.items())
    rows = _rows(engine, f"SELECT {_key_expr(key)} FROM DTOKHAIMD WHERE {cond}")
    return [CheckHit("long_text", "SXXK.DTOKHAIMD", rows, f"{len(rows)} declarations hold text longer than central "
                     "allows (quarantined in step 5 unless a truncation rule is configured)")] if rows else []
