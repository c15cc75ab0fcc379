"""Goods lines of SXXK declarations: ``SXXK.DHANGMDTH`` (as declared), ``…DC`` (amended, with the latest
``DHANGMDDC_CT`` tax detail of the amendment) and ``…DK`` (as registered) → ``DHANG_MD`` (domain doc §3, §4.5).

Which lines a declaration keeps (§3), decided over ALL its lines, defects or not (a line quarantined for its own
values still supersedes: it is the line that should have been converted):

* NSX imports (Ma_LH ``NSX…``): per MA_PHU the DC line with the highest LAN_DC (the first of equals) →
  the others ``R-DC-SUPERSEDED``; TH lines ``R-NSX-GOODS-FROM-DC``; a DK line whose MA_PHU has a DC line
  ``R-DK-SUPERSEDED`` (otherwise it fills the gap, as LAN_DC 0);
* other declarations: DC lines ``R-DC-NOT-NSX``; DK lines ``R-DK-SUPERSEDED`` when the declaration has TH lines.

A line's fate, in order: its declaration (SXXK, full key) excluded → ``R-DECL-NOT-SELECTED``, or converted by an
earlier run → ``R-ALREADY-CONVERTED`` — a DK line with a declaration key always takes that rule, any other line
its own defect first (``Q-NULL-KEY``, ``Q-NEGATIVE-QTY``); then the selection rule above (same precedence);
then its own defect; then per MA_PHU the first line is kept, later ones ``Q-DUPLICATE-KEY``; a kept line of a
quarantined declaration waits with it (``Q-PARENT-QUARANTINED``); one too long for central is
``Q-VALUE-TOO-LONG``.

Converted: STT_HANG renumbered 1..n by MA_PHU over the lines kept; the item code MA_NPL_SP, or — when it merely
repeats MA_PHU — the DK line's code (hazard 9); VT_ID the SXXK catalog item of the office, enterprise, code and
LOAI (1 when the declaration's XUAT_NPL_SP is 'N', else 2), 0 when none; a DC line's taxes from its latest tax
detail when it has one; LAN_DC on NSX lines (0 for a DK gap fill); prices and values half-even at the central
scale; name TCVN3 → Unicode; unit by the unit map.

Lookups the step registers: ``lk_decls``, ``lk_qdecls`` (as for the SLXNK lines) and ``lk_sx_items`` (office,
enterprise, code, LOAI → VT_ID).
"""

from __future__ import annotations

from extract.staging import GOODS_ORDER, sxxk_goods_sql
from transform.plan.model import Mapping, Rule, TablePlan
from transform.plan.slxnk_lines import DECLS, QDECLS, parent_joins
from transform.plan.sql import blank, exact_decimal, quarantined_decl

SX_ITEMS = "lk_sx_items"
SOURCES = ("SXXK.DHANGMDTH", "SXXK.DHANGMDDC", "SXXK.DHANGMDDK")
SELECTION = ("R-NSX-GOODS-FROM-DC", "R-DC-SUPERSEDED", "R-DK-SUPERSEDED", "R-DC-NOT-NSX")

_G = "s.SOTK, py_strip(s.MA_LH), py_strip(s.MA_HQ), s.NAMDK"   # the declaration of a line
_MP = "coalesce(py_strip(s.MA_PHU), '')"
_NSX = "coalesce(starts_with(py_strip(s.MA_LH), 'NSX'), false)"
_CODE = "coalesce(py_strip(s.MA_NPL_SP), '')"
_ITEM = f"CASE WHEN {_CODE} = {_MP} AND coalesce(s._DK_CODE, '') <> '' THEN s._DK_CODE ELSE {_CODE} END"
_TAX_CT = "s._SRC = 'DC' AND s._CT_THUE_XNK IS NOT NULL"
# the float columns as exact decimals at the central scale: column -> (SQL, the mapping it needs)
_DEC = {
    "DGIA_KB": exact_decimal("s.DGIA_KB", "dgia_kb", 6), "DGIA_TT": exact_decimal("s.DGIA_TT", "dgia_tt", 6),
    "TRIGIA_KB": exact_decimal("s.TRIGIA_KB", "trigia_kb", 4), "TRIGIA_TT": exact_decimal("s.TRIGIA_TT", "trigia_tt", 4),
    "THUE_XNK": exact_decimal(f"CASE WHEN {_TAX_CT} THEN s._CT_THUE_XNK ELSE s.THUE_XNK END", "thue_xnk", 4),
    "THUE_VAT": exact_decimal(f"CASE WHEN {_TAX_CT} THEN s._CT_THUE_VAT END", "thue_vat", 4),
}



