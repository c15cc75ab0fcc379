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


# Case shapes of a word, from the most to the least capitalised: 'ÁO', 'Áo', 'áo'.
UPPER, TITLE, LOWER = "upper", "title", "lower"
_ALL_SHAPES = frozenset({UPPER, TITLE, LOWER})


def _is_ambiguous(byte: str) -> bool:
    """True for a TCVN3 byte whose letter's capital has no byte of its own (all but ă â đ ê ô ơ ư)."""
    u = _T2U.get(byte)
    return u is not None and u.islower() and u.upper() not in _U2T


def _word_spans(chars: list[str]) -> list[tuple[int, int]]:
    """(start, end) of every maximal run of letters."""
    spans, i, n = [], 0, len(chars)
    while i < n:
        if not chars[i].isalpha():
            i += 1
            continue
        j = i
        while j < n and chars[j].isalpha():
            j += 1
        spans.append((i, j))
        i = j
    return spans


def _allowed_shapes(letters: list[str], known: list[bool]) -> frozenset[str]:
    """The shapes a word's known-case letters allow: a known first letter tells capital-first (upper or
    title) from small; a known later letter tells upper from title-or-small. Empty for a mixed word
    ('McD'); a one-letter word is upper or small (its title case is its upper case)."""
    shapes = set(_ALL_SHAPES)
    for pos, (ch, k) in enumerate(zip(letters, known, strict=True)):
        if not k or not (ch.isupper() or ch.islower()):
            continue
        if pos == 0:
            shapes &= {UPPER, TITLE} if ch.isupper() else {LOWER}
        else:
            shapes &= {UPPER} if ch.isupper() else {TITLE, LOWER}
    return _one_letter(shapes) if len(letters) == 1 else frozenset(shapes)


def _one_letter(shapes: set[str] | frozenset[str]) -> frozenset[str]:
    """Shapes as they read for a one-letter word: title case is upper case."""
    return frozenset(UPPER if s == TITLE else s for s in shapes)


def _as_evidence(shapes: frozenset[str], first_word: bool) -> frozenset[str]:
    """What a word's allowed shapes say about its neighbours' shapes. A title-case *first* word may just
    open a sentence ('Hàng áo'), so it speaks for title or small neighbours alike."""
    return shapes | {LOWER} if first_word and TITLE in shapes else shapes


def _choose_shape(i: int, allowed: list[frozenset[str]], one_letter: list[bool]) -> str | None:
    """The shape of word ``i``: its own when its known letters fix it; else the one shape its nearest
    neighbours (either side, nearest first) single out among the shapes it allows, provided those at that
    distance agree; else the least capitalised it allows (small, then title: '§á' → 'Đỏ'). None for a
    mixed word, left as decoded."""
    own = allowed[i]
    if len(own) <= 1:
        return next(iter(own), None)
    for d in range(1, len(allowed)):
        votes = set()
        for j in (i - d, i + d):
            if 0 <= j < len(allowed) and j != i:
                ev = _as_evidence(allowed[j], j == 0)
                fit = own & (_one_letter(ev) if one_letter[i] else ev)
                if len(fit) == 1:
                    votes |= fit
        if len(votes) == 1:
            return votes.pop()
        if votes:
            break
    return next(s for s in (LOWER, TITLE, UPPER) if s in own)


def _apply_shape(chars: list[str], ambiguous: list[bool], span: tuple[int, int], shape: str | None) -> None:
    """Give the ambiguous letters of one word the case its shape calls for (decoded letters are small)."""
    start, end = span
    for k in range(start, end):
        if ambiguous[k] and (shape == UPPER or (shape == TITLE and k == start)):
            chars[k] = chars[k].upper()


def tcvn3_to_unicode(text: str) -> str:
    """Decode a TCVN3 byte string to Unicode NFC, restoring capitals that TCVN3 cannot express.

    The 2014 converter (fcnTCVN2Unicode) turned every accented capital into a small letter
    (hazard 2). We restore case from context. A letter's case is *known* when it is ASCII or one of
    Ă Â Đ Ê Ô Ơ Ư ă â đ ê ô ơ ư (TCVN3 has a byte for each); the other accented letters are
    *ambiguous*. Each word (a run of letters) is upper ('ÁO'), title ('Áo') or small ('áo') case:

    * a known capital after the first letter makes the word upper case, wherever its ambiguous
      letters stand ('¸O' → 'ÁO', 'THÐP' → 'THÉP');
    * a known small letter after the first leaves title or small case, a known small first letter
      small case;
    * when that leaves a choice, the nearest words that single out one allowed shape decide
      ('¸o S¬ Mi' → 'Áo Sơ Mi', '§á VµNG' → 'ĐỎ VÀNG'); a title-case first word of the string
      counts for title or small alike (it may open a sentence);
    * otherwise the least capitalised allowed shape: inherently ambiguous text ('§á' → 'Đỏ', never
      'ĐỎ'; '¸o s¬ mi' → 'áo sơ mi') stays small, as the legacy text was.
    """
    chars = [_T2U.get(c, c) for c in text]
    ambiguous = [_is_ambiguous(c) for c in text]
    spans = _word_spans(chars)
    allowed = [_allowed_shapes(chars[a:b], [not amb for amb in ambiguous[a:b]]) for a, b in spans]
    one_letter = [b - a == 1 for a, b in spans]
    shapes = [_choose_shape(i, allowed, one_letter) for i in range(len(spans))]
    for span, shape in zip(spans, shapes, strict=True):
        _apply_shape(chars, ambiguous, span, shape)
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
