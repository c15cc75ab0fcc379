import json
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from extract.errors import ExtractError, PackageIntegrityError, SourceNotFrozen
from extract.package import PackageManifest, copy_package, verify_package, write_package
from extract.freeze import freeze_source, prove_frozen
from extract.source import check_ident, open_source, redact


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
