"""The input contract (extract/contract.py) on DuckDB itself: which storage forms cast, which are bad values,
and how a package's spelling binds to the declared schema."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from extract import staging
from extract.contract import ContractError, bind, column_cast
from extract.package import write_package
from extract.source import open_source


def _cast(legacy: str, stored_type: str, value: object) -> tuple[object, bool]:
    c = column_cast("X", legacy, "x", stored_type)
    con = duckdb.connect()
    return con.execute(f"SELECT {c.expr}, coalesce({c.bad or 'false'}, false) FROM "
                       f"(SELECT CAST(? AS {stored_type}) AS x) r", [value]).fetchall()[0]


@pytest.mark.parametrize("legacy, stored, value, expected", [
    ("numeric(18,8)", "VARCHAR", "12.5", Decimal("12.50000000")),
    ("numeric(18,8)", "VARCHAR", "12.50000000", Decimal("12.50000000")),
    ("numeric(18,8)", "VARCHAR", " -3 ", Decimal("-3.00000000")),
    ("numeric(18,8)", "VARCHAR", ".5", Decimal("0.50000000")),
    ("numeric(18,0)", "VARCHAR", "3", Decimal("3")),
    ("money", "VARCHAR", "1250.5000", Decimal("1250.5000")),
    ("numeric(18,0)", "DECIMAL(18,8)", Decimal("3"), Decimal("3")),
    ("int", "VARCHAR", "12.000", 12),
    ("smallint", "DOUBLE", 7.0, 7),
    ("float", "VARCHAR", "1.5E-3", 0.0015),
    ("datetime", "VARCHAR", "2013-12-31 10:11:12.123", datetime(2013, 12, 31, 10, 11, 12, 123000)),
    ("datetime", "VARCHAR", "2013-12-31", datetime(2013, 12, 31)),
    ("char(6)", "BIGINT", 47, "47"),
    ("nvarchar(50)", "VARCHAR", "A\u0301o", "Áo"),  # NFD → NFC
    ("numeric(18,8)", "VARCHAR", "", None),  # blank text is how exports write NULL
    ("numeric(18,8)", "VARCHAR", None, None),
    # a float rounded at the declared scale exactly as the driver's "%.{s}f" (2.675 is 2.67499999… in binary)
    ("numeric(18,2)", "DOUBLE", 2.675, Decimal("2.67")),
    ("numeric(18,8)", "DOUBLE", 0.123456785, Decimal("0.12345678")),
    ("numeric(18,8)", "DOUBLE", 5e-05, Decimal("0.00005000")),
    ("smallint", "VARCHAR", "-32768", -32768),
    ("nvarchar(50)", "BLOB", "Áo".encode("utf-8"), "Áo"),  # text a source declared binary
    ("datetime", "TIMESTAMP", "2013-12-31 10:11:12", datetime(2013, 12, 31, 10, 11, 12)),
])
def test_accepted_storage_forms_cast_exactly(legacy: str, stored: str, value: object, expected: object) -> None:
    got, bad = _cast(legacy, stored, value)
    assert (got, bad) == (expected, False)


@pytest.mark.parametrize("legacy, stored, value", [
    ("numeric(18,8)", "VARCHAR", "N/A"),
    ("numeric(18,8)", "VARCHAR", "12,5"),  # a decimal comma: ambiguous, never guessed
    ("numeric(18,8)", "VARCHAR", "1.2.3"),
    ("numeric(18,8)", "VARCHAR", "1,250.50"),
    ("numeric(18,8)", "VARCHAR", "12.123456789"),  # more decimals than declared: would be rounded in silence
    ("numeric(18,8)", "VARCHAR", "1e3"),
    ("numeric(5,2)", "VARCHAR", "123456.75"),  # beyond the precision
    ("numeric(18,0)", "DECIMAL(18,8)", Decimal("3.5")),
    ("int", "VARCHAR", "12.5"),
    ("smallint", "DOUBLE", float("nan")),
    ("float", "VARCHAR", "inf"),
    ("datetime", "VARCHAR", "2013-02-31 00:00:00.000"),
    ("datetime", "VARCHAR", "31/12/2013"),
    ("varchar(20)", "VARCHAR", "a\x00b"),  # central cannot store a NUL character
    ("datetime", "VARCHAR", "2012-01-05 05:00:00+07:00"),  # a zone would shift the day: never guessed
    ("datetime", "VARCHAR", "2013-12-31T10:11:12Z"),
    ("datetime", "VARCHAR", "epoch"),
    ("datetime", "VARCHAR", "infinity"),
    ("datetime", "VARCHAR", "2013-12-31 24:00:00"),
    ("datetime", "VARCHAR", "2013-1-1"),
    ("datetime", "VARCHAR", "10000-01-01"),
    ("datetime", "TIMESTAMP", "infinity"),  # a timestamp SQL Server's datetime cannot hold
    ("datetime", "TIMESTAMP", "1700-01-01"),
    ("datetime", "TIMESTAMP WITH TIME ZONE", "2012-01-05 05:00:00+07:00"),
    ("float", "DOUBLE", float("nan")),  # stored as a float, still not a value SQL Server holds
    ("float", "DOUBLE", float("inf")),
    ("smallint", "VARCHAR", "40000"),  # beyond smallint
    ("smallint", "INTEGER", 40000),
    ("bit", "INTEGER", 2),
    ("nvarchar(50)", "BLOB", b"V\xb5NG"),  # declared binary and not UTF-8: which code page? never guessed
])
def test_values_outside_the_contract_are_bad_never_null_in_silence(legacy: str, stored: str, value: object) -> None:
    got, bad = _cast(legacy, stored, value)
    assert got is None or legacy.startswith("varchar")
    assert bad is True


def test_names_bind_case_insensitively_and_report_absent_extra_and_missing() -> None:
    found = {"dtokhaimd": {"Sotk": "BIGINT", "ma_lh": "VARCHAR", "MA_HQ": "VARCHAR", "NamDk": "INTEGER",
                           "rowguid": "VARCHAR"},
             "DHANGMDTH": {"SOTK": "BIGINT"}, "MyOwnTable": {"A": "VARCHAR"}}
    bindings, extra = bind("SXXK", found)
    by = {b.table.name: b for b in bindings}
    decl = by["DTOKHAIMD"]
    assert decl.found == "dtokhaimd" and decl.col("SOTK").found == "Sotk" and decl.col("NAMDK").found == "NamDk"
    assert decl.extra == {"rowguid": "VARCHAR"}
    assert decl.col("NGAY_DK").found is None and decl.col("NGAY_DK").expr == "NULL::TIMESTAMP"
    assert by["SNPL"].found is None and not by["SNPL"].optional
    assert extra == ["MyOwnTable"]
    slx, _ = bind("SLXNK", {})
    assert {b.table.name for b in slx if b.optional} >= {"ecsCX_DinhMuc", "ecsNPLTCU", "ecsNPLTCU_CT"}


def test_two_spellings_of_one_table_are_refused_naming_both() -> None:
    with pytest.raises(ContractError, match="'DHangMD' and 'DHANGMD'"):
        bind("SLXNK", {"DHangMD": {"SoTK": "BIGINT"}, "DHANGMD": {"SoTK": "BIGINT"}})


def _hostile_branch(path: Path) -> None:
    """A SQL Server export written by hand (not by our generator): mixed-case names, decimal text, a bad
    date, 'N/A' kept by SQLite in a NUMERIC column, a NUL character, bytes that are not UTF-8."""
    with sqlite3.connect(path) as c:
        c.execute('CREATE TABLE dnplnhap ("Sotk" INTEGER, "ma_lh" CHAR(5), "NamDK" SMALLINT, "Ma_Hq" CHAR(6), '
                  '"MA_NPL" VARCHAR(30), "ma_dv" VARCHAR(14), "Luong" TEXT, "TON" NUMERIC(18,8))')
        c.executemany("INSERT INTO dnplnhap VALUES (?,?,?,?,?,?,?,?)", [
            (1, "NSX01", 2013, "C47D  ", "VAI01", "3600100100", "100.00000000", 40),
            (2, "NSX01", 2013, "C47D  ", "VAI02", "3600100100", "12,5", 1),        # decimal comma
            (3, "NSX01", 2013, "C47D  ", "VAI03", "3600100100", "10", "N/A"),       # NUMERIC affinity keeps 'N/A'
        ])
        c.execute('CREATE TABLE "DTOKHAIMD" ("SOTK" INTEGER, "MA_LH" CHAR(5), "MA_HQ" CHAR(6), "NAMDK" SMALLINT, '
                  '"NGAY_DK" DATETIME, "DV_DT" VARCHAR(500))')
        c.executemany("INSERT INTO DTOKHAIMD VALUES (?,?,?,?,?,?)", [
            (1, "NSX01", "C47D  ", 2013, "2013-05-02 08:00:00.000", "Hanwa"),
            (2, "NSX01", "C47D  ", 2013, "2013-02-31 00:00:00.000", "Hanwa"),      # no such day
            (3, "NSX01", "C47D  ", 2013, "2013-05-02 08:00:00.000", "Han\x00wa"),  # NUL character
            (4, "NSX01", "C47D  ", 2013, "2013-05-02 08:00:00.000", "x"),
        ])
        # a non-Unicode varchar exported byte for byte (TCVN3 'VµNG' is b'V\xb5NG'): not UTF-8
        c.execute("UPDATE DTOKHAIMD SET DV_DT = CAST(? AS TEXT) WHERE SOTK = 4", [b"C\xabng ty V\xb5NG"])


def test_a_hostile_export_is_backed_up_restored_and_its_bad_values_named(tmp_path: Path) -> None:
    _hostile_branch(tmp_path / "sxxk.sqlite")
    eng = open_source(f"sqlite:///{tmp_path / 'sxxk.sqlite'}")
    man = write_package("C47D", {"SXXK": eng}, tmp_path / "pkg")  # no raw error: columns kept as the text they hold
    assert {f.table: f.rows for f in man.files} == {"dnplnhap": 3, "DTOKHAIMD": 4}
    con = duckdb.connect(str(tmp_path / "staging.duckdb"))
    restored = staging.restore(con, tmp_path / "pkg", man)
    assert restored.read["SXXK.DNPLNHAP"] == 3 and restored.staged["SXXK.DNPLNHAP"] == 1
    assert restored.read["SXXK.DTOKHAIMD"] == 4 and restored.staged["SXXK.DTOKHAIMD"] == 2
    staged = con.execute('SELECT "SOTK", "LUONG", "TON", typeof("LUONG") FROM src_sxxk."DNPLNHAP"').fetchall()
    assert staged == [(1, Decimal("100.00000000"), Decimal("40.00000000"), "DECIMAL(18,8)")]
    bad = {(r["source_table"], r["source_key"]): r["detail"] for r in staging.bad_values(con)}
    assert bad == {
        ("SXXK.DNPLNHAP", "SXXK.DNPLNHAP|SOTK=2|MA_LH=NSX01|NAMDK=2013|MA_HQ=C47D|MA_NPL=VAI02"): "LUONG=12,5 (numeric(18,8))",
        ("SXXK.DNPLNHAP", "SXXK.DNPLNHAP|SOTK=3|MA_LH=NSX01|NAMDK=2013|MA_HQ=C47D|MA_NPL=VAI03"): "TON=N/A (numeric(18,8))",
        ("SXXK.DTOKHAIMD", "SXXK.DTOKHAIMD|SOTK=2|MA_LH=NSX01|MA_HQ=C47D|NAMDK=2013"):
            "NGAY_DK=2013-02-31 00:00:00.000 (datetime)",
        ("SXXK.DTOKHAIMD", "SXXK.DTOKHAIMD|SOTK=3|MA_LH=NSX01|MA_HQ=C47D|NAMDK=2013"): "DV_DT=Han\\x00wa (varchar(500))",
    }
    # the text that was not UTF-8 is kept byte for byte (read as Latin-1) and named with its row
    latin = con.execute('SELECT "DV_DT" FROM src_sxxk."DTOKHAIMD" WHERE "SOTK" = 4').fetchall()[0][0]
    assert latin.encode("latin-1") == b"C\xabng ty V\xb5NG"
    from extract.source import non_utf8_values
    assert [(o["table"], o["column"]) for o in non_utf8_values(eng)] == [("DTOKHAIMD", "DV_DT")]


def test_a_column_backed_up_as_text_keeps_every_good_value(tmp_path: Path) -> None:
    """One 'N/A' sends a REAL column to the text form; its floats must still read as the driver reads them (at the
    declared scale, never with an exponent), and only the bad value is set aside."""
    db = tmp_path / "sxxk.sqlite"
    with sqlite3.connect(db) as c:
        c.execute('CREATE TABLE DDINHMUC (MA_SP VARCHAR(30), MA_NPL VARCHAR(30), MA_DV VARCHAR(17), MA_HQ CHAR(6), '
                  'DM_SD NUMERIC, TL_HH NUMERIC(18,8), GHI_CHU NVARCHAR(256), "Ngay" DATETIME)')
        c.executemany("INSERT INTO DDINHMUC VALUES (?,?,?,?,?,?,?,?)", [
            ("SP1", "N1", "0100", "C47D", 5e-05, 0.30000000000000004, "ok", "2012-01-05 05:00:00"),
            ("SP2", "N1", "0100", "C47D", "N/A", 1, "ok", "2012-01-05 05:00:00"),
            ("SP3", "N1", "0100", "C47D", 2, 2, "Áo".encode("utf-8"), "2012-01-05 05:00:00+07:00"),  # a zone
            ("SP4", "N1", "0100", "C47D", 3, 3, b"V\xb5NG", None),  # text held as a BLOB, not UTF-8
        ])
        c.execute('CREATE TABLE "Sheet1$" (a TEXT)')  # an import wizard's leftover: kept, named, not converted
        c.execute("INSERT INTO \"Sheet1$\" VALUES ('x')")
    eng = open_source(f"sqlite:///{db}")
    man = write_package("C47D", {"SXXK": eng}, tmp_path / "pkg")
    assert {f.table for f in man.files} == {"DDINHMUC", "Sheet1$"}
    con = duckdb.connect(str(tmp_path / "staging.duckdb"))
    restored = staging.restore(con, tmp_path / "pkg", man)
    assert restored.read["SXXK.Sheet1$"] == 1
    staged = con.execute('SELECT "MA_SP", "DM_SD", "TL_HH", "GHI_CHU" FROM src_sxxk."DDINHMUC" ORDER BY 1').fetchall()
    assert staged == [("SP1", Decimal("0.00005000"), Decimal("0.30000000"), "ok"),
                      ("SP3", Decimal("2.00000000"), Decimal("2.00000000"), "Áo"),  # a BLOB holding UTF-8 text
                      ("SP4", Decimal("3.00000000"), Decimal("3.00000000"), "V\xb5NG")]  # kept byte for byte
    bad = {r["source_key"].split("|")[1]: r["detail"] for r in staging.bad_values(con)}
    assert bad == {"MA_SP=SP2": "DM_SD=N/A (numeric(18,8))"}
    from extract.source import non_utf8_values
    assert ("DDINHMUC", "GHI_CHU") in {(o["table"], o["column"]) for o in non_utf8_values(eng)}


def test_a_datetime_with_a_time_zone_is_a_bad_value_not_another_day(tmp_path: Path) -> None:
    db = tmp_path / "sxxk.sqlite"
    with sqlite3.connect(db) as c:
        c.execute('CREATE TABLE DTOKHAIMD (SOTK INTEGER, MA_LH CHAR(5), MA_HQ CHAR(6), NAMDK SMALLINT, NGAY_DK DATETIME)')
        c.executemany("INSERT INTO DTOKHAIMD VALUES (?,?,?,?,?)", [
            (1, "NSX01", "C47D", 2012, "2012-01-05 05:00:00.000"),
            (2, "NSX01", "C47D", 2012, "2012-01-05 05:00:00+07:00")])
    eng = open_source(f"sqlite:///{db}")
    man = write_package("C47D", {"SXXK": eng}, tmp_path / "pkg")
    con = duckdb.connect()
    staging.restore(con, tmp_path / "pkg", man)
    assert con.execute('SELECT "SOTK", "NGAY_DK" FROM src_sxxk."DTOKHAIMD"').fetchall() == [(1, datetime(2012, 1, 5, 5))]
    assert [r["detail"] for r in staging.bad_values(con)] == ["NGAY_DK=2012-01-05 05:00:00+07:00 (datetime)"]


def test_step1_reads_decimal_text_as_the_contract_does() -> None:
    from extract.review import number_or_none
    assert number_or_none("100.12345678", 8) == 100.12345678 and number_or_none(" -3 ", 8) == -3
    assert number_or_none("100.123456789", 8) is None  # step 4 sets it aside: step 1 must not sum it either
    assert number_or_none("12,5", 8) is None and number_or_none("1e3", 8) is None and number_or_none("N/A", None) is None