def sxxk_goods_plan() -> TablePlan:
    own = (*(Rule("Q-NULL-KEY", blank(c) if c in ("MA_LH", "MA_HQ", "MA_PHU") else f"s.{c} IS NULL",
                  f"'{c} is empty'") for c in ("SOTK", "MA_LH", "MA_HQ", "NAMDK", "MA_PHU")),
           Rule("Q-NEGATIVE-QTY", "s.LUONG < 0", "'LUONG=' || luong.text"))
    dk_with_key = ("s._SRC = 'DK' AND NOT (s.SOTK IS NULL OR s.NAMDK IS NULL OR "
                   f"{blank('MA_LH')} OR {blank('MA_HQ')})")

    def unless_own(when: str, code: str) -> tuple[Rule, ...]:
        """``code`` for the rows matching ``when``: a DK line with a declaration key takes it whatever its own
        values; any other line its own defect first."""
        return (Rule(code, f"({when}) AND {dk_with_key}"),
                *(Rule(r.code, f"({when}) AND ({r.when})", r.detail) for r in own), Rule(code, when))

    excluded = "d.tk_id IS NULL AND q.reason IS NULL"
    prior = "d.tk_id IS NOT NULL AND d.prior"
    selection = (*(Rule(x, f"s._SEL = '{x}' AND {dk_with_key}") for x in SELECTION),
                 *(Rule(r.code, f"s._SEL IS NOT NULL AND ({r.when})", r.detail) for r in own),
                 *(Rule(x, f"s._SEL = '{x}'") for x in SELECTION))
    kept = "_code IN ('', 'Q-VALUE-TOO-LONG')"
    return TablePlan(
        source_db="SXXK", source_table="DHANGMD(TH/DC/DK)", target="DHANG_MD",
        source_sql=sxxk_goods_sql(), sources=SOURCES, order=GOODS_ORDER,
        derive={
            "_SEL": f"""CASE WHEN {_NSX} THEN (CASE
                WHEN s._SRC = 'TH' THEN 'R-NSX-GOODS-FROM-DC'
                WHEN s._SRC = 'DC' AND {_MP} <> '' AND first_value(s.rowid) OVER (PARTITION BY {_G}, {_MP},
                     s._SRC = 'DC' ORDER BY coalesce(s.LAN_DC, 0) DESC, s.rowid) <> s.rowid THEN 'R-DC-SUPERSEDED'
                WHEN s._SRC = 'DK' AND count(*) FILTER (WHERE s._SRC = 'DC' AND {_MP} <> '')
                     OVER (PARTITION BY {_G}, {_MP}) > 0 THEN 'R-DK-SUPERSEDED' END)
              ELSE (CASE WHEN s._SRC = 'DC' THEN 'R-DC-NOT-NSX'
                         WHEN s._SRC = 'DK' AND count(*) FILTER (WHERE s._SRC = 'TH') OVER (PARTITION BY {_G}) > 0
                         THEN 'R-DK-SUPERSEDED' END) END""",
            # the item code of the declaration's last DK line of the same MA_PHU (hazard 9)
            "_DK_CODE": f"arg_max_null(py_strip(s.MA_NPL_SP), s.rowid) FILTER (WHERE s._SRC = 'DK' AND {_MP} <> '') "
                        f"OVER (PARTITION BY {_G}, {_MP})",
        },
        key=("s.SOTK", "py_strip(s.MA_LH)", "py_strip(s.MA_HQ)", "s.NAMDK", _MP),
        key_detail="'MA_PHU=' || k4",
        cascade=(*unless_own(excluded, "R-DECL-NOT-SELECTED"), *unless_own(prior, "R-ALREADY-CONVERTED"),
                 *selection, *own),
        after_key=(Rule("Q-PARENT-QUARANTINED", "_parent_quarantined IS NOT NULL", "_parent_quarantined"),),
        carry={"_parent_quarantined": f"CASE WHEN d.tk_id IS NULL THEN {quarantined_decl('SXXK', 'q')} END",
               "_nsx": _NSX, "_src": "s._SRC", "_lan_dc": "s.LAN_DC", "_ct": "s._CT_LAN_DC_CT", "_mp": _MP},
        too_long_frees_key=False,
        id_column=None, id_type_digit=0, registry_kind=None,
        columns={
            "TK_ID": "d.tk_id", "MA_HQ": "office.new", "MA_CUC_HQ": "office.cuc", "SO_TK": "s.SOTK",
            "MA_LH": "py_strip(s.MA_LH)", "NAM_DK": "s.NAMDK", "MA_PHU": "py_strip(s.MA_PHU)", "MA_VAT_TU": _ITEM,
            "LOAI_HANG": "CASE WHEN d.xnsp = 'N' THEN 1 ELSE 2 END", "VT_ID": "coalesce(si.vt_id, 0)",
            "HD_ID": "d.hd_id", "TEN_HANG": "text_ten_hang.fixed", "NUOC_XX": "py_strip(s.NUOC_XX)",
            "MA_DVT": "unit_ma_dvt.new", "LUONG": "CAST(s.LUONG AS DECIMAL(24, 8))",
            "DGIA_KB": _DEC["DGIA_KB"][0], "DGIA_TT": _DEC["DGIA_TT"][0], "TRIGIA_KB": _DEC["TRIGIA_KB"][0],
            "TRIGIA_TT": _DEC["TRIGIA_TT"][0], "TS_XNK": "CAST(s.TS_XNK AS DECIMAL(18, 8))",
            "THUE_XNK": _DEC["THUE_XNK"][0], "THUE_VAT": _DEC["THUE_VAT"][0],
            "LAN_DC": f"CASE WHEN {_NSX} THEN coalesce(s.LAN_DC, 0) END",
            "NGUON": "left(replace(s._SOURCE, 'SXXK.', ''), 12)",
        },
        late_columns={"STT_HANG": f"CASE WHEN {kept} THEN row_number() OVER (PARTITION BY k0, k1, k2, k3, {kept} "
                                  "ORDER BY k4) END",
                      "_decl_rid": "min(_rid) OVER (PARTITION BY k0, k1, k2, k3)"},
        report_order=("_decl_rid", "STT_HANG"),  # a declaration's kept lines are built in line-number order
        mappings=(
            Mapping("office", "s.MA_HQ", "office", ("new", "cuc")),
            Mapping("luong", "s.LUONG", "str", ("text",), where="s.LUONG < 0"),
            Mapping("text_ten_hang", "s.TEN_HANG", "text", ("fixed", "converted")),
            Mapping("unit_ma_dvt", "s.MA_DVT", "unit", ("new", "unmapped")),
            *(m for _sql, m in _DEC.values()),
        ),
        joins=(
            *parent_joins("SXXK"),
            f"LEFT JOIN {SX_ITEMS} AS si ON si.c0 = py_strip(s.MA_HQ) AND si.c1 = d.ma_dv AND si.c2 = ({_ITEM}) "
            "AND si.c3 = CASE WHEN d.xnsp = 'N' THEN 1 ELSE 2 END",
        ),
        lookups=(DECLS, QDECLS, SX_ITEMS),
        text_fix_columns={"TEN_HANG": "TEN_HANG"}, unit_columns=("MA_DVT",),
    )
