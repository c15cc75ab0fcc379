"""Step 1 checks on the live branch DBs, pushed down into SQL (read-only connections).

Each check returns the offending keys; transform/ and validate/ turn them into findings.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from extract.legacy_schema import OPTIONAL_TABLES, TABLES_BY_DB, LegacyTable, legacy_table
from extract.source import check_ident


@dataclass
class CheckHit:
    check_id: str
    table: str
    keys: list[dict[str, object]]
    message: str


@dataclass
class NotRun:
    """A check that could not run on this branch, and why (e.g. a table it needs is absent)."""

    check_id: str
    db: str
    reason: str


Quote = Callable[[str], str]


def _quoter(engine: Engine) -> Quote:
    """Identifier quoting of the source's own dialect (``"x"``, ```x```, ``[x]``), after validation — for aliases
    and for names already resolved (see :class:`Names`)."""
    prep = engine.dialect.identifier_preparer
    return lambda name: prep.quote_identifier(check_ident(name))


class Names:
    """The source's own spelling of the declared tables and columns, matched case-insensitively (SQL Server's
    default collation is; PostgreSQL's quoted identifiers and MariaDB's table names on Linux are not), and the
    stored type of each column, so that checks compare numbers as numbers even where an export stored text."""

    def __init__(self, engine: Engine) -> None:
        insp = sa.inspect(engine)
        self.engine = engine
        self.tables: dict[str, str] = {}
        self.columns: dict[str, dict[str, tuple[str, sa.types.TypeEngine]]] = {}  # type: ignore[type-arg]
        for t in insp.get_table_names():
            self.tables.setdefault(t.casefold(), t)
        self._insp = insp

    def table(self, name: str) -> str | None:
        return self.tables.get(name.casefold())

    def has(self, *names: str) -> bool:
        return all(self.table(n) is not None for n in names)

    def _cols(self, table: str) -> dict[str, tuple[str, sa.types.TypeEngine]]:  # type: ignore[type-arg]
        found = self.table(table)
        if found is None:
            return {}
        if found not in self.columns:
            self.columns[found] = {c["name"].casefold(): (c["name"], c["type"]) for c in self._insp.get_columns(found)}
        return self.columns[found]

    def col(self, table: str, column: str) -> str:
        """The column's own spelling (the declared one when the column is absent: the check's SQL then fails
        clearly, naming the column)."""
        return self._cols(table).get(column.casefold(), (column, None))[0]

    def is_number(self, table: str, column: str) -> bool:
        ty = self._cols(table).get(column.casefold(), (None, None))[1]
        return ty is None or isinstance(ty, (sa.Integer, sa.Numeric))


_NAMES: weakref.WeakKeyDictionary[Engine, Names] = weakref.WeakKeyDictionary()


def names(engine: Engine) -> Names:
    n = _NAMES.get(engine)
    if n is None:
        n = _NAMES[engine] = Names(engine)
    return n


class Sql:
    """Builds a check's SQL on one source: ``t(table)`` / ``c(table, column, alias)`` are the source's quoted
    spellings, ``a(alias)`` a quoted alias, ``num(...)`` a column as a number (text that is not a number: NULL)."""

    def __init__(self, engine: Engine, db: str | None = None) -> None:
        self.n = names(engine)
        self.a = _quoter(engine)
        self.dialect = engine.dialect.name
        self.db = db

    def _scale(self, table: str, column: str) -> int | None:
        """The declared scale of a numeric column (numeric(p,s): s; money: 4; integers: 0; float: None)."""
        for db in ([self.db] if self.db else list(TABLES_BY_DB)):
            for t in TABLES_BY_DB[db]:
                if t.name.casefold() == table.casefold():
                    ty = {c.casefold(): v for c, v in t.columns}.get(column.casefold(), "")
                    m = re.match(r"^numeric\((\d+),(\d+)\)$", ty)
                    return int(m.group(2)) if m else 4 if ty == "money" else \
                        0 if ty in ("int", "bigint", "smallint", "tinyint", "bit") else None
        return None

    def is_time(self, table: str, column: str) -> bool:
        ty = self.n._cols(table).get(column.casefold(), (None, None))[1]
        return ty is None or isinstance(ty, (sa.DateTime, sa.Date))

    def t(self, table: str) -> str:
        return self.a(self.n.table(table) or table)

    def c(self, table: str, column: str, alias: str = "") -> str:
        return (f"{alias}." if alias else "") + self.a(self.n.col(table, column))

    def num(self, table: str, column: str, alias: str = "") -> str:
        """The column as a number, read as the input contract reads it (extract/contract.py): text that is not a
        plain decimal with at most the declared scale's non-zero decimals is NULL here, so that step 1's sums
        are step 3's."""
        ref = self.c(table, column, alias)
        if self.n.is_number(table, column):
            return ref
        s = self._scale(table, column)
        rx = number_re(s, posix=True)
        return {"sqlite": f"ecm_num({ref}, {'NULL' if s is None else s})",
                "postgresql": f"CASE WHEN {ref} ~ '{rx}' THEN CAST(trim({ref}) AS NUMERIC) END",
                "mysql": f"CASE WHEN {ref} REGEXP '{rx}' THEN CAST(trim({ref}) AS DECIMAL(38,10)) END",
                "mariadb": f"CASE WHEN {ref} REGEXP '{rx}' THEN CAST(trim({ref}) AS DECIMAL(38,10)) END",
                "mssql": f"TRY_CAST({ref} AS DECIMAL(38,{10 if s is None else s}))"}.get(self.dialect, ref)

    def key(self, table: str, cols: list[str], alias: str = "") -> str:
        """The key columns, aliased with their declared names (codes trimmed)."""
        return ", ".join(f"TRIM({self.c(table, k, alias)}) AS {self.a(k)}" if k.upper().startswith("MA_")
                         else f"{self.c(table, k, alias)} AS {self.a(k)}" for k in cols)

    def group(self, table: str, cols: list[str], alias: str = "") -> str:
        return ", ".join(f"TRIM({self.c(table, k, alias)})" if k.upper().startswith("MA_") else self.c(table, k, alias)
                         for k in cols)


