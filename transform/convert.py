"""Step 5 conversion rules as pure functions over rows (dicts) and Arrow batches.

Each ``convert_*`` function takes one source row (column names upper-cased), the conversion
context and the lookups built so far, and returns a :class:`Fate`: either ``converted`` with the
target row(s), or ``excluded`` under a named selection rule, or ``quarantined`` with a reason.
Nothing here does I/O; step 5 (pipelines/steps/pl4_05_convert.py) reads batches, calls these and
writes what they return.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

from transform.codes import (
    channel_code,
    cuc_code,
    fix_text,
    kind_of,
    nam_tk_bucket,
    new_office_code,
    new_unit_code,
    so_hd_hq_cap,
    strip_kind_prefix,
)
from transform.errors import IdWindowOverflow
from transform.offices2025 import OfficeTable2025, to_2025
from transform.rules import FateKind
from transform.stock import StockPiece, group_by_price, split_stock

Row = dict[str, Any]
DeclKey = tuple[int, str, str, int]  # (SoTK, Ma_LH, Ma_HQ, NamDK) as decl_key builds it (trimmed strings)
# a converted declaration: (TK_ID, HD_ID, MA_DV, XUAT_NPL_SP, source database)
# where the database is 'SXXK' | 'SLXNK', or None = unknown (earlier run's registry, see registry_decl_entry)
DeclEntry = tuple[int, int | None, str, str, str | None]
DECL_DBS = ("SXXK", "SLXNK")
ZERO_GUID = "00000000-0000-0000-0000-000000000000"
ID_TYPE_WINDOW = 100_000_000  # 1e8 IDs per type digit per branch
MIN_DATE = datetime(1990, 1, 1)


# --- IDs (domain doc §4.1) -----------------------------------------------------------------------
def branch_base_id(id_cuc_hq: int, id_chi_cuc: int) -> int:
    """1e13 + IDCucHQ × 1e11 + IDChiCuc × 1e9 — the start of a branch's ID window."""
    if not (0 <= id_cuc_hq <= 99 and 0 <= id_chi_cuc <= 99):
        raise ValueError(f"IDCucHQ/IDChiCuc must be 0..99, got {id_cuc_hq}/{id_chi_cuc}")
    return 10**13 + id_cuc_hq * 10**11 + id_chi_cuc * 10**9


class IdAllocator:
    """Stable per-(table, type digit) sequences inside a branch window. Overflow is an error."""

    def __init__(self, base_id: int, start: Mapping[tuple[str, int], int] | None = None) -> None:
        self.base_id = base_id
        self.seq: dict[tuple[str, int], int] = dict(start or {})

    def next(self, table: str, type_digit: int) -> int:
        k = (table, type_digit)
        n = self.seq.get(k, 0) + 1
        if n >= ID_TYPE_WINDOW:
            raise IdWindowOverflow(f"ID window of type {type_digit} for {table} is exhausted at 1e8 rows",
                                   table=table, hint="split the branch or widen the ID layout deliberately")
        self.seq[k] = n
        return self.base_id + type_digit * ID_TYPE_WINDOW + n


# --- context and fate ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ConvertContext:
    branch_offices: frozenset[str]  # trimmed legacy office codes of the branch
    office_map: Mapping[str, str]
    unit_map: Mapping[str, str]
    freeze_at: datetime
    offices_2025: OfficeTable2025 | None = None  # central codes after the 2025 reorganisation, if chosen


@dataclass
class Fate:
    kind: FateKind
    code: str = ""  # rule or reason code; "" for converted
    rows: list[tuple[str, Row]] = field(default_factory=list)  # (target table, row)
    detail: str = ""
    # IDs issued for source keys: (registry kind, key, value); persisted when the branch is loaded,
    # so that later incremental runs never re-issue them
    registrations: list[tuple[str, tuple[Any, ...], Any]] = field(default_factory=list)

    def registering(self, kind: str, key: tuple[Any, ...], value: Any) -> Fate:
        self.registrations.append((kind, key, value))
        return self

    @classmethod
    def converted(cls, *rows: tuple[str, Row]) -> Fate:
        return cls("converted", "", list(rows))

    @classmethod
    def excluded(cls, code: str) -> Fate:
        return cls("excluded", code)

    @classmethod
    def quarantined(cls, code: str, detail: str = "") -> Fate:
        return cls("quarantined", code, detail=detail)


@dataclass
class Lookups:
    """What later tables need from earlier ones (keys only, never whole tables)."""

    sx_items: dict[tuple[str, str, str, int], tuple[int, str, str, str]] = field(default_factory=dict)
    contracts: dict[tuple[str, str, str, str], tuple[int, int, str]] = field(default_factory=dict)
    gc_items: dict[tuple[int, str, int], int] = field(default_factory=dict)
    cx_items: dict[tuple[str, str, str, int], int] = field(default_factory=dict)
    # converted declarations by their 4-part key (one key converted from both databases is a duplicate); the
    # entry records the source database, so that a child resolves its parent by (database, key): parent_decl
    decls: dict[DeclKey, DeclEntry] = field(default_factory=dict)
    # (TK_ID, material) -> [(DGIA_TT, LUONG, TS_XNK)] of the NSX goods lines kept, for the stock price split
    stock_lines: dict[tuple[int, str], list[tuple[Decimal | None, Decimal | None, Decimal | None]]] = field(
        default_factory=dict)
    tcu: dict[tuple[int, str], int] = field(default_factory=dict)
    # keys converted by earlier runs of the branch (from the ID registry), per registry kind
    prior: dict[str, set[tuple[Any, ...]]] = field(default_factory=dict)
    cx_notices: dict[tuple[int, int, str], tuple[int, str]] = field(default_factory=dict)
    cx_destructions: dict[tuple[int, int, str], int] = field(default_factory=dict)
    # declarations NOT converted because they were quarantined, per (source database, key) -> reason: by
    # convert_declaration's checks, by step 5's sink after conversion (forget), or upstream by step 4
    # (note_quarantined_declaration). Their children are quarantined with them (Q-PARENT-QUARANTINED) instead
    # of pointing at a declaration central lacks. Excluded declarations need no record: a child of a
    # declaration that is neither converted nor quarantined is excluded (R-DECL-NOT-SELECTED).
    quarantined_decls: dict[tuple[str, DeclKey], str] = field(default_factory=dict)
    # (SoTK, Ma_LH, Ma_HQ, NamDK, MA_PHU, LAN_DC, LAN_DC_CT) of the DHANGMDDC_CT tax details that the goods
    # of a quarantined declaration would have taken (the driver's chosen_ct holds those of converted lines)
    held_ct: set[tuple[Any, ...]] = field(default_factory=set)
    # declarations that cannot be converted whole because one of their rows (a goods line, a tax detail, the
    # ecsToKhaiMD extension, a self-supplied material) was set aside at step 4 for a value that does not cast:
    # converting the rest would let an older line stand in for the missing one. (db, key) -> what was set aside
    blocked_decls: dict[tuple[str, DeclKey], str] = field(default_factory=dict)
    unmapped_units: set[str] = field(default_factory=set)
    unmapped_offices: set[str] = field(default_factory=set)
    text_fixes: list[tuple[str, str, str, str]] = field(default_factory=list)  # table, column, before, after


# --- declarations as parents ---------------------------------------------------------------------
def decl_db(entry: tuple[Any, ...]) -> str | None:
    """The source database of a ``Lookups.decls`` entry (None: unknown, from an ID registry written before
    the database was recorded — see :func:`registry_decl_entry`)."""
    return entry[4] if len(entry) > 4 else None


def registry_decl_entry(key: tuple[Any, ...], value: Any) -> DeclEntry:
    """A ``decls`` value read back from the ID registry as a ``Lookups.decls`` entry.

    Values are written as [TK_ID, HD_ID, MA_DV, XUAT_NPL_SP, db]. Values of earlier runs have no database:
    a regime other than GC/CX (Ma_LH ``_GC%``/``_CX%``) is converted from SXXK only, so it is taken as
    SXXK; a GC/CX key may have come from either database and is kept as unknown (None), which
    :func:`parent_decl` matches from EITHER database (an incremental run then excludes such children as
    R-ALREADY-CONVERTED, as before).
    """
    v = tuple(value)
    if len(v) >= 5:
        return v[:5]  # type: ignore[return-value]
    ma_lh = key[1] if len(key) > 1 and isinstance(key[1], str) else ""
    return (*v[:4], None if ma_lh[1:3] in ("GC", "CX") else "SXXK")  # type: ignore[return-value]


def _clean_key(key: tuple[Any, ...]) -> DeclKey:
    return tuple(t(v) for v in key)  # type: ignore[return-value]


