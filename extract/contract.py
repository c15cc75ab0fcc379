"""The input contract: which legacy tables and columns the tool reads, and in which storage forms.

Real branch databases are SQL Server (case-insensitive collation) and reach us as they are, or as
exports: the same table may be spelt ``DTOKHAIMD`` or ``DToKhaiMD``, a ``numeric(18,8)`` may arrive
as a number or as decimal text, a ``datetime`` as a timestamp or as ``'2013-12-31 10:11:12.123'``.
This module binds what a package holds to the declared schema (:mod:`extract.legacy_schema`) —
names matched case-insensitively — and builds, per column, the DuckDB expression that casts a stored
value to its declared type, together with the predicate that says the value does *not* cast.

Accepted storage forms (README "The input contract"):

========================== ============================================================================
declared type              accepted
========================== ============================================================================
int, smallint, tinyint,    integers; decimals and floats whose value is whole; text of a whole number
bit, bigint                (``'12'``, ``'-3'``, ``'12.000'``)
numeric(p,s), money        decimals; integers; floats (rounded half-even at scale s, as the driver
                           would); decimal text with a point and at most s non-zero decimals
                           (``'12.5'``, ``'12.50000000'``); no exponent, no thousands separator
float                      any number; numeric text (an exponent is allowed); never NaN or ±infinity
datetime                   timestamps, dates; ISO text ``YYYY-MM-DD[ HH:MM[:SS[.f…]]]`` (or ``T``)
char, varchar, nvarchar    text (normalised to Unicode NFC; ``char(n)`` padding kept, trimmed later);
                           numbers as their text; never a NUL character (central cannot store it)
========================== ============================================================================

Blank text (empty or spaces) in a column of another declared type is NULL, as exports write NULL.
Anything else is a *bad value*: the row is quarantined as ``Q-BAD-VALUE`` with its table, key, column
and raw value — never cast to NULL in silence, never a crash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from extract.legacy_schema import OPTIONAL_TABLES, TABLES_BY_DB, LegacyTable

_TYPE_RE = re.compile(r"^(\w+)(?:\((\d+)(?:,(\d+))?\))?$")


def declared_duck_type(legacy: str) -> str:
    """The DuckDB type a legacy SQL Server type is restored as (the types the package had in our own shape)."""
    m = _TYPE_RE.match(legacy)
    if not m:
        raise ValueError(f"unparseable legacy type {legacy!r}")
    base, a, b = m.group(1).lower(), m.group(2), m.group(3)
    if base in ("int", "bigint"):
        return "BIGINT"
    if base in ("smallint", "tinyint", "bit"):
        return "INTEGER"
    if base == "numeric":
        return f"DECIMAL({min(int(a), 38)},{int(b or 0)})"
    if base == "money":
        return "DECIMAL(19,4)"
    if base == "float":
        return "DOUBLE"
    if base == "datetime":
        return "TIMESTAMP"
    if base in ("char", "varchar", "nvarchar"):
        return "VARCHAR"
    raise ValueError(f"unknown legacy type {legacy!r}")


def _kind(duck_type: str) -> str:
    t = duck_type.upper()
    if t.startswith("DECIMAL") or t.startswith("NUMERIC"):
        return "decimal"
    if t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
             "UBIGINT", "INT1", "INT2", "INT4", "INT8"):
        return "int"
    if t in ("DOUBLE", "FLOAT", "REAL"):
        return "float"
    if t.startswith("TIMESTAMP") or t in ("DATE", "DATETIME"):
        return "time"
    if t in ("BOOLEAN", "BOOL"):
        return "bool"
    if t in ("BLOB", "BYTEA"):
        return "blob"
    if t in ("VARCHAR", "TEXT", "STRING") or t.startswith("VARCHAR"):
        return "text"
    return "other"


def _decimal_scale(duck_type: str) -> int:
    m = re.search(r"\(\s*\d+\s*,\s*(\d+)\s*\)", duck_type)
    return int(m.group(1)) if m else 0


@dataclass(frozen=True)
class ColumnCast:
    """How one declared column is read from what was found."""

    declared: str          # reference spelling
    legacy_type: str       # e.g. numeric(18,8)
    found: str | None      # spelling in the package (None: the column is missing)
    found_type: str | None  # DuckDB type as found
    expr: str              # DuckDB expression giving the declared type (NULL::T when missing)
    bad: str | None        # predicate: the stored value does not cast (None: every value casts)

    @property
    def retyped(self) -> bool:
        return self.found is not None and self.found_type is not None and \
            self.found_type.upper() != declared_duck_type(self.legacy_type)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# SQL Server's own ranges: a value outside them cannot have come from the branch's column
_INT_RANGE = {"bit": (0, 1), "tinyint": (0, 255), "smallint": (-32768, 32767), "int": (-2**31, 2**31 - 1),
              "bigint": (-2**63, 2**63 - 1)}
_DATETIME_RANGE = ("TIMESTAMP '1753-01-01 00:00:00'", "TIMESTAMP '9999-12-31 23:59:59.999999'")
# ISO text only: no time zone (SQL Server datetime has none: a zone would shift the day), no 'epoch'/'infinity',
# no 24:00, two-digit months and days
_ISO_TEXT = r"[0-9]{4}-[0-9]{2}-[0-9]{2}([ T]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?)?)?"


def _base(legacy: str) -> str:
    return legacy.split("(", 1)[0].strip().lower()


def _in_range(expr: str, legacy: str) -> str:
    """``expr`` (already of the target type) kept only when SQL Server's column could hold it."""
    base = _base(legacy)
    if base in _INT_RANGE and base != "bigint":
        lo, hi = _INT_RANGE[base]
        return f"CASE WHEN ({expr}) BETWEEN {lo} AND {hi} THEN ({expr}) END"
    if base == "datetime":
        return f"CASE WHEN isfinite({expr}) AND ({expr}) BETWEEN {_DATETIME_RANGE[0]} AND {_DATETIME_RANGE[1]} " \
               f"THEN ({expr}) END"
    if base == "float":
        return f"CASE WHEN isfinite({expr}) THEN ({expr}) END"
    return expr


