"""The ID registry as plain data: which source key got which ID, per registry kind.

Step 5 emits registrations (kind, key, value) for every ID it issues; step 8 stores them once the
branch is in central. A later run reads them back so that it can (a) link declarations to catalogs
converted earlier (scope ``declarations``) and (b) convert only what is new (incremental) without
ever issuing an ID twice.

``decls`` values are [TK_ID, HD_ID, MA_DV, XUAT_NPL_SP, source database]. Values written before the source
database was recorded ([TK_ID, HD_ID, MA_DV, XUAT_NPL_SP]) still load: a key whose Ma_LH is not a GC/CX
type is taken as SXXK (only SXXK converts those), a GC/CX key as "either database" (None) — see
``transform.convert.registry_decl_entry``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from transform.convert import Lookups, registry_decl_entry

# registry kind -> the Lookups dict that holds it (None: only remembered as "converted before")
KINDS: dict[str, str | None] = {
    "sx_items": "sx_items", "contracts": "contracts", "gc_items": "gc_items", "cx_items": "cx_items",
    "decls": "decls", "tcu": "tcu", "cx_notices": "cx_notices", "cx_destructions": "cx_destructions",
    "sx_norms": None, "gc_norms": None, "cx_norms": None, "stock": None,
}
CATALOG_KINDS = ("sx_items", "contracts", "gc_items", "cx_items", "sx_norms", "gc_norms", "cx_norms")

def encode(kind: str, key: tuple[Any, ...], value: Any) -> dict[str, str]:
    if kind not in KINDS:
        raise KeyError(f"unknown registry kind {kind!r}")
    return {"kind": kind, "key": json.dumps(list(key), ensure_ascii=False, default=str),
            "value": json.dumps(value, ensure_ascii=False, default=str)}


def _tuple(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def load_into(lk: Lookups, rows: Iterable[dict[str, str]]) -> dict[str, int]:
    """Fill ``lk`` with registry rows (and mark their keys as converted before). Returns counts per kind."""
    counts: dict[str, int] = {}
    for r in rows:
        kind = r["kind"]
        key = tuple(json.loads(r["key"]))
        value = _tuple(json.loads(r["value"]))
        if kind == "decls":
            value = registry_decl_entry(key, value)
        target = KINDS[kind]
        if target is not None:
            getattr(lk, target)[key] = value
        lk.prior.setdefault(kind, set()).add(key)
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def id_of(value: Any) -> int:
    return int(value[0] if isinstance(value, (list, tuple)) else value)


def sequences(base_id: int, rows: Iterable[dict[str, str]], table_of_kind: dict[str, str]) -> dict[tuple[str, int], int]:
    """Highest sequence used per (table, type digit) by the registered IDs of a branch."""
    out: dict[tuple[str, int], int] = {}
    for r in rows:
        i = id_of(json.loads(r["value"])) - base_id
        type_digit, seq = divmod(i, 100_000_000)
        k = (table_of_kind[r["kind"]], type_digit)
        out[k] = max(out.get(k, 0), seq)
    return out


TABLE_OF_KIND: dict[str, str] = {
    "sx_items": "DSX_SP_NPL", "contracts": "DGC_HD", "gc_items": "DGC_SP_NPL_TB_HM", "cx_items": "DCX_DM_HH_DUA_VAO_RA",
    "decls": "DTO_KHAI_MD", "tcu": "DGC_NPL_TCU", "cx_notices": "DCX_CT_TOKHAI", "cx_destructions": "DCX_HUY_NPL_SP",
    "sx_norms": "DSX_DINH_MUC", "gc_norms": "DGC_DINH_MUC", "cx_norms": "DCX_DINH_MUC", "stock": "DSX_NPL_NHAP_TL",
}
