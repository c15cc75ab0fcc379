"""The conversion plan (transform/plan/) against the Python rules it replaces, the oracle: on generated branches
and on hypothesis-generated hostile catalogs, both must give the same fates, the same quarantine (with source
values), the same target file byte for byte, the same IDs, registry and lookups, and the same side reports."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extract import staging
from pipelines.steps.pl4_05_convert import _grouped, _rows, _Sink, sxxk_goods_lookups, take_plan
from sample_data.generator import GenParams, generate_branch
from transform import convert as cv
from transform import registry
from transform.codes import office_map, unit_map
from transform.plan import decl_lookup
from transform.plan.cx_items import cx_item_plan
from transform.plan.gc_cx_norms import cx_norm_plan, gc_norm_plan
from transform.plan.merged import dc_ct_plan, ecs_plan
from transform.plan.slxnk_lines import slxnk_line_plan
from transform.plan.stock import stock_plan
from transform.plan.sx_items import sx_item_plan
from transform.plan.sx_norms import sx_norm_plan
from transform.plan.sxxk_goods import sxxk_goods_plan
from transform.stock import group_by_price

OFFICES = frozenset({"C47D", "C47D01"})


def _ctx(regional: bool = False) -> cv.ConvertContext:
    """The conversion context; ``regional``: central office codes of the 2025 reorganisation (its table covers
    the branch's offices only, as step 5 requires — rows of other offices must never need it)."""
    table = None
    if regional:
        from transform.offices2025 import parse_office_table
        table = parse_office_table("old_code,new_code,new_cuc_code,region,new_name\n"
                                   "47D1,KV18D1,18,XVIII,Hải quan khu vực XVIII\n", "test table")
    omap = dict(office_map("2014-latest"))
    omap.update({"47CD": "47D1", "47CD01": "47D1"})  # both branch offices renamed to the one 2014 code
    return cv.ConvertContext(OFFICES, omap, unit_map("2014-latest"), dt.datetime(2026, 11, 1), table)


# family -> (registry kind, target, [(db, table, plan factory, python rule)], a prior entry's lookup value)
FAMILIES: dict[str, tuple[str, str, list[tuple[str, str, Any, Any]], Any]] = {
    "sx": ("sx_items", "DSX_SP_NPL", [
        ("SXXK", "SNPL", lambda o: sx_item_plan(1, o), lambda r, c, i, lk: cv.convert_sx_item(r, 1, c, i, lk)),
        ("SXXK", "SSP", lambda o: sx_item_plan(2, o), lambda r, c, i, lk: cv.convert_sx_item(r, 2, c, i, lk))],
        (1, "x", "", " ")),
    "cx": ("cx_items", "DCX_DM_HH_DUA_VAO_RA", [
        ("SLXNK", "ecsCX_DM_HH_DUA_VAO_D", lambda o: cx_item_plan(True, o),
         lambda r, c, i, lk: cv.convert_cx_item(r, True, c, i, lk)),
        ("SLXNK", "ecsCX_DM_HH_DUA_RA_D", lambda o: cx_item_plan(False, o),
         lambda r, c, i, lk: cv.convert_cx_item(r, False, c, i, lk))], 1),
}


def _run(con: duckdb.DuckDBPyConnection, out: Path, planned: bool, truncate: list[str],
         prior: list[tuple[Any, ...]] = (), family: str = "sx", regional: bool = False) -> dict[str, Any]:
    from load.snapshot import SnapshotWriter
    kind, target, tables, prior_value = FAMILIES[family]
    ctx, lk = _ctx(regional), cv.Lookups()
    ids = cv.IdAllocator(cv.branch_base_id(47, 1))
    for key in prior:  # what an earlier run of the branch converted (the ID registry)
        lk.prior.setdefault(kind, set()).add(key)
        getattr(lk, kind)[key] = prior_value
    writer = SnapshotWriter(out)
    sink = _Sink(writer, 7, truncate, lk)  # small batches: chunk boundaries fall inside and across tables
    for db, table, plan, rule in tables:
        if planned:
            take_plan(con, sink, plan(ctx.branch_offices), ctx, ids, lk, truncate)
        else:
            for r in _rows(staging.read_table(con, db, table, 5), f"{db}.{table}"):
                sink.take(f"{db}.{table}", r, rule(r, ctx, ids, lk))
    sink.flush()
    snap = writer.close({"id_registry_delta.parquet": sink.close_registrations()})
    return {"files": {k: v for k, v in snap["tables"].items() if k == target},
            "registry": snap["files"], "fates": dict(sink.fates), "quarantine": sink.quarantine,
            "truncations": sink.truncations, "text_fixes": lk.text_fixes, "units": lk.unmapped_units,
            "items": getattr(lk, kind), "seq": ids.seq}


def _compare(con: duckdb.DuckDBPyConnection, tmp: Path, truncate: list[str], prior: list[tuple[Any, ...]] = (),
             family: str = "sx", regional: bool = False) -> None:
    oracle = _run(con, tmp / "oracle", False, truncate, prior, family, regional)
    plan = _run(con, tmp / "plan", True, truncate, prior, family, regional)
    assert sum(oracle["fates"].values()) > 0 or not con.execute(
        f'SELECT count(*) FROM "src_{FAMILIES[family][2][0][0].lower()}"."{FAMILIES[family][2][0][1]}"'
    ).fetchall()[0][0]
    for k in oracle:
        assert plan[k] == oracle[k], (family, k)


def test_a_generated_branch_converts_the_same_by_plan_and_by_rules(tmp_path: Path) -> None:
    from extract.package import write_package
    from extract.source import open_source
    for shape in ("ecm", "sqlserver-export"):
        d = tmp_path / shape
        generate_branch(d / "branch", GenParams(seed=11, scale=0.3, shape=shape,
                                                defects={"duplicate_key": 0.2, "tcvn3_text": 0.2}))
        man = write_package("C47D", {"SXXK": open_source(f"sqlite:///{d / 'branch' / 'sxxk.sqlite'}"),
                                     "SLXNK": open_source(f"sqlite:///{d / 'branch' / 'slxnk.sqlite'}")}, d / "pkg")
        con = staging.connect(d / "staging.duckdb")
        staging.restore(con, d / "pkg", man)
        assert con.execute('SELECT count(*) FROM src_sxxk."SNPL"').fetchall()[0][0] > 20
        assert con.execute('SELECT count(*) FROM src_slxnk."ecsCX_DM_HH_DUA_VAO_D"').fetchall()[0][0] > 5
        _compare(con, d, [])
        _compare(con, d / "t", ["DSX_SP_NPL.TEN_VAT_TU"],
                 prior=[tuple(r) for r in con.execute(
                     'SELECT trim("MA_HQ"), trim("MA_DV"), trim("MA_NPL"), 1 FROM src_sxxk."SNPL" LIMIT 3').fetchall()])
        _compare(con, d / "cx", [], family="cx")
        _compare(con, d / "cxt", ["DCX_DM_HH_DUA_VAO_RA.TEN_HANG"], family="cx",
                 prior=[tuple(r) for r in con.execute(
                     'SELECT trim("MA_HQTN"), trim("MA_DV_XN"), trim("MA_HANG"), 1 FROM '
                     'src_slxnk."ecsCX_DM_HH_DUA_VAO_D" LIMIT 2').fetchall()])
        con.close()


# ---- hostile catalogs --------------------------------------------------------------------------------------
_text = st.sampled_from(["C47D", "C47D  ", " C47D\t", "C47D01", "C47D\u00a0", "P01L", "", "  ", None])
_mdv = st.sampled_from(["0100101308", "0100101308 ", "", None, "x" * 18])
_code = st.sampled_from(["VAI", "VAI ", "1VAI", "zz", "", None, "\u00a0", "B" * 31, "C" * 51])
_name = st.sampled_from(["Vải cotton", "V¶i cotton", "Vai", "", " ", None, "x" * 256, "y" * 257, "Ỏng nhựa"])
_unit = st.sampled_from(["001", "KGM", "  ", None, "999", "MTR ", "ABCDEFG"])
_year = st.sampled_from([None, 0, 2010, 2013])
_row = st.tuples(_text, _mdv, _code, _name, st.sampled_from(["3926", " 3926 ", "", None]), _unit,
                 st.sampled_from([None, 1, 123]), _year)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.lists(_row, max_size=14), second=st.lists(_row, max_size=8), cut=st.booleans(),
       n_prior=st.integers(0, 2), family=st.sampled_from(["sx", "cx"]), regional=st.booleans())
