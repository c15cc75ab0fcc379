"""The pure per-value functions a plan joins in, each computed once per *distinct* source value.

They are the functions the Python rules use (transform/codes.py, transform/offices2025.py), so the plan and the
rules agree by construction on every value; the plan only changes *how often* they run (once per distinct value,
not per row) and who loops (DuckDB joins, not Python).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

from transform import convert as cv
from transform.codes import (
    channel_code,
    fix_text,
    kind_of,
    nam_tk_bucket,
    new_unit_code,
    strip_kind_prefix,
)

# name -> (outputs as (column, arrow type), fn(ctx, value) -> tuple of outputs)
FUNCTIONS: dict[str, tuple[tuple[tuple[str, pa.DataType], ...], Callable[[cv.ConvertContext, Any], tuple[Any, ...]]]] = {
    # the central office code and Cục of a legacy office code (VNACCS rename map, or the 2025 table)
    # (only for the branch's own offices: the rules map an office after R-OTHER-OFFICE, and the 2025 table
    # covers the branch's offices only — another office has no value to compute and none is ever used)
    "office": ((("new", pa.string()), ("cuc", pa.string())),
               lambda ctx, v: cv.office(ctx, cv.Lookups(), v) if cv.in_branch(ctx, v) else (None, None)),
    # the central unit code, and whether the unit map lacked it (a finding: unmapped_unit)
    "unit": ((("new", pa.string()), ("unmapped", pa.bool_())),
             lambda ctx, v: _unit(ctx, v)),
    # NAM_TK, the partition bucket of an item code (hazard 12)
    "nam_tk": ((("bucket", pa.int32()),), lambda ctx, v: (nam_tk_bucket(v),)),
    # TCVN3 → Unicode where detected, NFC always; and whether it was TCVN3 (the text-fix report)
    "text": ((("fixed", pa.string()), ("converted", pa.bool_())), lambda ctx, v: fix_text(v)),
    # the channel (Phân luồng) as a number: 3 red, 2 yellow, 1 green, 0 otherwise (Unicode and TCVN3 spellings)
    "channel": ((("code", pa.int16()),), lambda ctx, v: (channel_code(v),)),
    # a date as the contract key spells it (YYYYMMDD; '' when absent)
    "ymd": ((("text", pa.string()),), lambda ctx, v: (v.strftime("%Y%m%d") if isinstance(v, datetime) else "",)),
    # the item code of a Ma_Phu / P_Code: (trimmed code, the code without its kind letter, the kind's LOAI_HANG)
    "kind": ((("ma_phu", pa.string()), ("ma_vt", pa.string()), ("loai", pa.int16())),
             lambda ctx, v: (cv.t(v) or "", strip_kind_prefix(cv.t(v) or "") or "", kind_of(cv.t(v) or ""))),
    # an exact decimal at the central scale, as text: half-even from a float's shortest text, as the rules round
    # (DuckDB's own cast rounds the binary value half away from zero)
    "dec4": ((("exact", pa.string()),), lambda ctx, v: (_dec_text(v, 4),)),
    "dec6": ((("exact", pa.string()),), lambda ctx, v: (_dec_text(v, 6),)),
    # a quantity as the stock rules print it (an absent or zero quantity is 0)
    "qty_text": ((("text", pa.string()),), lambda ctx, v: (str(v or Decimal(0)),)),
    # a value as Python prints it (the quarantine's details name values so)
    "str": ((("text", pa.string()),), lambda ctx, v: (str(v),)),
}


def _dec_text(v: Any, scale: int) -> str | None:
    d = cv.dec(v, scale)
    return None if d is None else str(d)


def _unit(ctx: cv.ConvertContext, legacy: str | None) -> tuple[str | None, bool]:
    u = new_unit_code(legacy, ctx.unit_map)
    return u, bool(u is not None and legacy is not None and legacy.strip() not in ctx.unit_map and u != "")


# every character Python's ``str.strip`` removes (str.isspace): DuckDB's ``trim`` with this set strips exactly those
PY_WHITESPACE = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())


def register_udfs(con: duckdb.DuckDBPyConnection) -> None:
    """``py_strip(text)``: Python's ``str.strip`` (every Unicode space, as the rules trim CHAR padding) in SQL —
    DuckDB's ``trim`` with the set of Python's whitespace characters (plain ``trim`` strips only the ASCII space).
    That set costs ten times plain ``trim``; it is used only when a value, trimmed of spaces, still starts or ends
    with another whitespace character (or is empty)."""
    chars = "'" + PY_WHITESPACE.replace("'", "''") + "'"
    t = "trim(CAST(x AS VARCHAR))"
    con.execute(f"CREATE OR REPLACE TEMP MACRO py_strip(x) AS CASE WHEN NOT contains({chars}, left({t}, 1)) "
                f"AND NOT contains({chars}, right({t}, 1)) THEN {t} ELSE trim({t}, {chars}) END")


def mapping_table(ctx: cv.ConvertContext, fn: str, values: pa.Array) -> pa.Table:
    """The distinct ``values`` (column ``v``) and the function's outputs for each (one Python call per distinct
    value)."""
    outputs, f = FUNCTIONS[fn]
    if any(name == "v" for name, _t in outputs):
        raise ValueError(f"mapping function {fn!r}: an output named 'v' would hide the values it maps")
    distinct = values.unique() if len(values) else values
    rows = [f(ctx, v) for v in distinct.to_pylist()]
    cols = {"v": distinct}
    for i, (name, ty) in enumerate(outputs):
        cols[name] = pa.array([r[i] for r in rows], type=ty)
    return pa.table(cols)
