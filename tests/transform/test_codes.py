import hashlib
import unicodedata
from datetime import date

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transform.codes import (
    channel_code, cuc_code, fix_text, is_valid_mst, kind_of, looks_tcvn3, map_distinct, mst_check_digit,
    nam_tk_bucket, new_office_code, new_unit_code, office_map, reshape_office, so_hd_hq_cap,
    strip_kind_prefix, tcvn3_to_unicode, unicode_to_tcvn3, unit_map,
)


@pytest.mark.parametrize("old,new", [("P01L  ", "01PL"), ("T01E01", "01TE01"), ("X47E", "47XE"), ("N47B", "47NB")])
def test_reshape_office_domain_examples(old: str, new: str) -> None:
    assert reshape_office(old) == new


def test_cuc_code_is_chars_2_3() -> None:
    assert cuc_code("C47D01") == "47"


def test_office_map_versions_disagree_where_the_scripts_did() -> None:
    latest, early = office_map("2014-latest"), office_map("2014-early")
    assert new_office_code("C31D01", latest) == "31D2"  # swapped in the latest scripts
    assert new_office_code("C31D01", early) == "31D1"
    assert new_office_code("A02B04", latest) == "02B4" and new_office_code("A02B04", early) == "02B2"
    assert new_office_code("N47B  ", latest) == "47NB"  # not in any map: passes through reshaped
    with pytest.raises(KeyError, match="available: 2014-latest"):
        office_map("2099")


def test_unit_map() -> None:
    latest = unit_map("2014-latest")
    assert new_unit_code("2  ", latest) == "KGM"
    assert new_unit_code("46", latest) == "VI" and new_unit_code("46", unit_map("2014-early")) == "UNVI"
    assert new_unit_code("93", unit_map("2014-tui")) == "TUI"
    assert new_unit_code("XYZ", latest) == "XYZ"


def test_tcvn3_known_strings() -> None:
    assert unicode_to_tcvn3("VÀNG") == "VµNG"  # rendered 'VµNG' in the domain doc
    assert unicode_to_tcvn3("ĐỎ") == "§á"
    assert tcvn3_to_unicode("M\xadêng Kh\xad¬ng") == "Mường Khương"


@pytest.mark.parametrize("text", ["CÔNG TY CỔ PHẦN MAY BIÊN HÒA", "Công ty TNHH Thương mại Đồng Nai", "HÀ NỘI",
                                  "Hàng mẫu áo sơ mi", "VÀNG"])
def test_tcvn3_round_trip_keeps_capitals(text: str) -> None:
    encoded = unicode_to_tcvn3(text)
    assert looks_tcvn3(encoded)
    assert tcvn3_to_unicode(encoded) == text


@pytest.mark.parametrize("text", ["Decathlon SA (Pháp)", "Hà Nội", "ÁO SƠ MI", "plain ascii", ""])
def test_unicode_text_is_not_taken_for_tcvn3(text: str) -> None:
    assert not looks_tcvn3(text)
    assert fix_text(text) == (text or None, False) if text else fix_text(text) == ("", False)


def test_channel_code_unicode_and_tcvn3() -> None:
    assert [channel_code(x) for x in ("ĐỎ", "VÀNG", "XANH", "§á", "VµNG", None, "??")] == [3, 2, 1, 3, 2, 0, 0]


def test_nam_tk_bucket() -> None:
    assert [nam_tk_bucket(c) for c in ("0AB", "9", "A1", "z", "#x", None)] == [2014, 2023, 2024, 2049, 2050, 2050]


def test_kind_prefix() -> None:
    assert strip_kind_prefix("NVAI01") == "VAI01" and kind_of("NVAI01") == 1
    assert [kind_of(x) for x in ("S1", "T1", "M1", "P1", "C1", "U1", "Q1")] == [2, 3, 4, 5, 6, 7, 0]


def test_so_hd_hq_cap_is_md5_of_utf16le() -> None:
    key = so_hd_hq_cap("47D1 ", " 3600252847", "01/2012/HĐGC", date(2012, 3, 1))
    expected = hashlib.md5("47D1|3600252847|01/2012/HĐGC|20120301".encode("utf-16-le")).hexdigest().upper()
    assert key == expected
    assert key != hashlib.md5("47D1|3600252847|01/2012/HĐGC|20120301".encode()).hexdigest().upper()
    assert len(key) == 32


def test_mst_check_digit() -> None:
    first9 = "360025284"
    d = mst_check_digit(first9)
    assert d is not None and is_valid_mst(first9 + str(d))
    assert not is_valid_mst(first9 + str((d + 1) % 10))


def test_map_distinct_handles_nulls() -> None:
    arr = pa.array(["C47D  ", None, "C47D01", "C47D  "])
    out = map_distinct(arr, lambda v: new_office_code(v, office_map("2014-latest")) or "?", pa.string())
    assert out.to_pylist() == ["47D1", "?", "47D2", "47D1"]


# --- TCVN3 capitals restored from context (defect 8) --------------------------------------------------------
def _round_trip(text: str) -> str:
    return tcvn3_to_unicode(unicode_to_tcvn3(text))


