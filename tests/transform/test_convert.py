from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transform import convert as cv
from transform.codes import office_map, unit_map
from transform.errors import IdWindowOverflow

CTX = cv.ConvertContext(frozenset({"C47D", "C47D01"}), office_map("2014-latest"), unit_map("2014-latest"),
                        datetime(2014, 4, 1))


def test_branch_base_id_layout() -> None:
    assert cv.branch_base_id(47, 1) == 14_701_000_000_000
    assert len(str(cv.branch_base_id(47, 1))) == 14
    with pytest.raises(ValueError):
        cv.branch_base_id(100, 0)


def test_ids_use_type_digit_and_never_wrap() -> None:
    ids = cv.IdAllocator(cv.branch_base_id(47, 1))
    assert ids.next("DSX_SP_NPL", 1) == 14_701_100_000_001
    assert ids.next("DSX_SP_NPL", 2) == 14_701_200_000_001
    assert ids.next("DSX_SP_NPL", 1) == 14_701_100_000_002
    full = cv.IdAllocator(0, {("T", 3): cv.ID_TYPE_WINDOW - 1})
    with pytest.raises(IdWindowOverflow):
        full.next("T", 3)


def decl(**kw: object) -> dict:
    row = {"SOTK": 12, "MA_LH": "NSX01", "MA_HQ": "C47D  ", "NAMDK": 2013, "NGAY_DK": datetime(2013, 5, 2),
           "NGAY_HOANTHANH": datetime(2013, 5, 4), "MA_DV": "3600252847", "THANH_LY": "C", "XUAT_NPL_SP": "S",
           "SO_CONTAINER": Decimal(5), "SO_CONTAINER40": Decimal(2), "PLUONG": "VµNG", "SOHANG": 2}
    row.update(kw)
    return row


def test_declaration_rules_and_direct_mappings() -> None:
    lk, ids = cv.Lookups(), cv.IdAllocator(cv.branch_base_id(47, 1))
    f = cv.convert_declaration(decl(), {"SOTN": 7, "NAMTN": 2013}, "SXXK", CTX, ids, lk)
    assert f.kind == "converted"
    (_, r), = f.rows
    assert r["MA_HQ"] == "47D1" and r["MA_CUC_HQ"] == "47"
    assert r["XUAT_NPL_SP"] == "N"  # repaired: NSX e-declarations carried 'S'
    assert r["PLUONG"] == 2  # TCVN3 'VÀNG'
    assert r["SO_CONTAINER20"] == 3
    assert r["NGAY_DUA_VAO_TK"] == datetime(2013, 5, 4)  # NSX: completion date
    assert r["SO_TK_VNACCS"] == " " * 12 and r["SO_TN"] == 7
    assert cv.convert_declaration(decl(SOTK=13, THANH_LY="H"), None, "SXXK", CTX, ids, lk).code == "R-SXXK-LIQUIDATED"
    assert cv.convert_declaration(decl(SOTK=14, MA_HQ="N47B"), None, "SXXK", CTX, ids, lk).code == "R-OTHER-OFFICE"
    assert cv.convert_declaration(decl(), None, "SXXK", CTX, ids, lk).code == "Q-DUPLICATE-KEY"
    bad_date = cv.convert_declaration(decl(SOTK=15, NGAY_DK=datetime(1900, 1, 1)), None, "SXXK", CTX, ids, lk)
    assert (bad_date.kind, bad_date.code) == ("quarantined", "Q-IMPOSSIBLE-DATE")
    # a liquidated declaration with an impossible date is excluded, not quarantined (selection first)
    assert cv.convert_declaration(decl(SOTK=16, THANH_LY="H", NGAY_DK=datetime(1900, 1, 1)), None, "SXXK",
                                  CTX, ids, lk).code == "R-SXXK-LIQUIDATED"
    assert cv.convert_declaration(decl(SOTK=None), None, "SXXK", CTX, ids, lk).code == "Q-NULL-KEY"


