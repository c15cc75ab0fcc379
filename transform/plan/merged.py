"""Rows merged into rows of another table (their fate only; they write no row of their own).

``SLXNK.ecsToKhaiMD`` — the reception fields of a declaration (of EITHER database: they extend SXXK declarations
too), merged into its ``DTO_KHAI_MD`` row (:mod:`.declarations`):

1. a key column (SoTK, Ma_LH, Ma_HQ, NamDK) empty → ``Q-NULL-KEY``;
2. its declaration converted by an earlier run → ``R-ALREADY-CONVERTED``; converted now → converted (merged);
3. its declaration quarantined (SXXK first, then SLXNK) → ``Q-PARENT-QUARANTINED``; else ``R-DECL-NOT-SELECTED``.

``SXXK.DHANGMDDC_CT`` — the tax details of an amended goods line, merged into the kept DC line (:mod:`.sxxk_goods`)
when they are its latest:

1. a key column (SOTK, MA_LH, MA_HQ, NAMDK, MA_PHU) empty → ``Q-NULL-KEY``;
2. under a quarantined declaration: the detail its kept line would take waits with it (``Q-PARENT-QUARANTINED``),
   any other is ``R-DC-CT-SUPERSEDED``; under no selected declaration ``R-DECL-NOT-SELECTED``; converted by an
   earlier run ``R-ALREADY-CONVERTED``;
3. the detail a kept DC line took → converted (merged); any other → ``R-DC-CT-SUPERSEDED``.

Lookups the step registers: ``lk_decls``, ``lk_qdecls`` (as for the lines), ``lk_chosen_ct`` and ``lk_held_ct``
(k0..k6: SOTK, Ma_LH, Ma_HQ, NamDK, MA_PHU, LAN_DC, LAN_DC_CT, as text) from the SXXK goods plan.
"""

from __future__ import annotations

from transform.plan.model import Rule, TablePlan
from transform.plan.slxnk_lines import DECLS, QDECLS, parent_joins
from transform.plan.sql import blank, on_decl, quarantined_decl

CHOSEN_CT, HELD_CT = "lk_chosen_ct", "lk_held_ct"



def _null_keys(cols: tuple[str, ...]) -> tuple[Rule, ...]:
    return tuple(Rule("Q-NULL-KEY", blank(c) if c in ("MA_LH", "MA_HQ", "MA_PHU") else f"s.{c} IS NULL",
                      f"'{c} is empty'") for c in cols)


def ecs_plan() -> TablePlan:
    return TablePlan(
        source_db="SLXNK", source_table="ecsToKhaiMD", target=None,
        key=("s.SOTK", "py_strip(s.MA_LH)", "py_strip(s.MA_HQ)", "s.NAMDK"), key_detail="''", dedup=False,
        cascade=(
            *_null_keys(("SOTK", "MA_LH", "MA_HQ", "NAMDK")),
            Rule("R-ALREADY-CONVERTED", "d.prior"),
            Rule("Q-PARENT-QUARANTINED", "d.tk_id IS NULL AND qs.reason IS NOT NULL", quarantined_decl("SXXK", "qs")),
            Rule("Q-PARENT-QUARANTINED", "d.tk_id IS NULL AND ql.reason IS NOT NULL", quarantined_decl("SLXNK", "ql")),
            Rule("R-DECL-NOT-SELECTED", "d.tk_id IS NULL"),
        ),
        columns={}, id_column=None, id_type_digit=0, registry_kind=None,
        joins=(
            # the declaration of either database (a key converts once across both)
            f"LEFT JOIN {DECLS} AS d ON {on_decl('d')}",
            f"LEFT JOIN {QDECLS} AS qs ON {on_decl('qs')} AND qs.db = 'SXXK'",
            f"LEFT JOIN {QDECLS} AS ql ON {on_decl('ql')} AND ql.db = 'SLXNK'",
        ),
        lookups=(DECLS, QDECLS),
    )


def dc_ct_plan() -> TablePlan:
    ct_key = ("CAST(s.SOTK AS VARCHAR)", "py_strip(s.MA_LH)", "py_strip(s.MA_HQ)", "CAST(s.NAMDK AS VARCHAR)",
              "py_strip(s.MA_PHU)", "CAST(s.LAN_DC AS VARCHAR)", "CAST(s.LAN_DC_CT AS VARCHAR)")

    def on_ct(alias: str) -> str:
        return " AND ".join(f"{alias}.k{i} IS NOT DISTINCT FROM {e}" for i, e in enumerate(ct_key))
    quarantined = "d.tk_id IS NULL AND q.reason IS NOT NULL"
    return TablePlan(
        source_db="SXXK", source_table="DHANGMDDC_CT", target=None,
        key=("s.SOTK", "py_strip(s.MA_LH)", "py_strip(s.MA_HQ)", "s.NAMDK"), key_detail="''", dedup=False,
        cascade=(
            *_null_keys(("SOTK", "MA_LH", "MA_HQ", "NAMDK", "MA_PHU")),
            Rule("R-DC-CT-SUPERSEDED", f"{quarantined} AND h.k0 IS NULL"),
            Rule("Q-PARENT-QUARANTINED", quarantined, quarantined_decl("SXXK", "q")),
            Rule("R-DECL-NOT-SELECTED", "d.tk_id IS NULL"),
            Rule("R-ALREADY-CONVERTED", "d.prior"),
            Rule("R-DC-CT-SUPERSEDED", "c.k0 IS NULL"),
        ),
        columns={}, id_column=None, id_type_digit=0, registry_kind=None,
        joins=(
            *parent_joins("SXXK"),
            f"LEFT JOIN {CHOSEN_CT} AS c ON {on_ct('c')}",
            f"LEFT JOIN {HELD_CT} AS h ON {on_ct('h')}",
        ),
        lookups=(DECLS, QDECLS, CHOSEN_CT, HELD_CT),
    )
