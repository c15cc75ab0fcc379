"""The expected legacy e-Customs V4 schema (SLXNK and SXXK), as data.

Table and column names, logical keys and types follow ../shared/domain/ecustoms-v4.md §1. Only the
columns the conversion reads or the checks need are listed; a real branch DB has more, which the
package keeps (step 2 backs up what it finds) and step 4 reports as "extra".

Keys are *logical* keys: the sample DBs, like many real branch DBs after years of ``SELECT INTO``
copies, do not enforce them, which is why step 1 looks for duplicates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import mysql


@dataclass(frozen=True)
class LegacyTable:
    db: str  # "SLXNK" | "SXXK"
    name: str
    key: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]  # (name, legacy SQL type)

    @property
    def qualified(self) -> str:
        return f"{self.db}.{self.name}"

    def column_types(self) -> dict[str, str]:
        return dict(self.columns)


def _t(db: str, name: str, key: list[str], cols: str) -> LegacyTable:
    parsed = tuple(tuple(c.strip().split(" ", 1)) for c in cols.strip().split(",\n"))
    return LegacyTable(db, name, tuple(key), parsed)  # type: ignore[arg-type]


_DECL_KEY_SX = ["SOTK", "MA_LH", "MA_HQ", "NAMDK"]
_DECL_KEY_SL = ["SoTK", "Ma_LH", "Ma_HQ", "NamDK"]
_HD_KEY = ["So_HD", "Ma_HQHD", "DVGC", "Ngay_Ky"]
_HD_COLS = "So_HD varchar(80),\nMa_HQHD varchar(6),\nDVGC varchar(14),\nNgay_Ky datetime"
_CX_DM_HH_D_COLS = """MA_HQTN varchar(50),
MA_DV_XN varchar(50),
MA_HANG varchar(50),
TEN_HANG nvarchar(256),
MA_HS varchar(50),
MA_DVT varchar(50),
LOAI_HANG int,
SO_DK int,
NAM_DK int"""

_GOODS_SX = """SOTK int,
MA_LH char(5),
MA_HQ char(6),
NAMDK smallint,
MA_PHU varchar(30),
MA_NPL_SP varchar(30),
STTHANG smallint,
MA_HANGKB varchar(30),
TEN_HANG nvarchar(255),
NUOC_XX char(3),
MA_DVT char(3),
LUONG numeric(18,8),
DGIA_KB float,
DGIA_TT float,
TRIGIA_KB float,
TRIGIA_TT float,
TS_XNK numeric(18,8),
THUE_XNK float"""

SXXK_TABLES: tuple[LegacyTable, ...] = (
    _t("SXXK", "DTOKHAIMD", _DECL_KEY_SX, """SOTK int,
MA_LH char(5),
MA_HQ char(6),
NAMDK smallint,
NGAY_DK datetime,
NGAY_HOANTHANH datetime,
MA_DV varchar(14),
DV_DT varchar(500),
SO_HD varchar(500),
NGAY_HD datetime,
SO_HDTM nvarchar(500),
VAN_DON varchar(500),
SOHANG smallint,
MA_NT char(3),
TYGIA_VND float,
TONGTGKB float,
MA_CK char(4),
NUOC_XK char(3),
PLUONG char(4),
TTTK char(1),
THANH_LY char(1),
XUAT_NPL_SP char(1),
SO_CONTAINER numeric(18,0),
SO_CONTAINER40 numeric(18,0),
NGAYNHAP datetime,
NGUOINHAP varchar(30)"""),
    _t("SXXK", "DHANGMDDK", _DECL_KEY_SX + ["MA_PHU"], _GOODS_SX),
    _t("SXXK", "DHANGMDTH", _DECL_KEY_SX + ["MA_PHU"], _GOODS_SX),
    _t("SXXK", "DHANGMDDC", _DECL_KEY_SX + ["MA_PHU", "LAN_DC"], _GOODS_SX + ",\nLAN_DC int"),
    _t("SXXK", "DHANGMDDC_CT", _DECL_KEY_SX + ["MA_PHU", "LAN_DC", "LAN_DC_CT"], """SOTK int,
MA_LH char(5),
MA_HQ char(6),
NAMDK smallint,
MA_PHU varchar(30),
LAN_DC int,
LAN_DC_CT int,
THUE_XNK float,
THUE_VAT float,
PHU_THU float,
MIENTHUE smallint,
TRIGIA_THUKHAC float"""),
    _t("SXXK", "DNPLNHAP", ["SOTK", "MA_LH", "NAMDK", "MA_HQ", "MA_NPL"], """SOTK int,
