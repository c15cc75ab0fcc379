"""Central office codes after the 2025 reorganisation, chosen by config, refused when not covered."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

from pipelines.migrate import migrate_branch
from tests.conftest import make_config
from transform.codes import so_hd_hq_cap

pytestmark = pytest.mark.flow
SAMPLE = Path(__file__).parents[2] / "sample_data" / "office_table_2025.SAMPLE.csv"


@pytest.fixture(scope="module", autouse=True)
def harness():  # type: ignore[no-untyped-def]
    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_regional_codes_reach_central_and_the_contract_number_follows(tmp_path: Path, sample_branch: Path) -> None:
    cfg = make_config(tmp_path, sample_branch, central_office_codes="regional-2025", office_table_2025=str(SAMPLE))
    s = migrate_branch(config=cfg, auto_approve_demo=True)
    assert all(st["status"] == "completed" for st in s["steps"])
    c = sqlite3.connect(cfg.rehearsal_central_url.removeprefix("sqlite:///"))
    assert {r for (r,) in c.execute("SELECT DISTINCT MA_HQ FROM DTO_KHAI_MD")} <= {"KV18D1", "KV18D2"}
    assert {r for (r,) in c.execute("SELECT DISTINCT MA_CUC_HQ FROM DHANG_MD")} == {"18"}
    assert {r for (r,) in c.execute("SELECT DISTINCT MA_HQ FROM CENTRAL_USER")} <= {"KV18D1", "KV18D2"}
    for ma_hq, dv, so_hd, ngay, cap in c.execute(
            "SELECT MA_HQ_HD, DON_VI_GC, SO_HD, NGAY_KY, SO_HD_HQ_CAP FROM DGC_HD LIMIT 5"):
        from datetime import datetime
        assert ma_hq.startswith("KV18") and cap == so_hd_hq_cap(ma_hq, dv, so_hd, datetime.fromisoformat(ngay))


def test_a_table_that_does_not_cover_the_branch_stops_before_converting(tmp_path: Path, sample_branch: Path) -> None:
    partial = tmp_path / "partial.csv"
    partial.write_text("\n".join(SAMPLE.read_text(encoding="utf-8").splitlines()[:2]) + "\n", encoding="utf-8")
    cfg = make_config(tmp_path, sample_branch, central_office_codes="regional-2025", office_table_2025=str(partial))
    with pytest.raises(Exception, match="does not map the branch's offices 47D2"):
        migrate_branch(config=cfg, auto_approve_demo=True)