def test_hostile_catalogs_convert_the_same_by_plan_and_by_rules(tmp_path_factory: pytest.TempPathFactory,
                                                                first: list[tuple], second: list[tuple], cut: bool,
                                                                n_prior: int, family: str, regional: bool) -> None:
    tmp = tmp_path_factory.mktemp("plan")
    con = duckdb.connect(str(tmp / "s.duckdb"))
    if family == "sx":
        con.execute("CREATE SCHEMA src_sxxk")
        specs = [('src_sxxk."SNPL"', '"MA_HQ" VARCHAR, "MA_DV" VARCHAR, "MA_NPL" VARCHAR, "TEN_NPL" VARCHAR, '
                  '"MA_HS" VARCHAR, "MA_DVT" VARCHAR, "SO_TN" INTEGER, "NAM_TN" INTEGER', first),
                 ('src_sxxk."SSP"', '"MA_HQ" VARCHAR, "MA_DV" VARCHAR, "MA_SP" VARCHAR, "TEN_SP" VARCHAR, '
                  '"MA_HS" VARCHAR, "MA_DVT" VARCHAR, "SO_TN" INTEGER, "NAM_TN" INTEGER', second)]
    else:
        con.execute("CREATE SCHEMA src_slxnk")
        cols = ('"MA_HQTN" VARCHAR, "MA_DV_XN" VARCHAR, "MA_HANG" VARCHAR, "TEN_HANG" VARCHAR, "MA_HS" VARCHAR, '
                '"MA_DVT" VARCHAR, "LOAI_HANG" INTEGER, "SO_DK" INTEGER, "NAM_DK" INTEGER')
        specs = [('src_slxnk."ecsCX_DM_HH_DUA_VAO_D"', cols, [(*r, 1) for r in first]),
                 ('src_slxnk."ecsCX_DM_HH_DUA_RA_D"', cols, [(*r, 2) for r in second])]
    for table, cols, rows in specs:
        con.execute(f"CREATE TABLE {table} ({cols})")
        if rows:
            n = len(rows[0])
            con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * n)})",
                            [list(r[:6]) + list(r[6:n]) for r in rows])
    prior = []
    for r in first[:n_prior]:
        if all(isinstance(v, str) and v.strip() for v in r[:3]):
            prior.append((r[0].strip(), r[1].strip(), r[2].strip(), 1))
    target = FAMILIES[family][1]
    cut_cols = ["MA_DVT", "TEN_VAT_TU"] if family == "sx" else ["MA_DVT", "TEN_HANG"]  # two in one row: order
    _compare(con, tmp, [f"{target}.{c}" for c in cut_cols] if cut else [], prior, family, regional)
    con.close()


def test_the_plan_is_declared_with_known_rules_only() -> None:
    from transform.rules import RULES
    p = sx_item_plan(1, OFFICES)
    assert p.source == "SXXK.SNPL" and p.target == "DSX_SP_NPL" and p.registry_kind in registry.KINDS
    assert all(r.code in RULES for r in p.cascade)
    assert set(p.columns) | {p.id_column} == {c for c, _ in __import__("load.central_model", fromlist=["CENTRAL"])
                                              .CENTRAL["DSX_SP_NPL"].columns}