def _length_fn(engine: Engine) -> str:
    """Character (not byte) length: MariaDB's LENGTH counts bytes, SQL Server calls it LEN."""
    return {"mysql": "CHAR_LENGTH", "mariadb": "CHAR_LENGTH", "mssql": "LEN"}.get(engine.dialect.name, "LENGTH")


def _rows(engine: Engine, sql: str) -> list[dict[str, object]]:
    with engine.connect() as c:
        return [dict(r) for r in c.execute(sa.text(sql)).mappings()]


def _keys_where(engine: Engine, db: str, table: str, cond: str, params: dict[str, object] | None = None,
                binds: tuple[sa.BindParameter[object], ...] = ()) -> list[dict[str, object]]:
    """The keys of the rows of ``db.table`` matching the SQL condition ``cond`` (identifiers already quoted)."""
    q = Sql(engine, db)
    stmt = sa.text(f"SELECT {q.key(table, list(legacy_table(db, table).key))} FROM {q.t(table)} WHERE {cond}")
    with engine.connect() as c:
        return [dict(r) for r in c.execute(stmt.bindparams(*binds), params or {}).mappings()]


def _hit(check_id: str, table: str, rows: list[dict[str, object]], message: str) -> list[CheckHit]:
    return [CheckHit(check_id, table, rows, message)] if rows else []


def missing_tables(engine: Engine, db: str) -> list[CheckHit]:
    """Required tables the source lacks (an absent *optional* table — CX, self-supplied GC materials — is no finding:
    a branch that never used them has none)."""
    n = names(engine)
    gone = [{"table": t.name} for t in TABLES_BY_DB[db] if not n.has(t.name) and f"{db}.{t.name}" not in OPTIONAL_TABLES]
    return [CheckHit("missing_table", db, gone, f"{len(gone)} required e-Customs V4 tables are missing from {db}: "
                     + ", ".join(str(g["table"]) for g in gone))] if gone else []


def _present(engine: Engine, db: str) -> list[LegacyTable]:
    """The expected tables of ``db`` that the source actually has (missing ones are their own finding)."""
    n = names(engine)
    return [t for t in TABLES_BY_DB[db] if n.has(t.name)]


def duplicate_keys(engine: Engine, db: str) -> list[CheckHit]:
    q = Sql(engine, db)
    hits = []
    for t in _present(engine, db):
        cols = list(t.key)
        sql = (f"SELECT {q.key(t.name, cols)}, COUNT(*) AS {q.a('n')} FROM {q.t(t.name)} "
               f"GROUP BY {q.group(t.name, cols)} HAVING COUNT(*) > 1")
        rows = _rows(engine, sql)
        if rows:
            hits.append(CheckHit("duplicate_key", f"{db}.{t.name}", rows,
                                 f"{len(rows)} keys occur more than once in {t.name}"))
    return hits