def note_quarantined_declaration(lk: Lookups, db: str, key: tuple[Any, ...],
                                 reason: str = "Q-BAD-VALUE") -> None:
    """Register that the declaration row of database ``db`` ('SXXK' or 'SLXNK') with ``key`` was quarantined.

    For step 5 to call BEFORE converting declarations, once per declaration row quarantined upstream (step 4
    quarantines rows whose values do not cast to their declared type, reason ``Q-BAD-VALUE``): such a row
    never reaches :func:`convert_declaration`, but its children (goods lines, tax details, stock,
    ecsToKhaiMD, self-supplied materials, destruction lines) must be quarantined with it
    (Q-PARENT-QUARANTINED), not excluded. ``key`` is the 4-tuple (SoTK, Ma_LH, Ma_HQ, NamDK) as
    :func:`decl_key` builds it from the row (string parts are trimmed here too). A key with a NULL/blank
    part is ignored: no child can be matched to it (such children are Q-NULL-KEY themselves). The first
    reason registered for a (db, key) is kept.
    """
    if db not in DECL_DBS:
        raise ValueError(f"declaration database must be one of {DECL_DBS}, got {db!r}")
    k = _clean_key(key)
    if len(k) != 4 or any(blank(v) for v in k):
        return
    lk.quarantined_decls.setdefault((db, k), reason)


def block_declaration(lk: Lookups, db: str, key: tuple[Any, ...], what: str) -> None:
    """Register, before declarations are converted, that the declaration of ``db`` with ``key`` lost a row at step 4
    (``what``: its table, key and bad value). If it is selected it is quarantined whole (Q-CHILD-BAD-VALUE), and its
    other rows with it (Q-PARENT-QUARANTINED)."""
    if db not in DECL_DBS:
        raise ValueError(f"declaration database must be one of {DECL_DBS}, got {db!r}")
    k = _clean_key(key)
    if len(k) == 4 and not any(blank(v) for v in k):
        lk.blocked_decls.setdefault((db, k), what)


def decl_missing(lk: Lookups, db: str, key: tuple[Any, ...]) -> Fate:
    """Fate of a child whose declaration (of database ``db``) is not among the converted ones.

    Quarantined declaration → the child is quarantined with it (Q-PARENT-QUARANTINED); excluded or
    non-existent declaration → the child is excluded (R-DECL-NOT-SELECTED).
    """
    reason = lk.quarantined_decls.get((db, key))  # type: ignore[arg-type]
    if reason is not None:
        return Fate.quarantined("Q-PARENT-QUARANTINED", f"{db} declaration SoTK={key[0]} Ma_LH={key[1]} "
                                                        f"NamDK={key[3]} is quarantined ({reason})")
    return Fate.excluded("R-DECL-NOT-SELECTED")


def parent_decl(lk: Lookups, db: str, key: tuple[Any, ...]) -> tuple[DeclEntry | None, Fate | None]:
    """Resolve a child's declaration by its FULL key — source database included.

    Returns (entry, None) when the declaration of ``db`` with ``key`` was converted (or converted by an
    earlier run whose registry did not record the database), else (None, the child's fate from
    :func:`decl_missing`). A declaration of the OTHER database with the same key is never the parent: the
    SLXNK copy of an SXXK declaration is excluded (R-SL-REGIME) and its lines with it.
    """
    entry = lk.decls.get(key)  # type: ignore[arg-type]
    if entry is not None and decl_db(entry) in (db, None):
        return entry, None
    return None, decl_missing(lk, db, key)


def forget(lk: Lookups, registrations: list[tuple[str, tuple[Any, ...], Any]], kinds: dict[str, str | None],
           reason: str = "Q-VALUE-TOO-LONG") -> None:
    """Undo a converted row's lookups when the row is quarantined after all (children must not link to it).

    Step 5's sink calls it when a converted row does not fit central (``reason``, Q-VALUE-TOO-LONG by
    default); a declaration is then recorded as quarantined, so that its children follow it.
    """
    for kind, key, value in registrations:
        target = kinds.get(kind)
        if target is not None:
            getattr(lk, target).pop(key, None)
        if kind == "decls":
            db = decl_db(tuple(value))
            for d in [db] if db else DECL_DBS:
                lk.quarantined_decls.setdefault((d, key), reason)  # type: ignore[index]


# --- small helpers -------------------------------------------------------------------------------
def upper_keys(row: Row) -> Row:
    return {k.upper(): v for k, v in row.items()}


def upper_rows(batch: pa.RecordBatch) -> list[Row]:
    """The batch's rows as dicts keyed by upper-case column names.

    Column by column, then ``dict(zip(...))``: a third faster than ``RecordBatch.to_pylist`` (which builds
    each dict in a Python comprehension) on the benchmark's goods lines; same dicts.
    """
    names = [n.upper() for n in batch.schema.names]
    cols = [c.to_pylist() for c in batch.columns]
    return [dict(zip(names, r)) for r in zip(*cols)]


def t(v: Any) -> Any:
    """Trim CHAR padding (hazard 1); non-strings pass through."""
    return v.strip() if isinstance(v, str) else v


def dec(v: Any, scale: int) -> Decimal | None:
    """Exact decimal at a fixed scale (float sources are rounded half-even at the target scale)."""
    if v is None:
        return None
    try:
        d = v if isinstance(v, Decimal) else Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
        return d.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_EVEN)
    except InvalidOperation:
        return None


def blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def office(ctx: ConvertContext, lk: Lookups, legacy: str | None) -> tuple[str | None, str | None]:
    new = new_office_code(legacy, ctx.office_map)
    if ctx.offices_2025 is not None:  # coverage was checked before converting (step 5 refuses a gap)
        return to_2025(new, cuc_code(legacy), ctx.offices_2025)
    return new, cuc_code(legacy)


def unit(ctx: ConvertContext, lk: Lookups, legacy: str | None) -> str | None:
    u = new_unit_code(legacy, ctx.unit_map)
    if u is not None and legacy is not None and legacy.strip() not in ctx.unit_map and u != "":
        lk.unmapped_units.add(u)
    return u


def text(lk: Lookups, table: str, column: str, v: str | None) -> str | None:
    out, converted = fix_text(v)
    if converted and v is not None and out is not None:
        lk.text_fixes.append((table, column, v, out))
    return out


def bad_date(ctx: ConvertContext, *values: Any) -> bool:
    return any(isinstance(v, datetime) and (v < MIN_DATE or v > ctx.freeze_at) for v in values)


def generic_quarantine(row: Row, key: Iterable[str], ctx: ConvertContext, dates: Iterable[str] = (),
                       qtys: Iterable[str] = ()) -> Fate | None:
    """The checks every source table gets: key present, dates possible, quantities not negative."""
    for k in key:
        if blank(row.get(k)):
            return Fate.quarantined("Q-NULL-KEY", f"{k} is empty")
    for d in dates:
        if bad_date(ctx, row.get(d)):
            return Fate.quarantined("Q-IMPOSSIBLE-DATE", f"{d}={row.get(d)}")
    for q in qtys:
        v = row.get(q)
        if v is not None and v < 0:
            return Fate.quarantined("Q-NEGATIVE-QTY", f"{q}={v}")
    return None


def again(lk: Lookups, kind: str, key: tuple[Any, ...], what: str) -> Fate:
    """A key seen before: converted by an earlier run (excluded), or a duplicate in this run (quarantined)."""
    if key in lk.prior.get(kind, ()):
        return Fate.excluded("R-ALREADY-CONVERTED")
    return Fate.quarantined("Q-DUPLICATE-KEY", what)


def is_prior(lk: Lookups, kind: str, key: tuple[Any, ...]) -> bool:
    return key in lk.prior.get(kind, ())


def in_branch(ctx: ConvertContext, legacy_office: str | None) -> bool:
    return t(legacy_office) in ctx.branch_offices


# --- SXXK catalogs (§4.7) ------------------------------------------------------------------------
def convert_sx_item(row: Row, loai: int, ctx: ConvertContext, ids: IdAllocator, lk: Lookups) -> Fate:
    """SNPL (loai 1) / SSP (loai 2) → DSX_SP_NPL."""
    code_col, name_col = ("MA_NPL", "TEN_NPL") if loai == 1 else ("MA_SP", "TEN_SP")
    src = "SXXK.SNPL" if loai == 1 else "SXXK.SSP"
    if (q := generic_quarantine(row, ["MA_HQ", "MA_DV", code_col], ctx)):
        return q
    if not in_branch(ctx, row["MA_HQ"]):
        return Fate.excluded("R-OTHER-OFFICE")
    key = (t(row["MA_HQ"]), t(row["MA_DV"]), t(row[code_col]), loai)
    if key in lk.sx_items:
        return again(lk, "sx_items", key, f"{code_col}={key[2]}")
    new, cuc = office(ctx, lk, row["MA_HQ"])
    vt_id = ids.next("DSX_SP_NPL", loai)
    name = text(lk, src, name_col, row.get(name_col)) or " "
    u = unit(ctx, lk, row.get("MA_DVT"))
    hs = t(row.get("MA_HS")) or " "
    lk.sx_items[key] = (vt_id, name, u or "", hs)
    return Fate.converted(("DSX_SP_NPL", {
        "VT_ID": vt_id, "MA_HQ": new, "MA_CUC_HQ": cuc, "NAM_DK": row.get("NAM_TN") or 2007,
        "NAM_TK": nam_tk_bucket(key[2]), "MA_DV": key[1], "MA_VAT_TU": key[2], "LOAI": loai,
        "TEN_VAT_TU": name, "MA_HS": hs, "MA_DVT": u, "SO_TN": row.get("SO_TN"), "NAM_TN": row.get("NAM_TN"),
        "MESSAGE_ID": 0})).registering("sx_items", key, lk.sx_items[key])


