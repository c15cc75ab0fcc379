"""Declaration headers: ``SXXK.DTOKHAIMD`` and ``SLXNK.DToKhaiMD`` (+ the ``ecsToKhaiMD`` fields of the same key)
→ ``DTO_KHAI_MD`` (domain doc §3 selection, §4.4 mapping). SXXK runs first; one key converts once across both.

1. a key column (SoTK, Ma_LH, Ma_HQ, NamDK) empty → ``Q-NULL-KEY``; an office outside the branch →
   ``R-OTHER-OFFICE``;
2. SXXK: liquidated (``THANH_LY = 'H'``) → ``R-SXXK-LIQUIDATED``; SLXNK: only GC and CX regimes
   (Ma_LH's 2nd–3rd letters), others → ``R-SL-REGIME``; a GC declaration needs its contract (So_HD, office,
   enterprise, contract date) among the converted contracts → ``Q-GC-NO-CONTRACT``, and one not liquidated →
   ``R-GC-CONTRACT-LIQUIDATED``; a registration date before 1990 or after the freeze → ``Q-IMPOSSIBLE-DATE``;
3. a selected declaration one of whose rows step 4 set aside (a value that does not cast) →
   ``Q-CHILD-BAD-VALUE`` (converting the rest would let an older line stand in for the missing one);
4. the key converted by an earlier run → ``R-ALREADY-CONVERTED``; converted from the other database →
   ``Q-DUPLICATE-KEY``; its first occurrence (key order, then restore order) whose values fit converts, an
   earlier one too long → ``Q-VALUE-TOO-LONG``, a later one → ``Q-DUPLICATE-KEY``;
5. converted: TK_ID = window + n (type digit 0, one sequence over both databases); office renamed; the texts
   TCVN3 → Unicode; the channel as a number; XUAT_NPL_SP repaired (15/07/2014: 'N' for imports and XSX05, else
   'S'); 20-foot containers = all − 40-foot; the date goods entered the declaration's stock (exports: the
   registration date; NSX imports: the completion date); HD_ID of a GC contract; the ecsToKhaiMD reception
   fields when it has a reception number.

The lookups the step registers: ``lk_contracts`` (the converted contracts: c0..c3 = So_HD, office, enterprise,
YYYYMMDD → hd_id, liquidated) and ``lk_blocked`` (k0..k3 → what step 4 set aside, for this database).
"""

from __future__ import annotations

from datetime import datetime

from extract.staging import DECLARATION_ORDER, ecs_join
from transform.convert import MIN_DATE, ZERO_GUID
from transform.plan.model import Mapping, Rule, TablePlan
from transform.plan.sql import blank, in_list, on_decl

CONTRACTS = "lk_contracts"
BLOCKED = "lk_blocked"


def _ts(v: datetime) -> str:
    return f"TIMESTAMP '{v.isoformat(sep=' ')}'"