def null_keys(engine: Engine, db: str) -> list[CheckHit]:
    q = Sql(engine, db)
    hits = []
    for t in _present(engine, db):
        rows = _keys_where(engine, db, t.name, " OR ".join(f"{q.c(t.name, c)} IS NULL" for c in t.key))
        hits += _hit("null_key", f"{db}.{t.name}", rows, f"{len(rows)} rows with NULL in a key column")
    return hits


def _decl_goods(db: str) -> tuple[str, str, str]:
    return ("DTOKHAIMD", "DHANGMDDK", "SOHANG") if db == "SXXK" else ("DToKhaiMD", "DHangMD", "SoHang")


def _lines_per_declaration(q: Sql, db: str) -> tuple[str, str, str, list[str], str]:
    decl, goods, sohang = _decl_goods(db)
    key = list(legacy_table(db, decl).key)
    # goods counted once per declaration key, then joined (no correlated sub-query: linear in both tables)
    on = " AND ".join(f"g.{q.a(c)} = " + (f"TRIM({q.c(decl, c, 'd')})" if c.upper().startswith("MA_")
                                          else q.c(decl, c, 'd')) for c in key)
    sql = (f"SELECT {q.key(decl, key, 'd')}, {q.num(decl, sohang, 'd')} AS {q.a('declared')}, "
           f"COALESCE(g.{q.a('n')}, 0) AS {q.a('lines')} FROM {q.t(decl)} d "
           f"LEFT JOIN (SELECT {q.key(goods, key)}, COUNT(*) AS {q.a('n')} FROM {q.t(goods)} "
           f"GROUP BY {q.group(goods, key)}) g ON {on}")
    return decl, goods, sohang, key, sql


def declarations_without_goods(engine: Engine, db: str) -> list[CheckHit]:
    q = Sql(engine, db)
    decl, _goods, _sohang, key, sql = _lines_per_declaration(q, db)
    rows = [{k: r[k] for k in key} for r in _rows(engine, sql) if not r["lines"]]
    return [CheckHit("decl_without_goods", f"{db}.{decl}", rows, f"{len(rows)} declarations have no goods lines")] \
        if rows else []


def sohang_mismatch(engine: Engine, db: str) -> list[CheckHit]:
    q = Sql(engine, db)
    decl, _goods, sohang, _key, sql = _lines_per_declaration(q, db)
    rows = [r for r in _rows(engine, sql)
            if r["lines"] and r["declared"] is not None and Decimal(str(r["declared"])) != r["lines"]]
    return [CheckHit("sohang_mismatch", f"{db}.{decl}", rows,
                     f"{len(rows)} declarations whose {sohang} differs from their goods lines")] if rows else []


def orphan_catalog_rows(engine: Engine, db: str) -> list[CheckHit]:
    q = Sql(engine, db)
    hits = []
    n = names(engine)
    if db == "SLXNK":
        for child in ("DLOAISPGC", "DNPLHD", "DSPGC", "DThietBi", "ecsDHangMau", "DDMuc"):
            if not n.has(child, "DHDGC"):
                continue
            on = (f"{q.c(child, 'So_HD', 'c')} = {q.c('DHDGC', 'So_HD', 'h')} AND "
                  f"TRIM({q.c(child, 'Ma_HQHD', 'c')}) = TRIM({q.c('DHDGC', 'Ma_HQHD', 'h')}) "
                  f"AND {q.c(child, 'DVGC', 'c')} = {q.c('DHDGC', 'DVGC', 'h')} "
                  f"AND {q.c(child, 'Ngay_Ky', 'c')} = {q.c('DHDGC', 'Ngay_Ky', 'h')}")
            key = list(legacy_table(db, child).key)
            sql = (f"SELECT {q.key(child, key, 'c')} FROM {q.t(child)} c WHERE NOT EXISTS "
                   f"(SELECT 1 FROM {q.t('DHDGC')} h WHERE {on})")
            rows = _rows(engine, sql)
            if rows:
                hits.append(CheckHit("orphan_catalog", f"SLXNK.{child}", rows,
                                     f"{len(rows)} rows of {child} whose contract is missing from DHDGC"))
    elif n.has("DDINHMUC", "SSP", "SNPL"):
        key = list(legacy_table(db, "DDINHMUC").key)
        dm = "DDINHMUC"
        sql = (f"SELECT {q.key(dm, key, 'n')} FROM {q.t(dm)} n WHERE "
               f"NOT EXISTS (SELECT 1 FROM {q.t('SSP')} s WHERE {q.c('SSP', 'MA_SP', 's')} = {q.c(dm, 'MA_SP', 'n')} "
               f"AND {q.c('SSP', 'MA_DV', 's')} = {q.c(dm, 'MA_DV', 'n')} "
               f"AND TRIM({q.c('SSP', 'MA_HQ', 's')}) = TRIM({q.c(dm, 'MA_HQ', 'n')})) "
               f"OR NOT EXISTS (SELECT 1 FROM {q.t('SNPL')} p WHERE {q.c('SNPL', 'MA_NPL', 'p')} = {q.c(dm, 'MA_NPL', 'n')} "
               f"AND {q.c('SNPL', 'MA_DV', 'p')} = {q.c(dm, 'MA_DV', 'n')} "
               f"AND TRIM({q.c('SNPL', 'MA_HQ', 'p')}) = TRIM({q.c(dm, 'MA_HQ', 'n')}))")
        rows = _rows(engine, sql)
        if rows:
            hits.append(CheckHit("orphan_catalog", "SXXK.DDINHMUC", rows,
                                 f"{len(rows)} norms whose product or material is missing from SSP/SNPL"))
    return hits