def test_every_quarantined_row_is_listed_however_many(tmp_path: Path) -> None:
    """DuckDB hands results over in batches of 122,880 rows: the quarantine list must hold them all."""
    from load.central_model import text_limits
    from transform.plan.engine import run_plan
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    con.execute("CREATE SCHEMA src_sxxk")
    con.execute('CREATE TABLE src_sxxk."SNPL" AS SELECT \'C47D\' AS "MA_HQ", NULL::VARCHAR AS "MA_DV", '
                '\'N\' || i AS "MA_NPL", \'x\' AS "TEN_NPL", NULL::VARCHAR AS "MA_HS", NULL::VARCHAR AS "MA_DVT", '
                'NULL::INTEGER AS "SO_TN", NULL::INTEGER AS "NAM_TN" FROM range(130000) t(i)')
    res = run_plan(con, sx_item_plan(1, OFFICES), _ctx(), id_base=cv.branch_base_id(47, 1), id_start=0,
                   prior_keys=[], limits=text_limits("DSX_SP_NPL"), truncate=[],
                   src_key_columns={"SXXK.SNPL": ("MA_HQ", "MA_DV", "MA_NPL")})
    assert res.fates == {("SXXK.SNPL", "quarantined", "Q-NULL-KEY"): 130000}
    assert len(res.quarantine) == 130000 and len({q["source_key"] for q in res.quarantine}) == 130000


# ---- declarations: DTOKHAIMD (SXXK) then DToKhaiMD (SLXNK), after the contracts and step 4's set-aside rows ----
def _run_decls(con: duckdb.DuckDBPyConnection, out: Path, planned: bool, truncate: list[str],
               prior: dict[tuple[Any, ...], tuple[Any, ...]] | None = None,
               contracts: dict[tuple[str, ...], tuple[Any, ...]] | None = None) -> dict[str, Any]:
    from load.snapshot import SnapshotWriter
    from pipelines.steps.pl4_05_convert import _take_bad_value
    from transform.plan.declarations import declaration_plan
    ctx, lk = _ctx(), cv.Lookups()
    ids = cv.IdAllocator(cv.branch_base_id(47, 1))
    for key, value in (prior or {}).items():  # declarations an earlier run converted (the ID registry)
        lk.prior.setdefault("decls", set()).add(key)
        lk.decls[key] = value
        lk.prior.setdefault("stock", set()).add((*key, "VAI1"))  # and a stock row of each
    if planned:  # the plans keep the converted declarations in staging, as step 5 does
        decl_lookup.create(con, lk.decls, lk.prior.get("decls", set()))
        lk.decls.clear()
    writer = SnapshotWriter(out)
    sink = _Sink(writer, 7, truncate, lk)
    for r in staging.bad_values(con):
        _take_bad_value(sink, lk, r)
    lk.contracts.update(contracts or {})
    for r in _rows(staging.read_table(con, "SLXNK", "DHDGC", 50), "SLXNK.DHDGC"):  # the Python rules, both ways
        sink.take("SLXNK.DHDGC", r, cv.convert_contract(r, ctx, ids, lk))
    for src in cv.GC_ITEM_SOURCES:  # the catalogs the lines link to: the same both ways
        for r in _rows(staging.read_table(con, "SLXNK", src, 50), f"SLXNK.{src}"):
            sink.take(f"SLXNK.{src}", r, cv.convert_gc_item(r, src, ctx, ids, lk))
    for is_in in (True, False):
        take_plan(con, sink, cx_item_plan(is_in, ctx.branch_offices), ctx, ids, lk, truncate)
    for loai in (1, 2):
        take_plan(con, sink, sx_item_plan(loai, ctx.branch_offices), ctx, ids, lk, truncate)
    if planned:  # GC and CX norms
        take_plan(con, sink, gc_norm_plan(ctx.branch_offices), ctx, ids, lk, truncate)
        take_plan(con, sink, cx_norm_plan(ctx.branch_offices), ctx, ids, lk, truncate)
    else:
        hd_key = ["So_HD", "Ma_HQHD", "DVGC", "Ngay_Ky"]
        for grp in _grouped(staging.read_ordered(con, "SLXNK", "DDMuc", hd_key, 5), hd_key, "SLXNK.DDMuc"):
            seen: set = set()
            for r in grp:
                sink.take("SLXNK.DDMuc", r, cv.convert_gc_norm(r, ctx, ids, lk, seen))
        for grp in _grouped(staging.read_ordered(con, "SLXNK", "ecsCX_DinhMuc", ["MA_DV", "MA_HQ"], 5),
                            ["MA_DV", "MA_HQ"], "SLXNK.ecsCX_DinhMuc"):
            seen = set()
            for r in grp:
                sink.take("SLXNK.ecsCX_DinhMuc", r, cv.convert_cx_norm(r, ctx, ids, lk, seen))
    if planned:  # SXXK norms, looking the catalogs up
        take_plan(con, sink, sx_norm_plan(ctx.branch_offices), ctx, ids, lk, truncate)
    else:
        for grp in _grouped(staging.read_ordered(con, "SXXK", "DDINHMUC", ["MA_DV", "MA_HQ"], 5), ["MA_DV", "MA_HQ"],
                            "SXXK.DDINHMUC"):
            seen: set = set()
            for r in grp:
                sink.take("SXXK.DDINHMUC", r, cv.convert_sx_norm(r, ctx, ids, lk, seen))
    for db, table in (("SXXK", "DTOKHAIMD"), ("SLXNK", "DToKhaiMD")):
        if planned:
            take_plan(con, sink, declaration_plan(db, ctx.branch_offices, ctx.freeze_at), ctx, ids, lk, truncate)
        else:
            for r in _rows(staging.declarations_with_ecs(con, db, 5), f"{db}.{table}"):
                ecs = {k[5:]: r.pop(k) for k in list(r) if k.startswith("_ECS_")}
                sink.take(f"{db}.{table}", r, cv.convert_declaration(r, ecs if ecs.get("SOTN") is not None else None,
                                                                     db, ctx, ids, lk))
    # what the children see: the ecsToKhaiMD rows' fates depend on the declarations converted and quarantined
    if planned:
        take_plan(con, sink, ecs_plan(), ctx, ids, lk, truncate)
    else:
        for r in _rows(staging.read_table(con, "SLXNK", "ecsToKhaiMD", 50), "SLXNK.ecsToKhaiMD"):
            sink.take("SLXNK.ecsToKhaiMD", r, cv.ecs_fate(r, lk, ctx))
    chosen_ct: set[tuple] = set()
    if planned:  # the goods lines of SXXK declarations (TH, DC, DK)
        take_plan(con, sink, sxxk_goods_plan(), ctx, ids, lk, truncate, keep=True)
        chosen_ct = sxxk_goods_lookups(con, lk)
    else:
        src_table = {"TH": "SXXK.DHANGMDTH", "DC": "SXXK.DHANGMDDC", "DK": "SXXK.DHANGMDDK"}
        for grp in _grouped(staging.sxxk_goods_candidates(con, 5), ["SOTK", "MA_LH", "MA_HQ", "NAMDK"], "goods"):
            for line, fate in cv.convert_sxxk_goods_group(grp, ctx, lk):
                meta = {k: line.pop(k) for k in list(line) if k.startswith("_")}
                if meta["_SRC"] == "DC" and fate.kind == "converted" and meta.get("_CT_LAN_DC_CT") is not None:
                    chosen_ct.add((*cv.decl_key(line), cv.t(line["MA_PHU"]), line.get("LAN_DC"),
                                   meta["_CT_LAN_DC_CT"]))
                sink.take(src_table[meta["_SRC"]], line, fate)
    if planned:  # the tax details, merged into the kept DC lines
        take_plan(con, sink, dc_ct_plan(), ctx, ids, lk, truncate, chosen_ct)
    else:
        for r in _rows(staging.read_table(con, "SXXK", "DHANGMDDC_CT", 50), "SXXK.DHANGMDDC_CT"):
            sink.take("SXXK.DHANGMDDC_CT", r, cv.dc_ct_fate(r, chosen_ct, lk, ctx))
    if planned:  # the stock, split over the price groups of the kept NSX lines
        take_plan(con, sink, stock_plan(), ctx, ids, lk, truncate)
    else:
        for r in _rows(staging.read_table(con, "SXXK", "DNPLNHAP", 50), "SXXK.DNPLNHAP"):
            sink.take("SXXK.DNPLNHAP", r, cv.convert_stock(r, ctx, ids, lk))
    if planned:  # the goods lines of GC and CX declarations
        take_plan(con, sink, slxnk_line_plan(), ctx, ids, lk, truncate)
    else:
        for grp in _grouped(staging.read_ordered(con, "SLXNK", "DHangMD", ["SoTK", "Ma_LH", "Ma_HQ", "NamDK"], 5),
                            ["SoTK", "Ma_LH", "Ma_HQ", "NamDK"], "SLXNK.DHangMD"):
            seen: set = set()
            for r in grp:
                sink.take("SLXNK.DHangMD", r, cv.convert_slxnk_line(r, ctx, lk, seen))
    sink.flush()
    snap = writer.close({"id_registry_delta.parquet": sink.close_registrations()})
    return {"files": snap["tables"], "registry": snap["files"], "fates": dict(sink.fates), "units": lk.unmapped_units,
            "quarantine": sink.quarantine, "truncations": sink.truncations, "text_fixes": lk.text_fixes,
            "decls": decl_lookup.as_dict(con) if planned else
            {tuple(None if v is None else str(v) for v in k): tuple(v[:5]) for k, v in lk.decls.items()},
            "quarantined_decls": lk.quarantined_decls, "seq": ids.seq,
            "stock_groups": _stock_groups(con, lk, planned), "held_ct": lk.held_ct, "chosen_ct": chosen_ct}