def convert_sx_norm(row: Row, ctx: ConvertContext, ids: IdAllocator, lk: Lookups, seen: set[tuple]) -> Fate:
    """DDINHMUC → DSX_DINH_MUC with product/material names, units and HS looked up."""
    if (q := generic_quarantine(row, ["MA_SP", "MA_NPL", "MA_DV", "MA_HQ"], ctx, qtys=["DM_SD", "TL_HH"])):
        return q
    if not in_branch(ctx, row["MA_HQ"]):
        return Fate.excluded("R-OTHER-OFFICE")
    o, dv = t(row["MA_HQ"]), t(row["MA_DV"])
    k = (t(row["MA_SP"]), t(row["MA_NPL"]), dv, o)
    if is_prior(lk, "sx_norms", k):
        return Fate.excluded("R-ALREADY-CONVERTED")
    if k in seen:
        return Fate.quarantined("Q-DUPLICATE-KEY", f"MA_SP={k[0]} MA_NPL={k[1]}")
    sp = lk.sx_items.get((o, dv, k[0], 2))
    npl = lk.sx_items.get((o, dv, k[1], 1))
    if sp is None or npl is None:
        missing = "MA_SP" if sp is None else "MA_NPL"
        return Fate.quarantined("Q-UNKNOWN-ITEM", f"{missing}={k[0] if sp is None else k[1]} not in SSP/SNPL")
    seen.add(k)
    new, cuc = office(ctx, lk, row["MA_HQ"])
    dm_id = ids.next("DSX_DINH_MUC", 5)
    return Fate.converted(("DSX_DINH_MUC", {
        "DM_ID": dm_id, "MA_HQ": new, "MA_CUC_HQ": cuc, "MA_DV": dv,
        "VT_ID_SP": sp[0], "VT_ID_NPL": npl[0], "MA_VAT_TU_SP": k[0], "MA_VAT_TU_NPL": k[1],
        "TEN_SP": sp[1], "TEN_NPL": npl[1], "MA_DVT_SP": sp[2], "MA_DVT_NPL": npl[2], "MA_HS_SP": sp[3],
        "MA_HS_NPL": npl[3], "DM_SD": row.get("DM_SD") or Decimal(0), "TL_HH": row.get("TL_HH") or Decimal(0),
        "DM_CHUNG": row.get("DM_CHUNG") or Decimal(0),
        "GHI_CHU": text(lk, "SXXK.DDINHMUC", "GHI_CHU", row.get("GHI_CHU")),
        "SO_TN": row.get("SO_TN"), "NAM_TN": row.get("NAM_TN")})).registering("sx_norms", k, dm_id)


# --- GC catalogs (§4.7) --------------------------------------------------------------------------
def contract_key(row: Row) -> tuple[str, str, str, str]:
    nk = row.get("NGAY_KY")
    return (t(row.get("SO_HD")) or "", t(row.get("MA_HQHD")) or "", t(row.get("DVGC")) or "",
            nk.strftime("%Y%m%d") if isinstance(nk, datetime) else "")


def convert_contract(row: Row, ctx: ConvertContext, ids: IdAllocator, lk: Lookups) -> Fate:
    """DHDGC → DGC_HD, with the So_HD_HQ_Cap MD5 key (§4.7, hazard 3)."""
    if (q := generic_quarantine(row, ["SO_HD", "MA_HQHD", "DVGC", "NGAY_KY"], ctx,
                                dates=["NGAY_KY", "NGAY_DK"])):
        return q
    if not in_branch(ctx, row["MA_HQHD"]):
        return Fate.excluded("R-OTHER-OFFICE")
    key = contract_key(row)
    if key in lk.contracts:
        return again(lk, "contracts", key, f"So_HD={key[0]}")
    new, cuc = office(ctx, lk, row["MA_HQHD"])
    so_hd = text(lk, "SLXNK.DHDGC", "So_HD", row["SO_HD"]) or ""
    hd_id = ids.next("DGC_HD", 0)
    tk = int(row.get("THANHKHOAN") or 0)
    lk.contracts[key] = (hd_id, tk, new or "")
    return Fate.converted(("DGC_HD", {
        "HD_ID": hd_id, "MA_HQ_HD": new, "MA_CUC_HQ": cuc, "NAM_DK": row["NGAY_KY"].year,
        "SO_HD_HQ_CAP": so_hd_hq_cap(new or "", key[2], so_hd.strip(), row["NGAY_KY"]), "SO_HD": so_hd.strip(),
        "DON_VI_GC": key[2], "DON_VI_DOI_TAC": text(lk, "SLXNK.DHDGC", "DVDT", row.get("DVDT")),
        "DIA_CHI_DOI_TAC": text(lk, "SLXNK.DHDGC", "DiaChi_DT", row.get("DIACHI_DT")),
        "NGAY_KY": row["NGAY_KY"], "NGAY_DK": row.get("NGAY_DK"), "NGAY_HH": row.get("NGAY_HH"),
        "NGAY_GH": row.get("NGAY_GH"), "NUOC_THUE_GC": t(row.get("NUOCTHUEGC")) or " ",
        "THI_TRUONG_XK": t(row.get("THITRUONGXK")), "TONG_TRI_GIA_SP": row.get("TRIGIAGC"),
        "TONG_TRI_GIA_TIEN_CONG": row.get("GIAGC"), "MA_NT": t(row.get("NGTE")), "PT_TT": t(row.get("PTTT")),
        "THANH_KHOAN": tk, "NGAY_THANH_KHOAN": row.get("NGAY_TK"), "SO_THANH_KHOAN": t(row.get("SO_TK")),
        "TRANG_THAI": row.get("TRANGTHAI"), "NUOC_NHAN_GIA_CONG": "VN",
        "GIA_CONG_NGUOC": row.get("GIA_CONG_NGUOC") or 0, "NGAY_TN": datetime(1900, 1, 1),
        "SO_TN": row.get("SO_TN"), "NAM_TN": row.get("NAM_TN"), "MESSAGE_ID": 0})).registering(
        "contracts", key, lk.contracts[key])


def _contract_of(row: Row, ctx: ConvertContext, lk: Lookups) -> tuple[Fate | None, int]:
    if (q := generic_quarantine(row, ["SO_HD", "MA_HQHD", "DVGC", "NGAY_KY"], ctx)):
        return q, 0
    if not in_branch(ctx, row["MA_HQHD"]):
        return Fate.excluded("R-OTHER-OFFICE"), 0
    c = lk.contracts.get(contract_key(row))
    if c is None:
        return Fate.quarantined("Q-GC-NO-CONTRACT", f"So_HD={t(row.get('SO_HD'))}"), 0
    return None, c[0]


def _contract_prior(row: Row, lk: Lookups) -> bool:
    return is_prior(lk, "contracts", contract_key(row))


def convert_gc_group(row: Row, ctx: ConvertContext, lk: Lookups, seen: set[tuple]) -> Fate:
    """DLOAISPGC → DGC_LOAI_SP (children of a contract converted earlier are not converted again)."""
    bad, hd_id = _contract_of(row, ctx, lk)
    if bad:
        return bad
    if _contract_prior(row, lk):
        return Fate.excluded("R-ALREADY-CONVERTED")
    k = (hd_id, t(row.get("MA_SPGC")))
    if blank(k[1]):
        return Fate.quarantined("Q-NULL-KEY", "Ma_SPGC is empty")
    if k in seen:
        return Fate.quarantined("Q-DUPLICATE-KEY", f"Ma_SPGC={k[1]}")
    seen.add(k)
    return Fate.converted(("DGC_LOAI_SP", {
        "HD_ID": hd_id, "MA_SP_GC": k[1], "TEN_SP_GC": text(lk, "SLXNK.DLOAISPGC", "Ten_SPGC", row.get("TEN_SPGC")),
        "SO_LUONG": row.get("SO_LUONG"), "GIA_GC": row.get("GIA_GC"), "TRI_GIA_SP": row.get("TRIGIA_SP")}))


