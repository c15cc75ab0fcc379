from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transform.codes import fix_text, tcvn3_to_unicode, unicode_to_tcvn3
from validate.sample_check import compare, fold_tcvn3_case, tcvn3_reading


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


# --- TCVN3 text (hazard 2): the checker reads legacy bytes on its own; these tests tie it to the conversion
# Every Vietnamese letter beyond ASCII, small and capital (134 letters): TCVN3 encodes each as one byte.
_VI_SMALL = "aàáảãạăằắẳẵặâầấẩẫậbcdđeèéẻẽẹêềếểễệghiìíỉĩịklmnoòóỏõọôồốổỗộơờớởỡợpqrstuùúủũụưừứửữựvxyỳýỷỹỵ"
TCVN3_LETTERS = sorted(c for c in _VI_SMALL + _VI_SMALL.upper() if not c.isascii())
_CONTEXT = st.text(alphabet="ABCDGHKLMNPQRSTVXY0123456789/-.", max_size=6)


def _contract(so_hd: str) -> dict:
    return {"_SRC_KEY": "SLXNK.DHDGC|SO_HD=x", "SO_HD": so_hd, "DON_VI_GC": "3600252847",
            "NGAY_KY": datetime(2012, 3, 1), "THANH_KHOAN": 0}


def _contract_source(so_hd: str) -> dict:
    return {"SO_HD": so_hd, "DVGC": "3600252847  ", "NGAY_KY": datetime(2012, 3, 1), "THANHKHOAN": 0}


def _status(source_so_hd: str, target_so_hd: str) -> list[tuple[str, str]]:
    sources = {"SLXNK.DHDGC|SO_HD=x": [_contract_source(source_so_hd)]}
    out = compare("DGC_HD", [_contract(target_so_hd)], sources)
    return [(c["field"], c["status"]) for c in out]


def test_tcvn3_letter_table_is_complete() -> None:
    assert len(TCVN3_LETTERS) == 134 and {"Đ", "đ", "Ư", "ự", "Ỵ"} <= set(TCVN3_LETTERS)
    assert all(len(b := unicode_to_tcvn3(c)) == 1 and 0xA1 <= ord(b) <= 0xFE for c in TCVN3_LETTERS)


def test_compare_accepts_a_tcvn3_contract_number_converted_to_unicode() -> None:
    """Defect 7: '01/2012/HĐGC' held in TCVN3 ('H§GC') and correctly converted is not a finding."""
    source = unicode_to_tcvn3("01/2012/HĐGC")
    assert source == "01/2012/H§GC"
    assert _status(source, fix_text(source)[0]) == [("*", "pass")]
    assert _status(source, "01/2012/HĐGC") == [("*", "pass")]
    # real conversion errors are still found: a wrong letter, a capital TCVN3 did carry turned small,
    # the bytes left unconverted are accepted only as the value stored verbatim
    assert _status(source, "01/2012/HDGC") == [("SO_HD", "fail")]
    assert _status(source, "01/2012/HđGC") == [("SO_HD", "fail")]
    assert _status(source, source) == [("*", "pass")]
    # a Unicode source (a code point beyond Latin-1 cannot be TCVN3) is compared as stored
    assert _status("01/2012/HĐGC", "01/2012/HĐGC") == [("*", "pass")]
    assert _status("01/2012/HĐGC", "01/2012/HDGC") == [("SO_HD", "fail")]


def test_failing_tcvn3_field_reports_the_decoded_reading() -> None:
    [row] = compare("DGC_HD", [_contract("01/2012/HDGC")],
                    {"SLXNK.DHDGC|SO_HD=x": [_contract_source("01/2012/H§GC")]})
    assert row["expected"] == "01/2012/H§GC (TCVN3: 01/2012/HĐGC)" and row["actual"] == "01/2012/HDGC"


@pytest.mark.parametrize("byte", range(0xA1, 0x100))
def test_checker_reads_every_tcvn3_byte_as_the_conversion_does(byte: int) -> None:
    """The checker's own byte table agrees with the conversion on every byte of the TCVN3 range."""
    assert tcvn3_reading(chr(byte)) == tcvn3_to_unicode(chr(byte))


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(TCVN3_LETTERS), _CONTEXT, _CONTEXT)
def test_checker_agrees_with_the_conversion_on_every_tcvn3_letter(letter: str, before: str,
                                                                  after: str) -> None:
    """Any TCVN3 letter, either case, inside a contract number: the original Unicode value and the
    conversion's output both pass the sample comparison against the TCVN3 bytes (a capital TCVN3 cannot
    carry may come back small, so the checker compares those letters without case; the rest exactly)."""
    original = before + letter + after
    source = unicode_to_tcvn3(original)
    byte = unicode_to_tcvn3(letter)
    assert fold_tcvn3_case(tcvn3_reading(byte)) == fold_tcvn3_case(letter)
    assert fold_tcvn3_case(tcvn3_reading(byte)) == fold_tcvn3_case(tcvn3_to_unicode(byte))
    assert _status(source, original) == [("*", "pass")]
    assert _status(source, tcvn3_to_unicode(source)) == [("*", "pass")]
    assert _status(source, fix_text(source)[0]) == [("*", "pass")]


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(TCVN3_LETTERS), st.sampled_from(TCVN3_LETTERS + list("ADEIOUY")), _CONTEXT)
def test_checker_flags_a_wrong_letter(letter: str, wrong: str, before: str) -> None:
    """The comparison is not vacuous: another letter in the target is a finding, unless it is the same letter
    in a case TCVN3 cannot tell, or the target is the stored byte string read verbatim."""
    source = unicode_to_tcvn3(before + letter)
    same = fold_tcvn3_case(wrong) == fold_tcvn3_case(letter) or unicode_to_tcvn3(letter) == wrong
    assert _status(source, before + wrong) == ([("*", "pass")] if same else [("SO_HD", "fail")])
