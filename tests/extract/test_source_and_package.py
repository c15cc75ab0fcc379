import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from extract.errors import ExtractError, PackageIntegrityError, SourceNotFrozen
from extract.package import PackageManifest, copy_package, verify_package, write_package
from extract.freeze import freeze_source, prove_frozen
from extract.source import arrow_schema, check_ident, iter_batches, open_source, redact, reflect
from tests.conftest import typed_select


def test_frozen_sqlite_source_refuses_writes(sample_branch: Path) -> None:
    url = f"sqlite:///{sample_branch / 'sxxk.sqlite'}"
    proof = freeze_source(url)
    eng = open_source(url)
    assert "readonly" in proof.refused_with
    with pytest.raises(sa.exc.OperationalError, match="readonly"), eng.begin() as c:
        c.exec_driver_sql("DELETE FROM DTOKHAIMD")


def test_freeze_proof_fails_on_a_writable_source(tmp_path: Path) -> None:
    db = tmp_path / "w.sqlite"
    sqlite3.connect(db).close()
    with pytest.raises(SourceNotFrozen):
        prove_frozen(f"sqlite:///{db}", sqlite_read_only=False)


def test_missing_source_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ExtractError, match="not found") as e:
        open_source(f"sqlite:///{tmp_path / 'nope.sqlite'}")
    assert "ecm sample generate" in str(e.value)


def test_identifiers_are_validated() -> None:
    assert check_ident("DToKhaiMD") == "DToKhaiMD"
    with pytest.raises(ExtractError):
        check_ident('x"; DROP TABLE y; --')


def test_redact_hides_passwords() -> None:
    assert "s3cret" not in redact("postgresql://u:s3cret@127.0.0.1/db")


@pytest.fixture
def package(tmp_path: Path, sample_branch: Path) -> Path:
    engines = {db: open_source(f"sqlite:///{sample_branch / f'{db.lower()}.sqlite'}") for db in ("SLXNK", "SXXK")}
    write_package("C47D", engines, tmp_path / "pkg", batch_rows=500)
    return tmp_path / "pkg"


def test_package_rows_equal_source_rows_and_checksums_verify(package: Path, sample_branch: Path) -> None:
    man = verify_package(package)
    con = sqlite3.connect(sample_branch / "sxxk.sqlite")
    for f in man.files:
        if f.db == "SXXK":
            assert f.rows == con.execute(f'SELECT count(*) FROM "{f.table}"').fetchone()[0]
            assert pq.ParquetFile(package / f.path).metadata.num_rows == f.rows
    assert len(man.files) == 27


def test_one_changed_byte_is_named(package: Path, tmp_path: Path) -> None:
    received = copy_package(package, tmp_path / "inbox")
    target = received / "SXXK" / "DNPLNHAP.parquet"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(PackageIntegrityError, match="SXXK/DNPLNHAP.parquet"):
        verify_package(received, expected=PackageManifest.read(package))


