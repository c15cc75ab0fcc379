"""Code maps of the 2014 conversion, as versioned data (domain doc §2, §4.3).

The public scripts carried several versions of each map that disagree; every version we could
reconstruct is kept and selectable by name. ``LATEST`` names the default. A code that no map
covers passes through unchanged *and is reported* by the conversion (never silently).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

# --- Doi_Ma_HQ: reshaped legacy office code -> VNACCS 4-char code --------------------------------
_OFFICE_COMMON: dict[str, str] = {
    "01AB02": "01B1", "01AB05": "01B3", "01DD01": "01D1", "01DD03": "01D2", "01DD05": "01D3",
    "01PM": "01M1", "01PM01": "01M2", "01TE": "01E1", "01TE02": "01E2", "01TE03": "01E3",
    "01TE01": "01NV", "01PO": "01PR", "01AB04": "01B2",
    "02AB": "02B1", "02CH": "02H1", "02CH01": "02H2", "02CL": "02H3", "02XF": "02F1",
    "02XF01": "02F2", "02XF02": "02F3", "02CI02": "02CI", "02IK02": "02K1", "02IK03": "02K2",
    "02IK04": "02K3",
    "11BB": "11B1", "11BB01": "11B2", "11BG": "11G1", "11BG01": "11G2",
    "12BB": "12B1", "12BB01": "12B2", "12BH": "12H1", "12BH01": "12H2", "12PF": "12F1", "12PF01": "12F2",
    "13SG": "13G1", "13SG01": "13G2",
    "15BB01": "15B1", "15BB02": "15B2", "15BE01": "15E1", "15BE02": "15E2", "15BE03": "15E3",
    "15BE04": "15E4",
    "18BA01": "18A1", "18BA02": "18A2", "18BA03": "18A3", "18BB": "18B1", "18BB01": "18B2",
    "27BB": "27B1", "27BB01": "27B2", "27CF": "27F1", "27CF01": "27F2", "30CF": "30F1", "30CF01": "30F2",
    "43IH02": "43H2", "43NK": "43K1", "43NK01": "43K2", "45NF03": "45F2",
    "47CD": "47D1", "47CD01": "47D2", "47CD02": "47D3", "47CI": "47I1", "47CI01": "47I2",
    "48BF03": "48F1", "48BF04": "48F2", "51CC": "51C1", "51CC01": "51C2", "60NC": "60C1", "60BF": "60C2",
}

_OFFICE_EARLY = {
    **_OFFICE_COMMON,
    "02AB04": "02B2",
    "20BB01": "20B1", "20BB02": "20B2",
    "31CD01": "31D1", "31CD02": "31D2", "31CD03": "31D3",
    "40BB01": "40B1", "40BB02": "40B2", "40PD01": "40D1", "40PD02": "40D2",
    "43IH": "43H1", "43NK02": "43K3",
    "45NF02": "45F1",
    "61BA": "61A1", "61BA01": "61A2", "61PA": "61A3", "61PA02": "61A4",
}

_OFFICE_LATEST = {
    **_OFFICE_COMMON,
    "02AB04": "02B4",
    "20BE": "20B1", "20BF": "20B2",
    "31CD01": "31D2", "31CD02": "31D1",  # swapped in the latest scripts (domain doc §2)
    "40PD": "40D1",
    "43NE": "43K3",
    "45BB": "45B1", "45BB01": "45B2", "45BC": "45C1", "45BC01": "45C2", "45NF": "45F1",
    "49CC": "49C1", "49CC01": "49C2",
}

OFFICE_MAPS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "2014-latest": MappingProxyType(_OFFICE_LATEST),
    "2014-early": MappingProxyType(_OFFICE_EARLY),
})
OFFICE_MAP_LATEST = "2014-latest"

# --- Doi_Ma_DVT: legacy numeric unit code -> alphabetic code -------------------------------------
_UNIT_LATEST: dict[str, str] = {
    "0": "USD", "1": "GRM", "2": "KGM", "3": "MTR", "4": "LTR", "6": "MTQ", "7": "KWH", "8": "PR",
    "9": "CT", "10": "UNC", "11": "PCE", "12": "UNT", "13": "BBL", "14": "MTK", "15": "DZN",
    "16": "TNE", "17": "PCE", "18": "KUNC", "19": "KPCE", "20": "KUNQ", "21": "KL", "22": "KROL",
    "23": "KMTR", "24": "KPR", "25": "KPRO", "26": "KVA", "27": "UNQ", "28": "KMTK", "29": "UNV",
    "30": "KPCE", "31": "KSET", "32": "KPKG", "33": "SET", "34": "KMTQ", "35": "PRO", "36": "ROL",
    "37": "EXCH", "38": "KUNV", "39": "UNK", "40": "YRD", "41": "UNK", "42": "TAM", "43": "SOI",
    "44": "HKGM", "45": "FTK", "46": "VI", "47": "UNA", "48": "UNA", "49": "UNA", "50": "UNY",
    "51": "STER", "52": "BAN", "53": "PKG", "54": "LOT", "55": "CONT", "56": "CHI", "57": "UNV",
    "58": "UNB", "59": "TO", "60": "UNA", "61": "RAM", "62": "INC", "63": "INCK", "64": "YDK",
    "65": "UNT", "66": "MLT", "67": "CEN", "69": "MMTR", "70": "MGRM", "71": "UNH", "72": "UNU",
    "73": "UNL", "74": "HMTR", "75": "UNK", "76": "UNL", "79": "DUNK", "80": "KPIP", "81": "DPCE",
    "82": "HPCE", "83": "BICH", "84": "UNB", "85": "DMTR", "86": "CUC", "87": "HFT", "88": "PCE",
    "89": "PR", "90": "PR", "91": "PR", "92": "BANG", "93": "BAG", "94": "PIP", "95": "LBR",
    "96": "UNT", "97": "GRO", "98": "LIEU", "99": "UND", "100": "CUM", "101": "MM3", "102": "CM3",
    "103": "MM2", "104": "CM2", "105": "DM2", "106": "DM", "107": "SYS", "109": "KIT", "120": "UNIT",
    "121": "LBS", "122": "FOT",
}
_UNIT_EARLY = {k: v for k, v in _UNIT_LATEST.items() if k not in ("107", "122")}
_UNIT_EARLY["46"] = "UNVI"

UNIT_MAPS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "2014-latest": MappingProxyType(_UNIT_LATEST),
    "2014-early": MappingProxyType(_UNIT_EARLY),
    "2014-tui": MappingProxyType({**_UNIT_LATEST, "93": "TUI"}),
})
UNIT_MAP_LATEST = "2014-latest"