MA_LH char(5),
NAMDK smallint,
MA_HQ char(6),
MA_NPL varchar(30),
MA_DV varchar(14),
LUONG numeric(18,8),
TON numeric(18,8)"""),
    _t("SXXK", "SNPL", ["MA_HQ", "MA_DV", "MA_NPL"], """MA_HQ char(6),
MA_DV varchar(14),
MA_NPL varchar(30),
TEN_NPL nvarchar(255),
MA_HS varchar(12),
MA_DVT char(3),
SO_TN int,
NAM_TN int"""),
    _t("SXXK", "SSP", ["MA_HQ", "MA_DV", "MA_SP"], """MA_HQ char(6),
MA_DV varchar(14),
MA_SP varchar(30),
TEN_SP nvarchar(255),
MA_HS varchar(12),
MA_DVT char(3),
SO_TN int,
NAM_TN int"""),
    _t("SXXK", "DDINHMUC", ["MA_SP", "MA_NPL", "MA_DV", "MA_HQ"], """MA_SP varchar(30),
MA_NPL varchar(30),
MA_DV varchar(17),
MA_HQ char(6),
DM_SD numeric(18,8),
TL_HH numeric(18,8),
DM_CHUNG numeric(18,8),
GHI_CHU nvarchar(256),
SO_TN int,
NAM_TN int"""),
)

SLXNK_TABLES: tuple[LegacyTable, ...] = (
    _t("SLXNK", "DToKhaiMD", _DECL_KEY_SL, """SoTK int,
Ma_LH char(5),
Ma_HQ char(6),
NamDK smallint,
Ngay_DK datetime,
Ngay_HoanThanh datetime,
Ma_DV varchar(17),
DV_DT nvarchar(256),
So_HD varchar(50),
Ngay_HD datetime,
Ngay_HHHD datetime,
So_HDTM nvarchar(30),
Van_Don varchar(35),
SoHang smallint,
Ma_NT char(3),
TyGia_VND float,
TongTGKB float,
Ma_CK char(4),
Nuoc_XK char(3),
PLuong char(4),
TTTK char(1),
Thanh_Ly char(1),
Xuat_NPL_SP char(1),
So_Container numeric(18,0),
So_Container40 numeric(18,0),
NgayNhap datetime,
NguoiNhap varchar(30)"""),
    _t("SLXNK", "ecsToKhaiMD", _DECL_KEY_SL, """SoTK int,
Ma_LH char(5),
Ma_HQ char(6),
NamDK smallint,
SoTN int,
NamTN smallint,
NgayTN datetime,
MessageId varchar(40),
HinhThucKhai smallint,
KhauNV varchar(20),
CoChuKySo smallint"""),
    _t("SLXNK", "DHangMD", _DECL_KEY_SL + ["STTHang"], """SoTK int,
Ma_LH char(5),
Ma_HQ char(6),
NamDK smallint,
STTHang smallint,
Ma_Phu varchar(31),
Ma_HangKB varchar(30),
Ten_Hang nvarchar(256),
Nuoc_XX char(3),
Ma_DVT char(3),
Luong numeric(21,6),
DGia_KB numeric(24,6),
DGia_TT numeric(24,6),
TriGia_KB money,
TriGia_TT money,
TS_XNK numeric(5,2),
Thue_XNK money"""),
    _t("SLXNK", "DHDGC", _HD_KEY, _HD_COLS + """,
So_GP varchar(50),
Ngay_GP datetime,
DVDT nvarchar(256),
DiaChi_DT nvarchar(256),
Ngay_DK datetime,
Ngay_HH datetime,
Ngay_GH datetime,
NuocThueGC char(3),
ThiTruongXK varchar(50),
TriGiaGC numeric(18,3),
GiaGC numeric(18,3),
NgTe char(3),
PTTT varchar(10),
ThanhKhoan smallint,
Ngay_TK datetime,
So_TK varchar(10),
TrangThai int,
So_TN int,
Nam_TN int,
GIA_CONG_NGUOC smallint"""),
    _t("SLXNK", "DLOAISPGC", _HD_KEY + ["Ma_SPGC"], _HD_COLS + """,
Ma_SPGC varchar(10),
Ten_SPGC nvarchar(256),
So_Luong numeric(18,6),
Gia_GC numeric(18,6),
TriGia_SP numeric(18,3)"""),
    _t("SLXNK", "DNPLHD", _HD_KEY + ["P_Code"], _HD_COLS + """,
P_Code varchar(51),
HS_Code char(30),
Ten_NPL nvarchar(256),
Ma_DVT char(3),
SL_DK numeric(18,6),
SL_DC numeric(18,6),
DonGia numeric(18,6),
Mua_VN smallint"""),
    _t("SLXNK", "DSPGC", _HD_KEY + ["P_Code"], _HD_COLS + """,