def test_missing_file_and_altered_manifest_are_refused(package: Path, tmp_path: Path) -> None:
    received = copy_package(package, tmp_path / "inbox")
    (received / "SLXNK" / "DHDGC.parquet").unlink()
    with pytest.raises(PackageIntegrityError, match="missing: SLXNK/DHDGC.parquet"):
        verify_package(received)
    other = copy_package(package, tmp_path / "inbox2")
    m = json.loads((other / "manifest.json").read_text())
    m["files"][0]["rows"] += 1
    (other / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(PackageIntegrityError):
        verify_package(other, expected=PackageManifest.read(package))


def test_redact_hides_every_password_form() -> None:
    odbc = ("mssql+pyodbc:///?odbc_connect=DRIVER%3D%7BODBC+Driver+18+for+SQL+Server%7D%3BSERVER%3Dx%3B"
            "UID%3Du%3BPWD%3Ds3cret%3B")
    for url in (odbc, "postgresql+pyodbc://u@h/db?password=s3cret&driver=PostgreSQL+Unicode",
                "mariadb+pyodbc://u:s3cret@h/db?driver=MariaDB+Unicode"):
        from urllib.parse import unquote
        shown = unquote(redact(url))
        assert "s3cret" not in shown and "***" in shown


@pytest.mark.parametrize("db", ["slxnk", "sxxk"])
def test_batches_hold_the_values_of_atyped_select(sample_branch: Path, db: str) -> None:
    """Every table of the sample branch (defects included), read in small batches, equals the typed rows."""
    eng = open_source(f"sqlite:///{sample_branch / f'{db}.sqlite'}")
    for name, table in reflect(eng).tables.items():
        got = pa.Table.from_batches(list(iter_batches(eng, table, batch_rows=97)), schema=arrow_schema(table))
        assert got.equals(typed_select(eng, table)), name


def test_numeric_values_sqlite_stores_in_any_form(tmp_path: Path) -> None:
    """SQLite keeps a NUMERIC value as an int, a double or text: each form gives what the typed rows give, and
    an int beyond 2**53 mixed with doubles is not rounded through a double."""
    db = tmp_path / "n.sqlite"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE T (ID INTEGER, V NUMERIC(20, 2), W NUMERIC(24, 0))")
        c.executemany("INSERT INTO T VALUES (?, ?, ?)", [
            (1, 2.675, 2**60 + 1), (2, 1813.26, 1.5), (3, None, None), (4, 7, 2.5), (5, "12.5", 3)])
    eng = open_source(f"sqlite:///{db}")
    table = reflect(eng).tables["T"]
    got = pa.Table.from_batches(list(iter_batches(eng, table)), schema=arrow_schema(table))
    typed = typed_select(eng, table)
    assert got.select(["ID", "V"]).equals(typed.select(["ID", "V"]))
    # the one departure, on purpose: SQLAlchemy's "%.0f" % int rounds 2**60 + 1 through a double
    assert got.column("W").to_pylist() == [Decimal(2**60 + 1), Decimal(2), None, Decimal(2), Decimal(3)]
    assert typed.column("W").to_pylist()[0] == Decimal(2**60)
    assert got.column("V").to_pylist()[:2] == [Decimal("2.67"), Decimal("1813.26")]


@pytest.mark.parametrize("ddl, value", [
    ("NUMERIC(5, 2)", 123456.75),  # beyond the declared precision
    ("NUMERIC(5, 2)", "N/A"),  # text kept by SQLite's NUMERIC affinity (SQLAlchemy raises a bare TypeError)
    ("NUMERIC", 2.675),  # no scale: SQLAlchemy keeps 10 digits, the Arrow type has none — refused, not rounded to 3
])
def test_a_value_that_does_not_fit_names_the_table(tmp_path: Path, ddl: str, value: object) -> None:
    db = tmp_path / "bad.sqlite"
    with sqlite3.connect(db) as c:
        c.execute(f"CREATE TABLE DHANGMD (ID INTEGER, LUONG {ddl})")
        c.executemany("INSERT INTO DHANGMD VALUES (?, ?)", [(1, 1), (2, value)])
    eng = open_source(f"sqlite:///{db}")
    with pytest.raises(ExtractError, match="DHANGMD") as e:
        list(iter_batches(eng, reflect(eng).tables["DHANGMD"]))
    assert "step 1" in (e.value.hint or "")


@settings(max_examples=3000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12), st.integers(min_value=0, max_value=18))
def test_arrow_rounds_a_double_to_a_decimal_as_sqlalchemy_does(x: float, scale: int) -> None:
    """The shortcut of extract.source (scales 0–18): Arrow's double → decimal cast equals SQLAlchemy's "%.{scale}f"."""
    got = pa.array([x], pa.float64()).cast(pa.decimal128(38, scale)).to_pylist()[0]
    assert got == Decimal(f"%.{scale}f" % x)