def test_gc_declaration_needs_an_open_contract() -> None:
    lk, ids = cv.Lookups(), cv.IdAllocator(0)
    ky = datetime(2012, 3, 1)
    hd = {"SO_HD": "01/2012/HĐGC", "MA_HQHD": "C47D", "DVGC": "3600252847", "NGAY_KY": ky, "THANHKHOAN": 0}
    assert cv.convert_contract(hd, CTX, ids, lk).kind == "converted"
    closed = dict(hd, SO_HD="02/2012/HĐGC", THANHKHOAN=1)
    cv.convert_contract(closed, CTX, ids, lk)
    gc = decl(MA_LH="NGC01", SO_HD="01/2012/HĐGC", NGAY_HD=ky)
    f = cv.convert_declaration(gc, None, "SLXNK", CTX, ids, lk)
    assert f.kind == "converted" and f.rows[0][1]["HD_ID"] == lk.contracts[cv.contract_key(hd)][0]
    assert cv.convert_declaration(dict(gc, SOTK=2, SO_HD="02/2012/HĐGC"), None, "SLXNK", CTX, ids, lk).code \
        == "R-GC-CONTRACT-LIQUIDATED"
    assert cv.convert_declaration(dict(gc, SOTK=3, SO_HD="XX"), None, "SLXNK", CTX, ids, lk).code == "Q-GC-NO-CONTRACT"
    assert cv.convert_declaration(dict(gc, SOTK=4, MA_LH="NKD01"), None, "SLXNK", CTX, ids, lk).code == "R-SL-REGIME"
    assert cv.convert_declaration(dict(gc, SOTK=5, MA_LH="NCX01"), None, "SLXNK", CTX, ids, lk).kind == "converted"


def line(src: str, ma_phu: str, **kw: object) -> dict:
    r = {"_SRC": src, "SOTK": 12, "MA_LH": "NSX01", "MA_HQ": "C47D  ", "NAMDK": 2013, "MA_PHU": ma_phu,
         "MA_NPL_SP": ma_phu[1:], "LUONG": Decimal("10"), "DGIA_TT": 2.5, "TS_XNK": Decimal(0), "LAN_DC": None}
    r.update(kw)
    return r


def _setup_nsx() -> cv.Lookups:
    lk = cv.Lookups()
    cv.convert_declaration(decl(), None, "SXXK", CTX, cv.IdAllocator(0), lk)
    return lk


def test_nsx_goods_take_latest_dc_and_fill_gaps_from_dk() -> None:
    lk = _setup_nsx()
    lines = [line("DK", "NB"), line("DK", "NA"), line("DC", "NA", LAN_DC=1), line("DC", "NA", LAN_DC=2,
             LUONG=Decimal("11"), MA_NPL_SP="NA"), line("TH", "NA")]
    out = cv.convert_sxxk_goods_group(lines, CTX, lk)
    fates = [(f.kind, f.code) for _, f in out]
    assert fates == [("converted", ""), ("excluded", "R-DK-SUPERSEDED"), ("excluded", "R-DC-SUPERSEDED"),
                     ("converted", ""), ("excluded", "R-NSX-GOODS-FROM-DC")]
    rows = {f.rows[0][1]["MA_PHU"]: f.rows[0][1] for _, f in out if f.kind == "converted"}
    assert rows["NA"]["STT_HANG"] == 1 and rows["NB"]["STT_HANG"] == 2  # renumbered by MA_PHU
    assert rows["NA"]["LAN_DC"] == 2 and rows["NA"]["LUONG"] == Decimal("11")
    assert rows["NA"]["MA_VAT_TU"] == "A"  # MA_NPL_SP == MA_PHU → real code from DHANGMDDK
    assert rows["NB"]["LAN_DC"] == 0  # gap filled from DK as LAN_DC = 0
    assert rows["NA"]["MA_HQ"] == "47D1"


def test_non_nsx_goods_use_th_or_dk_when_th_missing() -> None:
    lk = cv.Lookups()
    cv.convert_declaration(decl(MA_LH="XSX01"), None, "SXXK", CTX, cv.IdAllocator(0), lk)
    with_th = cv.convert_sxxk_goods_group([line("DK", "SA", MA_LH="XSX01"), line("TH", "SA", MA_LH="XSX01"),
                                           line("DC", "SA", MA_LH="XSX01", LAN_DC=1)], CTX, lk)
    assert [(f.kind, f.code) for _, f in with_th] == [("excluded", "R-DK-SUPERSEDED"), ("converted", ""),
                                                      ("excluded", "R-DC-NOT-NSX")]
    lk2 = cv.Lookups()
    cv.convert_declaration(decl(MA_LH="XSX01"), None, "SXXK", CTX, cv.IdAllocator(0), lk2)
    no_th = cv.convert_sxxk_goods_group([line("DK", "SA", MA_LH="XSX01")], CTX, lk2)
    assert no_th[0][1].kind == "converted" and no_th[0][1].rows[0][1]["NGUON"] == "DHANGMDDK"


def test_goods_of_unselected_declaration_are_excluded_and_negative_quantity_quarantined() -> None:
    lk = cv.Lookups()
    out = cv.convert_sxxk_goods_group([line("TH", "SA"), line("TH", "SB", LUONG=Decimal(-1))], CTX, lk)
    assert [(f.kind, f.code) for _, f in out] == [("excluded", "R-DECL-NOT-SELECTED"),
                                                  ("quarantined", "Q-NEGATIVE-QTY")]