def closing_stock(engine: Engine, offices: list[str]) -> list[dict[str, object]]:
    """Bảng kê chốt tồn: per enterprise × material, imported and remaining quantity (SXXK)."""
    q, t = Sql(engine, "SXXK"), "DNPLNHAP"
    if not names(engine).has(t):
        return []
    placeholders = ", ".join(f":o{i}" for i in range(len(offices)))
    dv, npl = f"TRIM({q.c(t, 'MA_DV', 'n')})", f"TRIM({q.c(t, 'MA_NPL', 'n')})"
    sql = (f"SELECT {dv} AS {q.a('MA_DV')}, {npl} AS {q.a('MA_NPL')}, COUNT(*) AS {q.a('so_dong')}, "
           f"SUM({q.num(t, 'LUONG', 'n')}) AS {q.a('luong')}, SUM({q.num(t, 'TON', 'n')}) AS {q.a('ton')} "
           f"FROM {q.t(t)} n WHERE TRIM({q.c(t, 'MA_HQ', 'n')}) IN ({placeholders}) AND {q.c(t, 'MA_NPL', 'n')} IS NOT NULL "
           f"GROUP BY {dv}, {npl} ORDER BY 1, 2")
    with engine.connect() as c:
        return [dict(r) for r in c.execute(sa.text(sql), {f"o{i}": o for i, o in enumerate(offices)}).mappings()]


def counts_by_office_type(engine: Engine, db: str) -> list[dict[str, object]]:
    q = Sql(engine, db)
    decl = "DTOKHAIMD" if db == "SXXK" else "DToKhaiMD"
    if not names(engine).has(decl):
        return []
    hq, lh = q.c(decl, "MA_HQ"), q.c(decl, "MA_LH")
    sql = (f"SELECT TRIM({hq}) AS {q.a('office')}, TRIM({lh}) AS {q.a('ma_lh')}, COUNT(*) AS {q.a('rows')} "
           f"FROM {q.t(decl)} GROUP BY TRIM({hq}), TRIM({lh}) ORDER BY 1, 2")
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
    q = Sql(engine, db)
    hits = []
    for table, cols in DATE_COLUMNS[db].items():
        if not q.n.has(table):
            continue
        # typed binds: PostgreSQL and SQL Server do not compare a timestamp with a string parameter; a date an
        # export stored as text is compared as ISO text (a value in another form is a bad value of step 4)
        cond = " OR ".join(f"({q.c(table, c)} < :lo OR {q.c(table, c)} > :hi)" if q.is_time(table, c) else
                           f"({q.c(table, c)} < :lo_s OR {q.c(table, c)} > :hi_s)" for c in cols)
        binds = [b for b in (sa.bindparam("lo", type_=sa.DateTime()), sa.bindparam("hi", type_=sa.DateTime()),
                             sa.bindparam("lo_s", type_=sa.String()), sa.bindparam("hi_s", type_=sa.String()))
                 if f":{b.key} " in cond + " " or f":{b.key})" in cond]
        values = {"lo": datetime.fromisoformat(lo), "hi": datetime.fromisoformat(hi), "lo_s": lo, "hi_s": hi}
        rows = _keys_where(engine, db, table, cond, {b.key: values[b.key] for b in binds}, tuple(binds))
        hits += _hit("impossible_date", f"{db}.{table}", rows,
                     f"{len(rows)} rows of {table} with a date before {lo[:10]} or after {hi[:10]}")
    return hits