@pytest.mark.parametrize("text", ["ÁO SƠ MI NAM", "ÁO", "ẤM", "ỐNG THÉP", "ÉP NHIỆT",
                                  "ÁO SƠ MI NAM - size M"])
def test_tcvn3_capital_at_the_start_of_the_string(text: str) -> None:
    """The word's other letters are capitals: its ambiguous first letter is one too (was 'áO')."""
    assert _round_trip(text) == text


@pytest.mark.parametrize("text", ["SƠ MI ÁO NAM", "HÀNG ÁO", "MÀU ĐỎ", "01/2012/HĐGC ÁO",
                                  "Công ty TNHH ÁNH DƯƠNG"])
def test_tcvn3_capital_at_the_start_of_a_later_word(text: str) -> None:
    assert _round_trip(text) == text


@pytest.mark.parametrize("text", ["THÉP", "CHỈ", "PHỞ BÒ", "NGUYÊN PHỤ LIỆU", "CÀ PHÊ", "HÀ NỘI",
                                  "CÔNG TY CỔ PHẦN MAY BIÊN HÒA", "ĐỎ VÀ VÀNG"])
def test_tcvn3_all_capital_strings(text: str) -> None:
    """Ambiguous letters first, in the middle and last in the word, in all-capital strings."""
    assert _round_trip(text) == text


@pytest.mark.parametrize("text,expected", [
    ("HÀNG Ở KHO", "HÀNG Ở KHO"), ("hàng ở kho", "hàng ở kho"), ("Ở", "ở"), ("Á", "á"),
    ("A Á B", "A Á B"), ("Hàng Ở Kho", "Hàng Ở Kho"),
])
def test_tcvn3_single_letter_words(text: str, expected: str) -> None:
    """A one-letter word has no letters of its own to go by: its neighbours decide; none → small."""
    assert _round_trip(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("Áo Sơ Mi", "Áo Sơ Mi"),          # every other word is title case: so is this one
    ("Áo Sơ Mi Nam", "Áo Sơ Mi Nam"),
    ("Ấn Độ", "Ấn Độ"),
    ("áo sơ mi nam", "áo sơ mi nam"),
    ("Áo sơ mi nam", "áo sơ mi nam"),   # title or small: nothing tells, stays small as the legacy text was
    ("Đỏ", "Đỏ"), ("ĐỎ", "Đỏ"),         # '§á': genuinely ambiguous, never 'ĐỎ' on its own
    ("Cá", "Cá"),
])
def test_tcvn3_title_case_and_ambiguous_words(text: str, expected: str) -> None:
    """A word starting with an ambiguous letter then small letters is title case or small, never capitals."""
    assert _round_trip(text) == expected


@pytest.mark.parametrize("text", ["ĐỎ và VÀNG", "Đỏ và Vàng", "Hàng mẫu ÁO SƠ MI", "ÁO SƠ MI nam", "Đô THÀNH",
                                  "Xuất xứ: ẤN ĐỘ", "Ông Ánh Dương, CÔNG TY ÂU Á"])
def test_tcvn3_mixed_strings(text: str) -> None:
    """Words of different shapes side by side; a small ă â đ ê ô ơ ư is known small (TCVN3 has a byte
    for their capitals too)."""
    assert _round_trip(text) == text


def _knowable(word: str) -> bool:
    """The precondition that makes a word's case knowable from its own TCVN3 bytes.

    A letter's case survives TCVN3 when its two cases encode differently (ASCII letters, Ă Â Đ Ê Ô Ơ Ư and
    their small letters). A small word needs one such letter anywhere: if it is first it is small, if later
    the word is small or title case, and nothing in these strings is title case. A capital word needs one
    after its first letter: a capital first letter alone fits 'Đỏ' as well as 'ĐỎ'.
    """
    known = [unicode_to_tcvn3(c.upper()) != unicode_to_tcvn3(c.lower()) for c in word]
    return any(known[1:]) if word.isupper() else any(known)


_VI_SMALL = "aàáảãạăằắẳẵặâầấẩẫậbcdđeèéẻẽẹêềếểễệghiìíỉĩịklmnoòóỏõọôồốổỗộơờớởỡợpqrstuùúủũụưừứửữựvxyỳýỷỹỵ"
_WORD = st.tuples(st.text(alphabet=_VI_SMALL, min_size=2, max_size=7), st.booleans()).map(
    lambda wb: wb[0].upper() if wb[1] else wb[0]).filter(_knowable)
_SEPARATOR = st.sampled_from([" ", " ", "-", ", ", " / ", " 12 "])


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.tuples(_WORD, _SEPARATOR), min_size=1, max_size=6))
def test_tcvn3_round_trip_of_knowable_words(words: list[tuple[str, str]]) -> None:
    """Words each all capitals or all small, each with its case knowable (``_knowable``), in any mix:
    Unicode → TCVN3 → Unicode gives the text back exactly (NFC), through the decoder and ``fix_text``."""
    text = "".join(w + sep for w, sep in words).strip(" -,/")
    encoded = unicode_to_tcvn3(text)
    assert tcvn3_to_unicode(encoded) == unicodedata.normalize("NFC", text)
    if looks_tcvn3(encoded):
        assert fix_text(encoded) == (text, True)
