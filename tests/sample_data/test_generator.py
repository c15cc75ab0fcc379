import hashlib
import sqlite3
from pathlib import Path

import pytest

from extract.legacy_schema import TABLES_BY_DB
from sample_data.generator import DEFECT_KINDS, GenParams, generate_branch
from transform.codes import is_valid_mst, looks_tcvn3


def _digest(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    generate_branch(tmp_path / "a", GenParams(seed=7, defects={"tcvn3_text": 0.1}))
    generate_branch(tmp_path / "b", GenParams(seed=7, defects={"tcvn3_text": 0.1}))
    generate_branch(tmp_path / "c", GenParams(seed=8))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a")["sxxk.sqlite"] != _digest(tmp_path / "c")["sxxk.sqlite"]


def test_real_table_names_and_recognisable_content(sample_branch: Path) -> None:
    for db in ("SXXK", "SLXNK"):
        con = sqlite3.connect(sample_branch / f"{db.lower()}.sqlite")
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert names == {t.name for t in TABLES_BY_DB[db]}
    con = sqlite3.connect(sample_branch / "sxxk.sqlite")
    assert all(is_valid_mst(r[0]) for r in con.execute("SELECT DISTINCT MA_DV FROM DTOKHAIMD"))
    assert con.execute("SELECT count(*) FROM DTOKHAIMD WHERE MA_HQ = 'C47D  '").fetchone()[0] > 0  # CHAR-padded
    assert {r[0] for r in con.execute("SELECT DISTINCT MA_LH FROM DTOKHAIMD")} >= {"NSX01", "XSX01", "XSX05"}
    assert con.execute("SELECT count(*) FROM DTOKHAIMD WHERE THANH_LY = 'H'").fetchone()[0] > 0
    assert con.execute("SELECT count(*) FROM DNPLNHAP WHERE TON > LUONG").fetchone()[0] == 0
    assert con.execute("SELECT max(LAN_DC) FROM DHANGMDDC").fetchone()[0] >= 2
    years = con.execute("SELECT min(NAMDK), max(NAMDK) FROM DTOKHAIMD").fetchone()
    assert 2008 <= years[0] and years[1] <= 2014


def test_defects_are_injected_and_listed(tmp_path: Path) -> None:
    # bad_value is a defect of the sqlserver-export shape only (test_shapes.py)
    m = generate_branch(tmp_path / "d", GenParams(defects={k: 0.08 for k in DEFECT_KINDS if k != "bad_value"}))
    kinds = {d["defect"] for d in m["defects"]}
    assert kinds == set(DEFECT_KINDS) - {"bad_value"}
    con = sqlite3.connect(tmp_path / "d" / "sxxk.sqlite")
    ton = [d for d in m["defects"] if d["defect"] == "ton_gt_luong"]
    assert con.execute("SELECT count(*) FROM DNPLNHAP WHERE TON > LUONG").fetchone()[0] == len(ton)
    tc = [d for d in m["defects"] if d["defect"] == "tcvn3_text" and d["table"] == "SXXK.DHANGMDDK"]
    names = [r[0] for r in con.execute("SELECT TEN_HANG FROM DHANGMDDK")]
    assert sum(looks_tcvn3(n) for n in names) == len(tc) > 0


def test_unknown_defect_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="available: decl_without_goods"):
        generate_branch(tmp_path / "x", GenParams(defects={"typo": 0.1}))