def negative_quantities(engine: Engine, db: str) -> list[CheckHit]:
    q = Sql(engine, db)
    hits = []
    for table, cols in QTY_COLUMNS[db].items():
        if not q.n.has(table):
            continue
        rows = _keys_where(engine, db, table, " OR ".join(f"{q.num(table, c)} < 0" for c in cols))
        hits += _hit("negative_qty", f"{db}.{table}", rows,
                     f"{len(rows)} rows of {table} with a negative {'/'.join(cols)}")
    return hits


def stock_above_import(engine: Engine) -> list[CheckHit]:
    q, t = Sql(engine, "SXXK"), "DNPLNHAP"
    if not q.n.has(t):
        return []
    rows = _keys_where(engine, "SXXK", t, f"{q.num(t, 'TON')} > {q.num(t, 'LUONG')}")
    return _hit("ton_gt_luong", "SXXK.DNPLNHAP", rows, f"{len(rows)} stock rows with TON > LUONG")


def tcvn3_text(engine: Engine, db: str, looks_tcvn3: Callable[[str | None], bool],
               batch_rows: int = 50_000) -> list[CheckHit]:
    """Text still in TCVN3 (hazard 2), found by streaming the name columns (the test is not SQL-expressible)."""
    q = Sql(engine, db)
    hits = []
    for table, cols in TEXT_COLUMNS[db].items():
        if not q.n.has(table):
            continue
        key = list(legacy_table(db, table).key)
        sql = (f"SELECT {q.key(table, key)}, {', '.join(f'{q.c(table, c)} AS {q.a(c)}' for c in cols)} "
               f"FROM {q.t(table)}")
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
    q, t = Sql(engine, "SXXK"), "DTOKHAIMD"
    if not q.n.has(t):
        return []
    cond = " OR ".join(f"{_length_fn(engine)}({q.c(t, c)}) > {n}" for c, n in WIDER_THAN_CENTRAL.items())
    rows = _keys_where(engine, "SXXK", t, cond)
    return _hit("long_text", "SXXK.DTOKHAIMD", rows, f"{len(rows)} declarations hold text longer than central "
                "allows (quarantined in step 5 unless a truncation rule is configured)")


# checks of step 1, each run on its own; a check whose tables are absent does not run and says why
CHECKS: dict[str, tuple[Callable[..., list[CheckHit]], dict[str, tuple[str, ...]]]] = {
    "missing_table": (missing_tables, {"SXXK": (), "SLXNK": ()}),
    "decl_without_goods": (declarations_without_goods, {"SXXK": ("DTOKHAIMD", "DHANGMDDK"),
                                                         "SLXNK": ("DToKhaiMD", "DHangMD")}),
    "sohang_mismatch": (sohang_mismatch, {"SXXK": ("DTOKHAIMD", "DHANGMDDK"), "SLXNK": ("DToKhaiMD", "DHangMD")}),
    "orphan_catalog": (orphan_catalog_rows, {"SXXK": ("DDINHMUC", "SSP", "SNPL"), "SLXNK": ("DHDGC",)}),
    "duplicate_key": (duplicate_keys, {"SXXK": (), "SLXNK": ()}),
    "null_key": (null_keys, {"SXXK": (), "SLXNK": ()}),
    "negative_qty": (negative_quantities, {"SXXK": (), "SLXNK": ()}),
    "tcvn3_text": (tcvn3_text, {"SXXK": (), "SLXNK": ()}),
}


def not_run(engine: Engine, db: str, check_id: str, needs: tuple[str, ...]) -> NotRun | None:
    """Why ``check_id`` cannot run on ``db`` (tables absent), or None."""
    gone = [t for t in needs if not names(engine).has(t)]
    return NotRun(check_id, db, f"table {', '.join(gone)} absent from {db}") if gone else None


def number_re(scale: int | None, posix: bool = False) -> str:
    """A plain decimal (no exponent, no comma) with at most ``scale`` non-zero decimals — the contract's rule."""
    frac = r"[0-9]*" if scale is None else (r"[0-9]{0,%d}0*" % scale)
    body = rf"[-+]?([0-9]+([.]{frac})?|[.]{frac})"
    return rf"^[[:space:]]*{body}[[:space:]]*$" if posix else rf"\s*{body}\s*"


def number_or_none(value: object, scale: int | None = None) -> float | int | None:
    """SQLite's ``ecm_num``: a stored value as a number, the way the input contract reads decimal text (NULL when
    it is not a number, so that step 1 and step 3 sum the same values)."""
    if value is None or isinstance(value, (int, float)):
        return value  # type: ignore[return-value]
    if isinstance(value, str) and re.fullmatch(number_re(scale), value):
        d = Decimal(value.strip())
        return int(d) if d == d.to_integral_value() else float(d)
    return None
