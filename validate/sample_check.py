"""The seeded, stratified sample of step 6, compared field by field with the source through the declared
correspondence table (validate/sampling.py) — data independent of the conversion code it checks."""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from extract.source import check_ident
from extract.staging import sql_path
from validate.sampling import CORRESPONDENCE, draw, normalise, zero_acceptance_sample_size

# --- TCVN3 text (hazard 2), read independently of transform/codes.py ----------------------------------------
# The checker's own TCVN3 (ABC) table, in byte order 0xA0–0xFF, sixteen bytes a row; '_' holds no letter.
# Written apart from the conversion's table (which is ordered by letter) on purpose: the tests compare the two
# on every byte and every letter, so a slip in either one shows.
_TCVN3_ROWS = (
    "_ĂÂÊÔƠƯĐăâêôơưđ_"  # 0xA0
    "_____àảãáạ_ằẳẵắ_"  # 0xB0
    "______ặầẩẫấậè_ẻẽ"  # 0xC0
    "éẹềểễếệìỉ___ĩíịò"  # 0xD0
    "_ỏõóọồổỗốộờởỡớợù"  # 0xE0
    "_ủũúụừửữứựỳỷỹýỵ_"  # 0xF0
)
_TCVN3_READ: dict[str, str] = {chr(0xA0 + i): u for i, u in enumerate(_TCVN3_ROWS) if u != "_"}
# Capitals TCVN3 cannot tell from their small letters (it has a byte of their own for Ă Â Đ Ê Ô Ơ Ư only).
_CASELESS_CAPITALS = frozenset(u.upper() for u in _TCVN3_READ.values()
                               if u.islower() and u.upper() not in _TCVN3_READ.values())


def tcvn3_reading(value: str) -> str | None:
    """The value read as TCVN3 bytes (Latin-1 code points), NFC; None when it cannot be a byte string.

    Letters whose capital TCVN3 cannot write come out small, as the bytes carry no case for them.
    """
    if any(ord(c) > 0xFF for c in value):
        return None
    return unicodedata.normalize("NFC", "".join(_TCVN3_READ.get(c, c) for c in value))


def fold_tcvn3_case(text: str) -> str:
    """NFC text with every capital TCVN3 cannot carry made small ('ÁO' → 'áO'; 'Đ', 'Ơ', 'O' kept)."""
    return "".join(c.lower() if c in _CASELESS_CAPITALS else c for c in unicodedata.normalize("NFC", text))


def text_matches(source: str, target: str) -> bool:
    """A converted text matches its legacy source when it is the source as stored (NFC), or the source's
    TCVN3 reading up to the case of the capitals TCVN3 cannot carry (the conversion restores those
    from context; the bytes cannot confirm them). Every other letter, and its case, must agree."""
    if unicodedata.normalize("NFC", source) == unicodedata.normalize("NFC", target):
        return True
    reading = tcvn3_reading(source)
    return reading is not None and fold_tcvn3_case(reading) == fold_tcvn3_case(target)


def field_matches(expected: Any, actual: Any, how: str) -> bool:
    """One normalised source value against its target value, under the correspondence's comparison."""
    if how == "text" and isinstance(expected, str) and isinstance(actual, str):
        return text_matches(expected, actual)
    return expected == actual


def shown_expected(expected: Any, how: str) -> str:
    """The expected value as a finding shows it: a text with a TCVN3 reading shows that reading too."""
    if how == "text" and isinstance(expected, str):
        reading = tcvn3_reading(expected)
        if reading is not None and reading != expected:
            return f"{expected} (TCVN3: {reading})"
    return str(expected)


