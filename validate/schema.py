"""Compare a restored legacy structure with the expected e-Customs V4 schema (step 4)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from extract.contract import TableBinding


def canon_type(s: str) -> str:
    """Canonical spelling of a SQL type so that 'numeric(18,8)' == 'NUMERIC(18, 8)'."""
    x = re.sub(r"\s+", "", s.upper())
    # the same legacy type as each engine spells it back on reflection (MariaDB, PostgreSQL, SQL Server)
    x = re.sub(r"^NATIONAL", "", x)
    x = re.sub(r"CHARACTERSET\w+|COLLATE\w+", "", x)
    x = re.sub(r"^N(VARCHAR|CHAR)", r"\1", x)
    x = re.sub(r"^DECIMAL", "NUMERIC", x)
    x = re.sub(r"^(TIMESTAMP(WITHOUTTIMEZONE)?|DATETIME2?)(\((FSP=)?\d\))?$", "DATETIME", x)
    x = re.sub(r"^(DOUBLE(PRECISION)?|FLOAT\(53\)|REAL)$", "FLOAT", x)
    x = {"INTEGER": "INT", "FLOAT(53)": "FLOAT", "MONEY": "NUMERIC(19,4)", "TINYINT": "SMALLINT",
         "BIT": "SMALLINT", "BIGINTEGER": "BIGINT"}.get(x, x)
    return x


@dataclass(frozen=True)
class SchemaDiff:
    db: str
    table: str
    column: str
    kind: Literal["missing", "extra", "retyped", "missing_table", "absent_optional", "extra_table"]
    expected: str
    found: str

    def __str__(self) -> str:
        return f"{self.db}.{self.table}.{self.column}: {self.kind} (expected {self.expected!r}, found {self.found!r})"

    def as_check(self) -> dict[str, Any]:
        return {"check_id": f"schema_{self.kind}", "table_name": f"{self.db}.{self.table}", "key": None,
                "field": self.column, "expected": self.expected, "actual": self.found,
                "status": "fail" if self.kind in ("missing", "missing_table") else "warn"}


def diffs_from_bindings(db: str, bindings: list[TableBinding], extra_tables: list[str]) -> list[SchemaDiff]:
    """The differences between the declared schema and what the package held, from step 4's bindings
    (names matched case-insensitively; a column stored in an accepted other form is "retyped")."""
    out = []
    for b in bindings:
        if b.found is None:
            out.append(SchemaDiff(db, b.table.name, "*", "absent_optional" if b.optional else "missing_table",
                                  "table", ""))
            continue
        for c in b.columns:
            if c.found is None:
                out.append(SchemaDiff(db, b.table.name, c.declared, "missing", c.legacy_type, ""))
            elif c.retyped:
                out.append(SchemaDiff(db, b.table.name, c.declared, "retyped", c.legacy_type, str(c.found_type)))
        for col, ty in b.extra.items():
            out.append(SchemaDiff(db, b.table.name, col, "extra", "", ty))
    out += [SchemaDiff(db, t, "*", "extra_table", "", "table") for t in extra_tables]
    return out


def compare_schema(db: str, expected: dict[str, dict[str, Any]], found: dict[str, dict[str, Any]]) -> list[SchemaDiff]:
    out = []
    for t, spec in expected.items():
        if t not in found:
            out.append(SchemaDiff(db, t, "*", "missing", "table", ""))
            continue
        fcols = found[t]["columns"]
        for c, ty in spec["columns"].items():
            if c not in fcols:
                out.append(SchemaDiff(db, t, c, "missing", ty, ""))
            elif canon_type(ty) != canon_type(fcols[c]):
                out.append(SchemaDiff(db, t, c, "retyped", ty, fcols[c]))
        for c in fcols:
            if c not in spec["columns"]:
                out.append(SchemaDiff(db, t, c, "extra", "", fcols[c]))
    for t in found:
        if t not in expected:
            out.append(SchemaDiff(db, t, "*", "extra", "", "table"))
    return out
