"""Shared fixtures: a clean environment, a generated sample branch, and a demo-style branch config."""

from __future__ import annotations

import os
import time
from pathlib import Path

import uuid

import pytest
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from extract.source import _coerce, arrow_schema
from pipelines.config import BranchConfig, load_config
from sample_data.demo import write_config
from sample_data.generator import GenParams, generate_branch


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in list(os.environ):
        if k.startswith("ECM_") and not k.startswith("ECM_TEST_"):
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


# ---- the db tier: the machine's PostgreSQL and MariaDB ------------------------------------------
# URLs of administrative accounts; each test creates and drops its own databases on them.
PG_ADMIN_URL = os.environ.get("ECM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MARIADB_ADMIN_URL = os.environ.get(
    "ECM_TEST_MARIADB_URL", "mariadb+pyodbc://root@127.0.0.1:3306/mysql?driver=MariaDB+Unicode&charset=utf8mb4")


def _require_server(url: str, what: str, env: str) -> str:
    try:
        eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with eng.connect() as c:
            c.exec_driver_sql("SELECT 1")
        eng.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        msg = (f"db tier: {what} not reachable at {make_url(url).render_as_string(hide_password=True)} "
               f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); set {env}")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true requires the db tier: " + msg)
        pytest.skip(msg)
    return url


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    return _require_server(PG_ADMIN_URL, "PostgreSQL", "ECM_TEST_PG_URL")


@pytest.fixture(scope="session")
def mariadb_admin_url() -> str:
    return _require_server(MARIADB_ADMIN_URL, "MariaDB (ODBC driver 'MariaDB Unicode')", "ECM_TEST_MARIADB_URL")


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def with_database(url: str, name: str, driver: str | None = None) -> str:
    """``url`` pointing at database ``name`` (optionally through another driver, e.g. pyodbc)."""
    u = make_url(url).set(database=name)
    if driver:
        u = u.set(drivername=driver)
    return u.render_as_string(hide_password=False)


@pytest.fixture
def pg_database(pg_admin_url: str):  # type: ignore[no-untyped-def]
    """A fresh PostgreSQL database (psycopg URL), dropped afterwards."""
    from sample_data.server import create_database, drop_database
    url = with_database(pg_admin_url, unique_name("ecm_t"))
    create_database(url)
    yield url
    drop_database(url)


def wait_for_run(store, pred, timeout: float = 120):  # type: ignore[no-untyped-def]
    """The newest run of ``store`` once ``pred(run)`` holds (runs driven from another process)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        runs = store.latest_runs(1)
        if runs and pred(runs[0]):
            return runs[0]
        time.sleep(0.5)
    raise AssertionError("timed out waiting for the run")


def typed_select(engine: sa.Engine, table: sa.Table) -> pa.Table:
    """The oracle: SQLAlchemy's typed rows (every column through its type's processor), then Arrow."""
    schema = arrow_schema(table)
    with engine.connect() as c:
        rows = c.execute(sa.select(table)).all()
    cols = list(zip(*rows)) if rows else [() for _ in schema]
    return pa.Table.from_arrays([pa.array(_coerce(col, f.type), type=f.type) for col, f in zip(cols, schema)],
                                schema=schema)


# ---- system packages (.ci/system-packages.sh): missing ones skip loudly outside CI -----------------
_SYSTEM_PACKAGE_OF = {"libodbc.so": "unixodbc", "pg_dump": "postgresql-client", "mariadb-dump": "mariadb-client",
                      "pdfsig": "poppler-utils", "pdftoppm": "poppler-utils", "chromedriver": "chromium-driver",
                      "/usr/bin/chromium": "chromium"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """A test that fails only because a system package is absent is skipped, naming the package and the command
    that installs it — unless CI=true, where every package must be there."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and call.excinfo is not None and os.environ.get("CI", "").lower() != "true":
        exc = call.excinfo.value
        if isinstance(exc, (ImportError, FileNotFoundError, OSError)):
            text = str(exc)
            pkg = next((p for needle, p in _SYSTEM_PACKAGE_OF.items() if needle in text), None)
            if pkg:
                rep.outcome = "skipped"
                rep.longrepr = (str(item.path), item.location[1] or 0,
                                f"Skipped: system package {pkg} is not installed ({text.splitlines()[0][:120]}); "
                                "run `sudo bash .ci/system-packages.sh`")
