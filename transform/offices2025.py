"""The 2025 reorganisation of customs offices (domain doc §2; 62/CHQ-CNTT, MOF 382/QĐ-BTC).

From 1 March 2025 the customs service has 20 regional branches ("Chi cục Hải quan khu vực" I–XX)
and office codes as well as names were remapped. The official old→new *code* table is not
public, so this module ships the structure and the regional assignment that is known, and takes
the code table itself from configuration (a CSV file the HQ issues), identified by its SHA-256.

CSV columns: ``old_code`` (the VNACCS/2014 code conversion produces, e.g. 47D1), ``new_code``,
``new_cuc_code`` (central's MA_CUC_HQ for that office), ``region`` (I–XX), ``new_name``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass

from transform.errors import ConfigError

ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII", "XIII", "XIV", "XV", "XVI",
         "XVII", "XVIII", "XIX", "XX")

# Provinces of each region as far as public sources give them (domain doc §2); regions with an
# empty tuple are known to exist, their provinces are not in our sources. Decision 2019/QĐ-BTC
# (June 2025) re-drew some areas (e.g. Tân Sơn Nhất / Long Thành airports → XV).
REGIONS_2025: dict[str, tuple[str, ...]] = {
    "I": ("Hà Nội", "Vĩnh Phúc", "Phú Thọ", "Hòa Bình", "Yên Bái"),
    "II": ("TP. Hồ Chí Minh",),
    "III": ("Hải Phòng", "Thái Bình"),
    "IV": ("Hưng Yên", "Hải Dương", "Hà Nam", "Nam Định"),
    "V": ("Bắc Ninh", "Bắc Giang", "Tuyên Quang", "Thái Nguyên", "Bắc Kạn"),
    "VI": ("Lạng Sơn", "Cao Bằng"),
    "VII": ("Hà Giang", "Lào Cai", "Điện Biên", "Lai Châu", "Sơn La"),
    "VIII": ("Quảng Ninh",),
    "IX": ("Quảng Bình", "Quảng Trị", "Huế"),
    "X": ("Thanh Hóa", "Ninh Bình"),
    "XI": ("Nghệ An", "Hà Tĩnh"),
    "XII": ("Đà Nẵng", "Quảng Nam", "Quảng Ngãi"),
    "XIII": ("Khánh Hòa", "Ninh Thuận", "Bình Định", "Phú Yên"),
    "XIV": (), "XV": (), "XVI": (), "XVII": (),
    "XVIII": ("Đồng Nai",),
    "XIX": ("Cần Thơ", "Cà Mau", "Hậu Giang", "Vĩnh Long", "Trà Vinh", "Sóc Trăng", "Bạc Liêu"),
    "XX": (),
}
COLUMNS = ("old_code", "new_code", "new_cuc_code", "region", "new_name")
_CODE = re.compile(r"^[0-9A-Z]{2,6}$")


@dataclass(frozen=True)
class Office2025:
    old_code: str
    new_code: str
    new_cuc_code: str
    region: str
    new_name: str


@dataclass(frozen=True)
class OfficeTable2025:
    offices: dict[str, Office2025]  # by old_code
    sha256: str

    def new_codes(self) -> set[str]:
        return {o.new_code for o in self.offices.values()}


def parse_office_table(text: str, origin: str = "office table") -> OfficeTable2025:
    """Parse and validate the configured old→new table (every problem named with its line)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or tuple(rows[0].keys()) != COLUMNS:
        raise ConfigError(f"{origin}: expected the columns {', '.join(COLUMNS)}",
                          hint="export the HQ's old→new office code table with exactly these columns")
    out: dict[str, Office2025] = {}
    problems = []
    for i, r in enumerate(rows, start=2):
        o = Office2025(*(str(r[c] or "").strip() for c in COLUMNS))
        if not _CODE.match(o.old_code) or not _CODE.match(o.new_code) or not re.match(r"^[0-9A-Z]{2}$",
                                                                                      o.new_cuc_code):
            problems.append(f"line {i}: malformed code in {o}")
        if o.region not in REGIONS_2025:
            problems.append(f"line {i}: region {o.region!r} is not one of I–XX")
        if o.old_code in out and out[o.old_code] != o:
            problems.append(f"line {i}: {o.old_code} mapped twice")
        out[o.old_code] = o
    if problems:
        raise ConfigError(f"{origin} is invalid: " + "; ".join(problems[:10]), hint="correct the table and re-run")
    return OfficeTable2025(out, hashlib.sha256(text.encode("utf-8")).hexdigest())


def uncovered(codes: Iterable[str | None], table: OfficeTable2025) -> list[str]:
    """The (VNACCS/2014) codes the table does not map."""
    return sorted({c for c in codes if c and c not in table.offices})


def to_2025(code: str | None, cuc: str | None, table: OfficeTable2025) -> tuple[str | None, str | None]:
    """(MA_HQ, MA_CUC_HQ) of central after the 2025 reorganisation; unmapped codes are an error upstream."""
    if code is None:
        return None, cuc
    o = table.offices[code]
    return o.new_code, o.new_cuc_code
