"""Every entry of prefect.yaml deploys against a local Prefect server started by this test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prefect.settings import PREFECT_API_URL
from prefect.testing.utilities import prefect_test_harness

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.flow


def test_prefect_yaml_deploys(tmp_path: Path) -> None:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    assert [d["entrypoint"] for d in spec["deployments"]] == [
        "pipelines/migrate.py:migrate_branch", "pipelines/migrate.py:resume_run", "pipelines/wave/flow.py:migrate_wave"]
    with prefect_test_harness(server_startup_timeout=120):
        url = PREFECT_API_URL.value()
        env = {**os.environ, "PREFECT_API_URL": url, "PREFECT_HOME": str(tmp_path), "ECM_PROJECT_DIR": str(ROOT)}
        prefect = Path(sys.executable).with_name("prefect")
        pool = subprocess.run([str(prefect), "work-pool", "create", "ecm-branches", "--type", "process"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert pool.returncode == 0, pool.stdout + pool.stderr
        r = subprocess.run([str(prefect), "--no-prompt", "deploy", "--all"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        ls = subprocess.run([str(prefect), "deployment", "ls"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
        for name in ("migrate-branch/migrate-branch", "resume-run/resume-run", "migrate-wave/migrate-wave"):
            assert name in ls.stdout, ls.stdout + ls.stderr