GC_ITEM_SOURCES: dict[str, tuple[int, str, str]] = {
    # source table: (Loai, name column, quantity column)
    "DNPLHD": (1, "TEN_NPL", "SL_DK"), "DSPGC": (2, "TEN_SP", "SL_DK"),
    "DThietBi": (3, "TEN_TB", "SO_LUONG"), "ecsDHangMau": (4, "TEN_HM", "SO_LUONG"),
}


def convert_gc_item(row: Row, source: str, ctx: ConvertContext, ids: IdAllocator, lk: Lookups) -> Fate:
    """DNPLHD / DSPGC / DThietBi / ecsDHangMau → one table DGC_SP_NPL_TB_HM with Loai 1–4."""
    loai, name_col, qty_col = GC_ITEM_SOURCES[source]
    bad, hd_id = _contract_of(row, ctx, lk)
    if bad:
        return bad
    if (q := generic_quarantine(row, ["P_CODE"], ctx, qtys=[qty_col])):
        return q
    ma_vt = strip_kind_prefix(row["P_CODE"]) or ""
    k = (hd_id, ma_vt, loai)
    if k in lk.gc_items:
        return again(lk, "gc_items", k, f"P_Code={t(row['P_CODE'])}")
    vt_id = ids.next("DGC_SP_NPL_TB_HM", loai)
    lk.gc_items[k] = vt_id
    hs = (t(row.get("HS_CODE")) or " ")[:12]
    tinh_trang = None
    nuoc = None
    if loai == 3:
        tinh_trang = "0" if t(row.get("TINHTRANG")) == "0" else "1"
        nuoc = (t(row.get("XUAT_XU")) or "")[:3] or None
    return Fate.converted(("DGC_SP_NPL_TB_HM", {
        "VT_ID": vt_id, "HD_ID": hd_id, "LOAI": loai, "MA_VAT_TU": ma_vt, "MA_PHU": t(row["P_CODE"]),
        "TEN": text(lk, f"SLXNK.{source}", name_col, row.get(name_col)),
        "MA_HS": hs, "MA_DVT": unit(ctx, lk, row.get("MA_DVT")), "SO_LUONG_DK": row.get(qty_col),
        "DON_GIA": dec(row.get("DONGIA") if loai != 2 else row.get("DONGIAGC"), 6),
        "NGUON_NGUYEN_LIEU": 1 if loai == 1 else 0, "NUOC_XUAT_XU": nuoc, "TINH_TRANG": tinh_trang})
    ).registering("gc_items", k, vt_id)


def convert_gc_norm(row: Row, ctx: ConvertContext, ids: IdAllocator, lk: Lookups, seen: set[tuple]) -> Fate:
    """DDMuc → DGC_DINH_MUC (prefix stripped from the SP/NPL codes)."""
    bad, hd_id = _contract_of(row, ctx, lk)
    if bad:
        return bad
    if (q := generic_quarantine(row, ["SPP_CODE", "NPLP_CODE"], ctx, qtys=["DMGC", "TLHH"])):
        return q
    sp, npl = strip_kind_prefix(row["SPP_CODE"]) or "", strip_kind_prefix(row["NPLP_CODE"]) or ""
    k = (hd_id, sp, npl)
    if is_prior(lk, "gc_norms", k):
        return Fate.excluded("R-ALREADY-CONVERTED")
    if k in seen:
        return Fate.quarantined("Q-DUPLICATE-KEY", f"SPP_Code={sp} NPLP_Code={npl}")
    vt_sp, vt_npl = lk.gc_items.get((hd_id, sp, 2)), lk.gc_items.get((hd_id, npl, 1))
    if vt_sp is None or vt_npl is None:
        return Fate.quarantined("Q-UNKNOWN-ITEM", f"{'SP ' + sp if vt_sp is None else 'NPL ' + npl} not in contract")
    seen.add(k)
    dm_id = ids.next("DGC_DINH_MUC", 5)
    return Fate.converted(("DGC_DINH_MUC", {
        "DM_ID": dm_id, "HD_ID": hd_id, "VT_ID_SP": vt_sp, "VT_ID_NPL": vt_npl,
        "MA_VAT_TU_SP": sp, "MA_VAT_TU_NPL": npl, "TEN_SP": text(lk, "SLXNK.DDMuc", "Ten_SP", row.get("TEN_SP")),
        "TEN_NPL": text(lk, "SLXNK.DDMuc", "Ten_NPL", row.get("TEN_NPL")), "MA_DVT": unit(ctx, lk, row.get("MA_DVT")),
        "DINH_MUC": row.get("DMGC"), "TI_LE_HAO_HUT": row.get("TLHH"), "DINH_MUC_CHUNG": row.get("DM_CHUNG")})
    ).registering("gc_norms", k, dm_id)


# --- CX catalogs ---------------------------------------------------------------------------------
def convert_cx_item(row: Row, is_in: bool, ctx: ConvertContext, ids: IdAllocator, lk: Lookups) -> Fate:
    """ecsCX_DM_HH_DUA_VAO_D (in, type 6) / _RA_D (out, type 7) → DCX_DM_HH_DUA_VAO_RA."""
    if (q := generic_quarantine(row, ["MA_HQTN", "MA_DV_XN", "MA_HANG"], ctx)):
        return q
    if not in_branch(ctx, row["MA_HQTN"]):
        return Fate.excluded("R-OTHER-OFFICE")
    flag = 1 if is_in else 2
    k = (t(row["MA_HQTN"]), t(row["MA_DV_XN"]), t(row["MA_HANG"]), flag)
    if k in lk.cx_items:
        return again(lk, "cx_items", k, f"MA_HANG={k[2]}")
    vt_id = ids.next("DCX_DM_HH_DUA_VAO_RA", 6 if is_in else 7)
    lk.cx_items[k] = vt_id
    new, cuc = office(ctx, lk, row["MA_HQTN"])
    src = "SLXNK.ecsCX_DM_HH_DUA_VAO_D" if is_in else "SLXNK.ecsCX_DM_HH_DUA_RA_D"
    return Fate.converted(("DCX_DM_HH_DUA_VAO_RA", {
        "VT_ID": vt_id, "MA_HQ": new, "MA_CUC_HQ": cuc, "MA_DV": k[1], "MA_HANG": k[2], "IS_DUA_VAO": flag,
        "TEN_HANG": text(lk, src, "TEN_HANG", row.get("TEN_HANG")), "MA_HS": (t(row.get("MA_HS")) or " ")[:12],
        "MA_DVT": unit(ctx, lk, row.get("MA_DVT")), "LOAI_HANG": row.get("LOAI_HANG"),
        "SO_TN": row.get("SO_DK"), "NAM_TN": row.get("NAM_DK"), "NAM_TK": nam_tk_bucket(k[2])})
    ).registering("cx_items", k, vt_id)


def convert_cx_norm(row: Row, ctx: ConvertContext, ids: IdAllocator, lk: Lookups, seen: set[tuple]) -> Fate:
    """ecsCX_DinhMuc → DCX_DINH_MUC (NPL must be a goods-in item, SP a goods-out item)."""
    if (q := generic_quarantine(row, ["MA_SP", "MA_NPL", "MA_HQ", "MA_DV"], ctx,
                                qtys=["DINH_MUC", "TY_LE_HH"])):
        return q
    if not in_branch(ctx, row["MA_HQ"]):
        return Fate.excluded("R-OTHER-OFFICE")
    o, dv, sp, npl = t(row["MA_HQ"]), t(row["MA_DV"]), t(row["MA_SP"]), t(row["MA_NPL"])
    if is_prior(lk, "cx_norms", (o, dv, sp, npl)):
        return Fate.excluded("R-ALREADY-CONVERTED")
    if (o, dv, sp, npl) in seen:
        return Fate.quarantined("Q-DUPLICATE-KEY", f"MA_SP={sp} MA_NPL={npl}")
    vt_sp, vt_npl = lk.cx_items.get((o, dv, sp, 2)), lk.cx_items.get((o, dv, npl, 1))
    if vt_sp is None or vt_npl is None:
        return Fate.quarantined("Q-UNKNOWN-ITEM", f"{'SP ' + sp if vt_sp is None else 'NPL ' + npl} not in CX catalog")
    seen.add((o, dv, sp, npl))
    new, cuc = office(ctx, lk, row["MA_HQ"])
    dm_id = ids.next("DCX_DINH_MUC", 5)
    return Fate.converted(("DCX_DINH_MUC", {
        "DM_ID": dm_id, "MA_HQ": new, "MA_CUC_HQ": cuc, "MA_DV": dv, "MA_SP": sp,
        "MA_NPL": npl, "VT_ID_SP": vt_sp, "VT_ID_NPL": vt_npl, "DINH_MUC": row.get("DINH_MUC"),
        "TY_LE_HH": row.get("TY_LE_HH"), "DINH_MUC_CO_HH": row.get("DINH_MUC_CO_HH")})
    ).registering("cx_norms", (o, dv, sp, npl), dm_id)