P_Code varchar(51),
HS_Code char(12),
Ten_SP nvarchar(256),
Ma_DVT char(3),
SL_DK numeric(18,6),
SL_DC numeric(18,6),
DonGiaGC numeric(18,6),
Nhom_SP varchar(10)"""),
    _t("SLXNK", "DThietBi", _HD_KEY + ["P_CODE"], _HD_COLS + """,
P_CODE varchar(51),
HS_CODE varchar(30),
Ten_TB varchar(256),
Xuat_Xu varchar(80),
TinhTrang varchar(255),
Ma_DVT char(3),
So_Luong numeric(18,6),
DonGia money"""),
    _t("SLXNK", "ecsDHangMau", _HD_KEY + ["P_Code"], _HD_COLS + """,
P_Code varchar(80),
HS_Code varchar(30),
Ten_HM varchar(256),
Ma_DVT char(3),
So_Luong numeric(18,6)"""),
    _t("SLXNK", "DDMuc", ["So_HD", "Ma_HQHD", "Ngay_Ky", "DVGC", "SPP_Code", "NPLP_Code"], _HD_COLS + """,
SPP_Code varchar(51),
NPLP_Code varchar(51),
Ten_SP nvarchar(256),
Ten_NPL nvarchar(256),
Ma_DVT char(3),
DMGC numeric(18,6),
TLHH numeric(18,6),
DM_CHUNG numeric(18,6)"""),
    # the goods-in and goods-out catalog details of a CX enterprise share one structure
    _t("SLXNK", "ecsCX_DM_HH_DUA_VAO_D", ["MA_HQTN", "MA_DV_XN", "MA_HANG"], _CX_DM_HH_D_COLS),
    _t("SLXNK", "ecsCX_DM_HH_DUA_RA_D", ["MA_HQTN", "MA_DV_XN", "MA_HANG"], _CX_DM_HH_D_COLS),
    _t("SLXNK", "ecsCX_DinhMuc", ["MA_SP", "MA_NPL", "MA_HQ", "MA_DV"], """MA_SP varchar(50),
MA_NPL varchar(50),
MA_HQ varchar(6),
MA_DV varchar(17),
DINH_MUC float,
TY_LE_HH float,
DINH_MUC_CO_HH float"""),
)

SLXNK_TABLES += (
    _t("SLXNK", "ecsNPLTCU", _DECL_KEY_SL + ["NPLP_Code"], """SoTK int,
Ma_LH char(5),
Ma_HQ char(6),
NamDK smallint,
NPLP_Code varchar(51),
Ten_NPL nvarchar(256),
Ma_DVT char(3),
Luong numeric(18,6),
DonGia numeric(18,6),
TriGia numeric(18,3)"""),
    _t("SLXNK", "ecsNPLTCU_CT", _DECL_KEY_SL + ["NPLP_Code", "So_CT"], """SoTK int,
Ma_LH char(5),
Ma_HQ char(6),
NamDK smallint,
NPLP_Code varchar(51),
So_CT varchar(50),
Ngay_CT datetime,
Luong numeric(18,6)"""),
    _t("SLXNK", "ecsCX_CT_TOKHAI", ["SO_TN", "NAM_TN", "MA_HQTN"], """SO_TN int,
NAM_TN int,
MA_HQTN varchar(6),
MA_DV varchar(17),
NGAY_TN datetime,
LOAI_CT varchar(10),
GHI_CHU nvarchar(256)"""),
    _t("SLXNK", "ecsCX_CT_TOKHAI_HANG", ["SO_TN", "NAM_TN", "MA_HQTN", "STT_HANG"], """SO_TN int,
NAM_TN int,
MA_HQTN varchar(6),
STT_HANG int,
MA_HANG varchar(50),
SO_LUONG numeric(18,6),
MA_DVT_DK varchar(50),
MA_DVT_KB varchar(50),
TY_LE_QUI_DOI numeric(18,6),
LOAI_HANG int"""),
    _t("SLXNK", "ecsCX_HUY_NPLSP_D", ["SO_TN", "MA_HQTN", "NAM_TN", "MA_HANG"], """SO_TN int,
