from datetime import datetime
from decimal import Decimal

from validate.sample_check import compare


def _row(**kw: object) -> dict:
    r = {"_SRC_KEY": "SXXK.DTOKHAIMD|SOTK=1|MA_LH=NSX01|MA_HQ=C47D|NAMDK=2013", "SO_TK": 1, "MA_LH": "NSX01",
         "NAM_DK": 2013, "NGAY_DK": datetime(2013, 5, 2), "MA_DV": "3600252847", "SO_HANG": 2, "TYGIA_VND": 20828.0,
         "MA_NT": "USD"}
    r.update(kw)
    return r


SRC = {"SOTK": 1, "MA_LH": "NSX01", "NAMDK": 2013, "NGAY_DK": datetime(2013, 5, 2), "MA_DV": "3600252847  ",
       "SOHANG": 2, "TYGIA_VND": Decimal("20828"), "MA_NT": "USD"}


def test_compare_passes_equal_records_and_names_the_differing_field() -> None:
    key = _row()["_SRC_KEY"]
    ok = compare("DTO_KHAI_MD", [_row()], {key: [SRC]})
    assert [c["status"] for c in ok] == ["pass"]
    bad = compare("DTO_KHAI_MD", [_row(SO_HANG=3)], {key: [SRC]})
    assert [(c["field"], c["expected"], c["actual"], c["status"]) for c in bad] == [("SO_HANG", "2", "3", "fail")]
    missing = compare("DTO_KHAI_MD", [_row()], {})
    assert missing and all(c["status"] == "fail" and c["expected"] == "source row not found" for c in missing)
    # a duplicated source row passes when one of the copies matches
    assert compare("DTO_KHAI_MD", [_row()], {key: [dict(SRC, SOHANG=9), SRC]})[0]["status"] == "pass"