def column_cast(declared: str, legacy_type: str, found: str | None, found_type: str | None,
                alias: str = "") -> ColumnCast:
    """The cast of one column: expression and bad-value predicate (see the module's table)."""
    target = declared_duck_type(legacy_type)
    if found is None or found_type is None:
        return ColumnCast(declared, legacy_type, None, None, f"NULL::{target}", None)
    x = (alias + "." if alias else "") + _q(found)
    src, dst = _kind(found_type), _kind(target)
    if dst == "text" and src == "blob":  # text the source declared binary: UTF-8 only (anything else is bad)
        expr = f"nfc_normalize(try(decode({x})))"
        return ColumnCast(declared, legacy_type, found, found_type, expr,
                          f"({x} IS NOT NULL AND (try(decode({x})) IS NULL OR contains(try(decode({x})), chr(0))))")
    if dst == "text":  # Unicode NFC; a NUL character cannot reach central
        expr = f"nfc_normalize({x})" if found_type.upper() == target else f"nfc_normalize(CAST({x} AS VARCHAR))"
        return ColumnCast(declared, legacy_type, found, found_type, expr,
                          f"({x} IS NOT NULL AND contains(CAST({x} AS VARCHAR), chr(0)))")
    if found_type.upper() == target:
        checked = _in_range(x, legacy_type)
        bad = None if checked == x else f"({x} IS NOT NULL AND ({checked}) IS NULL)"
        return ColumnCast(declared, legacy_type, found, found_type, checked if bad else x, bad)
    if "TIME ZONE" in found_type.upper() or found_type.upper() == "TIMESTAMPTZ":
        # SQL Server's datetime has no zone: a zone-aware value would shift the day on the way; never guess
        return ColumnCast(declared, legacy_type, found, found_type, f"NULL::{target}", f"({x} IS NOT NULL)")
    blank = f"({x} IS NULL OR trim(CAST({x} AS VARCHAR)) = '')" if src == "text" else f"({x} IS NULL)"
    v = f"trim(CAST({x} AS VARCHAR))" if src == "text" else x
    if dst == "int":
        if src == "text":
            ok = f"regexp_full_match({v}, '[-+]?[0-9]+(\\.0*)?')"
            expr = f"CASE WHEN {ok} THEN TRY_CAST(TRY_CAST({v} AS DECIMAL(38,0)) AS {target}) END"
        elif src in ("decimal", "float"):
            fin = f"isfinite({x}) AND " if src == "float" else ""
            expr = f"CASE WHEN {fin}{x} = trunc({x}) THEN TRY_CAST({x} AS {target}) END"
        else:
            expr = f"TRY_CAST({x} AS {target})"
    elif dst == "decimal":
        s = _decimal_scale(target)
        if src == "text":
            frac = f"(\\.[0-9]{{0,{s}}}0*)?" if s else "(\\.0*)?"
            ok = f"regexp_full_match({v}, '[-+]?([0-9]+{frac}|\\.[0-9]{{0,{s}}}0*)')"
            expr = f"CASE WHEN {ok} THEN TRY_CAST({v} AS {target}) END"
        elif src == "decimal" and _decimal_scale(found_type) > s:
            # more decimals than declared: only values whose extra decimals are zero
            expr = f"CASE WHEN TRY_CAST({x} AS {target}) = {x} THEN TRY_CAST({x} AS {target}) END"
        elif src == "float":
            # rounded at the declared scale exactly as the driver prints it ("%.{s}f", correctly rounded)
            expr = f"CASE WHEN isfinite({x}) THEN TRY_CAST(printf('%.{s}f', {x}) AS {target}) END"
        else:
            expr = f"TRY_CAST({x} AS {target})"
    elif dst == "float":
        expr = f"TRY_CAST({v} AS DOUBLE)"
    elif dst == "time":
        expr = f"CASE WHEN regexp_full_match({v}, '{_ISO_TEXT}') THEN TRY_CAST({v} AS TIMESTAMP) END" \
            if src == "text" else f"TRY_CAST({v} AS TIMESTAMP)"
    else:  # pragma: no cover - every declared type is one of the above
        expr = f"TRY_CAST({v} AS {target})"
    expr = _in_range(expr, legacy_type)
    if src == "text":
        expr = f"CASE WHEN {blank} THEN NULL ELSE {expr} END"
    return ColumnCast(declared, legacy_type, found, found_type, expr, f"(NOT {blank} AND ({expr}) IS NULL)")