def _typed(entries: list[tuple[tuple[Any, ...], tuple[Any, ...]]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Declarations as the ID registry gives them back (SoTK and NamDK numbers) from the compared, textual keys."""
    return {(int(k[0]), k[1], k[2], int(k[3])): v for k, v in entries}


def _stock_groups(con: duckdb.DuckDBPyConnection, lk: cv.Lookups, planned: bool) -> list[tuple[Any, ...]]:
    """The price groups the stock split uses: the plan's table in staging, or the rules' lines grouped by them."""
    if planned:
        assert not lk.stock_lines  # (the plan keeps no goods line in Python)
        return sorted(con.execute("SELECT tk_id, code, price, qty, rate, total_text FROM lk_stock_groups").fetchall())
    rows = []
    for (tk_id, code), lines in lk.stock_lines.items():
        groups = group_by_price(lines)
        rows += [(tk_id, code, g.price, g.quantity, g.tax_rate, str(sum(x.quantity for x in groups))) for g in groups]
    return sorted(rows)


def _compare_decls(con: duckdb.DuckDBPyConnection, tmp: Path, truncate: list[str],
                   prior: dict[tuple[Any, ...], tuple[Any, ...]] | None = None,
                   contracts: dict[tuple[str, ...], tuple[Any, ...]] | None = None) -> dict[str, Any]:
    oracle = _run_decls(con, tmp / "oracle", False, truncate, prior, contracts)
    plan = _run_decls(con, tmp / "plan", True, truncate, prior, contracts)
    for k in oracle:
        assert plan[k] == oracle[k], k
    return oracle


def test_declarations_convert_the_same_by_plan_and_by_rules(tmp_path: Path) -> None:
    from extract.package import write_package
    from extract.source import open_source
    for shape, defects in (("ecm", {"duplicate_key": 0.1, "tcvn3_text": 0.2, "null_key": 0.05,
                                    "impossible_date": 0.05, "long_text": 0.05}),
                           ("sqlserver-export", {"duplicate_key": 0.1, "bad_value": 0.02, "impossible_date": 0.05})):
        d = tmp_path / shape
        generate_branch(d / "branch", GenParams(seed=5, scale=0.3, shape=shape, defects=defects))
        man = write_package("C47D", {"SXXK": open_source(f"sqlite:///{d / 'branch' / 'sxxk.sqlite'}"),
                                     "SLXNK": open_source(f"sqlite:///{d / 'branch' / 'slxnk.sqlite'}")}, d / "pkg")
        con = staging.connect(d / "staging.duckdb")
        staging.restore(con, d / "pkg", man)
        oracle = _compare_decls(con, d, [])
        fates = {(s, c) for (s, _k, c) in oracle["fates"] if s.endswith(("DTOKHAIMD", "DToKhaiMD"))}
        # the branch exercises the rules, not only the happy path
        assert {("SXXK.DTOKHAIMD", ""), ("SLXNK.DToKhaiMD", ""), ("SLXNK.DToKhaiMD", "R-SL-REGIME")} <= fates
        assert any(c.startswith("Q-") for _s, c in fates), fates
        some = _typed(list(oracle["decls"].items())[:3])
        _compare_decls(con, d / "t", ["DTO_KHAI_MD.DV_DT", "DTO_KHAI_MD.SO_HDTM"], prior=some)
        con.close()


def _empty_staging(path: Path) -> duckdb.DuckDBPyConnection:
    """A staging database with every e-Customs V4 table created empty, as a restore of an empty package leaves it."""
    from extract.contract import declared_duck_type
    from extract.legacy_schema import TABLES_BY_DB
    con = staging.connect(path)
    for db, tables in TABLES_BY_DB.items():
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "src_{db.lower()}"')
        for tb in tables:
            cols = ", ".join(f'"{c}" {declared_duck_type(ty)}' for c, ty in tb.columns)
            con.execute(f'CREATE TABLE "src_{db.lower()}"."{tb.name}" ({cols})')
    return con


_sotk = st.sampled_from([None, 1, 2, 3])
_lh = st.sampled_from(["NKD01", "NKD01 ", "NSX01", "XSX05", "XSX01", "NGC01", "XGC02", "NCX01", "XCX01", "N", "",
                       None, "NTA01"])
_hq = st.sampled_from(["C47D", "C47D ", "C47D01", "P01L", "", None])
_when = st.sampled_from([None, dt.datetime(2013, 5, 5), dt.datetime(2013, 5, 5, 8, 30, 0, 250000),
                         dt.datetime(1989, 12, 31), dt.datetime(1, 1, 1), dt.datetime(2030, 1, 1)])
_hd = st.sampled_from([None, "HD1", " HD1 ", "HD2", "HD9"])
_texts = st.sampled_from([None, "", "Công ty A", "C«ng ty TNHH", "x" * 300, "  y  "])
_decl_row = st.tuples(_sotk, _lh, _hq, st.sampled_from([None, 2013, 2014]), _when, _when,
                      st.sampled_from([None, "0100101308", " 0100101308 "]), _texts, _hd,
                      st.sampled_from([None, dt.datetime(2013, 1, 2), dt.datetime(2013, 1, 3)]), _texts,
                      st.sampled_from([None, "Đỏ", "XANH", "Vµng", "vang ", "?"]), st.sampled_from([None, "H", "K"]),
                      st.sampled_from([None, 3, 0]), st.sampled_from([None, 1]))
_DECL_COLS = ("SOTK", "MA_LH", "MA_HQ", "NAMDK", "NGAY_DK", "NGAY_HOANTHANH", "MA_DV", "DV_DT", "SO_HD", "NGAY_HD",
              "SO_HDTM", "PLUONG", "THANH_LY", "SO_CONTAINER", "SO_CONTAINER40")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sx=st.lists(_decl_row, max_size=10), sl=st.lists(_decl_row, max_size=10),
       ecs=st.lists(st.tuples(_sotk, _lh, _hq, st.sampled_from([None, 2013]), st.sampled_from([None, 7])), max_size=6),
       n_prior=st.integers(0, 2), cut=st.booleans())
def test_hostile_declarations_convert_the_same_by_plan_and_by_rules(tmp_path_factory: pytest.TempPathFactory,
                                                                    sx: list[tuple], sl: list[tuple], ecs: list[tuple],
                                                                    n_prior: int, cut: bool) -> None:
    tmp = tmp_path_factory.mktemp("decl")
    con = _empty_staging(tmp / "s.duckdb")
    cols = ", ".join(f'"{c}"' for c in _DECL_COLS)
    for table, rows in (('src_sxxk."DTOKHAIMD"', sx), ('src_slxnk."DToKhaiMD"', sl)):
        if rows:
            con.executemany(f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * len(_DECL_COLS))})",
                            [list(r) for r in rows])
    if ecs:
        con.executemany('INSERT INTO src_slxnk."ecsToKhaiMD" ("SoTK", "Ma_LH", "Ma_HQ", "NamDK", "SoTN", "NamTN") '
                        'VALUES (?, ?, ?, ?, ?, 2013)', [list(r) for r in ecs])
    # contracts converted earlier in the run: HD1 open, HD2 liquidated (key: So_HD, office, enterprise, YYYYMMDD)
    contracts = {("HD1", "C47D", "0100101308", "20130102"): (7, 0, "47D1"),
                 ("HD2", "C47D", "0100101308", "20130102"): (8, 1, "47D1")}
    prior = {}
    for r in (sx + sl)[:n_prior]:
        if r[0] is not None and r[3] is not None and r[1] and r[1].strip() and r[2] and r[2].strip():
            prior[(r[0], r[1].strip(), r[2].strip(), r[3])] = (cv.branch_base_id(47, 1) + 9, None, "", "N", "SXXK")
    _compare_decls(con, tmp, ["DTO_KHAI_MD.DV_DT", "DTO_KHAI_MD.SO_HDTM"] if cut else [], prior, contracts)
    con.close()


def test_every_declaration_rule_converts_the_same_by_plan_and_by_rules(tmp_path: Path) -> None:
    """A grid of hand-made declarations crossing every selection rule (regimes, offices, dates, liquidation,
    contracts, texts, channels, containers), with duplicates within and across the two databases."""
    import itertools
    con = _empty_staging(tmp_path / "s.duckdb")
    grid = list(itertools.product(
        ["NKD01", "NKD01 ", "NSX01", "XSX05", "XSX01", "NGC01", "XGC02", "NCX01", "XCX01", "N", "", None, "NTA01"],
        ["C47D", " C47D01", "P01L", None],
        [None, dt.datetime(2013, 5, 5, 8, 30, 0, 250000), dt.datetime(1, 1, 1), dt.datetime(2030, 1, 1)],
        [None, "H"], ["HD1", " HD2 ", "HD9", None]))
    texts = [None, "C«ng ty TNHH", "x" * 300, "  Công ty  "]
    channels = [None, "Đỏ", "XANH", "Vµng", "vang ", "?"]
    rows = []
    for i, (lh, hq, when, tl, hd) in enumerate(grid):
        rows.append([i % 997 if i % 50 else None, lh, hq, 2013 if i % 41 else None, when, dt.datetime(2013, 6, 1),
                     "0100101308" if i % 3 else " 0100101308 ", texts[i % 4], hd, dt.datetime(2013, 1, 2),
                     texts[(i // 4) % 4], channels[i % 6], tl, [None, 3, 0][i % 3], [None, 1][i % 2]])
    cols = ", ".join(f'"{c}"' for c in _DECL_COLS)
    marks = ", ".join("?" * len(_DECL_COLS))
    con.executemany(f'INSERT INTO src_sxxk."DTOKHAIMD" ({cols}) VALUES ({marks})', rows)
    con.executemany(f'INSERT INTO src_slxnk."DToKhaiMD" ({cols}) VALUES ({marks})', rows[::3] + rows[:40])
    con.executemany('INSERT INTO src_slxnk."ecsToKhaiMD" ("SoTK", "Ma_LH", "Ma_HQ", "NamDK", "SoTN", "NamTN", '
                    '"MessageId", "NgayTN") VALUES (?, ?, ?, ?, ?, 2013, \' M1 \', TIMESTAMP \'2013-05-06\')',
                    [[r[0], r[1], r[2], r[3], [None, 7][i % 2]] for i, r in enumerate(rows[::7])])
    # goods lines of the SLXNK declarations: line numbers repeated, missing, negative quantities, names, units
    lines = []
    for i, r in enumerate(rows[::3] + rows[:40]):
        for j in range(1 + i % 6):  # numbers 1, 2, 2 (a duplicate), none, 3 (too long a name), 4 (negative)
            lines.append([r[0], r[1] if j != 2 else (r[1] or "") + " ", r[2], r[3], [1, 2, 2, None, 3, 4][j],
                          ["NVAI", "SAO", " N", None, "X1", "N1"][j], ["Vải", "V¶i", None, "Áo", "z" * 300, "x"][j],
                          ["KGM", "001", "999", None][(i + j) % 4], [1.5, None, 2, 1, 1, -2][j], 12.345678, 3.1])
    con.executemany('INSERT INTO src_slxnk."DHangMD" ("SoTK", "Ma_LH", "Ma_HQ", "NamDK", "STTHang", "Ma_Phu", '
                    '"Ten_Hang", "Ma_DVT", "Luong", "DGia_KB", "TriGia_KB") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
                    lines)
    # SXXK goods lines: TH/DC/DK per MA_PHU (amendment rounds, ties, gap fill, the DK code of hazard 9,
    # duplicates, a DK line without a declaration key), tax details, prices on rounding ties, and stock
    goods = ('"SOTK", "MA_LH", "MA_HQ", "NAMDK", "MA_PHU", "MA_NPL_SP", "TEN_HANG", "MA_DVT", "LUONG", "DGIA_TT", '
             '"TRIGIA_KB", "THUE_XNK"')
    th, dk, dc, ct, stock = [], [], [], [], []
    for i, r in enumerate(rows[::5]):
        k = [r[0], r[1], r[2], r[3]]
        name, price = ["V¶i", "z" * 300, None, "Vải"][i % 4], [0.0000005, 1.0000015, 2.675, 12.3456785][i % 4]
        qty = -1 if i % 17 == 3 else 2.5
        th += [k + ["N1", "N1", name, "KGM", qty, price, 0.00005, 1.5], k + ["N2", "VAI", "Áo", "001", 1, 1.25, 3, 0],
               k + ["N2", "VAI", "Áo", "001", 1, 1.25, 3, 0], k + [None, "X", "Áo", "999", 1, 1, 1, 1]]
        dc += [k + ["N1", "N1", name, "KGM", 3, price, 2, 1, 1], k + ["N1", "N1", "Áo", "KGM", 4, 2.5, 2, 1, 2],
               k + ["N1", "N1", "Áo 2", "KGM", 5, 2.5, 2, 1, 2], k + ["N3", "VAI3", "Áo", "KGM", 1, 2, 2, 1, None]]
        dk += [k + ["N1", "VAI1", "Áo", "KGM", 1, 1, 1, 1], k + ["N4", "VAI4", name, "001", qty, price, 1, 1],
               (k if i % 3 else [None, *k[1:]]) + ["N5", "N5", "Áo", "KGM", 1, 1, 1, 1],
               k + ["N6", "VAI4", "Áo", "KGM", 2, 7.5, 1, 1], k + ["N7", "VAI4", "Áo", "KGM", 3, 7.5, 1, 1]]
        ct += [k + ["N1", 2, c, 0.15 * c, 0.1] for c in (1, 2)] + [k + ["N1", 1, 1, 9.5, 0.1]]
        stock += [k + ["VAI1", 10, 4], k + ["VAI1", 10, 4.5], k + ["N2", 5, 0], k + ["VAI", 3, 1], k + ["VAI1", 1, 5], k + ["VAI1", 100, 90],
                  k + [None, 1, 1], k + ["VAI4", -1, 0], k + ["VAI4", 10, 3 + i % 4], k + [" N5 ", None, None]]
    marks = ", ".join("?" * 12)
    con.executemany(f'INSERT INTO src_sxxk."DHANGMDTH" ({goods}) VALUES ({marks})', th)
    con.executemany(f'INSERT INTO src_sxxk."DHANGMDDK" ({goods}) VALUES ({marks})', dk)
    con.executemany(f'INSERT INTO src_sxxk."DHANGMDDC" ({goods}, "LAN_DC") VALUES ({marks}, ?)', dc)
    con.executemany('INSERT INTO src_sxxk."DHANGMDDC_CT" ("SOTK", "MA_LH", "MA_HQ", "NAMDK", "MA_PHU", "LAN_DC", '
                    '"LAN_DC_CT", "THUE_XNK", "THUE_VAT") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)', ct)
    con.executemany('INSERT INTO src_sxxk."DNPLNHAP" ("SOTK", "MA_LH", "MA_HQ", "NAMDK", "MA_NPL", "LUONG", "TON") '
                    'VALUES (?, ?, ?, ?, ?, ?, ?)', stock)
    con.executemany('INSERT INTO src_sxxk."SNPL" ("MA_HQ", "MA_DV", "MA_NPL", "TEN_NPL") VALUES (?, ?, ?, ?)',
                    [["C47D", "0100101308", "VAI1", "Vải"], ["C47D", "0100101308", "N2", "x"],
                     ["C47D01", "0100101308", "VAI", "y"]])
    con.executemany('INSERT INTO src_sxxk."SSP" ("MA_HQ", "MA_DV", "MA_SP", "TEN_SP", "MA_DVT") VALUES (?, ?, ?, ?, ?)',
                    [["C47D", "0100101308", "SP1", "Áo", "001"], ["C47D ", "0100101308", "SP2", "Quần", None]])
    # norms: known and unknown items around a key's occurrence, duplicates, negative rates, another office
    norms = [[sp, npl, dv, hq, dm, tl, note] for sp in ("SP1", " SP2", "SP9", None) for npl in ("VAI1", "N2", "X")
             for dv in ("0100101308", " 0100101308") for hq in ("C47D", "P01L") for dm, tl, note in
             (((2, 0.5, "z" * 300), (1.5, 0, "ghi chó"), (-1, 0, None)) if npl == "N2" else
              ((1.5, 0, "ghi chó"), (2, 0.5, "z" * 300), (-1, 0, None)))]
    con.executemany('INSERT INTO src_sxxk."DDINHMUC" ("MA_SP", "MA_NPL", "MA_DV", "MA_HQ", "DM_SD", "TL_HH", '
                    '"GHI_CHU") VALUES (?, ?, ?, ?, ?, ?, ?)', norms + norms[::5])
    # GC items and norms of contract HD1 (and of contracts missing or of another office); CX catalog and norms
    hd = ("HD1", "C47D", "0100101308", dt.datetime(2013, 1, 2))
    con.executemany('INSERT INTO src_slxnk."DSPGC" ("So_HD", "Ma_HQHD", "DVGC", "Ngay_Ky", "P_Code", "Ten_SP") '
                    'VALUES (?, ?, ?, ?, ?, ?)', [[*hd, "SSP1", "Áo"], [*hd, "SSP2", "Quần"]])
    con.executemany('INSERT INTO src_slxnk."DNPLHD" ("So_HD", "Ma_HQHD", "DVGC", "Ngay_Ky", "P_Code", "Ten_NPL") '
                    'VALUES (?, ?, ?, ?, ?, ?)', [[*hd, "NVAI", "Vải"], [*hd, " NCHI", "Chỉ"]])
    gc_norms = [[*c, sp, npl, name, unit, dm, tl] for c in (hd, (" HD1 ", "C47D", "0100101308", hd[3]),
                                                           ("HD9", "C47D", "0100101308", hd[3]),
                                                           ("HD1", "P01L", "0100101308", hd[3]), (None, *hd[1:]))
                for sp in ("SSP1", "SSP9", " SSP2", None) for npl in ("NVAI", "NCHI", "NX")
                for name, unit, dm, tl in ((("z" * 300, "KGM", 2, 0), ("V¶i", "999", 1.5, 0.1), ("Áo", None, -1, 0))
                                           if npl == "NCHI" else
                                           (("V¶i", "999", 1.5, 0.1), ("z" * 300, "KGM", 2, 0), ("Áo", None, -1, 0)))]
    con.executemany('INSERT INTO src_slxnk."DDMuc" ("So_HD", "Ma_HQHD", "DVGC", "Ngay_Ky", "SPP_Code", "NPLP_Code", '
                    '"Ten_SP", "Ma_DVT", "DMGC", "TLHH") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', gc_norms)
    for table, code in (("ecsCX_DM_HH_DUA_RA_D", "SPX"), ("ecsCX_DM_HH_DUA_VAO_D", "NPX")):
        con.execute(f'INSERT INTO src_slxnk."{table}" ("MA_HQTN", "MA_DV_XN", "MA_HANG") VALUES '
                    f"('C47D', '0100101308', '{code}')")
    cx_norms = [[hq, dv, sp, npl, dm, 0.5] for hq in ("C47D", "P01L", None) for dv in ("0100101308", " 0100101308")
                for sp in ("SPX", "SPZ") for npl in ("NPX", "NPX ", "NPZ") for dm in (1.0, -2.0)]
    con.executemany('INSERT INTO src_slxnk."ecsCX_DinhMuc" ("MA_HQ", "MA_DV", "MA_SP", "MA_NPL", "DINH_MUC", '
                    '"TY_LE_HH") VALUES (?, ?, ?, ?, ?, ?)', cx_norms)
    contracts = {("HD1", "C47D", "0100101308", "20130102"): (7, 0, "47D1"),
                 ("HD2", "C47D01", "0100101308", "20130102"): (8, 1, "47D1")}
    oracle = _compare_decls(con, tmp_path, ["DTO_KHAI_MD.DV_DT"], contracts=contracts)
    for table in ("SLXNK.DDMuc", "SLXNK.ecsCX_DinhMuc"):
        codes = {c for (src, _k, c) in oracle["fates"] if src == table}
        assert {"", "Q-NULL-KEY", "Q-NEGATIVE-QTY", "Q-DUPLICATE-KEY", "Q-UNKNOWN-ITEM"} <= codes, (table, codes)
    assert {("SLXNK.DDMuc", "quarantined", "Q-GC-NO-CONTRACT"), ("SLXNK.DDMuc", "excluded", "R-OTHER-OFFICE"),
            ("SLXNK.DDMuc", "quarantined", "Q-VALUE-TOO-LONG"), ("SLXNK.ecsCX_DinhMuc", "excluded", "R-OTHER-OFFICE")
            } <= set(oracle["fates"])
    norm_codes = {c for (src, _k, c) in oracle["fates"] if src == "SXXK.DDINHMUC"}
    assert {"", "Q-NULL-KEY", "Q-NEGATIVE-QTY", "Q-DUPLICATE-KEY", "Q-UNKNOWN-ITEM", "R-OTHER-OFFICE",
            "Q-VALUE-TOO-LONG"} <= norm_codes, norm_codes
    goods_codes = {c for (src, _k, c) in oracle["fates"] if src.startswith("SXXK.DHANGMD")}
    assert {"", "Q-NULL-KEY", "Q-NEGATIVE-QTY", "Q-DUPLICATE-KEY", "R-DECL-NOT-SELECTED", "Q-PARENT-QUARANTINED",
            "Q-VALUE-TOO-LONG", "R-NSX-GOODS-FROM-DC", "R-DC-SUPERSEDED", "R-DK-SUPERSEDED", "R-DC-NOT-NSX",
            "R-DC-CT-SUPERSEDED"} <= goods_codes, goods_codes
    assert oracle["stock_groups"] and oracle["held_ct"] and oracle["chosen_ct"]
    stock_codes = {c for (src, _k, c) in oracle["fates"] if src == "SXXK.DNPLNHAP"}
    assert {"", "Q-NULL-KEY", "Q-NEGATIVE-QTY", "Q-TON-GT-LUONG", "Q-TON-GT-GOODS", "R-STOCK-ZERO",
            "R-DECL-NOT-SELECTED", "Q-PARENT-QUARANTINED"} <= stock_codes, stock_codes
    line_codes = {c for (src, _k, c) in oracle["fates"] if src == "SLXNK.DHangMD"}
    assert {"", "Q-NULL-KEY", "Q-NEGATIVE-QTY", "Q-DUPLICATE-KEY", "R-DECL-NOT-SELECTED", "Q-PARENT-QUARANTINED",
            "Q-VALUE-TOO-LONG"} <= line_codes, line_codes
    codes = {c for (_s, _k, c) in oracle["fates"]}
    assert {"", "Q-NULL-KEY", "R-OTHER-OFFICE", "R-SXXK-LIQUIDATED", "Q-IMPOSSIBLE-DATE", "R-SL-REGIME",
            "Q-GC-NO-CONTRACT", "R-GC-CONTRACT-LIQUIDATED", "Q-DUPLICATE-KEY", "Q-VALUE-TOO-LONG"} <= codes, codes
    assert oracle["text_fixes"] and oracle["truncations"]
    _compare_decls(con, tmp_path / "p", [], prior=_typed(list(oracle["decls"].items())[:5]), contracts=contracts)
    con.close()


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
    st.integers(-10**9, 10**9).map(lambda i: i / 10**6),        # numbers of six decimals, as prices are
    st.integers(-10**13, 10**13).map(lambda i: i / 10**4),
    st.sampled_from([0.0000005, 1.0000015, 2.675, 12.3456785, 0.00005, -0.0000005, 999999999.9999995, 1e9 + 0.5])),
    min_size=1, max_size=40))
def test_exact_decimals_in_sql_agree_with_the_rules_rounding(values: list[float]) -> None:
    """The SQL fast path of :func:`transform.plan.sql.exact_decimal` (a float that already is a number of the scale)
    and the Python path give exactly the rules' half-even decimal of the float's shortest text."""
    from transform.plan.functions import mapping_table, register_udfs
    from transform.plan.sql import exact_decimal
    con = duckdb.connect()
    register_udfs(con)
    con.execute("CREATE TABLE t (x DOUBLE)")
    con.executemany("INSERT INTO t VALUES (?)", [[v] for v in values])
    for scale in (4, 6):
        sql, m = exact_decimal("s.x", "x_exact", scale)
        slow = con.sql(f"SELECT DISTINCT {m.source} AS v FROM t AS s WHERE {m.where}").to_arrow_table().column("v")
        con.register("map_x", mapping_table(_ctx(), m.fn, slow.combine_chunks()))
        got = con.execute(f"SELECT s.x, {sql} FROM t AS s LEFT JOIN map_x AS x_exact "
                          "ON x_exact.v IS NOT DISTINCT FROM s.x ORDER BY s.rowid").fetchall()
        con.unregister("map_x")
        assert [(x, d) for x, d in got] == [(v, cv.dec(v, scale)) for v in values]
    con.close()
