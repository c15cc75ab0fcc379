"""Small SQL fragments the plans share (over the source row ``s``; ``py_strip`` is Python's ``str.strip``)."""

from __future__ import annotations

from transform.plan.model import Mapping


def blank(col: str) -> str:
    """The rules' ``blank``: NULL, or nothing but spaces."""
    return f"coalesce(py_strip(s.{col}), '') = ''"


def in_list(values: frozenset[str]) -> str:
    """A quoted SQL list of ``values`` (never empty: the config requires at least one office)."""
    return ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values)) or "NULL"


def exact_decimal(expr: str, name: str, scale: int, width: int = 24) -> tuple[str, Mapping]:
    """A float ``expr`` as the rules make it exact — half-even at ``scale`` from its shortest text: (the SQL of the
    decimal, the mapping ``name`` it needs). A float that already is a number of ``scale`` decimals (below 1e9,
    where a double tells such numbers apart) is cast by DuckDB: any rounding of it gives those digits. Any other
    goes through Python's ``Decimal`` (mapping function ``dec<scale>``), for those rows only."""
    fast = f"(abs({expr}) < 1e9 AND round({expr}, {scale}) = ({expr}))"
    sql = (f"CASE WHEN {fast} THEN CAST({expr} AS DECIMAL({width}, {scale})) "
           f"ELSE CAST({name}.exact AS DECIMAL({width}, {scale})) END")
    return sql, Mapping(name, expr, f"dec{scale}", ("exact",), where=f"({expr}) IS NOT NULL AND NOT {fast}")


def on_decl(alias: str) -> str:
    """Join condition of a lookup of declarations (``k0..k3`` as text) on the row's full declaration key."""
    return (f"{alias}.k0 = CAST(s.SOTK AS VARCHAR) AND {alias}.k1 = py_strip(s.MA_LH) AND "
            f"{alias}.k2 = py_strip(s.MA_HQ) AND {alias}.k3 = CAST(s.NAMDK AS VARCHAR)")


def quarantined_decl(db: str, alias: str) -> str:
    """The detail of a row quarantined with its declaration of ``db`` (``alias``: the quarantined-declaration
    lookup), as :func:`transform.convert.decl_missing` words it."""
    return (f"'{db} declaration SoTK=' || s.SOTK || ' Ma_LH=' || py_strip(s.MA_LH) || ' NamDK=' || s.NAMDK || "
            f"' is quarantined (' || {alias}.reason || ')'")