def test_stock_simple_load() -> None:
    lk = _setup_nsx()
    row = {"SOTK": 12, "MA_LH": "NSX01", "MA_HQ": "C47D", "NAMDK": 2013, "MA_NPL": "VAI", "LUONG": Decimal("100"),
           "TON": Decimal("40")}
    f = cv.convert_stock(row, CTX, cv.IdAllocator(0), lk)  # no goods lines for VAI: one piece at price 0
    assert f.rows[0][0] == "DSX_NPL_NHAP" and f.rows[0][1]["TON"] == 40
    r = f.rows[1][1]
    assert (r["TON_DAU"], r["LUONG"], r["TON"], r["LUONG_TON_DC"], r["LUONG_TON_SAU_DC"]) == (100, 60, 40, 0, 40)
    assert cv.convert_stock(dict(row, TON=Decimal(0)), CTX, cv.IdAllocator(0), lk).code == "R-STOCK-ZERO"
    assert cv.convert_stock(dict(row, TON=Decimal(150)), CTX, cv.IdAllocator(0), lk).code == "Q-TON-GT-LUONG"
    assert cv.convert_stock(dict(row, SOTK=99), CTX, cv.IdAllocator(0), lk).code == "R-DECL-NOT-SELECTED"


def test_too_long_names_the_column() -> None:
    assert cv.too_long({"VAN_DON": "x" * 40}, {"VAN_DON": 35}) == "VAN_DON has 40 characters, target allows 35"
    assert cv.too_long({"VAN_DON": "x" * 35}, {"VAN_DON": 35}) is None


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["TH", "DC", "DK"]), st.sampled_from(["NA", "NB", "NC", "SA"]),
                          st.integers(0, 3), st.sampled_from(["NSX01", "XSX01", "NKD01"])), max_size=12),
       st.booleans())
def test_every_goods_line_gets_exactly_one_fate(spec: list, selected: bool) -> None:
    ma_lh = spec[0][3] if spec else "NSX01"
    lk = cv.Lookups()
    if selected:
        cv.convert_declaration(decl(MA_LH=ma_lh), None, "SXXK", CTX, cv.IdAllocator(0), lk)
    lines = [line(s, mp, LAN_DC=(lan if s == "DC" else None), MA_LH=ma_lh) for s, mp, lan, _ in spec]
    out = cv.convert_sxxk_goods_group(lines, CTX, lk)
    assert len(out) == len(lines)
    assert all(a is b for (a, _), b in zip(out, lines))
    converted = [f.rows[0][1] for _, f in out if f.kind == "converted"]
    # one line per MA_PHU at most, numbered 1..n without gaps
    assert sorted(r["STT_HANG"] for r in converted) == list(range(1, len(converted) + 1))
    assert len({r["MA_PHU"] for r in converted}) == len(converted)
    if not selected:
        assert not converted


def test_stock_is_split_over_the_goods_prices() -> None:
    lk = _setup_nsx()
    lines = [line("DK", "NVAI", MA_NPL_SP="VAI", LUONG=Decimal(100), DGIA_TT=5.0),
             line("DK", "NVAI-2", MA_NPL_SP="VAI", LUONG=Decimal(60), DGIA_TT=8.0)]
    assert all(f.kind == "converted" for _, f in cv.convert_sxxk_goods_group(lines, CTX, lk))
    row = {"SOTK": 12, "MA_LH": "NSX01", "MA_HQ": "C47D", "NAMDK": 2013, "MA_NPL": "VAI", "LUONG": Decimal(160),
           "TON": Decimal(70)}
    f = cv.convert_stock(row, CTX, cv.IdAllocator(0), lk)
    rows = sorted((r for t, r in f.rows if t == "DSX_NPL_NHAP_TL"), key=lambda r: r["DGIA_TT"])
    assert [(r["DGIA_TT"], r["TON_DAU"], r["LUONG"], r["TON"]) for r in rows] == [
        (Decimal("5.000000"), 100, 90, 10), (Decimal("8.000000"), 60, 0, 60)]
    assert len({r["HS_TL_ID"] for r in rows}) == 1  # every piece keeps the same HS_TL_ID (hazard 11)
    assert cv.convert_stock(dict(row, LUONG=Decimal(500), TON=Decimal(200)), CTX, cv.IdAllocator(0), lk).code \
        == "Q-TON-GT-GOODS"


def test_truncation_only_under_the_named_rule() -> None:
    row = {"VAN_DON": "B" * 40, "DV_DT": "x"}
    limits = {"VAN_DON": 35, "DV_DT": 256}
    assert cv.truncate_allowed(dict(row), limits, []) == []
    r = dict(row)
    cut = cv.truncate_allowed(r, limits, ["VAN_DON"])
    assert cut == [("VAN_DON", "B" * 40, "B" * 35)] and r["VAN_DON"] == "B" * 35
    assert cv.too_long(r, limits) is None and cv.too_long(row, limits) is not None
