"""GC and CX norms (domain doc §4.7), the same shape as the SXXK norms (:mod:`.sx_norms`):

``SLXNK.DDMuc`` → ``DGC_DINH_MUC`` — per GC contract:

1. the contract's key (So_HD, office, enterprise, signing date) empty → ``Q-NULL-KEY``; its office outside the
   branch → ``R-OTHER-OFFICE``; the contract not among the converted ones → ``Q-GC-NO-CONTRACT``; product or
   material code empty → ``Q-NULL-KEY``; a negative norm or loss rate → ``Q-NEGATIVE-QTY``;
2. the key (contract, product, material — codes without their kind letter) converted by an earlier run →
   ``R-ALREADY-CONVERTED``; per key the first norm whose product and material are items of the contract converts,
   one whose item is not → ``Q-UNKNOWN-ITEM`` (it does not take the key), later ones → ``Q-DUPLICATE-KEY``;
3. converted: DM_ID = window + 5 × 1e8 + n; VT_IDs of the contract's items; names TCVN3 → Unicode; unit mapped.

``SLXNK.ecsCX_DinhMuc`` → ``DCX_DINH_MUC`` — per CX enterprise: keys (product, material, office, enterprise)
empty → ``Q-NULL-KEY``; negative → ``Q-NEGATIVE-QTY``; another office → ``R-OTHER-OFFICE``; then as above with
the product a goods-out and the material a goods-in item of the CX catalog.

A norm too long for central still takes its key (as the rules do).
"""

from __future__ import annotations

from extract.staging import group_order
from transform.plan.declarations import CONTRACTS
from transform.plan.model import Mapping, Rule, TablePlan
from transform.plan.slxnk_lines import CX_ITEMS, GC_ITEMS
from transform.plan.sql import blank, in_list


def gc_norm_plan(branch_offices: frozenset[str]) -> TablePlan:
    return TablePlan(
        source_db="SLXNK", source_table="DDMuc", target="DGC_DINH_MUC",
        key=("c.hd_id", "sp.ma_vt", "npl.ma_vt"), key_detail="'SPP_Code=' || k1 || ' NPLP_Code=' || k2",
        order=(group_order(["So_HD", "Ma_HQHD", "DVGC", "Ngay_Ky"], "s").removesuffix(", s.rowid"),),
        cascade=(
            *(Rule("Q-NULL-KEY", blank(c), f"'{c} is empty'") for c in ("SO_HD", "MA_HQHD", "DVGC")),
            Rule("Q-NULL-KEY", "s.NGAY_KY IS NULL", "'NGAY_KY is empty'"),
            Rule("R-OTHER-OFFICE", f"py_strip(s.MA_HQHD) NOT IN ({in_list(branch_offices)})"),
            Rule("Q-GC-NO-CONTRACT", "c.hd_id IS NULL", "'So_HD=' || py_strip(s.SO_HD)"),
            *(Rule("Q-NULL-KEY", blank(c), f"'{c} is empty'") for c in ("SPP_CODE", "NPLP_CODE")),
            Rule("Q-NEGATIVE-QTY", "s.DMGC < 0", "'DMGC=' || dmgc.text"),
            Rule("Q-NEGATIVE-QTY", "s.TLHH < 0", "'TLHH=' || tlhh.text"),
        ),
        key_rules=(
            Rule("Q-UNKNOWN-ITEM", "gs.vt_id IS NULL", "'SP ' || sp.ma_vt || ' not in contract'"),
            Rule("Q-UNKNOWN-ITEM", "gn.vt_id IS NULL", "'NPL ' || npl.ma_vt || ' not in contract'"),
        ),
        too_long_frees_key=False,
        id_column="DM_ID", id_type_digit=5, registry_kind="gc_norms",
        columns={
            "HD_ID": "c.hd_id", "VT_ID_SP": "gs.vt_id", "VT_ID_NPL": "gn.vt_id", "MA_VAT_TU_SP": "sp.ma_vt",
            "MA_VAT_TU_NPL": "npl.ma_vt", "TEN_SP": "text_ten_sp.fixed", "TEN_NPL": "text_ten_npl.fixed",
            "MA_DVT": "unit_ma_dvt.new", "DINH_MUC": "s.DMGC", "TI_LE_HAO_HUT": "s.TLHH",
            "DINH_MUC_CHUNG": "s.DM_CHUNG",
        },
        mappings=(
            Mapping("ngay_ky", "s.NGAY_KY", "ymd", ("text",)),
            Mapping("sp", "s.SPP_CODE", "kind", ("ma_phu", "ma_vt", "loai")),
            Mapping("npl", "s.NPLP_CODE", "kind", ("ma_phu", "ma_vt", "loai")),
            Mapping("dmgc", "s.DMGC", "str", ("text",), where="s.DMGC < 0"), Mapping("tlhh", "s.TLHH", "str", ("text",), where="s.TLHH < 0"),
            Mapping("text_ten_sp", "s.TEN_SP", "text", ("fixed", "converted")),
            Mapping("text_ten_npl", "s.TEN_NPL", "text", ("fixed", "converted")),
            Mapping("unit_ma_dvt", "s.MA_DVT", "unit", ("new", "unmapped")),
        ),
        joins=(
            f"LEFT JOIN {CONTRACTS} AS c ON c.c0 = coalesce(py_strip(s.SO_HD), '') "
            "AND c.c1 = coalesce(py_strip(s.MA_HQHD), '') AND c.c2 = coalesce(py_strip(s.DVGC), '') "
            "AND c.c3 = ngay_ky.text",
            f"LEFT JOIN {GC_ITEMS} AS gs ON gs.hd_id = c.hd_id AND gs.ma_vt = sp.ma_vt AND gs.loai = 2",
            f"LEFT JOIN {GC_ITEMS} AS gn ON gn.hd_id = c.hd_id AND gn.ma_vt = npl.ma_vt AND gn.loai = 1",
        ),
        lookups=(CONTRACTS, GC_ITEMS),
        text_fix_columns={"TEN_SP": "Ten_SP", "TEN_NPL": "Ten_NPL"}, unit_columns=("MA_DVT",),
    )