# --- declarations (§3, §4.4) ---------------------------------------------------------------------
def decl_key(row: Row) -> tuple[int, str, str, int]:
    return (row.get("SOTK"), t(row.get("MA_LH")), t(row.get("MA_HQ")), row.get("NAMDK"))  # type: ignore[return-value]


def repaired_xuat_npl_sp(ma_lh: str) -> str:
    """XUAT_NPL_SP repair of 15/07/2014: 'N' for every import and XSX05, 'S' for other exports."""
    if ma_lh.startswith("N") or ma_lh == "XSX05":
        return "N"
    return "S"


def select_declaration(row: Row, source_db: str, ctx: ConvertContext, lk: Lookups) -> tuple[Fate | None, int | None]:
    """Selection rules of §3 for one declaration header; returns (fate if not converted, HD_ID)."""
    # order matters: key, office and selection rules first, so that a quarantined row is always one
    # that should have been converted (the before/after check relies on it)
    if (q := generic_quarantine(row, ["SOTK", "MA_LH", "MA_HQ", "NAMDK"], ctx)):
        return q, None
    if not in_branch(ctx, row["MA_HQ"]):
        return Fate.excluded("R-OTHER-OFFICE"), None
    ma_lh = t(row["MA_LH"])
    if source_db == "SXXK":
        if t(row.get("THANH_LY")) == "H":
            return Fate.excluded("R-SXXK-LIQUIDATED"), None
        return generic_quarantine(row, [], ctx, dates=["NGAY_DK"]), None
    regime = ma_lh[1:3]
    if regime == "CX":
        return generic_quarantine(row, [], ctx, dates=["NGAY_DK"]), None
    if regime != "GC":
        return Fate.excluded("R-SL-REGIME"), None
    nk = row.get("NGAY_HD")
    ckey = (t(row.get("SO_HD")) or "", t(row["MA_HQ"]) or "", t(row.get("MA_DV")) or "",
            nk.strftime("%Y%m%d") if isinstance(nk, datetime) else "")
    c = lk.contracts.get(ckey)
    if c is None:
        return Fate.quarantined("Q-GC-NO-CONTRACT", f"So_HD={ckey[0]}"), None
    if c[1] == 1:
        return Fate.excluded("R-GC-CONTRACT-LIQUIDATED"), None
    return generic_quarantine(row, [], ctx, dates=["NGAY_DK"]), c[0]


def convert_declaration(row: Row, ecs: Row | None, source_db: str, ctx: ConvertContext, ids: IdAllocator,
                        lk: Lookups) -> Fate:
    """DToKhaiMD (SXXK or SLXNK) + its ecsToKhaiMD row → DTO_KHAI_MD.

    The converted declaration is recorded with its source database (``Lookups.decls``); a quarantined one
    is recorded per (database, key) so that its children are quarantined with it.
    """
    fate = _convert_declaration(row, ecs, source_db, ctx, ids, lk)
    if fate.kind == "quarantined":
        note_quarantined_declaration(lk, source_db, decl_key(row), fate.code)
    return fate


def _convert_declaration(row: Row, ecs: Row | None, source_db: str, ctx: ConvertContext, ids: IdAllocator,
                         lk: Lookups) -> Fate:
    fate, hd_id = select_declaration(row, source_db, ctx, lk)
    if fate:
        return fate
    key = decl_key(row)
    held = lk.blocked_decls.get((source_db, _clean_key(key)))
    if held is not None:  # selected, but one of its rows never reached staging: the whole declaration waits
        return Fate.quarantined("Q-CHILD-BAD-VALUE", held)
    if key in lk.decls:
        other = decl_db(lk.decls[key])
        what = f"SoTK={key[0]} Ma_LH={key[1]} NamDK={key[3]}"
        if other not in (None, source_db):  # one key from both databases: a duplicate (in later runs too)
            return Fate.quarantined("Q-DUPLICATE-KEY", f"{what} already converted from {other}")
        return again(lk, "decls", key, what)
    ma_lh = key[1]
    new, cuc = office(ctx, lk, row["MA_HQ"])
    tk_id = ids.next("DTO_KHAI_MD", 0)
    xnsp = repaired_xuat_npl_sp(ma_lh)
    lk.decls[key] = (tk_id, hd_id, t(row.get("MA_DV")) or "", xnsp, source_db)
    cont, c40 = row.get("SO_CONTAINER"), row.get("SO_CONTAINER40")
    c20 = (cont or 0) - (c40 or 0) if cont is not None else None
    e = ecs or {}
    tbl = f"{source_db}.{'DTOKHAIMD' if source_db == 'SXXK' else 'DToKhaiMD'}"
    return Fate.converted(("DTO_KHAI_MD", {
        "TK_ID": tk_id, "MA_HQ": new, "MA_CUC_HQ": cuc, "SO_TK": key[0], "MA_LH": ma_lh, "NAM_DK": key[3],
        "NGAY_DK": row.get("NGAY_DK"), "NGAY_HOAN_THANH": row.get("NGAY_HOANTHANH"), "MA_DV": lk.decls[key][2],
        "DV_DT": text(lk, tbl, "DV_DT", row.get("DV_DT")), "SO_HD": text(lk, tbl, "SO_HD", t(row.get("SO_HD"))),
        "NGAY_HD": row.get("NGAY_HD"), "SO_HDTM": text(lk, tbl, "SO_HDTM", t(row.get("SO_HDTM"))),
        "VAN_DON": t(row.get("VAN_DON")), "SO_HANG": row.get("SOHANG"), "MA_NT": t(row.get("MA_NT")),
        "TYGIA_VND": row.get("TYGIA_VND"), "MA_CK": t(row.get("MA_CK")), "NUOC_XK": t(row.get("NUOC_XK")),
        "PLUONG": channel_code(row.get("PLUONG")), "TTTK": t(row.get("TTTK")), "THANH_LY": t(row.get("THANH_LY")),
        "XUAT_NPL_SP": xnsp, "SO_CONTAINER": cont, "SO_CONTAINER20": c20, "SO_CONTAINER40": c40,
        "NGAY_DUA_VAO_TK": row.get("NGAY_DK") if ma_lh.startswith("X") else
        (row.get("NGAY_HOANTHANH") if ma_lh.startswith("NSX") else None),
        "HD_ID": hd_id, "SO_TK_VNACCS": " " * 12, "REFERENCE": ZERO_GUID,
        "SO_TN": e.get("SOTN"), "NAM_TN": e.get("NAMTN"), "NGAY_TN": e.get("NGAYTN"),
        "MESSAGE_ID": t(e.get("MESSAGEID")), "HINH_THUC_KHAI": e.get("HINHTHUCKHAI"), "NGUON": source_db})
    ).registering("decls", key, lk.decls[key])


def ecs_fate(row: Row, lk: Lookups, ctx: ConvertContext) -> Fate:
    """ecsToKhaiMD rows are merged into their declaration — of EITHER database (they extend SXXK declarations
    too, see extract.staging.declarations_with_ecs); otherwise quarantined with a quarantined declaration of
    that key, or excluded."""
    if (q := generic_quarantine(row, ["SOTK", "MA_LH", "MA_HQ", "NAMDK"], ctx)):
        return q
    key = decl_key(row)
    if is_prior(lk, "decls", key):
        return Fate.excluded("R-ALREADY-CONVERTED")
    if key in lk.decls:
        return Fate.converted()
    for db in DECL_DBS:
        if (db, key) in lk.quarantined_decls:
            return decl_missing(lk, db, key)
    return Fate.excluded("R-DECL-NOT-SELECTED")