def sample_rows(con: duckdb.DuckDBPyConnection, parquet: Path, strata: list[str], seed: int, table: str,
                confidence: float, max_defect_rate: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Draw the plan's sample in every stratum; returns (sampled rows, plan rows)."""
    cols = ", ".join(f'"{check_ident(c, "column")}"' for c in strata)
    counts = con.execute(f"SELECT {cols}, count(*) FROM read_parquet({sql_path(parquet)}) GROUP BY ALL "
                         f"ORDER BY ALL").fetchall()
    picks, plan = [], []
    for *sv, pop in counts:
        name = f"{table}:" + "|".join(str(v) for v in sv)
        n = zero_acceptance_sample_size(confidence, max_defect_rate, pop)
        plan.append({"table": table, "stratum": "|".join(str(v) for v in sv), "population": pop, "sample": n})
        picks += [(*[str(v) for v in sv], i) for i in draw(pop, n, seed, name)]
    if not picks:
        return [], plan
    keys = pa.table({**{f"s{i}": [p[i] for p in picks] for i in range(len(strata))}, "rn": [p[-1] for p in picks]})
    con.register("picks", keys)
    on = " AND ".join(f'coalesce(CAST(t."{c}" AS VARCHAR), \'None\') = picks.s{i}' for i, c in enumerate(strata))
    sql = (f'WITH t AS (SELECT *, row_number() OVER (PARTITION BY {cols} ORDER BY "_SRC_KEY") - 1 AS rn '

           f"FROM read_parquet({sql_path(parquet)})) SELECT t.* FROM t JOIN picks ON {on} AND t.rn = picks.rn")
    rows = con.sql(sql).to_arrow_table().to_pylist()
    con.unregister("picks")
    return rows, plan


def source_rows(con: duckdb.DuckDBPyConnection, src_keys: list[str], schema_of: Any) -> dict[str, list[dict]]:
    """Look the sampled rows' sources up in staging, one query per source table."""
    by_table: dict[str, list[dict[str, str]]] = defaultdict(list)
    for k in src_keys:
        table, *parts = k.split("|")
        by_table[table].append({"_SRC_KEY": k, **dict(p.split("=", 1) for p in parts)})
    found: dict[str, list[dict]] = defaultdict(list)
    for table, keys in by_table.items():
        db, name = table.split(".", 1)
        cols = [c for c in keys[0] if c != "_SRC_KEY"]
        con.register("wanted", pa.Table.from_pylist(keys))
        on = " AND ".join(f'trim(CAST(s."{check_ident(c, "column")}" AS VARCHAR)) IS NOT DISTINCT FROM '
                          f'(CASE WHEN w."{c}" = \'None\' THEN NULL ELSE w."{c}" END)' for c in cols)
        sql = (f'SELECT s.*, w."_SRC_KEY" AS "__K" FROM "{schema_of(db)}"."{check_ident(name, "table")}" s '
               f"JOIN wanted w ON {on}")
        for r in con.sql(sql).to_arrow_table().to_pylist():
            found[r.pop("__K")].append({k.upper(): v for k, v in r.items()})
        con.unregister("wanted")
    return found


def compare(table: str, rows: list[dict[str, Any]], sources: dict[str, list[dict]]) -> list[dict[str, Any]]:
    """Field-by-field results: one failing check row per differing field, one passing row per record."""
    out = []
    for row in rows:
        candidates = sources.get(row["_SRC_KEY"], [])
        best: list[tuple[str, str, Any, Any]] | None = None
        for src in candidates or [None]:  # duplicates in the source: the record passes if one of them matches
            diffs = [(t, how, normalise(src.get(s) if src else None, how), normalise(row.get(t), how))
                     for t, s, how in CORRESPONDENCE[table]]
            diffs = [d for d in diffs if src is None or not field_matches(d[2], d[3], d[1])]
            if best is None or len(diffs) < len(best):
                best = diffs
        assert best is not None
        if not best:
            out.append({"check_id": "sample_record", "table_name": table, "key": row["_SRC_KEY"], "field": "*",
                        "expected": "equal", "actual": "equal", "status": "pass"})
        for field, how, exp, act in best:
            out.append({"check_id": "sample_field", "table_name": table, "key": row["_SRC_KEY"], "field": field,
                        "expected": shown_expected(exp, how) if candidates else "source row not found",
                        "actual": str(act), "status": "fail"})
    return out
