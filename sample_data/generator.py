"""Deterministic generator of one branch's legacy e-Customs V4 databases (SLXNK, SXXK) as SQLite.

Same (seed, scale, defects, shape, optional) → same bytes. ``scale=1`` is the demo size (about ten
thousand rows, built in about a second); the benchmark uses ``scale`` ≥ 400 (≥ 4 M rows). Rows are
generated and inserted declaration by declaration, so memory stays flat at any scale.

Defect injection (``defects={"decl_without_goods": 0.02, ...}``) writes a ground-truth manifest
(``manifest.json``) listing every injected defect with its table and key, so tests and the
validation can prove each one is found.

Two shapes of the same branch (same seed → the same logical rows):

* ``shape="ecm"`` — the tables exactly as ``extract.legacy_schema`` declares them (typed columns).
* ``shape="sqlserver-export"`` — what a SQL Server → SQLite export of a real branch looks like:
  identifiers in the letter case the branch happened to use (one spelling per name, from a stable
  hash of the name), numeric/money as decimal text with the declared scale, datetimes as
  'YYYY-MM-DD HH:MM:SS.fff' text, char(n) blank-padded, every other row's nvarchar text in NFD,
  extra columns not in the reference, no table at all for an optional part the branch never used,
  and (defect ``bad_value``) values that do not cast to the declared type.

``optional`` names the optional parts the branch used: ``"cx"`` (the CX tables and the ``_CX%``
declarations) and ``"tcu"`` (GC self-supplied materials, ``ecsNPLTCU``/``ecsNPLTCU_CT``). A part left
out is still drawn from the random stream but not written, so every other row is the same with or
without it.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.schema import CreateTable

from extract.legacy_schema import TABLES_BY_DB, LegacyTable, sa_metadata
from transform.codes import mst_check_digit, unicode_to_tcvn3

DEFECT_KINDS = (
    "decl_without_goods", "sohang_mismatch", "orphan_catalog", "duplicate_key", "tcvn3_text",
    "null_key", "impossible_date", "ton_gt_luong", "negative_qty", "long_text",
    "bad_value",  # only with shape="sqlserver-export": a text that does not cast to the column's type
)
SHAPES = ("ecm", "sqlserver-export")
# optional parts of a branch → the tables only they fill (a left-out "cx" also drops the _CX% declarations)
OPTIONAL_PARTS: dict[str, tuple[str, ...]] = {
    "cx": ("ecsCX_DM_HH_DUA_VAO_D", "ecsCX_DM_HH_DUA_RA_D", "ecsCX_DinhMuc", "ecsCX_CT_TOKHAI",
           "ecsCX_CT_TOKHAI_HANG", "ecsCX_HUY_NPLSP_D"),
    "tcu": ("ecsNPLTCU", "ecsNPLTCU_CT"),
}

GENERATOR_VERSION = 7  # bump when the generated content changes, so cached sample branches are rebuilt
BRANCH_OFFICES = ("C47D  ", "C47D01")  # Biên Hòa area, Cục 47 (Đồng Nai): 47CD→47D1, 47CD01→47D2
OTHER_OFFICE = "N47B  "  # another branch of the same Cục, present in the department-level SLXNK

_SURNAMES = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ"]
_MIDDLE = ["Văn", "Thị", "Minh", "Thanh", "Quốc", "Hữu", "Ngọc", "Đức"]
_GIVEN = ["An", "Bình", "Cường", "Dũng", "Hà", "Hải", "Hương", "Lan", "Long", "Mai", "Nam", "Phương",
          "Quân", "Sơn", "Thảo", "Trang", "Tuấn", "Việt", "Yến"]
_TRADES = [("May mặc", "áo sơ mi", "vải"), ("Giày da", "giày thể thao", "da thuộc"),
           ("Điện tử", "bo mạch điều khiển", "linh kiện bán dẫn"), ("Gỗ nội thất", "bàn ghế gỗ", "gỗ xẻ"),
           ("Nhựa", "hộp nhựa", "hạt nhựa PP"), ("Thực phẩm", "cà phê rang xay", "cà phê nhân"),
           ("Cơ khí", "khung thép", "thép tấm"), ("Bao bì", "thùng carton", "giấy kraft")]
_ENT_FORMS = ["Công ty TNHH", "Công ty Cổ phần", "Công ty TNHH MTV", "Doanh nghiệp chế xuất"]
_PLACES = ["Biên Hòa", "Đồng Nai", "Long Thành", "Nhơn Trạch", "Amata", "Hố Nai", "Tam Phước"]
_PARTNERS = ["Hanwa Co., Ltd (Nhật Bản)", "Samsung C&T (Hàn Quốc)", "Li & Fung (Hồng Kông)",
             "Decathlon SA (Pháp)", "Nike Inc. (Hoa Kỳ)", "Uniqlo Co. (Nhật Bản)"]
_UNITS_NPL = ["2", "3", "14", "11", "16"]  # KGM, MTR, MTK, PCE, TNE (legacy numeric codes)
_UNITS_SP = ["11", "12", "33", "8"]
_CHANNELS = ["XANH", "VÀNG", "ĐỎ", unicode_to_tcvn3("VÀNG"), unicode_to_tcvn3("ĐỎ")]
_ROLES = ["TIEP_NHAN", "KIEM_HOA", "THANH_KHOAN", "LANH_DAO", "QUAN_TRI"]


@dataclass
class GenParams:
    seed: int = 20140401
    scale: float = 1.0
    defects: dict[str, float] = field(default_factory=dict)
    # "ecm": the tables as extract.legacy_schema declares them (today's bytes);
    # "sqlserver-export": the same branch as a SQL Server export to SQLite looks (see the module doc)
    shape: str = "ecm"
    # the optional parts the branch used (OPTIONAL_PARTS); () = a branch without CX and without GC self-supply
    optional: tuple[str, ...] = ("cx", "tcu")


@dataclass
class _Ent:
    mst: str
    name: str
    office: str
    trade: tuple[str, str, str]
    npl: list[tuple[str, str, str, str]] = field(default_factory=list)  # code, name, hs, unit
    sp: list[tuple[str, str, str, str]] = field(default_factory=list)


def _d(x: date | datetime | None) -> str | None:
    if x is None:
        return None
    if isinstance(x, datetime):
        return x.strftime("%Y-%m-%d %H:%M:%S.000000")
    return x.strftime("%Y-%m-%d 00:00:00.000000")


class _Tcvn3(str):
    """A TCVN3 byte string (read as Latin-1): stored as it is in every shape, never normalised."""

    __slots__ = ()


class _Raw(str):
    """A value written exactly as given in the foreign shape (a ``bad_value`` defect)."""

    __slots__ = ()


def _tcvn3(text: str) -> _Tcvn3:
    return _Tcvn3(unicode_to_tcvn3(text))


# ---- the SQL Server export shape ------------------------------------------------------------------
_SPELLING_SALT = "ecm-sqlserver-export/1"


def spelled(name: str) -> str:
    """The one spelling of a table or column name in the SQL Server export shape.

    Chosen by a stable hash of the name (never the data's random stream): ALL UPPER, all lower or
    Capitalised_Parts (``SO_TN`` → ``So_Tn``). Under SQL Server's case-insensitive collation every
    spelling names the same object; the tool must match names case-insensitively.
    """
    h = hashlib.sha256(f"{_SPELLING_SALT}:{name}".encode()).digest()[0] % 3
    if h == 0:
        return name.upper()
    if h == 1:
        return name.lower()
    return "_".join(p.capitalize() for p in name.split("_"))


def _rowguid(seed: int, table: str, n: int) -> str:
    h = hashlib.md5(f"{seed}:{table}:{n}".encode()).hexdigest().upper()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _internal_note(n: int) -> str | None:
    return "Đã đối chiếu chứng từ gốc" if n % 5 == 0 else None


# columns a real branch DB has and the reference does not: (after which reference column, or None =
# at the end; name; declared type; value of the n-th row written to the table)
_EXTRA_COLUMNS: dict[str, tuple[tuple[str | None, str, str, Callable[[int, int], object]], ...]] = {
    "SLXNK.DToKhaiMD": ((None, "rowguid", "TEXT", lambda seed, n: _rowguid(seed, "SLXNK.DToKhaiMD", n)),),
    "SXXK.DTOKHAIMD": (("DV_DT", "GHI_CHU_NOI_BO", "NVARCHAR(500)", lambda seed, n: _internal_note(n)),),
}

# bad_value defect: the columns that may carry one (never a key column, never a column another defect
# on the same row is about) and the texts SQL Server data exported as text is seen to hold
_BAD_COLUMNS: dict[str, tuple[str, ...]] = {
    "SXXK.DTOKHAIMD": ("NGAY_HOANTHANH", "SO_CONTAINER40", "NGAYNHAP"),
    "SXXK.DHANGMDTH": ("LUONG", "TS_XNK"),
    "SXXK.DNPLNHAP": ("LUONG", "TON"),
    "SLXNK.DToKhaiMD": ("Ngay_HoanThanh", "So_Container", "NgayNhap"),
    "SLXNK.DHangMD": ("Luong", "DGia_KB", "TriGia_KB"),
    "SLXNK.DNPLHD": ("SL_DK", "DonGia"),
}
_BAD_NUMBERS = ("N/A", "12,5", "1.2.3")
_BAD_DATES = ("2013-02-31 00:00:00.000", "31/12/2013")


def _export_decl(legacy: str) -> str:
    """Declared type of a column in the SQL Server export shape."""
    base = legacy.split("(", 1)[0].lower()
    if base in ("int", "bigint"):
        return "INTEGER" if base == "int" else "BIGINT"
    if base in ("smallint", "tinyint", "bit"):
        return "SMALLINT"
    if base == "numeric":
        return "TEXT"
    if base == "money":
        return "VARCHAR(40)"
    if base == "float":
        return "FLOAT"
    if base == "datetime":
        return "DATETIME"
    return legacy.upper()  # CHAR(n), VARCHAR(n), NVARCHAR(n)


def _decimal_text(scale: int) -> Callable[[object], str]:
    """numeric(p, scale) / money as SQL Server prints it: exactly ``scale`` decimals, '-' if negative."""
    q = Decimal(1).scaleb(-scale)

    def f(v: object) -> str:
        exact = Decimal(v) if isinstance(v, int) else Decimal(repr(float(v)))  # type: ignore[arg-type]
        d = exact.quantize(q, rounding=ROUND_HALF_UP)
        if not d:
            d = abs(d)  # never '-0.00'
        return f"{d:f}"
    return f


def _datetime_text(v: object) -> str:
    """'YYYY-MM-DD HH:MM:SS.ffffff' → SQL Server's 'YYYY-MM-DD HH:MM:SS.fff' (no sub-millisecond part)."""
    s = str(v)
    if len(s) != 26 or not s.endswith("000"):
        raise ValueError(f"datetime {s!r} has a sub-millisecond part or an unexpected form")
    return s[:23]


def _padder(n: int) -> Callable[[object], object]:
    return lambda v: v.ljust(n) if isinstance(v, str) else v


def _nfd(v: object) -> object:
    if type(v) is _Tcvn3 or not isinstance(v, str):
        return v
    return unicodedata.normalize("NFD", v)


def _export_converters(t: LegacyTable, nfd: bool) -> list[tuple[str, Callable[[object], object] | None]]:
    out: list[tuple[str, Callable[[object], object] | None]] = []
    for c, legacy in t.columns:
        base = legacy.split("(", 1)[0].lower()
        f: Callable[[object], object] | None = None
        if base == "numeric":
            f = _decimal_text(int(legacy.rstrip(")").split(",")[1]) if "," in legacy else 0)
        elif base == "money":
            f = _decimal_text(4)
        elif base == "datetime":
            f = _datetime_text
        elif base == "char":
            f = _padder(int(legacy[5:-1]))
        elif base == "nvarchar" and nfd:
            f = _nfd
        out.append((c, f))
    return out


def _key_value(v: object, legacy: str) -> object:
    """A key value as the manifest records it: trimmed, a datetime key as its date."""
    if isinstance(v, str):
        return v[:10] if legacy == "datetime" else v.rstrip()
    return v


class _Writer:
    """Buffered executemany writer for one SQLite file, in the ecm or the SQL Server export shape.

    ``skip``: tables of left-out optional parts (no rows; in the export shape not even created);
    ``skip_cx_decl``: drop the rows of _CX% declarations (a branch that never used CX).
    """

    def __init__(self, path: Path, db: str, shape: str = "ecm", skip: frozenset[str] = frozenset(),
                 skip_cx_decl: bool = False, seed: int = 0) -> None:
        if path.exists():
            path.unlink()
        self.db = db
        self.export = shape == "sqlserver-export"
        self.seed = seed
        self.skip = skip
        self.skip_cx_decl = skip_cx_decl
        self.filtering = bool(skip) or skip_cx_decl
        self.con = sqlite3.connect(path)
        self.con.execute("PRAGMA journal_mode=OFF")
        self.con.execute("PRAGMA synchronous=OFF")
        self.cols: dict[str, list[str]] = {}
        self.sql: dict[str, str] = {}
        # export shape: per table the converters of even and odd rows, and the extra columns
        self.conv: dict[str, tuple[list[tuple[str, Callable[[object], object] | None]], ...]] = {}
        self.extras: dict[str, list[tuple[int, Callable[[int, int], object]]]] = {}
        if not self.export:
            md = sa_metadata(db)
            dialect = sa.create_engine("sqlite://").dialect
        for t in TABLES_BY_DB[db]:
            self.cols[t.name] = [c for c, _ in t.columns]
            if not self.export:
                self.con.execute(str(CreateTable(md.tables[t.name]).compile(dialect=dialect)))
                names = self.cols[t.name]
                table_sql = t.name
            else:
                if t.name in skip:
                    continue  # a branch that never used the part has no such table
                decl = [(spelled(c), _export_decl(ty)) for c, ty in t.columns]
                extras = []
                for after, name, ty, fn in _EXTRA_COLUMNS.get(t.qualified, ()):
                    pos = len(decl) if after is None else 1 + [c for c, _ in t.columns].index(after)
                    decl.insert(pos, (name, ty))
                    extras.append((pos, fn))
                table_sql = spelled(t.name)
                self.con.execute(f'CREATE TABLE "{table_sql}" (\n\t'
                                 + ",\n\t".join(f'"{c}" {ty}' for c, ty in decl) + "\n)")
                names = [c for c, _ in decl]
                self.conv[t.name] = (_export_converters(t, nfd=True), _export_converters(t, nfd=False))
                self.extras[t.name] = extras
            quoted = ",".join(f'"{c}"' for c in names)
            self.sql[t.name] = f'INSERT INTO "{table_sql}" ({quoted}) VALUES ({",".join("?" * len(names))})'
        self.buf: dict[str, list[Sequence[object]]] = {n: [] for n in self.cols}
        # rows written per table; ``seen`` counts dropped rows too, so that what depends on a row's
        # position (NFD every other row, rowguid) does not move when an optional part is left out
        self.counts: dict[str, int] = {n: 0 for n in self.sql}
        self.seen: dict[str, int] = {n: 0 for n in self.cols}

    def add(self, table: str, row: dict[str, object]) -> None:
        cols = self.cols[table]
        unknown = set(row) - set(cols)
        if unknown:
            raise KeyError(f"{table}: unknown columns {sorted(unknown)}")
        n = self.seen[table]
        self.seen[table] = n + 1
        if self.filtering:
            if table in self.skip:
                return
            if self.skip_cx_decl:
                lh = row.get("Ma_LH") or row.get("MA_LH")
                if isinstance(lh, str) and lh[1:3] == "CX":
                    return
        if self.export:
            vals = []
            for c, f in self.conv[table][n % 2]:
                v = row.get(c)
                if f is not None and v is not None and type(v) is not _Raw:
                    v = f(v)
                vals.append(v)
            for pos, fn in self.extras[table]:
                vals.insert(pos, fn(self.seed, n))
            self.buf[table].append(tuple(vals))
        else:
            self.buf[table].append(tuple(row.get(c) for c in cols))
        self.counts[table] += 1
        if len(self.buf[table]) >= 5000:
            self.flush(table)

    def flush(self, table: str) -> None:
        rows = self.buf[table]
        if rows:
            self.con.executemany(self.sql[table], rows)
            rows.clear()

    def close(self) -> None:
        for t in self.buf:
            self.flush(t)
        self.con.commit()
        self.con.execute("VACUUM")
        self.con.close()


class _Gen:
    def __init__(self, p: GenParams, out: Path) -> None:
        self.p = p
        self.r = random.Random(p.seed)
        self.out = out
        self.manifest: list[dict[str, object]] = []
        self.sotk: dict[tuple[str, str, int], int] = {}
        self.drop_cx = "cx" not in p.optional
        # bad_value draws from its own stream, so that it never moves a draw of the data itself
        self.bad_rate = p.defects.get("bad_value", 0.0) if p.shape == "sqlserver-export" else 0.0
        self.rb = random.Random(f"bad_value:{p.seed}")
        self.tables = {t.qualified: t for ts in TABLES_BY_DB.values() for t in ts}

    # -- helpers -----------------------------------------------------------------------------
    def hit(self, kind: str) -> bool:
        rate = self.p.defects.get(kind, 0.0)
        return rate > 0 and self.r.random() < rate

    def note(self, kind: str, table: str, key: dict[str, object], detail: str = "", **extra: object) -> None:
        if self.drop_cx and str(key.get("Ma_LH") or key.get("MA_LH") or "")[1:3] == "CX":
            return  # a declaration the branch (without CX) does not have
        self.manifest.append({"defect": kind, "table": table, "key": key, "detail": detail, **extra})

    def bad(self, table: str, row: dict[str, object]) -> dict[str, object]:
        """Defect ``bad_value`` (export shape): a text in a numeric/datetime column that does not cast."""
        if not self.bad_rate or self.rb.random() >= self.bad_rate:
            return row
        t = self.tables[table]
        types = t.column_types()
        col = self.rb.choice(_BAD_COLUMNS[table])
        value = self.rb.choice(_BAD_DATES if types[col] == "datetime" else _BAD_NUMBERS)
        self.note("bad_value", table, {k: _key_value(row.get(k), types[k]) for k in t.key},
                  f"{col}={value!r} ({types[col]})", column=col, value=value)
        return {**row, col: _Raw(value)}

    def n(self, base: int) -> int:
        return max(1, int(round(base * self.p.scale)))

    def mst(self) -> str:
        while True:
            first9 = "36" + "".join(str(self.r.randint(0, 9)) for _ in range(7))
            d = mst_check_digit(first9)
            if d is not None:
                return first9 + str(d)

    def person(self) -> str:
        return f"{self.r.choice(_SURNAMES)} {self.r.choice(_MIDDLE)} {self.r.choice(_GIVEN)}"

    def day(self, y0: int = 2008, y1: int = 2014) -> date:
        start = date(y0, 1, 2)
        end = date(y1, 3, 28) if y1 == 2014 else date(y1, 12, 28)
        return start + timedelta(days=self.r.randint(0, (end - start).days))

    def next_sotk(self, office: str, ma_lh: str, year: int) -> int:
        k = (office, ma_lh, year)
        self.sotk[k] = self.sotk.get(k, 0) + 1
        return self.sotk[k]

    def text(self, s: str) -> str:
        return s

    # -- enterprises and catalogs ----------------------------------------------------------------
    def enterprises(self, count: int, office_pool: Sequence[str]) -> list[_Ent]:
        ents = []
        for i in range(count):
            trade = _TRADES[i % len(_TRADES)]
            name = f"{self.r.choice(_ENT_FORMS)} {trade[0]} {self.r.choice(_PLACES)} {i + 1}"
            e = _Ent(self.mst(), name, office_pool[i % len(office_pool)], trade)
            for j in range(self.r.randint(4, 8)):
                e.npl.append((f"NPL{i + 1:03d}{j + 1:02d}", f"{trade[2].capitalize()} loại {j + 1}",
                              f"{self.r.randint(39, 85):02d}{self.r.randint(10, 99)}{self.r.randint(1000, 9999)}",
                              self.r.choice(_UNITS_NPL)))
            for j in range(self.r.randint(2, 4)):
                e.sp.append((f"SP{i + 1:03d}{j + 1:02d}", f"{trade[1].capitalize()} mẫu {j + 1}",
                             f"{self.r.randint(39, 95):02d}{self.r.randint(10, 99)}{self.r.randint(1000, 9999)}",
                             self.r.choice(_UNITS_SP)))
            ents.append(e)
        return ents

    # -- SXXK -------------------------------------------------------------------------------------
    def sxxk(self, w: _Writer, ents: list[_Ent], wsl: _Writer) -> None:
        for e in ents:
            for code, name, hs, unit in e.npl:
                w.add("SNPL", {"MA_HQ": e.office, "MA_DV": e.mst, "MA_NPL": code, "TEN_NPL": name,
                               "MA_HS": hs, "MA_DVT": unit, "SO_TN": self.r.randint(1, 9999),
                               "NAM_TN": self.r.choice([2009, 2010, 2011, 2012, None])})
            if e.npl and self.hit("duplicate_key"):
                code, name, hs, unit = e.npl[0]
                w.add("SNPL", {"MA_HQ": e.office, "MA_DV": e.mst, "MA_NPL": code, "TEN_NPL": name + " (trùng)",
                               "MA_HS": hs, "MA_DVT": unit, "SO_TN": 1, "NAM_TN": 2010})
                self.note("duplicate_key", "SXXK.SNPL", {"MA_HQ": e.office.strip(), "MA_DV": e.mst, "MA_NPL": code})
            for code, name, hs, unit in e.sp:
                w.add("SSP", {"MA_HQ": e.office, "MA_DV": e.mst, "MA_SP": code, "TEN_SP": name,
                              "MA_HS": hs, "MA_DVT": unit, "SO_TN": self.r.randint(1, 9999),
                              "NAM_TN": self.r.choice([2009, 2010, 2011, 2012])})
                for npl in self.r.sample(e.npl, k=min(len(e.npl), self.r.randint(2, 4))):
                    dm = round(self.r.uniform(0.05, 3.0), 4)
                    hh = round(self.r.choice([0, 0.5, 1, 2, 3, 5]), 2)
                    w.add("DDINHMUC", {"MA_SP": code, "MA_NPL": npl[0], "MA_DV": e.mst, "MA_HQ": e.office,
                                       "DM_SD": dm, "TL_HH": hh, "DM_CHUNG": round(dm * (1 + hh / 100), 8),
                                       "GHI_CHU": "Định mức đăng ký lần đầu", "SO_TN": self.r.randint(1, 999),
                                       "NAM_TN": 2012})
            if self.hit("orphan_catalog"):
                w.add("DDINHMUC", {"MA_SP": "SPKHONGTONTAI", "MA_NPL": e.npl[0][0], "MA_DV": e.mst,
                                   "MA_HQ": e.office, "DM_SD": 1.0, "TL_HH": 0, "DM_CHUNG": 1.0,
                                   "GHI_CHU": "Định mức mồ côi", "SO_TN": 1, "NAM_TN": 2012})
                self.note("orphan_catalog", "SXXK.DDINHMUC",
                          {"MA_SP": "SPKHONGTONTAI", "MA_NPL": e.npl[0][0], "MA_DV": e.mst, "MA_HQ": e.office.strip()},
                          "norm references a product missing from SSP")

        n_decl = self.n(400)
        types = ["NSX01"] * 5 + ["XSX01"] * 3 + ["XSX05"] + ["NKD01"]
        for _ in range(n_decl):
            e = self.r.choice(ents)
            ma_lh = self.r.choice(types)
            ngay = self.day()
            year = ngay.year
            sotk = self.next_sotk(e.office, ma_lh, year)
            key = {"SOTK": sotk, "MA_LH": ma_lh, "MA_HQ": e.office, "NAMDK": year}
            mkey = {"SOTK": sotk, "MA_LH": ma_lh, "MA_HQ": e.office.strip(), "NAMDK": year}
            thanh_ly = "H" if self.r.random() < 0.35 else self.r.choice(["C", "D", " "])
            is_npl = ma_lh.startswith("N") or ma_lh == "XSX05"
            items = e.npl if is_npl else e.sp
            lines = [(c, n, h, u, ("N" if is_npl else "S") + c)
                     for c, n, h, u in self.r.sample(items, k=min(len(items), self.r.randint(1, 5)))]
            if ma_lh.startswith("NSX") and self.r.random() < 0.25:
                # the same material on a second line at another price (domain doc §6)
                c, n, h, u, mp = lines[0]
                lines.append((c, n, h, u, mp + "-2"))
            n_lines = len(lines)
            sohang = n_lines
            no_goods = self.hit("decl_without_goods")
            if no_goods:
                self.note("decl_without_goods", "SXXK.DTOKHAIMD", mkey)
            elif self.hit("sohang_mismatch"):  # observable only when the declaration has lines
                sohang = n_lines + 1
                self.note("sohang_mismatch", "SXXK.DTOKHAIMD", mkey, f"SOHANG={sohang}, lines={n_lines}")
            ngay_dk = ngay
            if self.hit("impossible_date"):
                ngay_dk = date(1900, 1, 1)
                self.note("impossible_date", "SXXK.DTOKHAIMD", mkey, "NGAY_DK=1900-01-01")
            cont = self.r.randint(0, 6)
            partner = self.r.choice(_PARTNERS)
            if self.hit("long_text"):  # SXXK allows 500 characters, central 256 (domain doc §4.4)
                partner = (partner + "; ") * 20
                self.note("long_text", "SXXK.DTOKHAIMD", mkey, f"DV_DT has {len(partner)} characters")
            w.add("DTOKHAIMD", self.bad("SXXK.DTOKHAIMD", {**key, "NGAY_DK": _d(ngay_dk),
                                "NGAY_HOANTHANH": _d(ngay + timedelta(days=self.r.randint(0, 5))),
                                "MA_DV": e.mst, "DV_DT": partner, "SO_HD": f"{self.r.randint(1, 99)}/{year}/HĐ",
                                "NGAY_HD": _d(ngay - timedelta(days=self.r.randint(10, 200))),
                                "SO_HDTM": f"INV-{year}-{self.r.randint(1000, 9999)}",
                                "VAN_DON": f"BL{self.r.randint(100000, 999999)}", "SOHANG": sohang,
                                "MA_NT": "USD", "TYGIA_VND": float(self.r.choice([16000, 18932, 20828, 21036])),
                                "TONGTGKB": 0.0, "MA_CK": self.r.choice(["C47D", "C02C", "C03C"]),
                                "NUOC_XK": self.r.choice(["CN", "KR", "JP", "TW"]),
                                "PLUONG": self.r.choice(_CHANNELS), "TTTK": "T", "THANH_LY": thanh_ly,
                                # the source flag was wrong on NSX e-declarations (hazard 9)
                                "XUAT_NPL_SP": "S" if (ma_lh.startswith("NSX") and self.r.random() < 0.3)
                                else ("N" if is_npl else "S"),
                                "SO_CONTAINER": cont, "SO_CONTAINER40": self.r.randint(0, cont),
                                "NGAYNHAP": _d(ngay), "NGUOINHAP": "admin"}))
            if self.r.random() < 0.8:  # the e-declaration extension lives in SLXNK for SXXK declarations too
                wsl.add("ecsToKhaiMD", {"SoTK": sotk, "Ma_LH": ma_lh, "Ma_HQ": e.office, "NamDK": year,
                                        "SoTN": self.r.randint(1, 99999), "NamTN": year, "NgayTN": _d(ngay),
                                        "MessageId": f"MSG{self.r.randint(10**8, 10**9 - 1)}", "HinhThucKhai": 1,
                                        "KhauNV": "TQ", "CoChuKySo": 1})
            if no_goods:
                continue
            stock: dict[str, list[float]] = {}
            for i, (code, name, hs, unit, ma_phu) in enumerate(lines, start=1):
                luong = round(self.r.uniform(10, 5000), 3)
                if self.hit("negative_qty"):
                    luong = -luong
                    self.note("negative_qty", "SXXK.DHANGMDDK", {**mkey, "MA_PHU": ma_phu}, f"LUONG={luong}")
                dgia = round(self.r.uniform(0.5, 80), 4)
                tname = name
                if self.hit("tcvn3_text"):
                    tname = _tcvn3(name)
                    self.note("tcvn3_text", "SXXK.DHANGMDDK", {**mkey, "MA_PHU": ma_phu}, "TEN_HANG")
                line = {**key, "MA_PHU": ma_phu, "MA_NPL_SP": code, "STTHANG": i, "MA_HANGKB": code,
                        "TEN_HANG": tname, "NUOC_XX": "CN", "MA_DVT": unit, "LUONG": luong, "DGIA_KB": dgia,
                        "DGIA_TT": dgia, "TRIGIA_KB": round(luong * dgia, 2), "TRIGIA_TT": round(luong * dgia, 2),
                        "TS_XNK": self.r.choice([0, 0, 3, 5, 10]), "THUE_XNK": 0.0}
                w.add("DHANGMDDK", line)
                if ma_lh.startswith("NSX"):
                    rounds = self.r.choice([0, 1, 1, 2])
                    for lan in range(1, rounds + 1):
                        adj = dict(line, LAN_DC=lan, LUONG=round(abs(luong) * (1 + 0.01 * lan), 3))
                        # recovery case: MA_NPL_SP was overwritten by MA_PHU on some lines (hazard 9)
                        if self.r.random() < 0.05:
                            adj["MA_NPL_SP"] = ma_phu
                        w.add("DHANGMDDC", adj)
                        for ct in range(1, self.r.choice([1, 1, 2]) + 1):
                            w.add("DHANGMDDC_CT", {**key, "MA_PHU": ma_phu, "LAN_DC": lan, "LAN_DC_CT": ct,
                                                   "THUE_XNK": round(luong * dgia * 0.05 * ct, 2),
                                                   "THUE_VAT": round(luong * dgia * 0.1, 2), "PHU_THU": 0.0,
                                                   "MIENTHUE": 0, "TRIGIA_THUKHAC": 0.0})
                    q = round(abs(luong) * (1 + 0.01 * rounds), 3)  # the defect stays on its DK line
                    stock.setdefault(code, []).append(q)
                elif self.r.random() < 0.9:  # ~10% of non-NSX declarations lack TH lines → gap fill
                    w.add("DHANGMDTH", self.bad("SXXK.DHANGMDTH", dict(line, LUONG=abs(luong))))
            for code, qs in stock.items():
                luong = round(sum(qs), 3)
                ton = round(luong * self.r.choice([0, 0.0, 0.25, 0.5, 0.8, 1.0]), 3)
                ma_npl: str | None = code
                flagged = True
                if self.hit("ton_gt_luong"):
                    ton = round(luong * 1.5, 3)
                    self.note("ton_gt_luong", "SXXK.DNPLNHAP", {**mkey, "MA_NPL": code}, f"TON={ton} LUONG={luong}")
                elif self.hit("null_key"):  # one defect per row, so that the manifest key names the row
                    ma_npl = None
                    self.note("null_key", "SXXK.DNPLNHAP", {**mkey, "MA_NPL": None}, "MA_NPL is NULL")
                else:
                    flagged = False
                row = {"SOTK": sotk, "MA_LH": ma_lh, "NAMDK": year, "MA_HQ": e.office,
                       "MA_NPL": ma_npl, "MA_DV": e.mst, "LUONG": luong, "TON": ton}
                w.add("DNPLNHAP", row if flagged else self.bad("SXXK.DNPLNHAP", row))

    # -- SLXNK (GC, CX, and other regimes) ----------------------------------------------------------
    def slxnk(self, w: _Writer, gc_ents: list[_Ent], cx_ents: list[_Ent]) -> None:
        contracts = []
        for e in gc_ents:
            for k in range(self.r.randint(1, 3)):
                ngay_ky = self.day(2008, 2013)
                so_hd = f"{k + 1:02d}/{ngay_ky.year}/HĐGC-{e.mst[-4:]}"
                tk = 1 if self.r.random() < 0.3 else 0
                office = e.office
                hd = {"So_HD": so_hd, "Ma_HQHD": office.strip(), "DVGC": e.mst, "Ngay_Ky": _d(ngay_ky)}
                w.add("DHDGC", {**hd, "So_GP": f"GP{self.r.randint(100, 999)}", "Ngay_GP": _d(ngay_ky),
                                "DVDT": self.r.choice(_PARTNERS), "DiaChi_DT": "Tokyo",
                                "Ngay_DK": _d(ngay_ky + timedelta(days=3)),
                                "Ngay_HH": _d(ngay_ky + timedelta(days=730)), "Ngay_GH": None,
                                "NuocThueGC": self.r.choice(["JP", "KR", "US", None]), "ThiTruongXK": "JP",
                                "TriGiaGC": round(self.r.uniform(1e4, 1e6), 3), "GiaGC": round(self.r.uniform(1e3, 1e5), 3),
                                "NgTe": "USD", "PTTT": "TTR", "ThanhKhoan": tk,
                                "Ngay_TK": _d(ngay_ky + timedelta(days=700)) if tk else None,
                                "So_TK": f"TL{self.r.randint(1, 999)}" if tk else None, "TrangThai": 1,
                                "So_TN": self.r.randint(1, 9999), "Nam_TN": ngay_ky.year, "GIA_CONG_NGUOC": 0})
                w.add("DLOAISPGC", {**hd, "Ma_SPGC": "G01", "Ten_SPGC": e.trade[1].capitalize(),
                                    "So_Luong": 10000, "Gia_GC": 1.5, "TriGia_SP": 15000})
                for code, name, hs, unit in e.npl:
                    w.add("DNPLHD", self.bad("SLXNK.DNPLHD", {
                        **hd, "P_Code": "N" + code, "HS_Code": hs, "Ten_NPL": name, "Ma_DVT": unit,
                        "SL_DK": round(self.r.uniform(1000, 90000), 3), "SL_DC": 0,
                        "DonGia": round(self.r.uniform(0.5, 20), 4), "Mua_VN": 0}))
                for code, name, hs, unit in e.sp:
                    w.add("DSPGC", {**hd, "P_Code": "S" + code, "HS_Code": hs, "Ten_SP": name, "Ma_DVT": unit,
                                    "SL_DK": round(self.r.uniform(100, 9000), 3), "SL_DC": 0,
                                    "DonGiaGC": round(self.r.uniform(0.5, 5), 4), "Nhom_SP": "G01"})
                    for npl in e.npl[:3]:
                        dm = round(self.r.uniform(0.1, 2.0), 4)
                        hh = self.r.choice([0, 1, 2, 3])
                        w.add("DDMuc", {**hd, "SPP_Code": "S" + code, "NPLP_Code": "N" + npl[0], "Ten_SP": name,
                                        "Ten_NPL": npl[1], "Ma_DVT": npl[3], "DMGC": dm, "TLHH": hh,
                                        "DM_CHUNG": round(dm * (1 + hh / 100), 6)})
                ten_tb = f"Máy {e.trade[0].lower()} công nghiệp"
                if self.hit("tcvn3_text"):
                    ten_tb = _tcvn3(ten_tb)
                    self.note("tcvn3_text", "SLXNK.DThietBi", {**hd, "Ngay_Ky": str(ngay_ky), "P_CODE": "TTB01"},
                              "Ten_TB")
                w.add("DThietBi", {**hd, "P_CODE": "TTB01", "HS_CODE": "84521000", "Ten_TB": ten_tb,
                                   "Xuat_Xu": "JPN - Nhật Bản", "TinhTrang": self.r.choice(["0", "1", "Đã qua sử dụng"]),
                                   "Ma_DVT": "11", "So_Luong": self.r.randint(1, 20), "DonGia": 12000.0})
                w.add("ecsDHangMau", {**hd, "P_Code": "MHM01", "HS_Code": e.sp[0][2],
                                      "Ten_HM": f"Hàng mẫu {e.sp[0][1].lower()}", "Ma_DVT": "11", "So_Luong": 5})
                contracts.append((e, hd, ngay_ky, tk))
            if self.hit("orphan_catalog"):
                hd = {"So_HD": "99/2013/HĐGC-MOCOI", "Ma_HQHD": e.office.strip(), "DVGC": e.mst,
                      "Ngay_Ky": _d(date(2013, 5, 5))}
                w.add("DNPLHD", {**hd, "P_Code": "NMOCOI", "HS_Code": "52081100", "Ten_NPL": "Vải mồ côi",
                                 "Ma_DVT": "3", "SL_DK": 100, "SL_DC": 0, "DonGia": 1, "Mua_VN": 0})
                self.note("orphan_catalog", "SLXNK.DNPLHD", {**hd, "Ngay_Ky": "2013-05-05", "P_Code": "NMOCOI"},
                          "material of a contract missing from DHDGC")

        for e in cx_ents:
            for code, name, hs, unit in e.npl:
                w.add("ecsCX_DM_HH_DUA_VAO_D", {"MA_HQTN": e.office.strip(), "MA_DV_XN": e.mst, "MA_HANG": code,
                                                "TEN_HANG": name, "MA_HS": hs, "MA_DVT": unit, "LOAI_HANG": 1,
                                                "SO_DK": self.r.randint(1, 999), "NAM_DK": 2012})
            for code, name, hs, unit in e.sp:
                w.add("ecsCX_DM_HH_DUA_RA_D", {"MA_HQTN": e.office.strip(), "MA_DV_XN": e.mst, "MA_HANG": code,
                                               "TEN_HANG": name, "MA_HS": hs, "MA_DVT": unit, "LOAI_HANG": 2,
                                               "SO_DK": self.r.randint(1, 999), "NAM_DK": 2012})
                for npl in e.npl[:3]:
                    dm = round(self.r.uniform(0.1, 2.0), 4)
                    hh = float(self.r.choice([0, 1, 2]))
                    w.add("ecsCX_DinhMuc", {"MA_SP": code, "MA_NPL": npl[0], "MA_HQ": e.office.strip(),
                                            "MA_DV": e.mst, "DINH_MUC": dm, "TY_LE_HH": hh,
                                            "DINH_MUC_CO_HH": dm * (1 + hh / 100)})

        def decl(e: _Ent, ma_lh: str, ngay: date, hd: dict[str, object] | None, items: list,
                 prefix: str) -> tuple[int, str, date]:
            year = ngay.year
            sotk = self.next_sotk(e.office, ma_lh, year)
            key = {"SoTK": sotk, "Ma_LH": ma_lh, "Ma_HQ": e.office, "NamDK": year}
            mkey = {"SoTK": sotk, "Ma_LH": ma_lh, "Ma_HQ": e.office.strip(), "NamDK": year}
            lines = self.r.sample(items, k=min(len(items), self.r.randint(1, 4)))
            no_goods = self.hit("decl_without_goods")
            sohang = len(lines)
            if no_goods:
                self.note("decl_without_goods", "SLXNK.DToKhaiMD", mkey)
            elif self.hit("sohang_mismatch"):
                sohang += 1
                self.note("sohang_mismatch", "SLXNK.DToKhaiMD", mkey, f"SoHang={sohang}, lines={len(lines)}")
            cont = self.r.randint(0, 4)
            header = {**key, "Ngay_DK": _d(ngay), "Ngay_HoanThanh": _d(ngay + timedelta(days=1)),
                                "Ma_DV": e.mst, "DV_DT": self.r.choice(_PARTNERS),
                                "So_HD": hd["So_HD"] if hd else None,
                                "Ngay_HD": hd["Ngay_Ky"] if hd else None, "Ngay_HHHD": None,
                                "So_HDTM": f"INV{self.r.randint(1000, 9999)}", "Van_Don": f"BL{self.r.randint(10000, 99999)}",
                                "SoHang": sohang, "Ma_NT": "USD", "TyGia_VND": 20828.0, "TongTGKB": 0.0,
                                "Ma_CK": "C47D", "Nuoc_XK": "JP", "PLuong": self.r.choice(_CHANNELS), "TTTK": "T",
                                "Thanh_Ly": self.r.choice(["H", "C", " "]),
                                "Xuat_NPL_SP": "N" if ma_lh.startswith("N") else "S",
                                "So_Container": cont, "So_Container40": self.r.randint(0, cont),
                                "NgayNhap": _d(ngay), "NguoiNhap": "admin"}
            header = self.bad("SLXNK.DToKhaiMD", header)
            w.add("DToKhaiMD", header)
            if self.hit("duplicate_key"):  # the same declaration entered twice (no enforced key)
                w.add("DToKhaiMD", dict(header, NguoiNhap="admin2"))
                self.note("duplicate_key", "SLXNK.DToKhaiMD", mkey, "header entered twice")
            w.add("ecsToKhaiMD", {**key, "SoTN": self.r.randint(1, 99999), "NamTN": year, "NgayTN": _d(ngay),
                                  "MessageId": f"MSG{self.r.randint(10**8, 10**9 - 1)}", "HinhThucKhai": 1,
                                  "KhauNV": "TQ", "CoChuKySo": 1})
            if ma_lh.startswith("NGC") and self.r.random() < 0.3:
                code, name, _hs, unit = e.npl[-1]
                q = round(self.r.uniform(10, 500), 3)
                w.add("ecsNPLTCU", {**key, "NPLP_Code": "N" + code, "Ten_NPL": f"{name} (tự cung ứng)",
                                    "Ma_DVT": unit, "Luong": q, "DonGia": 2.5, "TriGia": round(q * 2.5, 3)})
                for k in range(self.r.randint(1, 2)):
                    w.add("ecsNPLTCU_CT", {**key, "NPLP_Code": "N" + code, "So_CT": f"HĐ-VAT {sotk}/{year}-{k + 1}",
                                           "Ngay_CT": _d(ngay - timedelta(days=k + 1)), "Luong": round(q / 2, 3)})
            if no_goods:
                return sotk, ma_lh, ngay
            for i, (code, name, hs, unit) in enumerate(lines, start=1):
                luong = round(self.r.uniform(1, 3000), 3)
                dg = round(self.r.uniform(0.2, 50), 4)
                w.add("DHangMD", self.bad("SLXNK.DHangMD", {
                    **key, "STTHang": i, "Ma_Phu": prefix + code, "Ma_HangKB": code,
                    "Ten_Hang": name, "Nuoc_XX": "JP", "Ma_DVT": unit, "Luong": luong,
                    "DGia_KB": dg, "DGia_TT": dg, "TriGia_KB": round(luong * dg, 4),
                    "TriGia_TT": round(luong * dg, 4), "TS_XNK": 0, "Thue_XNK": 0}))
            return sotk, ma_lh, ngay

        for _ in range(self.n(260)):
            e, hd, ngay_ky, _tk = self.r.choice(contracts)
            ma_lh = self.r.choice(["NGC01", "NGC01", "XGC01"])
            ngay = ngay_ky + timedelta(days=self.r.randint(5, 600))
            if ngay > date(2014, 3, 28):
                ngay = date(2014, 3, 28)
            decl(e, ma_lh, ngay, hd, e.npl if ma_lh.startswith("N") else e.sp, "N" if ma_lh[0] == "N" else "S")
        cx_decls: dict[str, list[tuple[int, str, date]]] = {}
        for _ in range(self.n(80)):
            e = self.r.choice(cx_ents)
            ma_lh = self.r.choice(["NCX01", "XCX01"])
            k = decl(e, ma_lh, self.day(), None, e.npl if ma_lh[0] == "N" else e.sp, "N" if ma_lh[0] == "N" else "S")
            cx_decls.setdefault(e.mst, []).append(k)
        self.cx_records(w, cx_ents, cx_decls)
        for _ in range(self.n(40)):  # other regimes: business / investment — not converted (rule R-SL-REGIME)
            e = self.r.choice(gc_ents + cx_ents)
            ma_lh = self.r.choice(["NKD01", "NDT01", "XKD01"])
            decl(e, ma_lh, self.day(), None, e.npl if ma_lh[0] == "N" else e.sp, "N" if ma_lh[0] == "N" else "S")

    def cx_records(self, w: _Writer, cx_ents: list[_Ent], cx_decls: dict[str, list[tuple[int, str, date]]]) -> None:
        """CX notifications (ecsCX_CT_TOKHAI + lines) and destruction records (ecsCX_HUY_NPLSP_D)."""
        so_tn = 0
        for e in cx_ents:
            office = e.office.strip()
            for _ in range(self.r.randint(1, 3)):
                so_tn += 1
                nam = self.r.choice([2012, 2013])
                w.add("ecsCX_CT_TOKHAI", {"SO_TN": so_tn, "NAM_TN": nam, "MA_HQTN": office, "MA_DV": e.mst,
                                          "NGAY_TN": _d(date(nam, self.r.randint(1, 12), self.r.randint(1, 28))),
                                          "LOAI_CT": self.r.choice(["TB01", "TB02"]),
                                          "GHI_CHU": "Thông báo đưa hàng vào khu chế xuất"})
                for i, (code, _n, _h, unit) in enumerate(self.r.sample(e.npl, k=min(3, len(e.npl))), start=1):
                    w.add("ecsCX_CT_TOKHAI_HANG", {"SO_TN": so_tn, "NAM_TN": nam, "MA_HQTN": office, "STT_HANG": i,
                                                   "MA_HANG": code, "SO_LUONG": round(self.r.uniform(1, 900), 3),
                                                   "MA_DVT_DK": unit, "MA_DVT_KB": unit, "TY_LE_QUI_DOI": 1,
                                                   "LOAI_HANG": 1})
            for sotk, ma_lh, ngay in cx_decls.get(e.mst, [])[:2]:
                so_tn += 1
                for code, _n, _h, unit in e.npl[:2]:
                    w.add("ecsCX_HUY_NPLSP_D", {"SO_TN": so_tn, "MA_HQTN": office, "NAM_TN": ngay.year,
                                                "MA_HANG": code, "MA_DV": e.mst, "LOAI_HANG": 1,
                                                "SO_LUONG": round(self.r.uniform(1, 50), 3), "MA_DVT": unit,
                                                "SO_TK": sotk, "MA_HQ": e.office, "NGAY_DK": _d(ngay), "MA_LH": ma_lh})

    # -- users file (step 8) ------------------------------------------------------------------------
    def users(self) -> list[dict[str, object]]:
        out = []
        for i in range(12):
            roles = sorted(self.r.sample(_ROLES, k=self.r.randint(1, 2)))
            out.append({"login": f"cc47d_u{i + 1:02d}", "full_name": self.person(),
                        "legacy_roles": roles, "office": BRANCH_OFFICES[i % 2].strip()})
        return out


def generate_branch(out_dir: Path, params: GenParams | None = None) -> dict[str, object]:
    """Write ``slxnk.sqlite``, ``sxxk.sqlite``, ``users.json`` and ``manifest.json`` into ``out_dir``.

    Returns the manifest (row counts per table, injected defects, parameters).
    """
    p = params or GenParams()
    unknown = set(p.defects) - set(DEFECT_KINDS)
    if unknown:
        raise ValueError(f"unknown defect kinds {sorted(unknown)}; available: {', '.join(DEFECT_KINDS)}")
    if p.shape not in SHAPES:
        raise ValueError(f"unknown shape {p.shape!r}; available: {', '.join(SHAPES)}")
    if isinstance(p.optional, str) or set(p.optional) - set(OPTIONAL_PARTS):
        raise ValueError(f"unknown optional parts {p.optional!r}; available: {', '.join(OPTIONAL_PARTS)}")
    if p.defects.get("bad_value", 0.0) > 0 and p.shape != "sqlserver-export":
        raise ValueError("defect bad_value needs shape 'sqlserver-export' "
                         "(the ecm shape's columns are typed)")
    optional = [o for o in OPTIONAL_PARTS if o in p.optional]
    skip = frozenset(t for o, ts in OPTIONAL_PARTS.items() if o not in optional for t in ts)
    out_dir.mkdir(parents=True, exist_ok=True)
    g = _Gen(p, out_dir)
    n_ent = max(4, int(round(24 * p.scale ** 0.5)))
    offices = list(BRANCH_OFFICES) * 9 + [OTHER_OFFICE]  # ~5 % of enterprises belong to another branch
    sx_ents = g.enterprises(n_ent, offices)
    gc_ents = g.enterprises(max(3, n_ent // 2), offices)
    cx_ents = g.enterprises(max(2, n_ent // 4), offices)
    wsx = _Writer(out_dir / "sxxk.sqlite", "SXXK", p.shape, skip, "cx" not in optional, p.seed)
    wsl = _Writer(out_dir / "slxnk.sqlite", "SLXNK", p.shape, skip, "cx" not in optional, p.seed)
    g.sxxk(wsx, sx_ents, wsl)
    wsx.close()
    g.slxnk(wsl, gc_ents, cx_ents)
    wsl.close()
    users = g.users()
    (out_dir / "users.json").write_text(json.dumps(users, ensure_ascii=False, indent=1), encoding="utf-8")
    manifest = {
        "generator": "sample_data.generator", "generator_version": GENERATOR_VERSION, "seed": p.seed, "scale": p.scale, "defect_rates": p.defects,
        "shape": p.shape, "optional": optional,
        "offices": [o.strip() for o in BRANCH_OFFICES],
        "row_counts": {**{f"SXXK.{t}": c for t, c in wsx.counts.items()},
                       **{f"SLXNK.{t}": c for t, c in wsl.counts.items()}},
        "defects": g.manifest,
    }
    if p.shape == "sqlserver-export":  # ground truth: columns the reference does not have (keep, ignore)
        manifest["extra_columns"] = {t: [c for _, c, _, _ in cols] for t, cols in _EXTRA_COLUMNS.items()}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    return manifest


def total_rows(manifest: dict[str, object]) -> int:
    counts = manifest["row_counts"]
    assert isinstance(counts, dict)
    return int(sum(counts.values()))


def iter_defects(manifest: dict[str, object], kind: str) -> Iterable[dict[str, object]]:
    for d in manifest["defects"]:  # type: ignore[union-attr]
        if d["defect"] == kind:
            yield d
