"""SXXK material and product catalogs: ``SXXK.SNPL`` (LOAI 1) and ``SXXK.SSP`` (LOAI 2) → ``DSX_SP_NPL``.

The 2014 rule (domain doc §4.7), as the plan states it:

1. a key column (office, enterprise, item code) empty → ``Q-NULL-KEY``;
2. an office outside the branch → ``R-OTHER-OFFICE``;
3. the key (office, enterprise, item code, LOAI) converted by an earlier run → ``R-ALREADY-CONVERTED``;
   its first occurrence whose values fit the target → converted; an earlier one that does not fit →
   ``Q-VALUE-TOO-LONG``; any later one → ``Q-DUPLICATE-KEY``;
4. converted: VT_ID = window + LOAI × 1e8 + n; office reshaped and renamed (VNACCS map or the 2025 table);
   NAM_DK = NAM_TN (2007 when absent); NAM_TK = the item code's bucket; the name TCVN3 → Unicode (a blank
   name becomes one space); HS code trimmed (blank → one space); unit by the unit map.
"""

from __future__ import annotations

from transform.plan.model import Mapping, Rule, TablePlan
from transform.plan.sql import blank, in_list


def sx_item_plan(loai: int, branch_offices: frozenset[str]) -> TablePlan:
    table, code, name = ("SNPL", "MA_NPL", "TEN_NPL") if loai == 1 else ("SSP", "MA_SP", "TEN_SP")
    offices = in_list(branch_offices)
    return TablePlan(
        source_db="SXXK", source_table=table, target="DSX_SP_NPL",
        key=("py_strip(s.MA_HQ)", "py_strip(s.MA_DV)", f"py_strip(s.{code})", str(loai)),
        key_detail=f"'{code}=' || k2",
        cascade=(
            Rule("Q-NULL-KEY", blank("MA_HQ"), "'MA_HQ is empty'"),
            Rule("Q-NULL-KEY", blank("MA_DV"), "'MA_DV is empty'"),
            Rule("Q-NULL-KEY", blank(code), f"'{code} is empty'"),
            Rule("R-OTHER-OFFICE", f"py_strip(s.MA_HQ) NOT IN ({offices})"),
        ),
        id_column="VT_ID", id_type_digit=loai, registry_kind="sx_items",
        columns={
            "MA_HQ": "office.new", "MA_CUC_HQ": "office.cuc",
            "NAM_DK": "CASE WHEN s.NAM_TN IS NULL OR s.NAM_TN = 0 THEN 2007 ELSE s.NAM_TN END",
            "NAM_TK": "nam_tk.bucket", "MA_DV": "py_strip(s.MA_DV)", "MA_VAT_TU": f"py_strip(s.{code})",
            "LOAI": str(loai), "TEN_VAT_TU": "coalesce(nullif(text_ten_vat_tu.fixed, ''), ' ')",
            "MA_HS": "coalesce(nullif(py_strip(s.MA_HS), ''), ' ')", "MA_DVT": "unit_ma_dvt.new",
            "SO_TN": "s.SO_TN", "NAM_TN": "s.NAM_TN", "MESSAGE_ID": "0",
        },
        mappings=(
            Mapping("office", "s.MA_HQ", "office", ("new", "cuc")),
            Mapping("nam_tk", f"py_strip(s.{code})", "nam_tk", ("bucket",)),
            Mapping("text_ten_vat_tu", f"s.{name}", "text", ("fixed", "converted")),
            Mapping("unit_ma_dvt", "s.MA_DVT", "unit", ("new", "unmapped")),
        ),
        text_fix_columns={"TEN_VAT_TU": name}, unit_columns=("MA_DVT",),
    )
