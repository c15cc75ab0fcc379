"""The central e-Customs tables (domain doc §4.8) as SQLAlchemy metadata, plus users and roles.

The same metadata creates the schema on SQLite (embedded default) and PostgreSQL. Every table has
a ``window`` column holding IDs of the branch's window (base, base + 1e9], which is how a branch's
rows are replaced or removed (rollback = delete by ID window, children first).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa
import sqlalchemy as sa

from extract.legacy_schema import sa_type
from extract.source import arrow_type


@dataclass(frozen=True)
class CentralTable:
    name: str
    key: tuple[str, ...]
    window: str  # the ID column that lies in the branch's window
    columns: tuple[tuple[str, str], ...]


def _c(name: str, key: list[str], window: str, cols: str) -> CentralTable:
    parsed = tuple(tuple(c.split()) for c in re.split(r",(?![^()]*\))", cols) if c.strip())
    return CentralTable(name, tuple(key), window, parsed)  # type: ignore[arg-type]


_OFFICE = "MA_HQ varchar(6), MA_CUC_HQ varchar(2)"

CENTRAL_TABLES: tuple[CentralTable, ...] = (
    _c("DGC_HD", ["HD_ID"], "HD_ID", f"""HD_ID bigint, {_OFFICE.replace('MA_HQ ', 'MA_HQ_HD ')}, NAM_DK smallint,
       SO_HD_HQ_CAP varchar(32), SO_HD nvarchar(80), DON_VI_GC varchar(14), DON_VI_DOI_TAC nvarchar(256),
       DIA_CHI_DOI_TAC nvarchar(256), NGAY_KY datetime, NGAY_DK datetime, NGAY_HH datetime, NGAY_GH datetime,
       NUOC_THUE_GC varchar(3), THI_TRUONG_XK varchar(50), TONG_TRI_GIA_SP numeric(18,3),
       TONG_TRI_GIA_TIEN_CONG numeric(18,3), MA_NT varchar(3), PT_TT varchar(10), THANH_KHOAN smallint,
       NGAY_THANH_KHOAN datetime, SO_THANH_KHOAN varchar(10), TRANG_THAI int, NUOC_NHAN_GIA_CONG varchar(3),
       GIA_CONG_NGUOC smallint, NGAY_TN datetime, SO_TN int, NAM_TN int, MESSAGE_ID int"""),
    _c("DGC_LOAI_SP", ["HD_ID", "MA_SP_GC"], "HD_ID", """HD_ID bigint, MA_SP_GC varchar(10),
       TEN_SP_GC nvarchar(256), SO_LUONG numeric(18,6), GIA_GC numeric(18,6), TRI_GIA_SP numeric(18,3)"""),
    _c("DGC_SP_NPL_TB_HM", ["VT_ID"], "VT_ID", """VT_ID bigint, HD_ID bigint, LOAI smallint,
       MA_VAT_TU varchar(80), MA_PHU varchar(80), TEN nvarchar(256), MA_HS varchar(12), MA_DVT varchar(4),
       SO_LUONG_DK numeric(18,6), DON_GIA numeric(24,6), NGUON_NGUYEN_LIEU smallint, NUOC_XUAT_XU varchar(3),
       TINH_TRANG varchar(1)"""),
    _c("DGC_DINH_MUC", ["DM_ID"], "DM_ID", """DM_ID bigint, HD_ID bigint, VT_ID_SP bigint, VT_ID_NPL bigint,
       MA_VAT_TU_SP varchar(50), MA_VAT_TU_NPL varchar(50), TEN_SP nvarchar(256), TEN_NPL nvarchar(256),
       MA_DVT varchar(4), DINH_MUC numeric(18,6), TI_LE_HAO_HUT numeric(18,6), DINH_MUC_CHUNG numeric(18,6)"""),
    _c("DGC_NPL_TCU", ["TCU_ID"], "TCU_ID", f"""TCU_ID bigint, TK_ID bigint, HD_ID bigint, {_OFFICE},
       MA_NPL varchar(50), TEN_NPL nvarchar(256), MA_DVT varchar(4), LUONG numeric(24,8), DON_GIA numeric(24,6),
       TRI_GIA numeric(24,4)"""),
    _c("DGC_NPL_TCU_D", ["TCU_ID", "SO_CT"], "TCU_ID", """TCU_ID bigint, SO_CT nvarchar(50), NGAY_CT datetime,
       LUONG numeric(24,8)"""),
    _c("DSX_SP_NPL", ["VT_ID"], "VT_ID", f"""VT_ID bigint, {_OFFICE}, NAM_DK smallint, NAM_TK smallint,
       MA_DV varchar(17), MA_VAT_TU varchar(30), LOAI smallint, TEN_VAT_TU nvarchar(255), MA_HS varchar(12),
       MA_DVT varchar(4), SO_TN int, NAM_TN int, MESSAGE_ID int"""),
    _c("DSX_DINH_MUC", ["DM_ID"], "DM_ID", f"""DM_ID bigint, {_OFFICE}, MA_DV varchar(17), VT_ID_SP bigint,
       VT_ID_NPL bigint, MA_VAT_TU_SP varchar(30), MA_VAT_TU_NPL varchar(30), TEN_SP nvarchar(255),
       TEN_NPL nvarchar(255), MA_DVT_SP varchar(4), MA_DVT_NPL varchar(4), MA_HS_SP varchar(12),
       MA_HS_NPL varchar(12), DM_SD numeric(18,8), TL_HH numeric(18,8), DM_CHUNG numeric(18,8),
       GHI_CHU nvarchar(256), SO_TN int, NAM_TN int"""),
    _c("DCX_DM_HH_DUA_VAO_RA", ["VT_ID"], "VT_ID", f"""VT_ID bigint, {_OFFICE}, MA_DV varchar(17),
       MA_HANG varchar(50), IS_DUA_VAO smallint, TEN_HANG nvarchar(256), MA_HS varchar(12), MA_DVT varchar(4),
       LOAI_HANG smallint, SO_TN int, NAM_TN int, NAM_TK smallint"""),
    _c("DCX_DINH_MUC", ["DM_ID"], "DM_ID", f"""DM_ID bigint, {_OFFICE}, MA_DV varchar(17), MA_SP varchar(50),
       MA_NPL varchar(50), VT_ID_SP bigint, VT_ID_NPL bigint, DINH_MUC float, TY_LE_HH float,
       DINH_MUC_CO_HH float"""),
    _c("DCX_CT_TOKHAI", ["CT_ID"], "CT_ID", f"""CT_ID bigint, {_OFFICE}, MA_DV varchar(17), SO_TN int, NAM_TN int,
       NGAY_TN datetime, LOAI_CT varchar(10), GHI_CHU nvarchar(256)"""),
    _c("DCX_CT_TOKHAI_HANG", ["CT_ID", "STT_HANG"], "CT_ID", """CT_ID bigint, STT_HANG int, MA_HANG varchar(50),
       VT_ID bigint, SO_LUONG numeric(24,8), MA_DVT_DK varchar(4), MA_DVT_KB varchar(4),
       TY_LE_QUI_DOI numeric(18,6), LOAI_HANG smallint"""),
    _c("DCX_HUY_NPL_SP", ["CT_ID"], "CT_ID", f"CT_ID bigint, {_OFFICE}, MA_DV varchar(17), SO_TN int, NAM_TN int"),
    _c("DCX_HUY_NPL_SP_D", ["CT_ID", "MA_HANG"], "CT_ID", """CT_ID bigint, MA_HANG varchar(50), VT_ID bigint,
       LOAI_HANG smallint, SO_LUONG numeric(24,8), MA_DVT varchar(4), TK_ID bigint, SO_TK int, MA_LH varchar(5)"""),
    _c("DTO_KHAI_MD", ["TK_ID"], "TK_ID", f"""TK_ID bigint, {_OFFICE}, SO_TK int, MA_LH varchar(5),
       NAM_DK smallint, NGAY_DK datetime, NGAY_HOAN_THANH datetime, MA_DV varchar(17), DV_DT nvarchar(256),
       SO_HD nvarchar(50), NGAY_HD datetime, SO_HDTM nvarchar(30), VAN_DON varchar(35), SO_HANG smallint,
       MA_NT varchar(3), TYGIA_VND float, MA_CK varchar(4), NUOC_XK varchar(3), PLUONG smallint,
       TTTK varchar(1), THANH_LY varchar(1), XUAT_NPL_SP varchar(1), SO_CONTAINER numeric(18,0),
       SO_CONTAINER20 numeric(18,0), SO_CONTAINER40 numeric(18,0), NGAY_DUA_VAO_TK datetime, HD_ID bigint,
       SO_TK_VNACCS varchar(12), REFERENCE varchar(36), SO_TN int, NAM_TN smallint, NGAY_TN datetime,
       MESSAGE_ID varchar(40), HINH_THUC_KHAI smallint, NGUON varchar(5)"""),
    _c("DHANG_MD", ["TK_ID", "STT_HANG"], "TK_ID", f"""TK_ID bigint, STT_HANG int, {_OFFICE}, SO_TK int,
       MA_LH varchar(5), NAM_DK smallint, MA_PHU varchar(31), MA_VAT_TU varchar(30), LOAI_HANG smallint,
       VT_ID bigint, HD_ID bigint, TEN_HANG nvarchar(256), NUOC_XX varchar(3), MA_DVT varchar(4),
       LUONG numeric(24,8), DGIA_KB numeric(24,6), DGIA_TT numeric(24,6), TRIGIA_KB numeric(24,4),
       TRIGIA_TT numeric(24,4), TS_XNK numeric(18,8), THUE_XNK numeric(24,4), THUE_VAT numeric(24,4),
       LAN_DC int, NGUON varchar(12)"""),
    _c("DSX_NPL_NHAP", ["HS_ID"], "HS_ID", f"""HS_ID bigint, {_OFFICE}, TK_ID bigint, SO_TK int, MA_LH varchar(5),
       NAM_DK smallint, VT_ID bigint, MA_NPL varchar(30), MA_DV varchar(17), LUONG numeric(24,8), TON numeric(24,8)"""),
    _c("DSX_NPL_NHAP_TL", ["HS_TL_ID", "DGIA_TT"], "HS_TL_ID", f"""HS_TL_ID bigint, NAM_TL smallint, {_OFFICE},
       TK_ID bigint, SO_TK int, SO_TK_VNACCS varchar(12), MA_LH varchar(5), NAM_DK smallint, VT_ID bigint,
       MA_NPL varchar(30), DGIA_TT numeric(24,6), TS_XNK numeric(18,8), MA_DV varchar(17),
       TON_DAU numeric(24,8), TON numeric(24,8), LUONG numeric(24,8), LUONG_TON_DC numeric(24,8),
       LUONG_TON_SAU_DC numeric(24,8)"""),
)
CENTRAL: dict[str, CentralTable] = {t.name: t for t in CENTRAL_TABLES}

# (child table, column) -> (parent table, column): references that must resolve inside the snapshot
REFERENCES: list[tuple[str, str, str, str]] = [
    ("DHANG_MD", "TK_ID", "DTO_KHAI_MD", "TK_ID"), ("DSX_NPL_NHAP", "TK_ID", "DTO_KHAI_MD", "TK_ID"),
    ("DSX_NPL_NHAP_TL", "HS_TL_ID", "DSX_NPL_NHAP", "HS_ID"), ("DGC_LOAI_SP", "HD_ID", "DGC_HD", "HD_ID"),
    ("DGC_SP_NPL_TB_HM", "HD_ID", "DGC_HD", "HD_ID"), ("DGC_DINH_MUC", "VT_ID_SP", "DGC_SP_NPL_TB_HM", "VT_ID"),
    ("DGC_DINH_MUC", "VT_ID_NPL", "DGC_SP_NPL_TB_HM", "VT_ID"), ("DSX_DINH_MUC", "VT_ID_SP", "DSX_SP_NPL", "VT_ID"),
    ("DSX_DINH_MUC", "VT_ID_NPL", "DSX_SP_NPL", "VT_ID"), ("DCX_DINH_MUC", "VT_ID_SP", "DCX_DM_HH_DUA_VAO_RA", "VT_ID"),
    ("DGC_NPL_TCU", "TK_ID", "DTO_KHAI_MD", "TK_ID"), ("DGC_NPL_TCU_D", "TCU_ID", "DGC_NPL_TCU", "TCU_ID"),
    ("DCX_CT_TOKHAI_HANG", "CT_ID", "DCX_CT_TOKHAI", "CT_ID"), ("DCX_HUY_NPL_SP_D", "CT_ID", "DCX_HUY_NPL_SP", "CT_ID"),
]

# Load order: parents first (delete in reverse).
LOAD_ORDER = [t.name for t in CENTRAL_TABLES]


def central_metadata() -> sa.MetaData:
    md = sa.MetaData()
    for t in CENTRAL_TABLES:
        cols = [sa.Column(c, sa_type(ty), primary_key=(c in t.key), autoincrement=False,
                          nullable=c not in t.key) for c, ty in t.columns]
        sa.Table(t.name, md, *cols)
    sa.Table("ROLE", md, sa.Column("ROLE", sa.String(30), primary_key=True),
             sa.Column("DESCRIPTION", sa.Unicode(200)))
    sa.Table("CENTRAL_USER", md, sa.Column("LOGIN", sa.String(50), primary_key=True),
             sa.Column("FULL_NAME", sa.Unicode(200), nullable=False), sa.Column("MA_HQ", sa.String(6)),
             sa.Column("BRANCH", sa.String(20), nullable=False), sa.Column("BRANCH_BASE_ID", sa.BigInteger))
    sa.Table("CENTRAL_USER_ROLE", md,
             sa.Column("LOGIN", sa.String(50), sa.ForeignKey("CENTRAL_USER.LOGIN"), primary_key=True),
             sa.Column("ROLE", sa.String(30), sa.ForeignKey("ROLE.ROLE"), primary_key=True),
             sa.Column("MA_HQ", sa.String(6), primary_key=True))
    # the migration's own ledger, written in the SAME transaction as the rows it describes: no kill can leave a
    # branch's rows in central without the record of who put them there, from which signed snapshot
    sa.Table(LEDGER, md,
             sa.Column("ENTRY_ID", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("BRANCH", sa.String(20), nullable=False), sa.Column("BRANCH_BASE_ID", sa.BigInteger),
             sa.Column("ACTION", sa.String(10), nullable=False),  # load | unload
             sa.Column("RUN_ID", sa.String(64)), sa.Column("SNAPSHOT_SHA256", sa.String(64)),
             sa.Column("MINUTES_SHA256", sa.String(64)), sa.Column("ROWS", sa.BigInteger),
             sa.Column("BY_WHOM", sa.String(100)), sa.Column("REASON", sa.Text),
             sa.Column("AT", sa.String(40), nullable=False))
    return md


LEDGER = "ECM_LOAD_LEDGER"


def arrow_schema_of(name: str) -> pa.Schema:
    """Arrow schema of a central table (what step 5 writes for it)."""
    t = CENTRAL[name]
    return pa.schema([pa.field(c, arrow_type(sa_type(ty))) for c, ty in t.columns])


def text_limits(name: str) -> dict[str, int]:
    """Max length of each text column of a central table (values longer are not silently cut)."""
    out = {}
    for c, ty in CENTRAL[name].columns:
        st = sa_type(ty)
        if isinstance(st, sa.String) and st.length:
            out[c] = int(st.length)
    return out
