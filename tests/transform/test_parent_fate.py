"""Children of a declaration resolve it by its FULL key, source database included, and share its fate.

Defect 5: SLXNK holds a copy of some SXXK declarations (same 4-part key, regime SX); the copy is
excluded (R-SL-REGIME) and its lines must not attach to the SXXK declaration with the same key.
Defect 6: children of a quarantined declaration are quarantined with it (Q-PARENT-QUARANTINED),
however the declaration was quarantined; children of an excluded one stay excluded.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.transform.test_convert import CTX, decl, line
from transform import convert as cv
from transform import registry
from transform.rules import RULES

KEY = (12, "NSX01", "C47D", 2013)  # decl_key of decl(): trimmed


def sl_decl(**kw: object) -> dict:
    """An SLXNK DToKhaiMD header (same columns, upper-cased) — by default the SX copy of decl()."""
    return decl(**kw)


def sl_line(stt: int = 1, **kw: object) -> dict:
    r = {"SOTK": 12, "MA_LH": "NSX01", "MA_HQ": "C47D ", "NAMDK": 2013, "STTHANG": stt, "MA_PHU": "NVAI",
         "LUONG": Decimal(5), "DGIA_TT": 1.0}
    r.update(kw)
    return r


def tcu(**kw: object) -> dict:
    r = {"SOTK": 12, "MA_LH": "NSX01", "MA_HQ": "C47D", "NAMDK": 2013, "NPLP_CODE": "NCHI", "LUONG": Decimal(3)}
    r.update(kw)
    return r


def tcu_doc(**kw: object) -> dict:
    return tcu(SO_CT="HD-1", NGAY_CT=datetime(2013, 5, 1), **kw)


def stock(**kw: object) -> dict:
    r = {"SOTK": 12, "MA_LH": "NSX01", "MA_HQ": "C47D", "NAMDK": 2013, "MA_NPL": "VAI", "LUONG": Decimal(100),
         "TON": Decimal(40)}
    r.update(kw)
    return r


def ct(lan_dc: int, lan_ct: int, **kw: object) -> dict:
    r = {"SOTK": 12, "MA_LH": "NSX01", "MA_HQ": "C47D", "NAMDK": 2013, "MA_PHU": "NA", "LAN_DC": lan_dc,
         "LAN_DC_CT": lan_ct}
    r.update(kw)
    return r


def huy(**kw: object) -> dict:
    r = {"SO_TN": 1, "NAM_TN": 2013, "MA_HQTN": "C47D", "MA_HANG": "VAI", "NGAY_DK": datetime(2013, 5, 2),
         "SO_LUONG": Decimal(1), "SO_TK": 12, "MA_LH": "NCX01", "MA_HQ": "C47D", "MA_DV": "3600252847"}
    r.update(kw)
    return r


def fk(f: cv.Fate) -> tuple[str, str]:
    return f.kind, f.code


def _ids() -> cv.IdAllocator:
    return cv.IdAllocator(cv.branch_base_id(47, 1))


# --- defect 5: the source database is part of the parent's key -----------------------------------
def test_lines_of_the_slxnk_copy_never_attach_to_the_sxxk_declaration() -> None:
    lk, ids = cv.Lookups(), _ids()
    assert cv.convert_declaration(decl(), None, "SXXK", CTX, ids, lk).kind == "converted"
    assert fk(cv.convert_declaration(sl_decl(), None, "SLXNK", CTX, ids, lk)) == ("excluded", "R-SL-REGIME")
    # the copy's goods lines and self-supplied materials are excluded with it (they used to be converted
    # under the SXXK declaration's TK_ID: its lines twice, refused by central's key)
    assert fk(cv.convert_slxnk_line(sl_line(), CTX, lk, set())) == ("excluded", "R-DECL-NOT-SELECTED")
    assert fk(cv.convert_self_supplied(tcu(), CTX, ids, lk)) == ("excluded", "R-DECL-NOT-SELECTED")
    assert fk(cv.convert_self_supplied_doc(tcu_doc(), CTX, lk, set())) == ("excluded", "R-DECL-NOT-SELECTED")
    # the SXXK declaration's own children still find it; ecsToKhaiMD extends it (either database)
    out = cv.convert_sxxk_goods_group([line("DK", "NA")], CTX, lk)
    assert out[0][1].kind == "converted" and out[0][1].rows[0][1]["TK_ID"] == lk.decls[KEY][0]
    assert cv.convert_stock(stock(), CTX, ids, lk).kind == "converted"
    assert cv.ecs_fate({"SOTK": 12, "MA_LH": "NSX01", "MA_HQ": "C47D", "NAMDK": 2013}, lk, CTX).kind == "converted"


def test_converted_declarations_record_their_source_database() -> None:
    lk, ids = cv.Lookups(), _ids()
    f = cv.convert_declaration(decl(), None, "SXXK", CTX, ids, lk)
    assert cv.decl_db(lk.decls[KEY]) == "SXXK"
    (kind, key, value), = f.registrations
    assert kind == "decls" and key == KEY and value[4] == "SXXK"
    cx = decl(SOTK=77, MA_LH="NCX01")
    cv.convert_declaration(cx, None, "SLXNK", CTX, ids, lk)
    assert cv.decl_db(lk.decls[(77, "NCX01", "C47D", 2013)]) == "SLXNK"


def test_a_key_converted_from_the_other_database_is_a_duplicate_and_takes_its_children() -> None:
    lk, ids = cv.Lookups(), _ids()
    sx = decl(MA_LH="NCX01")
    assert cv.convert_declaration(sx, None, "SXXK", CTX, ids, lk).kind == "converted"
    dup = cv.convert_declaration(sl_decl(MA_LH="NCX01"), None, "SLXNK", CTX, ids, lk)
    assert fk(dup) == ("quarantined", "Q-DUPLICATE-KEY")
    # the SLXNK declaration's children are quarantined with it, not attached to the SXXK one
    assert fk(cv.convert_slxnk_line(sl_line(MA_LH="NCX01"), CTX, lk, set())) == ("quarantined", "Q-PARENT-QUARANTINED")
    assert fk(cv.convert_self_supplied(tcu(MA_LH="NCX01"), CTX, ids, lk)) == ("quarantined", "Q-PARENT-QUARANTINED")
    assert fk(cv.convert_cx_destruction(huy(), CTX, ids, lk, set())) == ("quarantined", "Q-PARENT-QUARANTINED")
    # while the SXXK declaration's own children attach to it
    out = cv.convert_sxxk_goods_group([line("TH", "NA", MA_LH="NCX01")], CTX, lk)
    assert out[0][1].kind == "converted"


def test_sxxk_children_never_attach_to_an_slxnk_declaration_with_the_same_key() -> None:
    lk, ids = cv.Lookups(), _ids()
    bad = cv.convert_declaration(decl(MA_LH="NCX01", NGAY_DK=datetime(1900, 1, 1)), None, "SXXK", CTX, ids, lk)
    assert fk(bad) == ("quarantined", "Q-IMPOSSIBLE-DATE")
    assert cv.convert_declaration(sl_decl(MA_LH="NCX01"), None, "SLXNK", CTX, ids, lk).kind == "converted"
    out = cv.convert_sxxk_goods_group([line("TH", "NA", MA_LH="NCX01")], CTX, lk)
    assert fk(out[0][1]) == ("quarantined", "Q-PARENT-QUARANTINED")
    assert fk(cv.convert_stock(stock(MA_LH="NCX01"), CTX, ids, lk)) == ("quarantined", "Q-PARENT-QUARANTINED")
    assert fk(cv.dc_ct_fate(ct(1, 1, MA_LH="NCX01"), set(), lk, CTX)) == ("excluded", "R-DC-CT-SUPERSEDED")
    # SLXNK children find the SLXNK declaration; ecsToKhaiMD extends the converted one
    f = cv.convert_slxnk_line(sl_line(MA_LH="NCX01"), CTX, lk, set())
    assert f.kind == "converted" and f.rows[0][1]["TK_ID"] == lk.decls[(12, "NCX01", "C47D", 2013)][0]
    assert cv.ecs_fate({"SOTK": 12, "MA_LH": "NCX01", "MA_HQ": "C47D", "NAMDK": 2013}, lk, CTX).kind == "converted"


def test_cx_destruction_links_only_an_slxnk_declaration() -> None:
    lk, ids = cv.Lookups(), _ids()
    cv.convert_declaration(decl(MA_LH="NCX01"), None, "SXXK", CTX, ids, lk)  # SXXK: never the related one
    f = cv.convert_cx_destruction(huy(), CTX, ids, lk, set())
    assert f.kind == "converted" and f.rows[-1][1]["TK_ID"] is None
    cv.convert_declaration(sl_decl(SOTK=13, MA_LH="NCX01"), None, "SLXNK", CTX, ids, lk)
    f = cv.convert_cx_destruction(huy(SO_TK=13, MA_HANG="CHI"), CTX, ids, lk, set())
    assert f.rows[-1][1]["TK_ID"] == lk.decls[(13, "NCX01", "C47D", 2013)][0]


# --- defect 6: children of a quarantined declaration are quarantined with it ----------------------
def _children_fates(lk: cv.Lookups, ma_lh: str = "NSX01") -> dict[str, tuple[str, str]]:
    ids = _ids()
    goods = cv.convert_sxxk_goods_group([line("DC", "NA", LAN_DC=1, MA_LH=ma_lh, _CT_LAN_DC_CT=2)], CTX, lk)
    return {
        "goods": fk(goods[0][1]),
        "dc_ct": fk(cv.dc_ct_fate(ct(1, 2, MA_LH=ma_lh), set(), lk, CTX)),
        "stock": fk(cv.convert_stock(stock(MA_LH=ma_lh), CTX, ids, lk)),
        "ecs": fk(cv.ecs_fate({"SOTK": 12, "MA_LH": ma_lh, "MA_HQ": "C47D", "NAMDK": 2013}, lk, CTX)),
        "slxnk_line": fk(cv.convert_slxnk_line(sl_line(MA_LH=ma_lh), CTX, lk, set())),
        "tcu": fk(cv.convert_self_supplied(tcu(MA_LH=ma_lh), CTX, ids, lk)),
        "tcu_doc": fk(cv.convert_self_supplied_doc(tcu_doc(MA_LH=ma_lh), CTX, lk, set())),
    }


QUARANTINED = ("quarantined", "Q-PARENT-QUARANTINED")
EXCLUDED = ("excluded", "R-DECL-NOT-SELECTED")


def test_children_of_a_declaration_quarantined_by_its_checks_are_quarantined() -> None:
    lk = cv.Lookups()
    bad = cv.convert_declaration(decl(NGAY_DK=datetime(1900, 1, 1)), None, "SXXK", CTX, _ids(), lk)
    assert fk(bad) == ("quarantined", "Q-IMPOSSIBLE-DATE")
    f = _children_fates(lk)
    assert {k: f[k] for k in ("goods", "dc_ct", "stock", "ecs")} == dict.fromkeys(("goods", "dc_ct", "stock", "ecs"),
                                                                               QUARANTINED)
    # SLXNK rows with that key belong to an SLXNK declaration that does not exist
    assert {f[k] for k in ("slxnk_line", "tcu", "tcu_doc")} == {EXCLUDED}


def test_children_of_a_gc_declaration_without_contract_are_quarantined() -> None:
    lk, ids = cv.Lookups(), _ids()
    gc = sl_decl(MA_LH="NGC01", SO_HD="XX", NGAY_HD=datetime(2012, 3, 1))
    assert fk(cv.convert_declaration(gc, None, "SLXNK", CTX, ids, lk)) == ("quarantined", "Q-GC-NO-CONTRACT")
    f = _children_fates(lk, "NGC01")
    assert {f[k] for k in ("slxnk_line", "tcu", "tcu_doc", "ecs")} == {QUARANTINED}
    assert {f[k] for k in ("goods", "stock")} == {EXCLUDED}  # no SXXK declaration with that key
    assert f["dc_ct"] == EXCLUDED


def test_children_of_the_second_occurrence_of_a_key_follow_the_converted_one() -> None:
    # the same SLXNK header entered twice: the first is converted, the second is Q-DUPLICATE-KEY; the
    # lines cannot tell which header they belong to and go with the converted one (as before)
    lk, ids = cv.Lookups(), _ids()
    cx = sl_decl(MA_LH="NCX01")
    assert cv.convert_declaration(cx, None, "SLXNK", CTX, ids, lk).kind == "converted"
    assert fk(cv.convert_declaration(dict(cx), None, "SLXNK", CTX, ids, lk)) == ("quarantined", "Q-DUPLICATE-KEY")
    assert cv.convert_slxnk_line(sl_line(MA_LH="NCX01"), CTX, lk, set()).kind == "converted"


def test_children_of_a_declaration_quarantined_after_conversion_are_quarantined() -> None:
    # step 5's sink quarantines a converted declaration whose value is too long for central and calls forget()
    lk = cv.Lookups()
    f = cv.convert_declaration(decl(), None, "SXXK", CTX, _ids(), lk)
    cv.forget(lk, f.registrations, registry.KINDS)
    assert KEY not in lk.decls
    got = _children_fates(lk)
    assert {got[k] for k in ("goods", "dc_ct", "stock", "ecs")} == {QUARANTINED}
    assert "Q-VALUE-TOO-LONG" in cv.convert_stock(stock(), CTX, _ids(), lk).detail


def test_children_of_a_declaration_quarantined_upstream_are_quarantined() -> None:
    # step 4 quarantines a row whose values do not cast (Q-BAD-VALUE); step 5 registers it before converting
    lk = cv.Lookups()
    cv.note_quarantined_declaration(lk, "SLXNK", (12, "NGC01 ", "C47D  ", 2013))
    cv.note_quarantined_declaration(lk, "SXXK", KEY)
    f = _children_fates(lk, "NGC01")
    assert {f[k] for k in ("slxnk_line", "tcu", "tcu_doc", "ecs")} == {QUARANTINED}
    assert "Q-BAD-VALUE" in cv.convert_slxnk_line(sl_line(MA_LH="NGC01"), CTX, lk, set()).detail
    assert {v for k, v in _children_fates(lk).items() if k in ("goods", "dc_ct", "stock", "ecs")} == {QUARANTINED}


def test_children_of_an_excluded_or_missing_declaration_stay_excluded() -> None:
    lk, ids = cv.Lookups(), _ids()
    cv.convert_declaration(decl(THANH_LY="H"), None, "SXXK", CTX, ids, lk)
    assert set(_children_fates(lk).values()) == {EXCLUDED}
    assert set(_children_fates(cv.Lookups(), "NGC01").values()) == {EXCLUDED}


def test_quarantine_of_a_parent_does_not_hide_the_child_s_own_defects_or_rules() -> None:
    lk = cv.Lookups()
    cv.convert_declaration(decl(NGAY_DK=datetime(1900, 1, 1)), None, "SXXK", CTX, _ids(), lk)
    assert cv.convert_stock(stock(TON=Decimal(150)), CTX, _ids(), lk).code == "Q-TON-GT-LUONG"
    assert cv.convert_stock(stock(TON=Decimal(0)), CTX, _ids(), lk).code == "R-STOCK-ZERO"
    assert cv.convert_stock(stock(), CTX, _ids(), lk).code == "Q-PARENT-QUARANTINED"
    # goods: the group's own selection still applies; only the lines that would be converted wait in quarantine
    out = cv.convert_sxxk_goods_group([
        line("DK", "NA"), line("DK", "NB"), line("DC", "NA", LAN_DC=1, _CT_LAN_DC_CT=1),
        line("DC", "NA", LAN_DC=2, _CT_LAN_DC_CT=3), line("TH", "NA"), line("DK", "NC", LUONG=Decimal(-1))], CTX, lk)
    assert [fk(f) for _, f in out] == [("excluded", "R-DK-SUPERSEDED"), QUARANTINED, ("excluded", "R-DC-SUPERSEDED"),
                                       QUARANTINED, ("excluded", "R-NSX-GOODS-FROM-DC"),
                                       ("quarantined", "Q-NEGATIVE-QTY")]
    # the latest tax detail of the line that would be converted waits with it; older ones stay superseded
    assert fk(cv.dc_ct_fate(ct(2, 3), set(), lk, CTX)) == QUARANTINED
    assert fk(cv.dc_ct_fate(ct(2, 2), set(), lk, CTX)) == ("excluded", "R-DC-CT-SUPERSEDED")
    assert fk(cv.dc_ct_fate(ct(1, 1), set(), lk, CTX)) == ("excluded", "R-DC-CT-SUPERSEDED")


def test_q_parent_quarantined_is_a_named_reason() -> None:
    vi, en = RULES["Q-PARENT-QUARANTINED"]
    assert "cách ly" in vi.lower() and "quarantined" in en


# --- registered goods (DHANGMDDK) not used as gap fill: always a named exclusion ---------------------
def test_dk_lines_not_used_as_gap_fill_are_excluded_whatever_their_own_defects() -> None:
    neg = Decimal(-1)
    # NSX, declaration selected: a DC line (even a quarantined one) supersedes the DK line of its MA_PHU
    lk = cv.Lookups()
    cv.convert_declaration(decl(), None, "SXXK", CTX, _ids(), lk)
    out = cv.convert_sxxk_goods_group([line("DK", "NA", LUONG=neg), line("DK", "NB"),
                                       line("DC", "NA", LAN_DC=1), line("DC", "NB", LAN_DC=1, LUONG=neg)], CTX, lk)
    assert [fk(f) for _, f in out] == [("excluded", "R-DK-SUPERSEDED"), ("excluded", "R-DK-SUPERSEDED"),
                                       ("converted", ""), ("quarantined", "Q-NEGATIVE-QTY")]
    # non-NSX, declaration selected: a declaration with TH lines (even quarantined ones) is not gap-filled
    lk = cv.Lookups()
    cv.convert_declaration(decl(MA_LH="XSX01"), None, "SXXK", CTX, _ids(), lk)
    out = cv.convert_sxxk_goods_group([line("DK", "SA", MA_LH="XSX01", LUONG=neg), line("DK", "SB", MA_LH="XSX01"),
                                       line("TH", "SB", MA_LH="XSX01", LUONG=neg)], CTX, lk)
    assert [fk(f) for _, f in out] == [("excluded", "R-DK-SUPERSEDED"), ("excluded", "R-DK-SUPERSEDED"),
                                       ("quarantined", "Q-NEGATIVE-QTY")]
    # declaration not selected (NSX and non-NSX): its DK lines are excluded with it, defects or not
    for ma_lh in ("NSX01", "XSX01"):
        out = cv.convert_sxxk_goods_group([line("DK", "SA", MA_LH=ma_lh, LUONG=neg), line("DK", "SB", MA_LH=ma_lh,
                                           MA_PHU=None)], CTX, cv.Lookups())
        assert [fk(f) for _, f in out] == [EXCLUDED, EXCLUDED]
    # a DK line without a declaration key cannot be placed: Q-NULL-KEY
    out = cv.convert_sxxk_goods_group([line("DK", "SA", SOTK=None)], CTX, cv.Lookups())
    assert fk(out[0][1]) == ("quarantined", "Q-NULL-KEY")


PARENTS = ["converted", "excluded", "missing", "quarantined", "prior"]


@settings(max_examples=600, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["TH", "DC", "DK"]), st.sampled_from(["NA", "NB", "SA", ""]),
                          st.integers(0, 3), st.booleans()), max_size=10),
       st.sampled_from(["NSX01", "XSX01", "NKD01"]), st.sampled_from(PARENTS))
def test_every_dk_line_not_used_as_gap_fill_is_excluded(spec: list, ma_lh: str, parent: str) -> None:
    lk = cv.Lookups()
    if parent in ("converted", "prior"):
        cv.convert_declaration(decl(MA_LH=ma_lh), None, "SXXK", CTX, cv.IdAllocator(0), lk)
        if parent == "prior":
            lk.prior["decls"] = {(12, ma_lh, "C47D", 2013)}
    elif parent == "excluded":
        cv.convert_declaration(decl(MA_LH=ma_lh, THANH_LY="H"), None, "SXXK", CTX, cv.IdAllocator(0), lk)
    elif parent == "quarantined":
        cv.convert_declaration(decl(MA_LH=ma_lh, NGAY_DK=datetime(1900, 1, 1)), None, "SXXK", CTX,
                               cv.IdAllocator(0), lk)
    lines = [line(s, mp, LAN_DC=(lan if s == "DC" else None), MA_LH=ma_lh, LUONG=Decimal(-1 if neg else 1))
             for s, mp, lan, neg in spec]
    out = cv.convert_sxxk_goods_group(lines, CTX, lk)
    assert [a for a, _ in out] == lines
    nsx = ma_lh.startswith("NSX")
    has_th = any(s == "TH" for s, *_ in spec)
    for ln, f in out:
        if ln["_SRC"] != "DK":
            continue
        mp = ln["MA_PHU"]
        superseded = (nsx and mp and any(s == "DC" and m == mp for s, m, *_ in spec)) or (not nsx and has_th)
        if superseded or parent in ("excluded", "missing", "prior"):
            assert f.kind == "excluded", (ln, f)
        if f.kind == "quarantined":  # only a gap fill waits in quarantine: for its parent or its own defect
            assert f.code in ("Q-PARENT-QUARANTINED", "Q-NEGATIVE-QTY", "Q-NULL-KEY", "Q-DUPLICATE-KEY")
        if parent == "converted" and not superseded and mp and ln["LUONG"] > 0:
            assert f.kind == "converted" or f.code == "Q-DUPLICATE-KEY"


# --- the ID registry keeps the source database --------------------------------------------------
def test_registry_round_trip_keeps_the_source_database() -> None:
    lk, ids = cv.Lookups(), _ids()
    f = cv.convert_declaration(decl(), None, "SXXK", CTX, ids, lk)
    rows = [registry.encode(k, key, v) for k, key, v in f.registrations]
    lk2 = cv.Lookups()
    registry.load_into(lk2, rows)
    assert lk2.decls[KEY] == lk.decls[KEY] and cv.decl_db(lk2.decls[KEY]) == "SXXK"


def test_registry_values_of_earlier_runs_without_database_still_load() -> None:
    # values written before the source database was recorded: [TK_ID, HD_ID, MA_DV, XUAT_NPL_SP]
    old = [{"kind": "decls", "key": json.dumps(list(KEY)), "value": json.dumps([14_701_000_000_001, None, "36", "N"])},
           {"kind": "decls", "key": json.dumps([13, "NGC01", "C47D", 2013]),
            "value": json.dumps([14_701_000_000_002, 14_701_000_000_009, "36", "N"])}]
    lk = cv.Lookups()
    assert registry.load_into(lk, old) == {"decls": 2}
    # a regime only SXXK converts (not _GC/_CX) came from SXXK; a GC/CX one may come from either database
    assert cv.decl_db(lk.decls[KEY]) == "SXXK"
    assert cv.decl_db(lk.decls[(13, "NGC01", "C47D", 2013)]) is None
    assert lk.decls[KEY][:4] == (14_701_000_000_001, None, "36", "N")
    # so the lines of the SLXNK copy are still not taken for the SXXK declaration's ...
    assert fk(cv.convert_slxnk_line(sl_line(), CTX, lk, set())) == EXCLUDED
    # ... and the children of a database-less entry are matched from either database (converted before)
    assert cv.convert_slxnk_line(sl_line(SOTK=13, MA_LH="NGC01"), CTX, lk, set()).code == "R-ALREADY-CONVERTED"
    assert registry.id_of(json.loads(old[0]["value"])) == 14_701_000_000_001