# --- goods lines (§3, §4.5) ----------------------------------------------------------------------
def _goods_row(line: Row, decl: DeclEntry, ctx: ConvertContext, lk: Lookups,
               stt: int, ma_vt: str, loai: int, vt_id: int | None, nguon: str, lan_dc: int | None,
               tax: Row | None) -> Row:
    new, cuc = office(ctx, lk, line["MA_HQ"])
    tax = tax or {}
    return {
        "TK_ID": decl[0], "STT_HANG": stt, "MA_HQ": new, "MA_CUC_HQ": cuc, "SO_TK": line["SOTK"],
        "MA_LH": t(line["MA_LH"]), "NAM_DK": line["NAMDK"], "MA_PHU": t(line["MA_PHU"]), "MA_VAT_TU": ma_vt,
        "LOAI_HANG": loai, "VT_ID": vt_id or 0, "HD_ID": decl[1],
        "TEN_HANG": text(lk, nguon, "TEN_HANG", line.get("TEN_HANG")), "NUOC_XX": t(line.get("NUOC_XX")),
        "MA_DVT": unit(ctx, lk, line.get("MA_DVT")), "LUONG": dec(line.get("LUONG"), 8),
        "DGIA_KB": dec(line.get("DGIA_KB"), 6), "DGIA_TT": dec(line.get("DGIA_TT"), 6),
        "TRIGIA_KB": dec(line.get("TRIGIA_KB"), 4), "TRIGIA_TT": dec(line.get("TRIGIA_TT"), 4),
        "TS_XNK": dec(line.get("TS_XNK"), 8), "THUE_XNK": dec(tax.get("THUE_XNK", line.get("THUE_XNK")), 4),
        "THUE_VAT": dec(tax.get("THUE_VAT"), 4), "LAN_DC": lan_dc, "NGUON": nguon.split(".")[-1][:12],
    }


DECL_KEY_COLS = ("SOTK", "MA_LH", "MA_HQ", "NAMDK")


def convert_sxxk_goods_group(lines: list[Row], ctx: ConvertContext, lk: Lookups
                             ) -> list[tuple[Row, Fate]]:
    """All candidate lines (TH, DC, DK) of ONE SXXK declaration → fates, in input order.

    Each line carries ``_SRC`` ('TH' | 'DC' | 'DK') and DC lines their latest tax detail as
    ``_CT_THUE_XNK``/``_CT_THUE_VAT`` (from DHANGMDDC_CT, highest LAN_DC_CT; ``_CT_LAN_DC_CT`` its round).

    Rules (§3): NKD%/X% take TH lines, or DK lines when the declaration has no TH line; NSX% take,
    per MA_PHU, the DC line with the highest LAN_DC, or the DK line (as LAN_DC = 0) when none.
    Kept lines are renumbered 1..n by MA_PHU; a DC/TH line whose MA_NPL_SP equals its MA_PHU gets
    the real item code from its DK line (hazard 9).

    The parent is the SXXK declaration with the lines' key (:func:`parent_decl`). Which lines are kept
    does not depend on the lines' data defects: a TH or DC line quarantined for its own values still
    supersedes (it is the line that should have been converted). A TH/DC line's own defect is reported
    before the rules that exclude it (as before); a DK line that is not used as gap fill is always
    excluded under a named rule (R-DK-SUPERSEDED, or the declaration's R-DECL-NOT-SELECTED /
    R-ALREADY-CONVERTED), whatever its own values — only a DK line without a declaration key is
    quarantined (Q-NULL-KEY). Under a quarantined declaration the same rules apply and the lines that
    would be converted are quarantined with it (Q-PARENT-QUARANTINED).
    """
    if not lines:
        return []
    own = [generic_quarantine(ln, [*DECL_KEY_COLS, "MA_PHU"], ctx, qtys=["LUONG"]) for ln in lines]
    key = decl_key(lines[0])
    decl, missing = parent_decl(lk, "SXXK", key)

    def no_decl_key(ln: Row) -> bool:
        return any(blank(ln.get(c)) for c in DECL_KEY_COLS)

    def not_used(ln: Row, q: Fate | None, excl: Fate) -> Fate:
        if ln["_SRC"] == "DK" and not no_decl_key(ln):
            return excl  # a DK line not used as gap fill: excluded, whatever its own values
        return q or excl

    if decl is None and missing is not None and missing.kind == "excluded":
        return [(ln, not_used(ln, q, decl_missing(lk, "SXXK", key))) for ln, q in zip(lines, own)]
    if decl is not None and is_prior(lk, "decls", key):
        return [(ln, not_used(ln, q, Fate.excluded("R-ALREADY-CONVERTED"))) for ln, q in zip(lines, own)]
    nsx = key[1].startswith("NSX")

    def mp_of(ln: Row) -> str:
        return t(ln.get("MA_PHU")) or ""

    # selection (§3) over every line that has a MA_PHU, defects or not
    rule: dict[int, str] = {}
    if nsx:
        best: dict[str, Row] = {}
        for ln in lines:
            mp = mp_of(ln)
            if ln["_SRC"] == "DC" and mp and (mp not in best or
                                              (ln.get("LAN_DC") or 0) > (best[mp].get("LAN_DC") or 0)):
                best[mp] = ln
        for ln in lines:
            mp = mp_of(ln)
            if ln["_SRC"] == "TH":
                rule[id(ln)] = "R-NSX-GOODS-FROM-DC"
            elif ln["_SRC"] == "DC" and mp and best[mp] is not ln:
                rule[id(ln)] = "R-DC-SUPERSEDED"
            elif ln["_SRC"] == "DK" and mp in best:
                rule[id(ln)] = "R-DK-SUPERSEDED"
    else:
        has_th = any(ln["_SRC"] == "TH" for ln in lines)
        for ln in lines:
            if ln["_SRC"] == "DC":
                rule[id(ln)] = "R-DC-NOT-NSX"
            elif ln["_SRC"] == "DK" and has_th:
                rule[id(ln)] = "R-DK-SUPERSEDED"
    chosen: dict[str, Row] = {}
    fates: dict[int, Fate] = {}
    for ln, q in zip(lines, own):
        r = rule.get(id(ln))
        f = not_used(ln, q, Fate.excluded(r)) if r else q
        if f is None:
            mp = mp_of(ln)
            if mp in chosen:
                f = Fate.quarantined("Q-DUPLICATE-KEY", f"MA_PHU={mp}")
            else:
                chosen[mp] = ln
                continue
        fates[id(ln)] = f
    if decl is None:  # the declaration is quarantined: the lines it would take wait with it
        for mp, ln in chosen.items():
            fates[id(ln)] = decl_missing(lk, "SXXK", key)
            if ln["_SRC"] == "DC" and ln.get("_CT_LAN_DC_CT") is not None:
                lk.held_ct.add((*key, mp, ln.get("LAN_DC"), ln.get("_CT_LAN_DC_CT")))
        return [(ln, fates[id(ln)]) for ln in lines]
    dk_code = {mp_of(ln): t(ln.get("MA_NPL_SP")) for ln in lines if ln["_SRC"] == "DK" and mp_of(ln)}
    loai = 1 if decl[3] == "N" else 2
    for stt, mp in enumerate(sorted(chosen), start=1):
        ln = chosen[mp]
        code = t(ln.get("MA_NPL_SP")) or ""
        if code == mp and dk_code.get(mp):
            code = dk_code[mp] or code
        item = lk.sx_items.get((key[2], decl[2], code, loai))
        src = {"TH": "SXXK.DHANGMDTH", "DC": "SXXK.DHANGMDDC", "DK": "SXXK.DHANGMDDK"}[ln["_SRC"]]
        lan_dc = (ln.get("LAN_DC") or 0) if nsx else None
        tax = None
        if ln["_SRC"] == "DC" and ln.get("_CT_THUE_XNK") is not None:
            tax = {"THUE_XNK": ln.get("_CT_THUE_XNK"), "THUE_VAT": ln.get("_CT_THUE_VAT")}
        row = _goods_row(ln, decl, ctx, lk, stt, code, loai, item[0] if item else None, src, lan_dc, tax)
        fates[id(ln)] = Fate.converted(("DHANG_MD", row))
        if nsx:
            lk.stock_lines.setdefault((decl[0], code), []).append((row["DGIA_TT"], row["LUONG"], row["TS_XNK"]))
    return [(ln, fates[id(ln)]) for ln in lines]


def convert_slxnk_line(row: Row, ctx: ConvertContext, lk: Lookups, seen: set[tuple]) -> Fate:
    """DHangMD (GC/CX declarations) → DHANG_MD; item code = Ma_Phu without its kind letter.

    The parent is the SLXNK declaration with the line's key (never an SXXK one with the same key)."""
    if (q := generic_quarantine(row, ["SOTK", "MA_LH", "MA_HQ", "NAMDK", "STTHANG"], ctx, qtys=["LUONG"])):
        return q
    key = decl_key(row)
    decl, missing = parent_decl(lk, "SLXNK", key)
    if decl is None and missing.kind == "excluded":  # type: ignore[union-attr]
        return missing  # type: ignore[return-value]
    if decl is not None and is_prior(lk, "decls", key):
        return Fate.excluded("R-ALREADY-CONVERTED")
    k = (decl[0] if decl else None, row["STTHANG"])  # (seen is per declaration group)
    if k in seen:
        return Fate.quarantined("Q-DUPLICATE-KEY", f"STTHang={row['STTHANG']}")
    seen.add(k)
    if decl is None:
        return missing  # type: ignore[return-value]
    ma_phu = t(row.get("MA_PHU")) or ""
    ma_vt, loai = strip_kind_prefix(ma_phu) or "", kind_of(ma_phu)
    regime = key[1][1:3]
    vt_id = None
    if regime == "GC" and decl[1] is not None:
        vt_id = lk.gc_items.get((decl[1], ma_vt, loai))
    elif regime == "CX":
        vt_id = lk.cx_items.get((key[2], decl[2], ma_vt, 1 if loai == 1 else 2))
    line = dict(row, MA_PHU=ma_phu)
    return Fate.converted(("DHANG_MD", _goods_row(line, decl, ctx, lk, int(row["STTHANG"]), ma_vt, loai, vt_id,
                                                  "SLXNK.DHangMD", None, None)))


