"""SXXK norms: ``SXXK.DDINHMUC`` → ``DSX_DINH_MUC``, with the product's and the material's names, units and HS codes
looked up in the SXXK catalogs converted before (domain doc §4.7).

1. a key column (product, material, enterprise, office) empty → ``Q-NULL-KEY``; a negative norm or loss rate →
   ``Q-NEGATIVE-QTY``; an office outside the branch → ``R-OTHER-OFFICE``;
2. the key (product, material, enterprise, office) converted by an earlier run → ``R-ALREADY-CONVERTED``;
3. per key, in order (enterprise, office, then restore order), the first norm whose product (SSP) and material
   (SNPL) are in the converted catalogs converts (or, too long for central, ``Q-VALUE-TOO-LONG``); one whose
   product or material is not → ``Q-UNKNOWN-ITEM`` (it does not take the key); any norm after the key's
   occurrence → ``Q-DUPLICATE-KEY``;
4. converted: DM_ID = window + 5 × 1e8 + n; office renamed; VT_IDs, names, units and HS codes from the catalogs;
   absent quantities 0; the note TCVN3 → Unicode.

Lookup the step registers: ``lk_sx_items`` (office, enterprise, code, LOAI → VT_ID, name, unit, HS).
"""

from __future__ import annotations

from extract.staging import group_order
from transform.plan.model import Mapping, Rule, TablePlan
from transform.plan.sql import blank, in_list
from transform.plan.sxxk_goods import SX_ITEMS


def _item(alias: str, code: str, loai: int) -> str:
    return (f"LEFT JOIN {SX_ITEMS} AS {alias} ON {alias}.c0 = py_strip(s.MA_HQ) AND {alias}.c1 = py_strip(s.MA_DV) "
            f"AND {alias}.c2 = py_strip(s.{code}) AND {alias}.c3 = {loai}")


def sx_norm_plan(branch_offices: frozenset[str]) -> TablePlan:
    return TablePlan(
        source_db="SXXK", source_table="DDINHMUC", target="DSX_DINH_MUC",
        key=("py_strip(s.MA_SP)", "py_strip(s.MA_NPL)", "py_strip(s.MA_DV)", "py_strip(s.MA_HQ)"),
        key_detail="'MA_SP=' || k0 || ' MA_NPL=' || k1",
        order=(group_order(["MA_DV", "MA_HQ"], "s").removesuffix(", s.rowid"),),
        cascade=(
            *(Rule("Q-NULL-KEY", blank(c), f"'{c} is empty'") for c in ("MA_SP", "MA_NPL", "MA_DV", "MA_HQ")),
            Rule("Q-NEGATIVE-QTY", "s.DM_SD < 0", "'DM_SD=' || dm_sd.text"),
            Rule("Q-NEGATIVE-QTY", "s.TL_HH < 0", "'TL_HH=' || tl_hh.text"),
            Rule("R-OTHER-OFFICE", f"py_strip(s.MA_HQ) NOT IN ({in_list(branch_offices)})"),
        ),
        key_rules=(
            Rule("Q-UNKNOWN-ITEM", "sp.vt_id IS NULL", "'MA_SP=' || py_strip(s.MA_SP) || ' not in SSP/SNPL'"),
            Rule("Q-UNKNOWN-ITEM", "npl.vt_id IS NULL", "'MA_NPL=' || py_strip(s.MA_NPL) || ' not in SSP/SNPL'"),
        ),
        too_long_frees_key=False,  # (a norm too long for central still takes its key: the next one is a duplicate)
        id_column="DM_ID", id_type_digit=5, registry_kind="sx_norms",
        columns={
            "MA_HQ": "office.new", "MA_CUC_HQ": "office.cuc", "MA_DV": "py_strip(s.MA_DV)",
            "VT_ID_SP": "sp.vt_id", "VT_ID_NPL": "npl.vt_id", "MA_VAT_TU_SP": "py_strip(s.MA_SP)",
            "MA_VAT_TU_NPL": "py_strip(s.MA_NPL)", "TEN_SP": "sp.name", "TEN_NPL": "npl.name",
            "MA_DVT_SP": "sp.unit", "MA_DVT_NPL": "npl.unit", "MA_HS_SP": "sp.hs", "MA_HS_NPL": "npl.hs",
            "DM_SD": "coalesce(s.DM_SD, 0)", "TL_HH": "coalesce(s.TL_HH, 0)", "DM_CHUNG": "coalesce(s.DM_CHUNG, 0)",
            "GHI_CHU": "text_ghi_chu.fixed", "SO_TN": "s.SO_TN", "NAM_TN": "s.NAM_TN",
        },
        mappings=(
            Mapping("office", "s.MA_HQ", "office", ("new", "cuc")),
            Mapping("dm_sd", "s.DM_SD", "str", ("text",), where="s.DM_SD < 0"), Mapping("tl_hh", "s.TL_HH", "str", ("text",), where="s.TL_HH < 0"),
            Mapping("text_ghi_chu", "s.GHI_CHU", "text", ("fixed", "converted")),
        ),
        joins=(_item("sp", "MA_SP", 2), _item("npl", "MA_NPL", 1)),
        lookups=(SX_ITEMS,),
        text_fix_columns={"GHI_CHU": "GHI_CHU"},
    )
