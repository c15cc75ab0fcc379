"""Staging runs within its memory budget and spills beyond it; it never downloads an extension."""

from __future__ import annotations

from pathlib import Path

from extract import staging


def test_staging_has_a_budget_a_spill_directory_and_no_downloads(tmp_path: Path) -> None:
    con = staging.connect(tmp_path / "s.duckdb", memory_limit="64MB")
    settings = dict(con.execute(
        "SELECT name, value FROM duckdb_settings() WHERE name IN ('autoinstall_known_extensions', "
        "'autoload_known_extensions', 'temp_directory', 'memory_limit')").fetchall())
    assert settings["autoinstall_known_extensions"] == "false"
    assert settings["autoload_known_extensions"] == "false"
    assert settings["temp_directory"].endswith("s.duckdb.tmp")
    assert settings["memory_limit"].startswith("61") or "MiB" in settings["memory_limit"]
    scratch = staging.scratch()
    assert scratch.execute("SELECT current_setting('autoload_known_extensions')").fetchall() == [(False,)]


def test_a_table_larger_than_the_budget_spills_instead_of_failing(tmp_path: Path) -> None:
    con = staging.connect(tmp_path / "s.duckdb", memory_limit="100MB", temp_dir=tmp_path / "spill")
    con.execute("SET threads = 2; SET preserve_insertion_order = false")
    con.execute("CREATE TABLE big AS SELECT i, md5(i::VARCHAR) || md5((i * 7)::VARCHAR) AS s FROM range(4000000) t(i)")
    # a full sort of ~330 MB of text under a 100 MB budget: only possible out of core
    first, n = con.execute("SELECT min(s), count(*) FROM (SELECT s FROM big ORDER BY s)").fetchall()[0]
    assert n == 4_000_000 and first == con.execute("SELECT min(s) FROM big").fetchall()[0][0]