def declaration_plan(db: str, branch_offices: frozenset[str], freeze_at: datetime) -> TablePlan:
    sx = db == "SXXK"
    bad_date = f"(s.NGAY_DK < {_ts(MIN_DATE)} OR s.NGAY_DK > {_ts(freeze_at)})"
    date_rule = Rule("Q-IMPOSSIBLE-DATE", bad_date, "'NGAY_DK=' || ngay_dk.text")
    regime = "substr(py_strip(s.MA_LH), 2, 2)"
    ma_lh = "py_strip(s.MA_LH)"
    if sx:
        selection: tuple[Rule, ...] = (Rule("R-SXXK-LIQUIDATED", "py_strip(s.THANH_LY) = 'H'"), date_rule)
    else:
        selection = (
            Rule("Q-IMPOSSIBLE-DATE", f"{regime} = 'CX' AND {bad_date}", "'NGAY_DK=' || ngay_dk.text"),
            Rule("R-SL-REGIME", f"{regime} NOT IN ('CX', 'GC')"),
            Rule("Q-GC-NO-CONTRACT", f"{regime} = 'GC' AND c.hd_id IS NULL", "'So_HD=' || coalesce(py_strip(s.SO_HD), '')"),
            Rule("R-GC-CONTRACT-LIQUIDATED", "c.liquidated = 1"),
            date_rule,
        )
    key_cols = ("SOTK", "MA_LH", "MA_HQ", "NAMDK")
    joins = [ecs_join("e", "s"),
             f"LEFT JOIN {BLOCKED} AS b ON {on_decl('b')}"]
    if not sx:
        joins.append(f"LEFT JOIN {CONTRACTS} AS c ON {regime} = 'GC' AND c.c0 = coalesce(py_strip(s.SO_HD), '') "
                     "AND c.c1 = coalesce(py_strip(s.MA_HQ), '') AND c.c2 = coalesce(py_strip(s.MA_DV), '') "
                     "AND c.c3 = ngay_hd.text")
    ecs = "e.s IS NOT NULL"  # the reception fields count only when the reception number is there
    return TablePlan(
        source_db=db, source_table="DTOKHAIMD" if sx else "DToKhaiMD", target="DTO_KHAI_MD",
        key=("s.SOTK", ma_lh, "py_strip(s.MA_HQ)", "s.NAMDK"),
        key_detail="'SoTK=' || k0 || ' Ma_LH=' || k1 || ' NamDK=' || k3",
        order=tuple(f"s.{c}" for c in DECLARATION_ORDER),
        cascade=(
            *(Rule("Q-NULL-KEY", blank(c) if c in ("MA_LH", "MA_HQ") else f"s.{c} IS NULL", f"'{c} is empty'")
              for c in key_cols),
            Rule("R-OTHER-OFFICE", f"py_strip(s.MA_HQ) NOT IN ({in_list(branch_offices)})"),
            *selection,
            Rule("Q-CHILD-BAD-VALUE", "b.what IS NOT NULL", "b.what"),
        ),
        id_column="TK_ID", id_type_digit=0, registry_kind="decls",
        columns={
            "MA_HQ": "office.new", "MA_CUC_HQ": "office.cuc", "SO_TK": "s.SOTK", "MA_LH": ma_lh,
            "NAM_DK": "s.NAMDK", "NGAY_DK": "s.NGAY_DK", "NGAY_HOAN_THANH": "s.NGAY_HOANTHANH",
            "MA_DV": "coalesce(py_strip(s.MA_DV), '')", "DV_DT": "text_dv_dt.fixed", "SO_HD": "text_so_hd.fixed",
            "NGAY_HD": "s.NGAY_HD", "SO_HDTM": "text_so_hdtm.fixed", "VAN_DON": "py_strip(s.VAN_DON)",
            "SO_HANG": "s.SOHANG", "MA_NT": "py_strip(s.MA_NT)", "TYGIA_VND": "s.TYGIA_VND",
            "MA_CK": "py_strip(s.MA_CK)", "NUOC_XK": "py_strip(s.NUOC_XK)", "PLUONG": "channel.code",
            "TTTK": "py_strip(s.TTTK)", "THANH_LY": "py_strip(s.THANH_LY)",
            "XUAT_NPL_SP": f"CASE WHEN starts_with({ma_lh}, 'N') OR {ma_lh} = 'XSX05' THEN 'N' ELSE 'S' END",
            "SO_CONTAINER": "s.SO_CONTAINER",
            "SO_CONTAINER20": "CASE WHEN s.SO_CONTAINER IS NOT NULL THEN s.SO_CONTAINER - coalesce(s.SO_CONTAINER40, 0) "
                              "END",
            "SO_CONTAINER40": "s.SO_CONTAINER40",
            "NGAY_DUA_VAO_TK": f"CASE WHEN starts_with({ma_lh}, 'X') THEN s.NGAY_DK "
                               f"WHEN starts_with({ma_lh}, 'NSX') THEN s.NGAY_HOANTHANH END",
            "HD_ID": "NULL::BIGINT" if sx else "c.hd_id", "SO_TK_VNACCS": f"'{' ' * 12}'",
            "REFERENCE": f"'{ZERO_GUID}'", "SO_TN": f"CASE WHEN {ecs} THEN e.s END",
            "NAM_TN": f"CASE WHEN {ecs} THEN e.n END", "NGAY_TN": f"CASE WHEN {ecs} THEN e.ng END",
            "MESSAGE_ID": f"CASE WHEN {ecs} THEN py_strip(e.m) END",
            "HINH_THUC_KHAI": f"CASE WHEN {ecs} THEN e.h END", "NGUON": f"'{db}'",
        },
        mappings=(
            Mapping("office", "s.MA_HQ", "office", ("new", "cuc")),
            Mapping("channel", "s.PLUONG", "channel", ("code",)),
            Mapping("ngay_dk", "s.NGAY_DK", "str", ("text",), where=bad_date),
            Mapping("ngay_hd", "s.NGAY_HD", "ymd", ("text",), where=f"{regime} = 'GC'"),
            Mapping("text_dv_dt", "s.DV_DT", "text", ("fixed", "converted")),
            Mapping("text_so_hd", "py_strip(s.SO_HD)", "text", ("fixed", "converted")),
            Mapping("text_so_hdtm", "py_strip(s.SO_HDTM)", "text", ("fixed", "converted")),
        ),
        text_fix_columns={"DV_DT": "DV_DT", "SO_HD": "SO_HD", "SO_HDTM": "SO_HDTM"},
        joins=tuple(joins), lookups=(BLOCKED,) if sx else (BLOCKED, CONTRACTS),
    )
