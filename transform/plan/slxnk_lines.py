"""Goods lines of GC and CX declarations: ``SLXNK.DHangMD`` → ``DHANG_MD`` (domain doc §3, §4.5).

1. a key column (SoTK, Ma_LH, Ma_HQ, NamDK, STTHang) empty → ``Q-NULL-KEY``; a negative quantity →
   ``Q-NEGATIVE-QTY``;
2. the parent is the SLXNK declaration with the line's full key (never an SXXK one with the same key): neither
   converted nor quarantined → ``R-DECL-NOT-SELECTED``; converted by an earlier run → ``R-ALREADY-CONVERTED``;
3. per declaration and line number (STTHang) the first line (by declaration, then restore order) is the line,
   a later one ``Q-DUPLICATE-KEY``; under a quarantined declaration the line is quarantined with it
   (``Q-PARENT-QUARANTINED``); a line too long for central is ``Q-VALUE-TOO-LONG`` and keeps its number taken;
4. converted: TK_ID and HD_ID of the declaration; the item code is Ma_Phu without its kind letter, LOAI_HANG
   the kind letter's number; VT_ID the GC item of the contract (GC) or the CX catalog item of the office and
   enterprise (CX), 0 when none; quantities, prices and values as exact decimals at the central scale (the
   source decimals are as fine or coarser: no rounding); name TCVN3 → Unicode; unit by the unit map.

The lookups the step registers: ``lk_decls`` (the converted declarations: k0..k3 → tk_id, hd_id, ma_dv, db,
prior), ``lk_qdecls`` (the quarantined ones: k0..k3, db → reason), ``lk_gc_items`` and ``lk_cx_items``.
"""

from __future__ import annotations

from extract.staging import group_order
from transform.plan.model import Mapping, Rule, TablePlan
from transform.plan.sql import blank, on_decl, quarantined_decl

DECLS, QDECLS, GC_ITEMS, CX_ITEMS = "lk_decls", "lk_qdecls", "lk_gc_items", "lk_cx_items"


def parent_joins(db: str) -> tuple[str, str]:
    """A child row's declaration of database ``db`` by its full key: ``d`` converted (now, or by an earlier run
    whose registry did not record the database), ``q`` quarantined."""
    return (f"LEFT JOIN {DECLS} AS d ON {on_decl('d')} AND (d.db = '{db}' OR d.db IS NULL)",
            f"LEFT JOIN {QDECLS} AS q ON {on_decl('q')} AND q.db = '{db}'")



def slxnk_line_plan() -> TablePlan:
    regime = "substr(py_strip(s.MA_LH), 2, 2)"
    key_cols = ("SOTK", "MA_LH", "MA_HQ", "NAMDK", "STTHANG")
    return TablePlan(
        source_db="SLXNK", source_table="DHangMD", target="DHANG_MD",
        key=("s.SOTK", "py_strip(s.MA_LH)", "py_strip(s.MA_HQ)", "s.NAMDK", "s.STTHANG"),
        key_detail="'STTHang=' || k4",
        order=(group_order(["SoTK", "Ma_LH", "Ma_HQ", "NamDK"], "s").removesuffix(", s.rowid"),),
        cascade=(
            *(Rule("Q-NULL-KEY", blank(c) if c in ("MA_LH", "MA_HQ") else f"s.{c} IS NULL", f"'{c} is empty'")
              for c in key_cols),
            Rule("Q-NEGATIVE-QTY", "s.LUONG < 0", "'LUONG=' || luong.text"),
            Rule("R-DECL-NOT-SELECTED", "d.tk_id IS NULL AND q.reason IS NULL"),
            Rule("R-ALREADY-CONVERTED", "d.tk_id IS NOT NULL AND d.prior"),
        ),
        after_key=(Rule("Q-PARENT-QUARANTINED", "_parent_quarantined IS NOT NULL", "_parent_quarantined"),),
        carry={"_parent_quarantined": f"CASE WHEN d.tk_id IS NULL THEN {quarantined_decl('SLXNK', 'q')} END"},
        too_long_frees_key=False,
        id_column=None, id_type_digit=0, registry_kind=None,
        columns={
            "TK_ID": "d.tk_id", "STT_HANG": "CAST(s.STTHANG AS INTEGER)", "MA_HQ": "office.new",
            "MA_CUC_HQ": "office.cuc", "SO_TK": "s.SOTK", "MA_LH": "py_strip(s.MA_LH)", "NAM_DK": "s.NAMDK",
            "MA_PHU": "kind.ma_phu", "MA_VAT_TU": "kind.ma_vt", "LOAI_HANG": "kind.loai",
            "VT_ID": "coalesce(gi.vt_id, ci.vt_id, 0)", "HD_ID": "d.hd_id", "TEN_HANG": "text_ten_hang.fixed",
            "NUOC_XX": "py_strip(s.NUOC_XX)", "MA_DVT": "unit_ma_dvt.new",
            # (the source columns are decimals of the central scale or finer-grained: the casts are exact)
            "LUONG": "CAST(s.LUONG AS DECIMAL(24, 8))", "DGIA_KB": "CAST(s.DGIA_KB AS DECIMAL(24, 6))",
            "DGIA_TT": "CAST(s.DGIA_TT AS DECIMAL(24, 6))", "TRIGIA_KB": "CAST(s.TRIGIA_KB AS DECIMAL(24, 4))",
            "TRIGIA_TT": "CAST(s.TRIGIA_TT AS DECIMAL(24, 4))", "TS_XNK": "CAST(s.TS_XNK AS DECIMAL(18, 8))",
            "THUE_XNK": "CAST(s.THUE_XNK AS DECIMAL(24, 4))", "THUE_VAT": "NULL::DECIMAL(24, 4)",
            "LAN_DC": "NULL::INTEGER", "NGUON": "'DHangMD'",
        },
        mappings=(
            Mapping("office", "s.MA_HQ", "office", ("new", "cuc")),
            Mapping("kind", "s.MA_PHU", "kind", ("ma_phu", "ma_vt", "loai")),
            Mapping("luong", "s.LUONG", "str", ("text",), where="s.LUONG < 0"),
            Mapping("text_ten_hang", "s.TEN_HANG", "text", ("fixed", "converted")),
            Mapping("unit_ma_dvt", "s.MA_DVT", "unit", ("new", "unmapped")),
        ),
        joins=(
            *parent_joins("SLXNK"),
            f"LEFT JOIN {GC_ITEMS} AS gi ON {regime} = 'GC' AND gi.hd_id = d.hd_id AND gi.ma_vt = kind.ma_vt "
            "AND gi.loai = kind.loai",
            f"LEFT JOIN {CX_ITEMS} AS ci ON {regime} = 'CX' AND d.tk_id IS NOT NULL AND ci.c0 = py_strip(s.MA_HQ) "
            "AND ci.c1 = d.ma_dv AND ci.c2 = kind.ma_vt AND ci.c3 = CASE WHEN kind.loai = 1 THEN 1 ELSE 2 END",
        ),
        lookups=(DECLS, QDECLS, GC_ITEMS, CX_ITEMS),
        text_fix_columns={"TEN_HANG": "TEN_HANG"}, unit_columns=("MA_DVT",),
    )
