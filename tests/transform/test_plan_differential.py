"""The conversion plan (transform/plan/) against the Python rules it replaces, the oracle: on generated branches
and on hypothesis-generated hostile catalogs, both must give the same fates, the same quarantine (with source
values), the same target file byte for byte, the same IDs, registry and lookups, and the same side reports."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from extract import staging
from pipelines.steps.pl4_05_convert import _rows, _Sink, take_plan
from sample_data.generator import GenParams, generate_branch
from transform import convert as cv, registry
from transform.codes import office_map, unit_map
from transform.plan.sx_items import sx_item_plan

OFFICES = frozenset({"C47D", "C47D01"})


def _ctx() -> cv.ConvertContext:
    return cv.ConvertContext(OFFICES, office_map("2014-latest"), unit_map("2014-latest"),
                             dt.datetime(2026, 11, 1), None)


def _run(con: duckdb.DuckDBPyConnection, out: Path, planned: bool, truncate: list[str],
         prior: list[tuple[Any, ...]] = ()) -> dict[str, Any]:
    from load.snapshot import SnapshotWriter
    ctx, lk = _ctx(), cv.Lookups()
    ids = cv.IdAllocator(cv.branch_base_id(47, 1))
    for key in prior:  # what an earlier run of the branch converted (the ID registry)
        lk.prior.setdefault("sx_items", set()).add(key)
        lk.sx_items[key] = (1, "x", "", " ")
    writer = SnapshotWriter(out)
    sink = _Sink(writer, 7, truncate, lk)  # small batches: chunk boundaries fall inside and across tables
    for loai, table in ((1, "SNPL"), (2, "SSP")):
        if planned:
            take_plan(con, sink, sx_item_plan(loai, ctx.branch_offices), ctx, ids, lk, truncate)
        else:
            for r in _rows(staging.read_table(con, "SXXK", table, 5), f"SXXK.{table}"):
                sink.take(f"SXXK.{table}", r, cv.convert_sx_item(r, loai, ctx, ids, lk))
    sink.flush()
    snap = writer.close({"id_registry_delta.parquet": sink.close_registrations()})
    return {"files": {k: v for k, v in snap["tables"].items() if k == "DSX_SP_NPL"},
            "registry": snap["files"], "fates": dict(sink.fates), "quarantine": sink.quarantine,
            "truncations": sink.truncations, "text_fixes": lk.text_fixes, "units": lk.unmapped_units,
            "items": lk.sx_items, "seq": ids.seq}


def _compare(con: duckdb.DuckDBPyConnection, tmp: Path, truncate: list[str], prior: list[tuple[Any, ...]] = ()) -> None:
    oracle = _run(con, tmp / "oracle", False, truncate, prior)
    plan = _run(con, tmp / "plan", True, truncate, prior)
    for k in oracle:
        assert plan[k] == oracle[k], k


def test_a_generated_branch_converts_the_same_by_plan_and_by_rules(tmp_path: Path) -> None:
    from extract.package import write_package
    from extract.source import open_source
    for shape in ("ecm", "sqlserver-export"):
        d = tmp_path / shape
        generate_branch(d / "branch", GenParams(seed=11, scale=0.3, shape=shape,
                                                defects={"duplicate_key": 0.2, "tcvn3_text": 0.2}))
        man = write_package("C47D", {"SXXK": open_source(f"sqlite:///{d / 'branch' / 'sxxk.sqlite'}")}, d / "pkg")
        con = staging.connect(d / "staging.duckdb")
        staging.restore(con, d / "pkg", man)
        assert con.execute('SELECT count(*) FROM src_sxxk."SNPL"').fetchall()[0][0] > 20
        _compare(con, d, [])
        _compare(con, d / "t", ["DSX_SP_NPL.TEN_VAT_TU"],
                 prior=[tuple(r) for r in con.execute(
                     'SELECT trim("MA_HQ"), trim("MA_DV"), trim("MA_NPL"), 1 FROM src_sxxk."SNPL" LIMIT 3').fetchall()])
        con.close()


# ---- hostile catalogs --------------------------------------------------------------------------------------
_text = st.sampled_from(["C47D", "C47D  ", " C47D\t", "C47D01", "C47D\u00a0", "P01L", "", "  ", None])
_mdv = st.sampled_from(["0100101308", "0100101308 ", "", None, "x" * 18])
_code = st.sampled_from(["VAI", "VAI ", "1VAI", "zz", "", None, "\u00a0", "B" * 31])
_name = st.sampled_from(["Vải cotton", "V¶i cotton", "Vai", "", " ", None, "x" * 256, "Ỏng nhựa"])
_unit = st.sampled_from(["001", "KGM", "  ", None, "999", "MTR "])
_year = st.sampled_from([None, 0, 2010, 2013])
_row = st.tuples(_text, _mdv, _code, _name, st.sampled_from(["3926", " 3926 ", "", None]), _unit,
                 st.sampled_from([None, 1, 123]), _year)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(snpl=st.lists(_row, max_size=14), ssp=st.lists(_row, max_size=8), cut=st.booleans(),
       n_prior=st.integers(0, 2))
def test_hostile_catalogs_convert_the_same_by_plan_and_by_rules(tmp_path_factory: pytest.TempPathFactory,
                                                                snpl: list[tuple], ssp: list[tuple], cut: bool,
                                                                n_prior: int) -> None:
    tmp = tmp_path_factory.mktemp("plan")
    con = duckdb.connect(str(tmp / "s.duckdb"))
    con.execute("CREATE SCHEMA src_sxxk")
    for table, code, name, rows in (("SNPL", "MA_NPL", "TEN_NPL", snpl), ("SSP", "MA_SP", "TEN_SP", ssp)):
        con.execute(f'CREATE TABLE src_sxxk."{table}" ("MA_HQ" VARCHAR, "MA_DV" VARCHAR, "{code}" VARCHAR, '
                    f'"{name}" VARCHAR, "MA_HS" VARCHAR, "MA_DVT" VARCHAR, "SO_TN" INTEGER, "NAM_TN" INTEGER)')
        if rows:
            con.executemany(f'INSERT INTO src_sxxk."{table}" VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [list(r) for r in rows])
    prior = []
    for r in snpl[:n_prior]:
        if all(isinstance(v, str) and v.strip() for v in r[:3]):
            prior.append((r[0].strip(), r[1].strip(), r[2].strip(), 1))
    _compare(con, tmp, ["DSX_SP_NPL.TEN_VAT_TU"] if cut else [], prior)
    con.close()


def test_the_plan_is_declared_with_known_rules_only() -> None:
    from transform.rules import RULES
    p = sx_item_plan(1, OFFICES)
    assert p.source == "SXXK.SNPL" and p.target == "DSX_SP_NPL" and p.registry_kind in registry.KINDS
    assert all(r.code in RULES for r in p.cascade)
    assert set(p.columns) | {p.id_column} == {c for c, _ in __import__("load.central_model", fromlist=["CENTRAL"])
                                              .CENTRAL["DSX_SP_NPL"].columns}