MA_HQTN varchar(6),
NAM_TN int,
MA_HANG varchar(50),
MA_DV varchar(17),
LOAI_HANG int,
SO_LUONG numeric(18,6),
MA_DVT varchar(50),
SO_TK int,
MA_HQ char(6),
NGAY_DK datetime,
MA_LH char(5)"""),
)

ALL_TABLES: tuple[LegacyTable, ...] = SXXK_TABLES + SLXNK_TABLES

# Tables a branch may lack altogether: one that never handled export-processing (CX) enterprises or
# self-supplied GC materials has no such tables. Their absence is an "info" finding at step 4 (counts 0,
# their checks not run); any other table is required (its absence is critical and must be decided).
OPTIONAL_TABLES: frozenset[str] = frozenset({
    "SLXNK.ecsCX_DM_HH_DUA_VAO_D", "SLXNK.ecsCX_DM_HH_DUA_RA_D", "SLXNK.ecsCX_DinhMuc", "SLXNK.ecsCX_CT_TOKHAI",
    "SLXNK.ecsCX_CT_TOKHAI_HANG", "SLXNK.ecsCX_HUY_NPLSP_D", "SLXNK.ecsNPLTCU", "SLXNK.ecsNPLTCU_CT",
})
TABLES_BY_DB: dict[str, tuple[LegacyTable, ...]] = {"SXXK": SXXK_TABLES, "SLXNK": SLXNK_TABLES}


def legacy_table(db: str, name: str) -> LegacyTable:
    for t in TABLES_BY_DB[db]:
        if t.name == name:
            return t
    raise KeyError(f"{db}.{name}")


_TYPE_RE = re.compile(r"^(\w+)(?:\((\d+)(?:,(\d+))?\))?$")


def sa_type(legacy: str) -> sa.types.TypeEngine:  # type: ignore[type-arg]
    """Legacy SQL Server type string → SQLAlchemy type (portable across SQLite/PG/MariaDB)."""
    m = _TYPE_RE.match(legacy)
    if not m:
        raise ValueError(f"unparseable legacy type {legacy!r}")
    base, a, b = m.group(1).lower(), m.group(2), m.group(3)
    if base == "bigint":
        return sa.BigInteger()
    if base == "int":
        return sa.Integer()
    if base in ("smallint", "tinyint", "bit"):
        return sa.SmallInteger()
    if base == "char":
        return sa.CHAR(int(a))
    if base == "varchar":
        return sa.VARCHAR(int(a))
    if base == "nvarchar":
        return sa.Unicode(int(a))  # NVARCHAR on SQL Server, VARCHAR (UTF-8) on PostgreSQL/MariaDB
    if base == "numeric":
        return sa.Numeric(int(a), int(b or 0))
    if base == "money":
        return sa.Numeric(19, 4)
    if base == "float":
        return sa.Float(precision=53)
    if base == "datetime":
        # SQL Server datetime keeps milliseconds; MariaDB's bare DATETIME would round them away
        return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    raise ValueError(f"unknown legacy type {legacy!r}")


def sa_metadata(db: str) -> sa.MetaData:
    """SQLAlchemy metadata for one legacy DB (no enforced keys, as in the field)."""
    md = sa.MetaData()
    for t in TABLES_BY_DB[db]:
        sa.Table(t.name, md, *[sa.Column(c, sa_type(ty)) for c, ty in t.columns])
    return md


def expected_schema_json(db: str) -> dict[str, dict[str, object]]:
    """The expected structure of one legacy DB as plain data (for step 4's comparison)."""
    return {t.name: {"key": list(t.key), "columns": dict(t.columns)} for t in TABLES_BY_DB[db]}


# Category of each table for the step-2 statistics report (Phụ lục IV 2.1).
CATEGORY: dict[str, str] = {
    "SXXK.DTOKHAIMD": "declarations", "SLXNK.DToKhaiMD": "declarations",
    "SLXNK.ecsToKhaiMD": "declarations", "SLXNK.DHangMD": "declarations",
    "SXXK.DHANGMDDK": "sxxk", "SXXK.DHANGMDTH": "sxxk", "SXXK.DHANGMDDC": "sxxk",
    "SXXK.DHANGMDDC_CT": "sxxk", "SXXK.DNPLNHAP": "sxxk", "SXXK.SNPL": "sxxk", "SXXK.SSP": "sxxk",
    "SXXK.DDINHMUC": "sxxk",
    "SLXNK.DHDGC": "gc", "SLXNK.DLOAISPGC": "gc", "SLXNK.DNPLHD": "gc", "SLXNK.DSPGC": "gc",
    "SLXNK.DThietBi": "gc", "SLXNK.ecsDHangMau": "gc", "SLXNK.DDMuc": "gc",
    "SLXNK.ecsNPLTCU": "gc", "SLXNK.ecsNPLTCU_CT": "gc", "SLXNK.ecsCX_CT_TOKHAI": "cx",
    "SLXNK.ecsCX_CT_TOKHAI_HANG": "cx", "SLXNK.ecsCX_HUY_NPLSP_D": "cx",
    "SLXNK.ecsCX_DM_HH_DUA_VAO_D": "cx", "SLXNK.ecsCX_DM_HH_DUA_RA_D": "cx", "SLXNK.ecsCX_DinhMuc": "cx",
}