@dataclass
class TableBinding:
    """A declared legacy table bound to what a package holds (or to nothing)."""

    db: str
    table: LegacyTable
    found: str | None                      # spelling in the package (None: absent)
    columns: list[ColumnCast] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)  # found column -> type, not in the contract

    @property
    def qualified(self) -> str:
        return f"{self.db}.{self.table.name}"

    @property
    def optional(self) -> bool:
        return self.qualified in OPTIONAL_TABLES

    @property
    def missing_columns(self) -> list[ColumnCast]:
        return [c for c in self.columns if c.found is None]

    def col(self, declared: str) -> ColumnCast:
        for c in self.columns:
            if c.declared == declared:
                return c
        raise KeyError(declared)

    def select_sql(self, source: str, alias: str = "r") -> str:
        """``SELECT`` of the declared columns, cast, from ``source`` (a table or ``read_parquet(…)``)."""
        cols = ", ".join(f"{c.expr} AS {_q(c.declared)}" for c in self.columns)
        return f"SELECT {cols} FROM {source} {alias}"

    def view_sql(self, paths: dict[str, str], alias: str = "r") -> str:
        """The declared table read straight from the package: values that do not cast are NULL here (step 3
        only counts and sums; step 4 sets such rows aside); an absent table is empty."""
        if self.found is None:
            cols = ", ".join(f"NULL::{declared_duck_type(c.legacy_type)} AS {_q(c.declared)}" for c in self.columns)
            return f"SELECT {cols} WHERE false"
        return self.select_sql(f"read_parquet('{paths[self.found].replace(chr(39), chr(39) * 2)}')", alias)

    def bad_predicate(self) -> str | None:
        preds = [c.bad for c in self.columns if c.bad]
        return " OR ".join(preds) if preds else None


class ContractError(ValueError):
    """Two found tables or columns differ only in letter case: the binding would be ambiguous."""


