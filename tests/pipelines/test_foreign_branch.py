"""A branch shaped like a SQL Server export, not like our own generator's output (issue: the legacy input
boundary). All eight steps on it; the snapshot must equal the one of the same branch in our own shape."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import duckdb
import pytest
from prefect.testing.utilities import prefect_test_harness

from load.control_store import ControlStore
from pipelines.migrate import migrate_branch
from sample_data.generator import GenParams, generate_branch
from tests.conftest import make_config

pytestmark = pytest.mark.flow

EXPORT = "sqlserver-export"


@pytest.fixture(scope="module", autouse=True)
def harness():  # type: ignore[no-untyped-def]
    with prefect_test_harness(server_startup_timeout=120):
        yield


def _run(tmp_path: Path, name: str, params: GenParams, **overrides: object) -> tuple[dict, ControlStore, object, dict]:
    branch = tmp_path / name / "branch"
    manifest = generate_branch(branch, params)
    cfg = make_config(tmp_path / name, branch, **overrides)
    s = migrate_branch(config=cfg, auto_approve_demo=True)
    return s, ControlStore(cfg.control_url), cfg, manifest


def _step(store: ControlStore, run_id: str, step: str) -> dict:
    return store.step_detail(run_id, step)


def _accounted(store: ControlStore, run_id: str) -> dict[str, int]:
    acct: dict[str, int] = {}
    for a in store.accounting(run_id):
        acct[a["source_table"]] = acct.get(a["source_table"], 0) + a["rows"]
    return acct


def _restored(store: ControlStore, run_id: str) -> dict[str, int]:
    return {r["table_name"]: r["rows"] for r in store.counts(run_id, "restored") if r["rows"]}


def test_a_sql_server_export_converts_to_the_same_snapshot_as_our_own_shape(tmp_path: Path) -> None:
    """Decimal text, mixed-case names, absent optional tables, extra columns, NFD text: same SHA-256."""
    defects = {"ton_gt_luong": 0.03, "negative_qty": 0.03, "sohang_mismatch": 0.03, "impossible_date": 0.03,
               "decl_without_goods": 0.03, "duplicate_key": 0.03, "tcvn3_text": 0.05, "long_text": 0.03}
    ours, store_o, _, _ = _run(tmp_path, "ours", GenParams(optional=(), defects=defects))
    theirs, store_t, cfg, _ = _run(tmp_path, "theirs", GenParams(shape=EXPORT, optional=(), defects=defects))
    for s in (ours, theirs):
        assert [st["status"] for st in s["steps"]] == ["completed"] * len(s["steps"]), s["steps"]
    sha_o = _step(store_o, ours["run_id"], "pl4_05_convert")["snapshot_sha256"]
    sha_t = _step(store_t, theirs["run_id"], "pl4_05_convert")["snapshot_sha256"]
    assert sha_o == sha_t
    # every row has a fate, in the declared spelling of its table
    assert _accounted(store_t, theirs["run_id"]) == _restored(store_t, theirs["run_id"])
    # step 1 ran every check on the export too, on numbers (not text): the same findings, the same keys
    def review(store: ControlStore, run_id: str) -> dict[tuple[str, str], int]:
        return {(f["check_id"], f["table_name"]): f["n_keys"] for f in store.findings(run_id)
                if f["step"] == "pl4_01_review"}
    assert review(store_t, theirs["run_id"]) == review(store_o, ours["run_id"])
    assert {c for c, _t in review(store_t, theirs["run_id"])} >= {"ton_gt_luong", "negative_qty", "sohang_mismatch",
                                                                   "impossible_date", "duplicate_key", "tcvn3_text"}
    # step 3 found the package equal to the reports; step 4 names the differences and none blocks
    theirs_f = store_t.findings(theirs["run_id"])
    assert not [f for f in theirs_f if f["step"] == "pl4_03_handover"]
    step4 = {f["check_id"]: f for f in theirs_f if f["step"] == "pl4_04_restore"}
    assert {"schema_absent_optional_table", "schema_extra_column", "schema_retyped_column"} <= set(step4)
    assert step4["schema_absent_optional_table"]["severity"] == "minor"
    assert "SLXNK.ecsCX_DinhMuc" in json.loads(step4["schema_absent_optional_table"]["keys_json"])
    assert {"SLXNK.DToKhaiMD.rowguid", "SXXK.DTOKHAIMD.GHI_CHU_NOI_BO"} <= {
        k for f in theirs_f if f["check_id"] == "schema_extra_column" for k in json.loads(f["keys_json"])}
    assert not {"schema_missing_table", "schema_missing_column", "bad_value"} & set(step4)
    assert Path(theirs["paths"]["central_database"]).exists()


def test_values_that_do_not_cast_are_quarantined_named_and_the_rest_still_loads(tmp_path: Path) -> None:
    clean, store_c, _, _ = _run(tmp_path, "clean", GenParams(shape=EXPORT, optional=()))
    s, store, cfg, manifest = _run(tmp_path, "bad", GenParams(shape=EXPORT, optional=(), defects={"bad_value": 0.03}))
    assert [st["status"] for st in s["steps"]] == ["completed"] * len(s["steps"]), s["steps"]
    assert _accounted(store, s["run_id"]) == _restored(store, s["run_id"])
    injected = {(d["table"], d["column"], json.dumps(d["key"], sort_keys=True))
                for d in manifest["defects"] if d["defect"] == "bad_value"}
    assert len(injected) >= 6
    con = duckdb.connect(str(cfg.staging_path), read_only=True)
    rows = con.execute("SELECT source_table, reason, source_key, detail FROM quarantine.rows").fetchall()
    con.close()
    bad = [r for r in rows if r[1] == "Q-BAD-VALUE"]

    def key_of(source_key: str) -> str:
        return json.dumps(dict(p.split("=", 1) for p in source_key.split("|")[1:]), sort_keys=True)
    found = set()
    for table, _reason, key, detail in bad:
        for part in detail.split("; "):
            found.add((table, part.split("=", 1)[0], key_of(key)))
    # exactly the injected values, each named by table, key and column (keys compared as text)
    def norm(items: set) -> set:  # dates as their day ('2010-09-16' and '2010-09-16 00:00:00' are one key)
        def v(x: object) -> str:
            return str(x)[:10] if re.match(r"^\d{4}-\d{2}-\d{2}( 00:00:00(\.0+)?)?$", str(x)) else str(x)
        return {(t, c, json.dumps({k: v(x) for k, x in json.loads(k_).items()}, sort_keys=True)) for t, c, k_ in items}
    assert norm(found) == norm(injected)
    # a declaration set aside takes its children along, and nothing else is lost: every row the clean export
    # converted is converted here too unless it was quarantined here
    quarantined = {r[2] for r in rows}  # (a norm whose material was set aside: Q-UNKNOWN-ITEM)
    assert any(r[1] == "Q-PARENT-QUARANTINED" for r in rows)

    def converted(cfg_run: dict) -> set[str]:
        snap = Path(cfg_run["paths"]["snapshot"])
        c = duckdb.connect()
        keys = {k for (k,) in c.execute(f"SELECT DISTINCT _SRC_KEY FROM read_parquet('{snap}/*.parquet', "
                                        "union_by_name=true) WHERE _SRC_KEY IS NOT NULL").fetchall()}
        c.close()
        return keys
    assert converted(clean) - converted(s) <= quarantined
    assert converted(clean) - converted(s)
    # and nothing is converted that the clean export did not convert: a goods line set aside does not let the
    # registered line (or an older adjustment) stand in for it — its declaration waits whole
    assert converted(s) <= converted(clean)
    assert any(r[1] == "Q-CHILD-BAD-VALUE" for r in rows)
    # the findings say what to do, in the table's declared spelling
    f = [x for x in store.findings(s["run_id"]) if x["check_id"] == "bad_value"]
    assert {x["table_name"] for x in f} == {t for t, _c, _k in injected}
    assert all("Q-BAD-VALUE" in x["message"] and "step 1" in x["message"] for x in f)


def _hand_made(branch: Path) -> None:
    """Our export, then changed by hand the way real files are: text that is not UTF-8 (a non-Unicode varchar
    copied byte for byte), a NUL character, a required table absent from SLXNK, a required column dropped."""
    sl = sqlite3.connect(branch / "slxnk.sqlite")
    tables = {r[0].casefold(): r[0] for r in sl.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    sl.execute(f'DROP TABLE "{tables["dthietbi"]}"')
    goods = tables["dhangmd"]
    cols = {r[1].casefold(): r[1] for r in sl.execute(f'PRAGMA table_info("{goods}")')}
    sl.execute(f'UPDATE "{goods}" SET "{cols["ten_hang"]}" = CAST(? AS TEXT) WHERE rowid = 1', [b"\xc1o s\xa1 mi"])
    sl.execute(f'UPDATE "{goods}" SET "{cols["ten_hang"]}" = ? WHERE rowid = 2', ["Áo\x00 sơ mi"])
    sl.commit()
    sx = sqlite3.connect(branch / "sxxk.sqlite")
    t = {r[0].casefold(): r[0] for r in sx.execute("SELECT name FROM sqlite_master WHERE type='table'")}["snpl"]
    c = {r[1].casefold(): r[1] for r in sx.execute(f'PRAGMA table_info("{t}")')}
    sx.execute(f'ALTER TABLE "{t}" DROP COLUMN "{c["ma_hs"]}"')
    sx.commit()


def test_a_hand_made_export_goes_through_with_every_difference_decided(tmp_path: Path) -> None:
    branch = tmp_path / "hand" / "branch"
    generate_branch(branch, GenParams(shape=EXPORT, optional=("tcu",), defects={"negative_qty": 0.05,
                                                                                "sohang_mismatch": 0.05}))
    _hand_made(branch)
    cfg = make_config(tmp_path / "hand", branch)
    s = migrate_branch(config=cfg, auto_approve_demo=True)
    assert [st["status"] for st in s["steps"]] == ["completed"] * len(s["steps"]), s["steps"]
    store = ControlStore(cfg.control_url)
    assert _accounted(store, s["run_id"]) == _restored(store, s["run_id"])
    f = {x["check_id"]: x for x in store.findings(s["run_id"])}
    # step 1: the absent SLXNK table skips only what needs it; the SXXK checks all ran
    ran = {(x["check_id"], x["table_name"].split(".")[0]) for x in store.findings(s["run_id"])
           if x["step"] == "pl4_01_review"}
    assert {("negative_qty", "SXXK"), ("sohang_mismatch", "SXXK"),
            ("sohang_mismatch", "SLXNK")} <= ran
    assert json.loads(f["missing_table"]["keys_json"]) == [{"table": "DThietBi"}]
    # step 2 named the text that is not UTF-8; step 4 the absent table and column (critical: decided at the gate)
    assert "ten_hang" in f["non_utf8_text"]["keys_json"].casefold()
    assert f["schema_missing_table"]["severity"] == "critical" and f["schema_missing_table"]["status"] == "accepted"
    assert "SLXNK.DThietBi" in f["schema_missing_table"]["keys_json"]
    assert "SXXK.SNPL.MA_HS" in f["schema_missing_column"]["keys_json"]
    # the NUL character cannot reach central: its row is quarantined, named
    con = duckdb.connect(str(cfg.staging_path), read_only=True)
    nul = con.execute("SELECT source_table, detail FROM quarantine.rows WHERE reason = 'Q-BAD-VALUE'").fetchall()
    con.close()
    assert [(t, d.split("=")[0]) for t, d in nul] == [("SLXNK.DHangMD", "Ten_Hang")]
