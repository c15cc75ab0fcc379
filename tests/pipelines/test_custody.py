"""Chain of custody: a file changed between two steps is refused by the next step that reads it, naming it,
before that step writes anything (issue: chain of custody, items 1 and 3)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prefect.testing.utilities import prefect_test_harness

import pipelines.migrate as migrate
from extract.package import sha256_file
from load.control_store import ControlStore
from pipelines.migrate import migrate_branch
from tests.conftest import make_config

pytestmark = pytest.mark.flow


@pytest.fixture(scope="module", autouse=True)
def harness():  # type: ignore[no-untyped-def]
    with prefect_test_harness(server_startup_timeout=120):
        yield


def _change_a_value(path: Path, column: str) -> None:
    """A valid Parquet file with one value changed (what a forger would write, not a broken byte)."""
    t = pq.read_table(path)
    i = t.schema.get_field_index(column)
    values = t.column(i).to_pylist()
    j = next(k for k, v in enumerate(values) if v is not None)
    values[j] = values[j] + 1
    t = t.set_column(i, t.schema.field(i), pa.array(values, type=t.schema.field(i).type))
    pq.write_table(t, path, compression="zstd")


def _rewrite_package_manifest(root: Path, rel: str) -> None:
    """...and the manifest entry with it, so that the package is consistent with itself."""
    m = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    for f in m["files"]:
        if f["path"] == rel:
            f["sha256"], f["bytes"] = sha256_file(root / rel), (root / rel).stat().st_size
    (root / "manifest.json").write_text(json.dumps(m, ensure_ascii=False, indent=1, sort_keys=True), encoding="utf-8")


def _rewrite_snapshot_manifest(root: Path, table: str) -> None:
    m = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    m["tables"][table]["sha256"] = sha256_file(root / f"{table}.parquet")
    (root / "manifest.json").write_text(json.dumps(m, indent=1, sort_keys=True), encoding="utf-8")


def _package(ctx_dirs: dict[str, Path]) -> None:
    p = ctx_dirs["package"]
    _change_a_value(p / "SXXK" / "DNPLNHAP.parquet", "TON")
    _rewrite_package_manifest(p, "SXXK/DNPLNHAP.parquet")


def _received(ctx_dirs: dict[str, Path]) -> None:
    _change_a_value(ctx_dirs["received"] / "SXXK" / "DNPLNHAP.parquet", "TON")


def _snapshot(ctx_dirs: dict[str, Path]) -> None:
    _change_a_value(ctx_dirs["snapshot"] / "DSX_NPL_NHAP_TL.parquet", "TON")


def _snapshot_and_manifest(ctx_dirs: dict[str, Path]) -> None:
    _change_a_value(ctx_dirs["snapshot"] / "DSX_NPL_NHAP_TL.parquet", "TON")
    _rewrite_snapshot_manifest(ctx_dirs["snapshot"], "DSX_NPL_NHAP_TL")


CASES: dict[str, tuple[str, Callable[[dict[str, Path]], None], str]] = {
    # name: (tampered right before this step, how, what the refusal must name)
    "package file and its manifest entry, between steps 2 and 3": ("pl4_03_handover", _package, "manifest.json"),
    "received copy, between steps 3 and 4": ("pl4_04_restore", _received, "SXXK/DNPLNHAP.parquet"),
    "snapshot file, between steps 5 and 6": ("pl4_06_validate", _snapshot, "DSX_NPL_NHAP_TL.parquet"),
    "snapshot file, between steps 6 and 7": ("pl4_07_sign_off", _snapshot, "DSX_NPL_NHAP_TL.parquet"),
    "snapshot file and its manifest, before the load": ("pl4_08_load", _snapshot_and_manifest, "manifest.json"),
    "snapshot file, before the load": ("pl4_08_load", _snapshot, "DSX_NPL_NHAP_TL.parquet"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_file_changed_between_steps_is_refused_naming_it(case: str, tmp_path: Path, sample_branch: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    before, tamper, named = CASES[case]
    cfg = make_config(tmp_path, sample_branch)
    real = migrate._execute

    def execute(step: str, fn: Any, cfg_: Any, run_id: str, *a: Any, **k: Any) -> dict[str, Any]:
        if step == before:
            run_dir = cfg_.run_dir_root / run_id
            tamper({"package": run_dir / "package", "snapshot": run_dir / "converted",
                    "received": cfg_.handover_dir / cfg_.branch_code / run_id})
        return real(step, fn, cfg_, run_id, *a, **k)
    monkeypatch.setattr(migrate, "_execute", execute)
    with pytest.raises(Exception) as e:
        migrate_branch(config=cfg, auto_approve_demo=True)
    msg = str(e.value)
    assert named in msg and ("altered" in msg or "not the one" in msg), msg
    store = ControlStore(cfg.control_url)
    run = store.latest_runs(1)[0]
    steps = {s.step: s for s in store.steps(run["run_id"])}
    assert steps[before].status == "failed" and named in (steps[before].error or "")
    # nothing after the refusing step ran, and central never received the branch
    order = ["pl4_01_review", "pl4_02_freeze_backup", "pl4_03_handover", "pl4_04_restore", "pl4_05_convert",
             "pl4_06_validate", "pl4_07_sign_off", "pl4_08_load"]
    assert not [s for s in order[order.index(before) + 1:] if s in steps]
    central = Path(cfg.rehearsal_central_url.removeprefix("sqlite:///"))
    if central.exists():
        with sqlite3.connect(central) as c:
            have = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            assert "DTO_KHAI_MD" not in have or c.execute('SELECT count(*) FROM "DTO_KHAI_MD"').fetchone()[0] == 0


def test_custody_hashes_are_those_the_producers_recorded(tmp_path: Path, sample_branch: Path) -> None:
    cfg = make_config(tmp_path, sample_branch)
    s = migrate_branch(config=cfg, auto_approve_demo=True)
    store = ControlStore(cfg.control_url)
    d2 = store.step_detail(s["run_id"], "pl4_02_freeze_backup")
    d5 = store.step_detail(s["run_id"], "pl4_05_convert")
    run_dir = cfg.run_dir_root / s["run_id"]
    assert d2["package_manifest_sha256"] == hashlib.sha256((run_dir / "package" / "manifest.json").read_bytes()).hexdigest()
    assert d5["snapshot_sha256"] == hashlib.sha256((run_dir / "converted" / "manifest.json").read_bytes()).hexdigest()
