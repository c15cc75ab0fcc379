"""Sampling plan (zero-acceptance) and a field-correspondence table independent of the conversion code."""

from __future__ import annotations

import math
import random
from decimal import Decimal
from typing import Any


def zero_acceptance_sample_size(confidence: float, max_defect_rate: float, population: int) -> int:
    """Smallest n such that a sample with 0 defects shows, at ``confidence``, that the population holds
    fewer than ``max_defect_rate`` defects.

    Exact for a finite population (hypergeometric, sampling without replacement): with
    D = ceil(p·N) defects, P(no defect in n draws) = Π_{i<n} (N−D−i)/(N−i) must fall to 1 − C or below.
    For large N this tends to the binomial n = ln(1−C)/ln(1−p) (299 for 95 % / 1 %).
    """
    if population <= 0:
        return 0
    d = max(1, math.ceil(max_defect_rate * population))
    alpha = 1 - confidence
    p0 = 1.0
    for n in range(1, population + 1):
        p0 *= (population - d - (n - 1)) / (population - (n - 1))
        if p0 <= alpha:
            return n
    return population


def draw(population: int, n: int, seed: int, stratum: str) -> list[int]:
    """Seeded, reproducible positions 0..population-1 for one stratum."""
    rng = random.Random(f"{seed}:{stratum}")
    return sorted(rng.sample(range(population), n))


# strata of each sampled table: the plan is stratified by table × office × type (or kind)
STRATA: dict[str, list[str]] = {
    "DTO_KHAI_MD": ["MA_HQ", "MA_LH"], "DHANG_MD": ["MA_HQ", "MA_LH"], "DSX_NPL_NHAP": ["MA_HQ", "MA_LH"],
    "DGC_HD": ["MA_HQ_HD"], "DSX_SP_NPL": ["MA_HQ", "LOAI"],
}

# target table -> [(target column, source column (upper-cased), comparison)]
CORRESPONDENCE: dict[str, list[tuple[str, str, str]]] = {
    "DTO_KHAI_MD": [("SO_TK", "SOTK", "int"), ("MA_LH", "MA_LH", "text"), ("NAM_DK", "NAMDK", "int"),
                    ("NGAY_DK", "NGAY_DK", "datetime"), ("MA_DV", "MA_DV", "text"), ("SO_HANG", "SOHANG", "int"),
                    ("TYGIA_VND", "TYGIA_VND", "float"), ("MA_NT", "MA_NT", "text")],
    "DHANG_MD": [("SO_TK", "SOTK", "int"), ("MA_LH", "MA_LH", "text"), ("MA_PHU", "MA_PHU", "text"),
                 ("LUONG", "LUONG", "dec6"), ("DGIA_TT", "DGIA_TT", "dec4"), ("NUOC_XX", "NUOC_XX", "text")],
    # one DSX_NPL_NHAP row per DNPLNHAP row; its DSX_NPL_NHAP_TL price pieces are checked by the stock balance
    "DSX_NPL_NHAP": [("SO_TK", "SOTK", "int"), ("MA_NPL", "MA_NPL", "text"), ("TON", "TON", "dec6"),
                     ("LUONG", "LUONG", "dec6")],
    "DGC_HD": [("SO_HD", "SO_HD", "text"), ("DON_VI_GC", "DVGC", "text"), ("NGAY_KY", "NGAY_KY", "datetime"),
               ("THANH_KHOAN", "THANHKHOAN", "int")],
    "DSX_SP_NPL": [("MA_DV", "MA_DV", "text"), ("SO_TN", "SO_TN", "int")],
}


def normalise(v: Any, how: str) -> Any:
    if v is None:
        return None
    if how == "text":
        return str(v).strip()
    if how == "int":
        return int(v)
    if how == "float":
        return round(float(v), 6)
    if how.startswith("dec"):
        return Decimal(str(v)).quantize(Decimal(1).scaleb(-int(how[3:])))
    if how == "datetime":
        return str(v)[:19]
    return v
