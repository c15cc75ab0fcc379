"""Run scopes (Phụ lục IV §I): catalogs are converted before go-live, liquidation data afterwards."""

from __future__ import annotations

from typing import Literal

Scope = Literal["catalogs", "declarations", "all"]

CATALOG_SOURCES = frozenset({
    "SXXK.SNPL", "SXXK.SSP", "SXXK.DDINHMUC", "SLXNK.DHDGC", "SLXNK.DLOAISPGC", "SLXNK.DNPLHD", "SLXNK.DSPGC",
    "SLXNK.DThietBi", "SLXNK.ecsDHangMau", "SLXNK.DDMuc", "SLXNK.ecsCX_DM_HH_DUA_VAO_D",
    "SLXNK.ecsCX_DM_HH_DUA_RA_D", "SLXNK.ecsCX_DinhMuc",
})
CATALOG_TARGETS = frozenset({
    "DSX_SP_NPL", "DSX_DINH_MUC", "DGC_HD", "DGC_LOAI_SP", "DGC_SP_NPL_TB_HM", "DGC_DINH_MUC",
    "DCX_DM_HH_DUA_VAO_RA", "DCX_DINH_MUC",
})


def source_in_scope(source_table: str, scope: Scope) -> bool:
    if scope == "all":
        return True
    return (source_table in CATALOG_SOURCES) == (scope == "catalogs")


def target_in_scope(target_table: str, scope: Scope) -> bool:
    if scope == "all":
        return True
    return (target_table in CATALOG_TARGETS) == (scope == "catalogs")
