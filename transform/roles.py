"""Legacy branch roles → central e-Customs roles (Phụ lục IV bước 8: set the branch users' permissions)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ROLE_MAP: dict[str, str] = {
    "TIEP_NHAN": "HQ_TIEP_NHAN_TK",     # reception of declarations
    "KIEM_HOA": "HQ_KIEM_HOA",          # physical inspection
    "THANH_KHOAN": "HQ_THANH_KHOAN",    # liquidation
    "LANH_DAO": "HQ_LANH_DAO_CHI_CUC",  # branch management
}


def map_user_roles(users: list[dict[str, Any]], new_office: Callable[[str], str]
                   ) -> tuple[list[dict[str, Any]], list[str]]:
    """Map each user's legacy roles; unknown roles are returned (as 'login:role') and never granted."""
    out, unknown = [], []
    for u in users:
        roles = []
        for r in u.get("legacy_roles", []):
            if r in ROLE_MAP:
                roles.append(ROLE_MAP[r])
            else:
                unknown.append(f"{u['login']}:{r}")
        out.append({"login": u["login"], "full_name": u["full_name"], "office": new_office(u["office"]),
                    "roles": sorted(set(roles))})
    return out, unknown