def dc_ct_fate(row: Row, chosen_ct: set[tuple], lk: Lookups, ctx: ConvertContext) -> Fate:
    """DHANGMDDC_CT rows: merged into their chosen DC line when they are its latest tax detail.

    Under a quarantined SXXK declaration, the tax detail its goods would take (``Lookups.held_ct``, filled
    by :func:`convert_sxxk_goods_group`) is quarantined with it; older ones stay superseded."""
    if (q := generic_quarantine(row, ["SOTK", "MA_LH", "MA_HQ", "NAMDK", "MA_PHU"], ctx)):
        return q
    key = decl_key(row)
    decl, missing = parent_decl(lk, "SXXK", key)
    k = (*key, t(row["MA_PHU"]), row.get("LAN_DC"), row.get("LAN_DC_CT"))
    if decl is None:
        if missing.kind == "quarantined" and k not in lk.held_ct:  # type: ignore[union-attr]
            return Fate.excluded("R-DC-CT-SUPERSEDED")
        return missing  # type: ignore[return-value]
    if is_prior(lk, "decls", key):
        return Fate.excluded("R-ALREADY-CONVERTED")
    return Fate.converted() if k in chosen_ct else Fate.excluded("R-DC-CT-SUPERSEDED")


# --- GC self-supplied materials, CX notifications and destruction (§3, §4.7) ------------------------
def convert_self_supplied(row: Row, ctx: ConvertContext, ids: IdAllocator, lk: Lookups) -> Fate:
    """ecsNPLTCU (self-supplied materials of a GC declaration) → DGC_NPL_TCU."""
    if (q := generic_quarantine(row, ["SOTK", "MA_LH", "MA_HQ", "NAMDK", "NPLP_CODE"], ctx, qtys=["LUONG"])):
        return q
    decl, missing = parent_decl(lk, "SLXNK", decl_key(row))
    if decl is None:
        return missing  # type: ignore[return-value]
    k = (decl[0], t(row["NPLP_CODE"]))
    if k in lk.tcu:
        return again(lk, "tcu", k, f"NPLP_Code={k[1]}")
    tcu_id = ids.next("DGC_NPL_TCU", 1)
    lk.tcu[k] = tcu_id
    new, cuc = office(ctx, lk, row["MA_HQ"])
    return Fate.converted(("DGC_NPL_TCU", {
        "TCU_ID": tcu_id, "TK_ID": decl[0], "HD_ID": decl[1], "MA_HQ": new, "MA_CUC_HQ": cuc,
        "MA_NPL": strip_kind_prefix(row["NPLP_CODE"]), "TEN_NPL": text(lk, "SLXNK.ecsNPLTCU", "Ten_NPL", row.get("TEN_NPL")),
        "MA_DVT": unit(ctx, lk, row.get("MA_DVT")), "LUONG": row.get("LUONG"), "DON_GIA": row.get("DONGIA"),
        "TRI_GIA": row.get("TRIGIA")})).registering("tcu", k, tcu_id)


def convert_self_supplied_doc(row: Row, ctx: ConvertContext, lk: Lookups, seen: set[tuple]) -> Fate:
    """ecsNPLTCU_CT (supporting documents) → DGC_NPL_TCU_D under its converted parent."""
    if (q := generic_quarantine(row, ["SOTK", "MA_LH", "MA_HQ", "NAMDK", "NPLP_CODE", "SO_CT"], ctx,
                                dates=["NGAY_CT"], qtys=["LUONG"])):
        return q
    decl, missing = parent_decl(lk, "SLXNK", decl_key(row))
    if decl is None:
        return missing  # type: ignore[return-value]
    tcu_id = lk.tcu.get((decl[0], t(row["NPLP_CODE"])))
    if is_prior(lk, "tcu", (decl[0], t(row["NPLP_CODE"]))):
        return Fate.excluded("R-ALREADY-CONVERTED")
    if tcu_id is None:
        return Fate.quarantined("Q-NO-PARENT", f"NPLP_Code={t(row['NPLP_CODE'])} has no ecsNPLTCU row")
    so_ct = text(lk, "SLXNK.ecsNPLTCU_CT", "So_CT", t(row["SO_CT"]))
    if (tcu_id, so_ct) in seen:
        return Fate.quarantined("Q-DUPLICATE-KEY", f"So_CT={so_ct}")
    seen.add((tcu_id, so_ct))
    return Fate.converted(("DGC_NPL_TCU_D", {"TCU_ID": tcu_id, "SO_CT": so_ct, "NGAY_CT": row.get("NGAY_CT"),
                                             "LUONG": row.get("LUONG")}))


def convert_cx_notice(row: Row, ctx: ConvertContext, ids: IdAllocator, lk: Lookups) -> Fate:
    """ecsCX_CT_TOKHAI → DCX_CT_TOKHAI (CT_ID type 8)."""
    if (q := generic_quarantine(row, ["SO_TN", "NAM_TN", "MA_HQTN"], ctx, dates=["NGAY_TN"])):
        return q
    if not in_branch(ctx, row["MA_HQTN"]):
        return Fate.excluded("R-OTHER-OFFICE")
    k = (row["SO_TN"], row["NAM_TN"], t(row["MA_HQTN"]))
    if k in lk.cx_notices:
        return again(lk, "cx_notices", k, f"SO_TN={k[0]} NAM_TN={k[1]}")
    ct_id = ids.next("DCX_CT_TOKHAI", 8)
    lk.cx_notices[k] = (ct_id, t(row.get("MA_DV")) or "")
    new, cuc = office(ctx, lk, row["MA_HQTN"])
    return Fate.converted(("DCX_CT_TOKHAI", {
        "CT_ID": ct_id, "MA_HQ": new, "MA_CUC_HQ": cuc, "MA_DV": t(row.get("MA_DV")), "SO_TN": k[0], "NAM_TN": k[1],
        "NGAY_TN": row.get("NGAY_TN"), "LOAI_CT": t(row.get("LOAI_CT")),
        "GHI_CHU": text(lk, "SLXNK.ecsCX_CT_TOKHAI", "GHI_CHU", row.get("GHI_CHU"))})
    ).registering("cx_notices", k, lk.cx_notices[k])


def convert_cx_notice_line(row: Row, ctx: ConvertContext, lk: Lookups, seen: set[tuple]) -> Fate:
    """ecsCX_CT_TOKHAI_HANG → DCX_CT_TOKHAI_HANG under its converted notification."""
    if (q := generic_quarantine(row, ["SO_TN", "NAM_TN", "MA_HQTN", "STT_HANG"], ctx, qtys=["SO_LUONG"])):
        return q
    if not in_branch(ctx, row["MA_HQTN"]):
        return Fate.excluded("R-OTHER-OFFICE")
    pk = (row["SO_TN"], row["NAM_TN"], t(row["MA_HQTN"]))
    parent = lk.cx_notices.get(pk)
    if is_prior(lk, "cx_notices", pk):
        return Fate.excluded("R-ALREADY-CONVERTED")
    if parent is None:
        return Fate.quarantined("Q-NO-PARENT", f"notification SO_TN={row['SO_TN']} is missing or quarantined")
    if (parent[0], row["STT_HANG"]) in seen:
        return Fate.quarantined("Q-DUPLICATE-KEY", f"STT_HANG={row['STT_HANG']}")
    seen.add((parent[0], row["STT_HANG"]))
    loai = int(row.get("LOAI_HANG") or 1)
    vt_id = lk.cx_items.get((t(row["MA_HQTN"]), parent[1], t(row.get("MA_HANG")), 1 if loai == 1 else 2))
    return Fate.converted(("DCX_CT_TOKHAI_HANG", {
        "CT_ID": parent[0], "STT_HANG": row["STT_HANG"], "MA_HANG": t(row.get("MA_HANG")), "VT_ID": vt_id or 0,
        "SO_LUONG": row.get("SO_LUONG"), "MA_DVT_DK": unit(ctx, lk, row.get("MA_DVT_DK")),
        "MA_DVT_KB": unit(ctx, lk, row.get("MA_DVT_KB")), "TY_LE_QUI_DOI": row.get("TY_LE_QUI_DOI"),
        "LOAI_HANG": loai}))