def _by_folded(names: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for n in names:
        k = n.casefold()
        if k in out:
            raise ContractError(f"{what}: {out[k]!r} and {n!r} differ only in letter case")
        out[k] = n
    return out


def bind(db: str, found: dict[str, dict[str, str]], alias: str = "r") -> tuple[list[TableBinding], list[str]]:
    """Bind the declared tables of ``db`` to ``found`` ({table: {column: DuckDB type}}), case-insensitively.

    Returns the bindings (one per declared table, absent ones with ``found=None``) and the found
    tables the contract does not know (kept in staging under their own names, counted, not converted).

    Raises:
        ContractError: two found names fold to the same one (e.g. ``DHangMD`` and ``DHANGMD``).
    """
    tables = _by_folded(list(found), f"{db}: tables")
    out: list[TableBinding] = []
    for lt in TABLES_BY_DB[db]:
        fname = tables.pop(lt.name.casefold(), None)
        b = TableBinding(db, lt, fname)
        fcols = found[fname] if fname else {}
        folded = _by_folded(list(fcols), f"{db}.{fname}: columns") if fname else {}
        for cname, ctype in lt.columns:
            fc = folded.pop(cname.casefold(), None) if fname else None
            b.columns.append(column_cast(cname, ctype, fc, fcols.get(fc) if fc else None, alias) if fname
                             else column_cast(cname, ctype, None, None))
        b.extra = {c: fcols[c] for c in folded.values()}
        out.append(b)
    return out, sorted(tables.values())


def key_json_sql(b: TableBinding, alias: str = "r") -> str:
    """The row's key as JSON text, from the raw stored values (trimmed), for the quarantine."""
    parts = []
    for k in b.table.key:
        c = b.col(k)
        val = "NULL" if c.found is None else f"trim(CAST({alias}.{_q(c.found)} AS VARCHAR))"
        parts.append(f"'{k}', {val}")
    return f"json_object({', '.join(parts)})::VARCHAR"


def src_key_sql(b: TableBinding, alias: str = "r") -> str:
    """The row's ``source_key`` as step 5 writes it: ``DB.Table|K1=v1|K2=v2`` (raw values, trimmed)."""
    parts = [f"'{b.qualified}'"]
    for k in b.table.key:
        c = b.col(k)
        val = "'None'" if c.found is None else \
            f"coalesce(trim(CAST({alias}.{_q(c.found)} AS VARCHAR)), 'None')"
        parts.append(f"'|{k}=' || {val}")
    return " || ".join(parts)


def bad_detail_sql(b: TableBinding, alias: str = "r") -> str:
    """For a bad row: ``COLUMN=raw value (declared type)`` of every column that does not cast."""
    items = [f"CASE WHEN {c.bad} THEN '{c.declared}=' || coalesce(replace(CAST({alias}.{_q(c.found or '')} AS VARCHAR), "
             f"chr(0), '\\x00'), 'NULL') "
             f"|| ' ({c.legacy_type})' END" for c in b.columns if c.bad and c.found]
    return f"concat_ws('; ', {', '.join(items)})" if items else "''"


def describe_parquet(con, path: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """{column: DuckDB type} of one Parquet file."""
    rows = con.execute("DESCRIBE SELECT * FROM read_parquet($p)", {"p": path}).fetchall()
    return {r[0]: r[1] for r in rows}


def declared_views(con, files: dict[str, dict[str, str]]) -> dict[str, TableBinding]:  # type: ignore[no-untyped-def]
    """Create a temporary view per declared table over package files ({db: {found table: path}}), named
    ``"<db>.<Table>"`` in the declared spelling; returns the bindings by qualified name."""
    out: dict[str, TableBinding] = {}
    for db, paths in files.items():
        if db not in TABLES_BY_DB:
            continue
        bindings, _extra = bind(db, {t: describe_parquet(con, p) for t, p in paths.items()})
        for b in bindings:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {_q(b.qualified)} AS {b.view_sql(paths)}")
            out[b.qualified] = b
    return out


__all__ = ["ColumnCast", "ContractError", "TableBinding", "bind", "bad_detail_sql", "column_cast",
           "declared_duck_type", "declared_views", "describe_parquet", "key_json_sql", "src_key_sql"]
