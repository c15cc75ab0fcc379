"""Scopes (catalogs before go-live, declarations after) and incremental runs, end to end."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

from load.control_store import ControlStore
from pipelines.migrate import migrate_branch
from tests.conftest import make_config

pytestmark = pytest.mark.flow


@pytest.fixture(scope="module", autouse=True)
def harness():  # type: ignore[no-untyped-def]
    with prefect_test_harness(server_startup_timeout=120):
        yield


def _ids(central: sqlite3.Connection, table: str, col: str) -> set[int]:
    return {r[0] for r in central.execute(f"SELECT {col} FROM {table}")}


def _fates(store: ControlStore, run_id: str, table: str) -> dict[str, int]:
    return {f"{a['fate']}:{a['code']}": a["rows"] for a in store.accounting(run_id) if a["source_table"] == table}


def _add_declaration(branch: Path) -> None:
    """The branch keeps working between two runs: one new NSX declaration with a line and stock, one new material."""
    con = sqlite3.connect(branch / "sxxk.sqlite")
    mst, office = con.execute("SELECT MA_DV, MA_HQ FROM SNPL WHERE trim(MA_HQ) = 'C47D' LIMIT 1").fetchone()
    con.execute("INSERT INTO SNPL (MA_HQ, MA_DV, MA_NPL, TEN_NPL, MA_HS, MA_DVT, SO_TN, NAM_TN) "
                "VALUES (?, ?, 'NPLMOI01', 'Vải mới', '52081100', '3', 1, 2014)", (office, mst))
    con.execute("INSERT INTO DTOKHAIMD (SOTK, MA_LH, MA_HQ, NAMDK, NGAY_DK, NGAY_HOANTHANH, MA_DV, SOHANG, MA_NT, "
                "THANH_LY, XUAT_NPL_SP, TTTK, PLUONG) VALUES (9001, 'NSX01', ?, 2014, '2014-03-20 00:00:00.000000', "
                "'2014-03-21 00:00:00.000000', ?, 1, 'USD', 'C', 'N', 'T', 'XANH')", (office, mst))
    con.execute("INSERT INTO DHANGMDDK (SOTK, MA_LH, MA_HQ, NAMDK, MA_PHU, MA_NPL_SP, STTHANG, TEN_HANG, MA_DVT, LUONG, "
                "DGIA_TT, TS_XNK) VALUES (9001, 'NSX01', ?, 2014, 'NNPLMOI01', 'NPLMOI01', 1, 'Vải mới', '3', 100, 2.0, 0)",
                (office,))
    con.execute("INSERT INTO DNPLNHAP (SOTK, MA_LH, NAMDK, MA_HQ, MA_NPL, MA_DV, LUONG, TON) "
                "VALUES (9001, 'NSX01', 2014, ?, 'NPLMOI01', ?, 100, 40)", (office, mst))
    con.commit()
    con.close()


def test_catalogs_then_declarations_then_incremental(tmp_path: Path, sample_branch: Path) -> None:
    branch = tmp_path / "branch"
    shutil.copytree(sample_branch, branch)
    cfg = make_config(tmp_path, branch, scope="catalogs")
    central_path = cfg.rehearsal_central_url.removeprefix("sqlite:///")

    # declarations cannot come first: there are no converted catalogs to link to
    with pytest.raises(Exception, match="no converted catalogs"):
        migrate_branch(config=make_config(tmp_path, branch, scope="declarations"))

    s1 = migrate_branch(config=cfg)
    central = sqlite3.connect(central_path)
    assert central.execute("SELECT count(*) FROM DTO_KHAI_MD").fetchone()[0] == 0
    items = _ids(central, "DSX_SP_NPL", "VT_ID")
    assert items and _ids(central, "DGC_HD", "HD_ID")
    store = ControlStore(cfg.control_url)
    n_decl = sqlite3.connect(branch / "sxxk.sqlite").execute("SELECT count(*) FROM DTOKHAIMD").fetchone()[0]
    assert _fates(store, s1["run_id"], "SXXK.DTOKHAIMD") == {"excluded:R-OUT-OF-SCOPE": n_decl}

    s2 = migrate_branch(config=make_config(tmp_path, branch, scope="declarations"))
    assert _ids(central, "DSX_SP_NPL", "VT_ID") == items  # catalogs untouched by the declarations run
    decls = _ids(central, "DTO_KHAI_MD", "TK_ID")
    assert decls
    linked = _ids(central, "DHANG_MD", "VT_ID") - {0}
    assert linked and linked <= items | _ids(central, "DGC_SP_NPL_TB_HM", "VT_ID") | _ids(
        central, "DCX_DM_HH_DUA_VAO_RA", "VT_ID")
    assert all(st["status"] == "completed" for st in s2["steps"])

    _add_declaration(branch)
    s3 = migrate_branch(config=make_config(tmp_path, branch, scope="all", incremental=True))
    assert all(st["status"] == "completed" for st in s3["steps"])
    f = _fates(store, s3["run_id"], "SXXK.DTOKHAIMD")
    earlier = _fates(store, s2["run_id"], "SXXK.DTOKHAIMD")["converted:-"]
    assert f.get("converted:-") == 1 and f.get("excluded:R-ALREADY-CONVERTED") == earlier
    assert _fates(store, s3["run_id"], "SXXK.SNPL").get("converted:-") == 1
    after_decls = _ids(central, "DTO_KHAI_MD", "TK_ID")
    assert decls < after_decls and len(after_decls) == len(decls) + 1
    assert min(after_decls - decls) > max(decls)  # a new ID, never a re-issued one
    new_item = central.execute("SELECT VT_ID FROM DSX_SP_NPL WHERE MA_VAT_TU = 'NPLMOI01'").fetchone()[0]
    assert new_item not in items and items < _ids(central, "DSX_SP_NPL", "VT_ID")
    line = central.execute("SELECT d.VT_ID FROM DHANG_MD d JOIN DTO_KHAI_MD t ON t.TK_ID = d.TK_ID "
                           "WHERE t.SO_TK = 9001").fetchone()
    assert line == (new_item,)
    assert central.execute("SELECT TON FROM DSX_NPL_NHAP WHERE SO_TK = 9001").fetchone() == (40,)