def convert_cx_destruction(row: Row, ctx: ConvertContext, ids: IdAllocator, lk: Lookups, seen: set[tuple]) -> Fate:
    """ecsCX_HUY_NPLSP_D → DCX_HUY_NPL_SP (one header per SO_TN/NAM_TN/office) + DCX_HUY_NPL_SP_D.

    The related declaration is found by office, type, year(NGAY_DK) and SO_TK — NamDK and
    year(NGAY_DK) were used interchangeably in 2014 (hazard 10); an unmatched one keeps TK_ID empty.
    It is a CX declaration, so an SLXNK one; when that declaration is quarantined, the line is quarantined
    with it (Q-PARENT-QUARANTINED) rather than converted without its link.
    """
    if (q := generic_quarantine(row, ["SO_TN", "MA_HQTN", "NAM_TN", "MA_HANG"], ctx, dates=["NGAY_DK"],
                                qtys=["SO_LUONG"])):
        return q
    if not in_branch(ctx, row["MA_HQTN"]):
        return Fate.excluded("R-OTHER-OFFICE")
    hk = (row["SO_TN"], row["NAM_TN"], t(row["MA_HQTN"]))
    if is_prior(lk, "cx_destructions", hk):
        return Fate.excluded("R-ALREADY-CONVERTED")
    dk = (hk, t(row["MA_HANG"]))
    if dk in seen:
        return Fate.quarantined("Q-DUPLICATE-KEY", f"MA_HANG={dk[1]}")
    seen.add(dk)
    ngay = row.get("NGAY_DK")
    decl, related = parent_decl(lk, "SLXNK", (row.get("SO_TK"), t(row.get("MA_LH")), t(row.get("MA_HQ")),
                                              ngay.year if isinstance(ngay, datetime) else None))
    if related is not None and related.kind == "quarantined":
        return related
    out: list[tuple[str, Row]] = []
    new, cuc = office(ctx, lk, row["MA_HQTN"])
    fresh = hk not in lk.cx_destructions
    if fresh:
        lk.cx_destructions[hk] = ids.next("DCX_HUY_NPL_SP", 9)
        out.append(("DCX_HUY_NPL_SP", {"CT_ID": lk.cx_destructions[hk], "MA_HQ": new, "MA_CUC_HQ": cuc,
                                       "MA_DV": t(row.get("MA_DV")), "SO_TN": hk[0], "NAM_TN": hk[1]}))
    loai = int(row.get("LOAI_HANG") or 1)
    vt_id = lk.cx_items.get((hk[2], t(row.get("MA_DV")) or "", dk[1], 1 if loai == 1 else 2))
    out.append(("DCX_HUY_NPL_SP_D", {
        "CT_ID": lk.cx_destructions[hk], "MA_HANG": dk[1], "VT_ID": vt_id or 0, "LOAI_HANG": loai,
        "SO_LUONG": row.get("SO_LUONG"), "MA_DVT": unit(ctx, lk, row.get("MA_DVT")),
        "TK_ID": decl[0] if decl else None, "SO_TK": row.get("SO_TK"), "MA_LH": t(row.get("MA_LH"))}))
    f = Fate.converted(*out)
    return f.registering("cx_destructions", hk, lk.cx_destructions[hk]) if fresh else f


# --- SXXK stock (§4.6, §6) ----------------------------------------------------------------------
def convert_stock(row: Row, ctx: ConvertContext, ids: IdAllocator, lk: Lookups) -> Fate:
    """DNPLNHAP (TON > 0, declaration selected) → DSX_NPL_NHAP (one row) + DSX_NPL_NHAP_TL, split by price (§6).

    One row per price group of the material's goods lines, all with the same HS_TL_ID (hazard 11):
    TON_DAU = the group's quantity, LUONG = used, TON = LUONG_TON_SAU_DC = remaining, LUONG_TON_DC = 0.
    Without goods lines for the material: one row at price 0 with TON_DAU = the imported LUONG.
    The parent is the SXXK declaration with the row's key. Under a quarantined declaration the row's own
    checks and rules come first (Q-TON-GT-LUONG, R-STOCK-ZERO); otherwise it waits with the declaration.
    """
    if (q := generic_quarantine(row, ["SOTK", "MA_LH", "MA_HQ", "NAMDK", "MA_NPL"], ctx, qtys=["LUONG", "TON"])):
        return q
    key = decl_key(row)
    decl, missing = parent_decl(lk, "SXXK", key)
    if decl is None and missing.kind == "excluded":  # type: ignore[union-attr]
        return missing  # type: ignore[return-value]
    luong, ton = row.get("LUONG") or Decimal(0), row.get("TON") or Decimal(0)
    if ton > luong:
        return Fate.quarantined("Q-TON-GT-LUONG", f"TON={ton} LUONG={luong}")
    if ton <= 0:
        return Fate.excluded("R-STOCK-ZERO")
    npl = t(row["MA_NPL"])
    if is_prior(lk, "stock", (*key, npl)):
        return Fate.excluded("R-ALREADY-CONVERTED")
    if decl is None:
        return missing  # type: ignore[return-value]
    lines = lk.stock_lines.get((decl[0], npl))
    if lines:
        groups = group_by_price(lines)
        if ton > sum(g.quantity for g in groups):
            return Fate.quarantined("Q-TON-GT-GOODS", f"TON={ton} > goods quantity {sum(g.quantity for g in groups)}")
        pieces = split_stock(ton, groups)
    else:
        pieces = [StockPiece(Decimal(0), Decimal(0), luong, luong - ton, ton)]
    item = lk.sx_items.get((key[2], decl[2], npl, 1))
    new, cuc = office(ctx, lk, row["MA_HQ"])
    hs_tl_id = ids.next("DSX_NPL_NHAP_TL", 1)
    vt_id = item[0] if item else 0
    header = ("DSX_NPL_NHAP", {"HS_ID": hs_tl_id, "MA_HQ": new, "MA_CUC_HQ": cuc, "TK_ID": decl[0], "SO_TK": key[0],
                               "MA_LH": key[1], "NAM_DK": key[3], "VT_ID": vt_id, "MA_NPL": npl, "MA_DV": decl[2],
                               "LUONG": luong, "TON": ton})
    return Fate.converted(header, *[("DSX_NPL_NHAP_TL", {
        "HS_TL_ID": hs_tl_id, "NAM_TL": key[3], "MA_HQ": new, "MA_CUC_HQ": cuc,
        "TK_ID": decl[0], "SO_TK": key[0], "SO_TK_VNACCS": " " * 12, "MA_LH": key[1], "NAM_DK": key[3],
        "VT_ID": vt_id, "MA_NPL": npl, "DGIA_TT": p.price, "TS_XNK": p.tax_rate, "MA_DV": decl[2],
        "TON_DAU": p.ton_dau, "TON": p.remaining, "LUONG": p.used, "LUONG_TON_DC": Decimal(0),
        "LUONG_TON_SAU_DC": p.remaining}) for p in pieces]).registering("stock", (*key, npl), hs_tl_id)


# --- fitting rows to the target ------------------------------------------------------------------
def truncate_allowed(row: Row, limits: Mapping[str, int], allowed: Iterable[str]) -> list[tuple[str, str, str]]:
    """Cut the allowed columns that are too long (a named rule, T-TRUNCATE); returns (column, before, after)."""
    cut = []
    for c in allowed:
        v, n = row.get(c), limits.get(c)
        if isinstance(v, str) and n and len(v) > n:
            row[c] = v[:n]
            cut.append((c, v, v[:n]))
    return cut


def too_long(row: Row, limits: Mapping[str, int]) -> str | None:
    """Name the first text value longer than its target column, or None (never truncate silently)."""
    for c, n in limits.items():
        v = row.get(c)
        if isinstance(v, str) and len(v) > n:
            return f"{c} has {len(v)} characters, target allows {n}"
    return None


def to_batch(rows: list[Row], schema: pa.Schema) -> pa.RecordBatch:
    """Target rows → one Arrow batch of the target schema (decimals quantized to the target scale)."""
    cols = []
    for f in schema:
        vals = [r.get(f.name) for r in rows]
        if pa.types.is_decimal(f.type):
            vals = [dec(v, f.type.scale) for v in vals]
        cols.append(pa.array(vals, type=f.type))
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def group_by_key(batches: Iterable[pa.RecordBatch], key: list[str]) -> Iterator[list[Row]]:
    """Rows of batches *ordered by key* → lists of rows sharing a key (groups never split)."""
    cur: list[Row] = []
    cur_key: tuple[Any, ...] | None = None
    for b in batches:
        for r in upper_rows(b):
            k = tuple(t(r.get(c)) for c in key)
            if cur and k != cur_key:
                yield cur
                cur = []
            cur_key = k
            cur.append(r)
    if cur:
        yield cur
