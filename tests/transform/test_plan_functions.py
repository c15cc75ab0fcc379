"""The plans' SQL helpers agree with the Python the rules use."""

from __future__ import annotations

import sys

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from transform.plan.functions import PY_WHITESPACE, register_udfs

# every whitespace character, letters with and without combining marks, zero-width and CJK/emoji, quotes
_ALPHABET = st.sampled_from(list(PY_WHITESPACE) + list("aé\u1ec7\u0301\u200b\ufeff\u4e2d\U0001F600'\"x%_\\"))


def test_the_whitespace_set_is_pythons() -> None:
    assert PY_WHITESPACE == "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
    assert "\u3000" in PY_WHITESPACE and "\xa0" in PY_WHITESPACE and "\u200b" not in PY_WHITESPACE


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(_ALPHABET, max_size=12), st.text(max_size=12)), min_size=1,
                max_size=300))
def test_py_strip_in_sql_is_pythons_strip(values: list[str | None]) -> None:
    con = duckdb.connect()
    register_udfs(con)
    con.register("t", pa.table({"i": pa.array(range(len(values)), pa.int64()), "v": pa.array(values, pa.string())}))
    got = [g for (g,) in con.execute("SELECT py_strip(v) FROM t ORDER BY i").fetchall()]
    assert got == [None if v is None else v.strip() for v in values]
    # numbers are stripped as their text, as the rules strip ``str(value)``
    assert con.execute("SELECT py_strip(12), py_strip(CAST(1.5 AS DECIMAL(5, 2)))").fetchall() == [("12", "1.50")]