def cx_norm_plan(branch_offices: frozenset[str]) -> TablePlan:
    def item(alias: str, code: str, flag: int) -> str:
        return (f"LEFT JOIN {CX_ITEMS} AS {alias} ON {alias}.c0 = py_strip(s.MA_HQ) AND {alias}.c1 = py_strip(s.MA_DV) "
                f"AND {alias}.c2 = py_strip(s.{code}) AND {alias}.c3 = {flag}")
    return TablePlan(
        source_db="SLXNK", source_table="ecsCX_DinhMuc", target="DCX_DINH_MUC",
        key=("py_strip(s.MA_HQ)", "py_strip(s.MA_DV)", "py_strip(s.MA_SP)", "py_strip(s.MA_NPL)"),
        key_detail="'MA_SP=' || k2 || ' MA_NPL=' || k3",
        order=(group_order(["MA_DV", "MA_HQ"], "s").removesuffix(", s.rowid"),),
        cascade=(
            *(Rule("Q-NULL-KEY", blank(c), f"'{c} is empty'") for c in ("MA_SP", "MA_NPL", "MA_HQ", "MA_DV")),
            Rule("Q-NEGATIVE-QTY", "s.DINH_MUC < 0", "'DINH_MUC=' || dinh_muc.text"),
            Rule("Q-NEGATIVE-QTY", "s.TY_LE_HH < 0", "'TY_LE_HH=' || ty_le_hh.text"),
            Rule("R-OTHER-OFFICE", f"py_strip(s.MA_HQ) NOT IN ({in_list(branch_offices)})"),
        ),
        key_rules=(
            Rule("Q-UNKNOWN-ITEM", "vs.vt_id IS NULL", "'SP ' || py_strip(s.MA_SP) || ' not in CX catalog'"),
            Rule("Q-UNKNOWN-ITEM", "vn.vt_id IS NULL", "'NPL ' || py_strip(s.MA_NPL) || ' not in CX catalog'"),
        ),
        too_long_frees_key=False,
        id_column="DM_ID", id_type_digit=5, registry_kind="cx_norms",
        columns={
            "MA_HQ": "office.new", "MA_CUC_HQ": "office.cuc", "MA_DV": "py_strip(s.MA_DV)",
            "MA_SP": "py_strip(s.MA_SP)", "MA_NPL": "py_strip(s.MA_NPL)", "VT_ID_SP": "vs.vt_id",
            "VT_ID_NPL": "vn.vt_id", "DINH_MUC": "s.DINH_MUC", "TY_LE_HH": "s.TY_LE_HH",
            "DINH_MUC_CO_HH": "s.DINH_MUC_CO_HH",
        },
        mappings=(
            Mapping("office", "s.MA_HQ", "office", ("new", "cuc")),
            Mapping("dinh_muc", "s.DINH_MUC", "str", ("text",), where="s.DINH_MUC < 0"), Mapping("ty_le_hh", "s.TY_LE_HH", "str", ("text",), where="s.TY_LE_HH < 0"),
        ),
        joins=(item("vs", "MA_SP", 2), item("vn", "MA_NPL", 1)),
        lookups=(CX_ITEMS,),
    )
