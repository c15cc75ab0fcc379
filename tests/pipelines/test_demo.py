"""`make demo` is `ecm demo`: the main job on the bundled sample branch. Run twice in the same place it works
both times (the second starts from an empty central and control store) and converts to the same snapshot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.flow
ECM = str(Path(sys.executable).with_name("ecm"))


def test_the_demo_runs_again_in_the_same_place(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "ph")}
    shas = []
    for _ in range(2):
        r = subprocess.run([ECM, "demo", "--out", str(out)], env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        assert s["status"] == "completed" and all(st["status"] == "completed" for st in s["steps"])
        shas.append(json.loads((Path(s["paths"]["reports"]) / "buoc8_bao_cao_nap.json").read_text())
                    ["snapshot_sha256"])
    assert shas[0] == shas[1]
