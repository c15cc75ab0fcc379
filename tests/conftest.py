"""Shared fixtures: a clean environment, a generated sample branch, and a demo-style branch config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.config import BranchConfig, load_config
from sample_data.demo import write_config
from sample_data.generator import GenParams, generate_branch


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in list(os.environ):
        if k.startswith("ECM_"):
            monkeypatch.delenv(k, raising=False)


@pytest.fixture(scope="session")
def sample_branch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("sample") / "branch"
    generate_branch(d, GenParams())
    return d


def make_config(root: Path, branch: Path, **overrides: object) -> BranchConfig:
    """A demo-style config; a run that unexpectedly waits for a decision fails after 60 s instead of hanging."""
    path = write_config(root, branch)
    return load_config(path, {"policy": {"decision_timeout_seconds": 60, "poll_seconds": 1}, **overrides})


@pytest.fixture
def branch_config(tmp_path: Path, sample_branch: Path) -> BranchConfig:
    return make_config(tmp_path, sample_branch)
