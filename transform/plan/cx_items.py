"""CX goods catalogs: ``SLXNK.ecsCX_DM_HH_DUA_VAO_D`` (goods brought in, type digit 6) and ``…_DUA_RA_D``
(goods taken out, type digit 7) → ``DCX_DM_HH_DUA_VAO_RA`` (domain doc §4.7).

1. an empty key column (office, enterprise, goods code) → ``Q-NULL-KEY``; an office outside the branch →
   ``R-OTHER-OFFICE``;
2. the key (office, enterprise, goods code, in/out) converted by an earlier run → ``R-ALREADY-CONVERTED``; its
   first occurrence whose values fit → converted; an earlier one that does not fit → ``Q-VALUE-TOO-LONG``; a
   later one → ``Q-DUPLICATE-KEY``;
3. converted: VT_ID = window + (6 in | 7 out) × 1e8 + n; office renamed; the name TCVN3 → Unicode; HS code
   trimmed, blank → one space, cut to 12; unit by the unit map; NAM_TK the goods code's bucket.
"""

from __future__ import annotations

from transform.plan.model import Mapping, Rule, TablePlan
from transform.plan.sql import blank, in_list


def cx_item_plan(is_in: bool, branch_offices: frozenset[str]) -> TablePlan:
    flag = 1 if is_in else 2
    offices = in_list(branch_offices)
    return TablePlan(
        source_db="SLXNK", source_table="ecsCX_DM_HH_DUA_VAO_D" if is_in else "ecsCX_DM_HH_DUA_RA_D",
        target="DCX_DM_HH_DUA_VAO_RA",
        key=("py_strip(s.MA_HQTN)", "py_strip(s.MA_DV_XN)", "py_strip(s.MA_HANG)", str(flag)),
        key_detail="'MA_HANG=' || k2",
        cascade=(
            Rule("Q-NULL-KEY", blank("MA_HQTN"), "'MA_HQTN is empty'"),
            Rule("Q-NULL-KEY", blank("MA_DV_XN"), "'MA_DV_XN is empty'"),
            Rule("Q-NULL-KEY", blank("MA_HANG"), "'MA_HANG is empty'"),
            Rule("R-OTHER-OFFICE", f"py_strip(s.MA_HQTN) NOT IN ({offices})"),
        ),
        id_column="VT_ID", id_type_digit=6 if is_in else 7, registry_kind="cx_items",
        columns={
            "MA_HQ": "office.new", "MA_CUC_HQ": "office.cuc", "MA_DV": "py_strip(s.MA_DV_XN)",
            "MA_HANG": "py_strip(s.MA_HANG)", "IS_DUA_VAO": str(flag), "TEN_HANG": "text_ten_hang.fixed",
            "MA_HS": "left(coalesce(nullif(py_strip(s.MA_HS), ''), ' '), 12)", "MA_DVT": "unit_ma_dvt.new",
            "LOAI_HANG": "s.LOAI_HANG", "SO_TN": "s.SO_DK", "NAM_TN": "s.NAM_DK", "NAM_TK": "nam_tk.bucket",
        },
        mappings=(
            Mapping("office", "s.MA_HQTN", "office", ("new", "cuc")),
            Mapping("nam_tk", "py_strip(s.MA_HANG)", "nam_tk", ("bucket",)),
            Mapping("text_ten_hang", "s.TEN_HANG", "text", ("fixed", "converted")),
            Mapping("unit_ma_dvt", "s.MA_DVT", "unit", ("new", "unmapped")),
        ),
        text_fix_columns={"TEN_HANG": "TEN_HANG"}, unit_columns=("MA_DVT",),
    )
