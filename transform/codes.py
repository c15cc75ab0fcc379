"""Pure code rules of the 2014 conversion: office codes, units, channel, TCVN3 text, buckets.

Every function here is pure: plain values in, plain values out. ``map_distinct`` lifts a scalar rule
to an Arrow array by applying it once per distinct value (codes have few distinct values).
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable, Mapping
from datetime import date, datetime

import pyarrow as pa
import pyarrow.compute as pc

from transform.maps import OFFICE_MAPS, UNIT_MAPS


# --- office codes (domain doc §2, §4.2) ------------------------------------------------------------
def reshape_office(code: str | None) -> str | None:
    """Legacy office code → reshaped code: chars 2–3 (Cục) + char 1 + the rest, trimmed.

    >>> reshape_office('P01L  ')
    '01PL'
    >>> reshape_office('T01E01')
    '01TE01'
    """
    if code is None:
        return None
    c = code.strip()
    if len(c) < 3:
        return c
    return c[1:3] + c[0] + c[3:]


def cuc_code(code: str | None) -> str | None:
    """Department (Cục) code = chars 2–3 of the legacy office code."""
    if code is None:
        return None
    c = code.strip()
    return c[1:3] if len(c) >= 3 else None


def new_office_code(code: str | None, office_map: Mapping[str, str]) -> str | None:
    """Reshape, then apply the VNACCS rename map (Doi_Ma_HQ); unmapped codes pass through."""
    r = reshape_office(code)
    if r is None:
        return None
    return office_map.get(r, r)


def office_map(version: str) -> Mapping[str, str]:
    try:
        return OFFICE_MAPS[version]
    except KeyError:
        raise KeyError(f"unknown office map {version!r}; available: {', '.join(OFFICE_MAPS)}") from None


def unit_map(version: str) -> Mapping[str, str]:
    try:
        return UNIT_MAPS[version]
    except KeyError:
        raise KeyError(f"unknown unit map {version!r}; available: {', '.join(UNIT_MAPS)}") from None


def new_unit_code(code: str | None, umap: Mapping[str, str]) -> str | None:
    """Legacy numeric unit code → alphabetic code (Doi_Ma_DVT); unknown codes pass through trimmed."""
    if code is None:
        return None
    c = code.strip()
    return umap.get(c, c)


# --- channel (PLUONG) ----------------------------------------------------------------------------
def channel_code(pluong: str | None) -> int:
    """Channel text → 3 red, 2 yellow, 1 green, 0 otherwise; Unicode and TCVN3 spellings."""
    if pluong is None:
        return 0
    v = tcvn3_to_unicode(pluong.strip()).upper() if looks_tcvn3(pluong) else pluong.strip().upper()
    v = unicodedata.normalize("NFC", v)
    if v in ("ĐỎ", "DO", "RED"):
        return 3
    if v in ("VÀNG", "VANG", "YELLOW"):
        return 2
    if v in ("XANH", "GREEN"):
        return 1
    return 0


# --- TCVN3 (ABC) ---------------------------------------------------------------------------------
# Lower-case letters, in the order a à á ả ã ạ for each vowel; one byte each. TCVN3 uses the same
# byte for an accented capital and its small letter, except the seven capitals Ă Â Đ Ê Ô Ơ Ư.
_TCVN3_PAIRS = (
    "à\xb5 á\xb8 ả\xb6 ã\xb7 ạ\xb9 ă\xa8 ằ\xbb ắ\xbe ẳ\xbc ẵ\xbd ặ\xc6 â\xa9 ầ\xc7 ấ\xca ẩ\xc8 ẫ\xc9 ậ\xcb "
    "đ\xae è\xcc é\xd0 ẻ\xce ẽ\xcf ẹ\xd1 ê\xaa ề\xd2 ế\xd5 ể\xd3 ễ\xd4 ệ\xd6 ì\xd7 í\xdd ỉ\xd8 ĩ\xdc ị\xde "
    "ò\xdf ó\xe3 ỏ\xe1 õ\xe2 ọ\xe4 ô\xab ồ\xe5 ố\xe8 ổ\xe6 ỗ\xe7 ộ\xe9 ơ\xac ờ\xea ớ\xed ở\xeb ỡ\xec ợ\xee "
    "ù\xef ú\xf3 ủ\xf1 ũ\xf2 ụ\xf4 ư\xad ừ\xf5 ứ\xf8 ử\xf6 ữ\xf7 ự\xf9 ỳ\xfa ý\xfd ỷ\xfb ỹ\xfc ỵ\xfe "
    "Ă\xa1 Â\xa2 Đ\xa7 Ê\xa3 Ô\xa4 Ơ\xa5 Ư\xa6"
)
_U2T: dict[str, str] = {p[0]: p[1] for p in _TCVN3_PAIRS.split(" ")}
_T2U: dict[str, str] = {t: u for u, t in _U2T.items()}
_TCVN3_BYTES = frozenset(_T2U)
_VI_LOWER = "aàáảãạăằắẳẵặâầấẩẫậbcdđeèéẻẽẹêềếểễệghiìíỉĩịklmnoòóỏõọôồốổỗộơờớởỡợpqrstuùúủũụưừứửữựvxyỳýỷỹỵ"
_VI_LETTERS = frozenset(_VI_LOWER + _VI_LOWER.upper())
# TCVN3 bytes that never occur in genuine Vietnamese Unicode text (µ ¸ « ¬ § ® ...): strong evidence.
_TCVN3_STRONG = frozenset(c for c in _TCVN3_BYTES if c not in _VI_LETTERS)
# Vietnamese letters outside Latin-1: a string holding one is Unicode, whatever else it holds.
_VI_UNICODE = frozenset(c for c in _VI_LETTERS if ord(c) > 0xFF)


def unicode_to_tcvn3(text: str) -> str:
    """Encode Unicode Vietnamese as a TCVN3 byte string (read as Latin-1), as legacy varchar held it.

    Lossy like the real encoding: accented capitals other than Ă Â Đ Ê Ô Ơ Ư become small letters.
    """
    out = []
    for ch in unicodedata.normalize("NFC", text):
        if ch in _U2T:
            out.append(_U2T[ch])
        elif ch.lower() in _U2T and ch.lower() != ch:
            out.append(_U2T[ch.lower()])
        else:
            out.append(ch)
    return "".join(out)


def looks_tcvn3(text: str | None) -> bool:
    """True if the string carries a byte only TCVN3 produces and no Vietnamese letter beyond Latin-1."""
    if not text:
        return False
    if any(c in _VI_UNICODE for c in text):
        return False
    if any(c in _TCVN3_STRONG for c in text):
        return True
    # TCVN3 writes small letters like ẫ/ế/ẽ as bytes that read as Latin-1 capitals (É, Õ, Ï...):
    # such a capital right after a small letter ('mÉu' = 'mẫu') is a TCVN3 signature too.
    return any(b in _TCVN3_BYTES and b.isupper() and a.isalpha() and a.islower() for a, b in zip(text, text[1:]))


def tcvn3_to_unicode(text: str) -> str:
    """Decode a TCVN3 byte string to Unicode NFC, restoring capitals that TCVN3 cannot express.

    The 2014 converter (fcnTCVN2Unicode) turned every accented capital into a small letter
    (hazard 2). We restore case from context. A letter's case is *known* when it is ASCII or one of
    the seven TCVN3 capitals (Ă Â Đ Ê Ô Ơ Ư); an ambiguous decoded letter becomes a capital when the
    known letters of its word (at least two) are all capitals, or when its word has one known letter,
    a capital, and every known letter of the whole string (at least three) is a capital.
    Inherently ambiguous cases ('§á' → 'Đỏ', never 'ĐỎ') stay small, as the legacy text was.
    """
    chars = [_T2U.get(c, c) for c in text]
    ambiguous = [c in _T2U and _T2U[c].islower() for c in text]
    known = [ch.isalpha() and not amb for ch, amb in zip(chars, ambiguous, strict=True)]
    all_known = [ch for ch, k in zip(chars, known, strict=True) if k]
    string_caps = len(all_known) >= 3 and all(c.isupper() for c in all_known)
    n = len(chars)
    i = 0
    while i < n:
        if not chars[i].isalpha():
            i += 1
            continue
        j = i
        while j < n and chars[j].isalpha():
            j += 1
        word_known = [chars[k] for k in range(i, j) if known[k]]
        caps = (len(word_known) >= 2 and all(c.isupper() for c in word_known)) or \
               (len(word_known) == 1 and word_known[0].isupper() and string_caps)
        if caps:
            for k in range(i, j):
                if ambiguous[k]:
                    chars[k] = chars[k].upper()
        i = j
    return unicodedata.normalize("NFC", "".join(chars))


def fix_text(text: str | None) -> tuple[str | None, bool]:
    """Normalise one text value: TCVN3 → Unicode when detected; always NFC. Returns (value, converted)."""
    if text is None:
        return None, False
    if looks_tcvn3(text):
        return tcvn3_to_unicode(text), True
    return unicodedata.normalize("NFC", text), False


# --- buckets, defaults, keys ---------------------------------------------------------------------
def nam_tk_bucket(item_code: str | None) -> int:
    """NAM_TK 'bucket' from the first character of an item code: '0'..'9' → 2014..2023,
    'A'..'Z' → 2024..2049, anything else → 2050 (a partition key, not a year; hazard 12)."""
    if not item_code:
        return 2050
    c = item_code.strip()[:1].upper()
    if "0" <= c <= "9":
        return 2014 + ord(c) - ord("0")
    if "A" <= c <= "Z":
        return 2024 + ord(c) - ord("A")
    return 2050


KIND_LETTER_TO_LOAI: dict[str, int] = {"N": 1, "S": 2, "T": 3, "M": 4, "P": 5, "C": 6, "U": 7}


def strip_kind_prefix(code: str | None) -> str | None:
    """P_Code / Ma_Phu carry a one-letter kind prefix; the item code is the rest."""
    if code is None:
        return None
    c = code.strip()
    return c[1:] if c else c


def kind_of(code: str | None) -> int:
    """Loai_Hang from the kind letter (N 1, S 2, T 3, M 4, P 5, C 6, U 7); 0 when unknown."""
    if not code:
        return 0
    return KIND_LETTER_TO_LOAI.get(code.strip()[:1].upper(), 0)


def so_hd_hq_cap(new_office: str, dvgc: str, so_hd: str, ngay_ky: date | datetime) -> str:
    """The 32-hex MD5 contract key of the later 2014 scripts (domain doc §4.7, hazard 3).

    MD5 over UTF-16LE of ``trimmed new office|DVGC|Unicode(So_HD)|yyyymmdd`` (the SQL concatenated
    varchar with nvarchar, so the whole string was nvarchar). Upper-case hex as SQL Server prints.
    """
    s = f"{new_office.strip()}|{dvgc.strip()}|{so_hd.strip()}|{ngay_ky.strftime('%Y%m%d')}"
    return hashlib.md5(s.encode("utf-16-le")).hexdigest().upper()


def mst_check_digit(first9: str) -> int | None:
    """Check digit of a 10-digit Vietnamese tax code (MST); None when no valid digit exists."""
    weights = (31, 29, 23, 19, 17, 13, 7, 5, 3)
    s = sum(int(d) * w for d, w in zip(first9, weights, strict=True))
    d = 10 - (s % 11)
    return d if 0 <= d <= 9 else None


def is_valid_mst(code: str | None) -> bool:
    if not code:
        return False
    c = code.strip()[:10]
    return len(c) == 10 and c.isdigit() and mst_check_digit(c[:9]) == int(c[9])


# --- Arrow lifting ------------------------------------------------------------------------------
def map_distinct(arr: pa.Array | pa.ChunkedArray, fn: Callable[[object], object],
                 out_type: pa.DataType) -> pa.Array:
    """Apply a scalar rule once per distinct value of ``arr`` and expand back (nulls → fn(None))."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    enc = pc.dictionary_encode(arr)
    dict_vals = [fn(v) for v in enc.dictionary.to_pylist()]
    mapped_dict = pa.array(dict_vals, type=out_type)
    out = mapped_dict.take(enc.indices)
    if arr.null_count:
        null_val = fn(None)
        out = pc.if_else(pc.is_null(enc.indices), pa.scalar(null_val, type=out_type), out)
    return out


def trim(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Trim CHAR padding (hazard 1)."""
    return pc.utf8_trim_whitespace(arr)
