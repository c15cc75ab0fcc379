"""SXXK stock: ``SXXK.DNPLNHAP`` → ``DSX_NPL_NHAP`` (one row) and ``DSX_NPL_NHAP_TL`` (one row per unit price of the
material's goods lines, all with the same HS_TL_ID — hazard 11), domain doc §4.6 and §6.

1. a key column (SOTK, MA_LH, MA_HQ, NAMDK, MA_NPL) empty → ``Q-NULL-KEY``; a negative quantity or stock →
   ``Q-NEGATIVE-QTY``; the SXXK declaration (full key) neither converted nor quarantined → ``R-DECL-NOT-SELECTED``;
   stock above the imported quantity → ``Q-TON-GT-LUONG``; no stock left → ``R-STOCK-ZERO``;
2. converted by an earlier run → ``R-ALREADY-CONVERTED``; its declaration quarantined → ``Q-PARENT-QUARANTINED``;
   more stock than the NSX goods lines of that material hold → ``Q-TON-GT-GOODS``;
3. converted: HS_ID (= HS_TL_ID) = window + 1 × 1e8 + n of DSX_NPL_NHAP_TL's sequence; VT_ID of the SXXK
   material; the price groups (the material's kept NSX goods lines grouped by unit price, quantities summed, the
   smallest tax rate) split the stock — remaining stock on the dearest lines: for the group of price p, R = the
   quantity of the groups priced ≥ p, used = clamp(R − TON, 0, its quantity), remaining = quantity − used;
   without goods lines one row at price 0 with TON_DAU = the imported quantity.

Lookups: ``lk_decls``, ``lk_qdecls``, ``lk_sx_items`` and ``lk_stock_groups`` (TK_ID, material → price,
quantity, rate per price group, and the goods quantity as the rules print it): a table in staging that
:func:`build_groups` makes from the SXXK goods plan's kept NSX lines, as :func:`transform.stock.group_by_price`
groups them (a missing price or rate counts as 0; quantities summed, the smallest rate).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from transform.plan.engine import temp_tables
from transform.plan.model import Mapping, Rule, TablePlan
from transform.plan.slxnk_lines import DECLS, QDECLS, parent_joins
from transform.plan.sql import blank, quarantined_decl
from transform.plan.sxxk_goods import SX_ITEMS

GROUPS = "lk_stock_groups"
_LUONG, _TON = "coalesce(s.LUONG, 0)", "coalesce(s.TON, 0)"


def build_groups(con: Any, lines_sql: str) -> None:
    """``lk_stock_groups`` in staging from the kept NSX goods lines ``lines_sql`` selects (TK_ID, material, unit
    price, quantity, tax rate): one row per (TK_ID, material, price), never through Python rows. The goods total
    is printed as the rules print a sum of Python decimals (``0`` when nothing was imported, else at the lines'
    scale) — one Python call per distinct total."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {GROUPS} AS
        SELECT tk_id, code, price, qty, rate, sum(qty) OVER (PARTITION BY tk_id, code) AS total, NULL::VARCHAR AS total_text
        FROM (SELECT l.TK_ID AS tk_id, l.MA_VAT_TU AS code, CAST(coalesce(l.DGIA_TT, 0) AS DECIMAL(38, 6)) AS price,
                     CAST(sum(coalesce(l.LUONG, 0)) AS DECIMAL(38, 8)) AS qty,
                     CAST(min(coalesce(l.TS_XNK, 0)) AS DECIMAL(38, 8)) AS rate
              FROM ({lines_sql}) AS l GROUP BY ALL)""")
    totals = [t for (t,) in con.execute(f"SELECT DISTINCT total FROM {GROUPS}").fetchall()]
    texts = pa.table({"total": pa.array(totals, pa.decimal128(38, 8)),
                      "text": pa.array(["0" if t == 0 else str(t) for t in totals], pa.string())})
    con.register("plan_group_totals", texts)
    try:
        con.execute(f"UPDATE {GROUPS} SET total_text = t.text FROM plan_group_totals t WHERE t.total = {GROUPS}.total")
    finally:
        con.unregister("plan_group_totals")


def has_groups(con: Any) -> bool:
    return GROUPS in temp_tables(con)


def stock_plan() -> TablePlan:
    return TablePlan(
        source_db="SXXK", source_table="DNPLNHAP", target="DSX_NPL_NHAP",
        key=("s.SOTK", "py_strip(s.MA_LH)", "py_strip(s.MA_HQ)", "s.NAMDK", "py_strip(s.MA_NPL)"),
        key_detail="''", dedup=False,
        cascade=(
            *(Rule("Q-NULL-KEY", blank(c) if c in ("MA_LH", "MA_HQ", "MA_NPL") else f"s.{c} IS NULL",
                   f"'{c} is empty'") for c in ("SOTK", "MA_LH", "MA_HQ", "NAMDK", "MA_NPL")),
            Rule("Q-NEGATIVE-QTY", "s.LUONG < 0", "'LUONG=' || luong.text"),
            Rule("Q-NEGATIVE-QTY", "s.TON < 0", "'TON=' || ton.text"),
            Rule("R-DECL-NOT-SELECTED", "d.tk_id IS NULL AND q.reason IS NULL"),
            Rule("Q-TON-GT-LUONG", f"{_TON} > {_LUONG}", "'TON=' || ton.text || ' LUONG=' || luong.text"),
            Rule("R-STOCK-ZERO", f"{_TON} <= 0"),
        ),
        after_key=(
            Rule("Q-PARENT-QUARANTINED", "_parent_quarantined IS NOT NULL", "_parent_quarantined"),
            Rule("Q-TON-GT-GOODS", "_goods_total IS NOT NULL AND _ton > _goods_total",
                 "'TON=' || _ton_text || ' > goods quantity ' || _goods_total_text"),
        ),
        carry={"_parent_quarantined": f"CASE WHEN d.tk_id IS NULL THEN {quarantined_decl('SXXK', 'q')} END",
               "_goods_total": "gt.total", "_goods_total_text": "gt.total_text", "_ton": _TON,
               "_ton_text": "ton.text", "_luong": _LUONG},
        id_column="HS_ID", id_type_digit=1, id_table="DSX_NPL_NHAP_TL", registry_kind="stock",
        columns={
            "MA_HQ": "office.new", "MA_CUC_HQ": "office.cuc", "TK_ID": "d.tk_id", "SO_TK": "s.SOTK",
            "MA_LH": "py_strip(s.MA_LH)", "NAM_DK": "s.NAMDK", "VT_ID": "coalesce(si.vt_id, 0)",
            "MA_NPL": "py_strip(s.MA_NPL)", "MA_DV": "d.ma_dv", "LUONG": _LUONG, "TON": _TON,
        },
        mappings=(
            Mapping("office", "s.MA_HQ", "office", ("new", "cuc")),
            Mapping("luong", "s.LUONG", "qty_text", ("text",), where=f"s.LUONG < 0 OR {_TON} > {_LUONG}"),
            Mapping("ton", "s.TON", "qty_text", ("text",)),
        ),
        joins=(
            *parent_joins("SXXK"),
            f"LEFT JOIN {SX_ITEMS} AS si ON si.c0 = py_strip(s.MA_HQ) AND si.c1 = d.ma_dv "
            "AND si.c2 = py_strip(s.MA_NPL) AND si.c3 = 1",
            f"LEFT JOIN (SELECT tk_id, code, any_value(total) AS total, any_value(total_text) AS total_text "
            f"FROM {GROUPS} GROUP BY ALL) AS gt ON gt.tk_id = d.tk_id AND gt.code = py_strip(s.MA_NPL)",
        ),
        lookups=(DECLS, QDECLS, SX_ITEMS, GROUPS),
        child_target="DSX_NPL_NHAP_TL",
        child_from=f"LEFT JOIN (SELECT *, sum(qty) OVER (PARTITION BY tk_id, code ORDER BY price DESC "
                   f"ROWS UNBOUNDED PRECEDING) AS running FROM {GROUPS}) AS g "
                   "ON g.tk_id = r.TK_ID AND g.code = r.MA_NPL",
        child_columns={
            "HS_TL_ID": "r._id", "NAM_TL": "r.NAM_DK", "MA_HQ": "r.MA_HQ", "MA_CUC_HQ": "r.MA_CUC_HQ",
            "TK_ID": "r.TK_ID", "SO_TK": "r.SO_TK", "SO_TK_VNACCS": f"'{' ' * 12}'", "MA_LH": "r.MA_LH",
            "NAM_DK": "r.NAM_DK", "VT_ID": "r.VT_ID", "MA_NPL": "r.MA_NPL",
            "DGIA_TT": "coalesce(g.price, 0)", "TS_XNK": "coalesce(g.rate, 0)", "MA_DV": "r.MA_DV",
            "TON_DAU": "CASE WHEN g.tk_id IS NULL THEN r._luong ELSE g.qty END",
            "TON": "CASE WHEN g.tk_id IS NULL THEN r._ton ELSE g.qty - least(greatest(g.running - r._ton, 0), g.qty) END",
            "LUONG": "CASE WHEN g.tk_id IS NULL THEN r._luong - r._ton "
                     "ELSE least(greatest(g.running - r._ton, 0), g.qty) END",
            "LUONG_TON_DC": "0",
            "LUONG_TON_SAU_DC": "CASE WHEN g.tk_id IS NULL THEN r._ton "
                                "ELSE g.qty - least(greatest(g.running - r._ton, 0), g.qty) END",
        },
        child_order=("r._rid", "g.price DESC"),
    )
