"""Before/after per office × type (the desk's chart): the same selection as the per-type check, offices named as
central names them, quarantined declarations counted in their own office."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from transform.codes import new_office_code, office_map
from validate.reconcile import (
    declarations_by_office,
    eligible_declarations,
    quarantined_declarations,
    snapshot_declarations,
)


def test_office_by_type_counts_add_up_to_the_per_type_check(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    con.execute("""
      CREATE SCHEMA src_sxxk; CREATE SCHEMA src_slxnk; CREATE SCHEMA quarantine;
      CREATE TABLE src_sxxk."DTOKHAIMD" ("MA_HQ" VARCHAR, "MA_LH" VARCHAR, "THANH_LY" VARCHAR);
      INSERT INTO src_sxxk."DTOKHAIMD" VALUES ('C47D  ', 'NSX01', NULL), ('C47D', 'NSX01', NULL),
        ('C47D01', 'NSX01', 'H'), ('C47D01', 'XSX01', NULL), ('C99Z', 'NSX01', NULL);
      CREATE TABLE src_slxnk."DToKhaiMD" ("Ma_HQ" VARCHAR, "Ma_LH" VARCHAR, "So_HD" VARCHAR, "Ma_DV" VARCHAR,
        "Ngay_HD" DATE);
      INSERT INTO src_slxnk."DToKhaiMD" VALUES ('C47D01', 'NCX01', NULL, 'DN1', NULL),
        ('C47D01', 'NGC01', 'HD1', 'DN1', DATE '2013-01-01'), ('C47D01', 'NGC01', 'HD2', 'DN1', DATE '2013-01-01');
      CREATE TABLE src_slxnk."DHDGC" ("So_HD" VARCHAR, "Ma_HQHD" VARCHAR, "DVGC" VARCHAR, "Ngay_Ky" DATE,
        "ThanhKhoan" INT);
      INSERT INTO src_slxnk."DHDGC" VALUES ('HD1', 'C47D01', 'DN1', DATE '2013-01-01', 0),
        ('HD2', 'C47D01', 'DN1', DATE '2013-01-01', 1);
      CREATE TABLE quarantine.rows (source_table VARCHAR, reason VARCHAR, source_values VARCHAR)""")
    con.execute("INSERT INTO quarantine.rows VALUES ('SXXK.DTOKHAIMD', 'Q-DUPLICATE-KEY', ?), "
                "('SLXNK.DToKhaiMD', 'Q-BAD-VALUE', ?)",
                [json.dumps({"MA_HQ": "C47D", "MA_LH": "NSX01"}), json.dumps({"Ma_HQ": "C47D01", "Ma_LH": "NCX01"})])
    omap = office_map("2014-latest")
    new = {o: new_office_code(o, omap) for o in ("C47D", "C47D01")}
    snap = tmp_path / "snap"
    snap.mkdir()
    con.execute(f"""COPY (SELECT * FROM (VALUES ('SXXK', '{new["C47D"]}', 'NSX01'),
        ('SXXK', '{new["C47D01"]}', 'XSX01'), ('SLXNK', '{new["C47D01"]}', 'NCX01'),
        ('SLXNK', '{new["C47D01"]}', 'NGC01')) t("NGUON", "MA_HQ", "MA_LH"))
        TO '{snap / "DTO_KHAI_MD.parquet"}' (FORMAT parquet)""")
    rows = declarations_by_office(con, snap, ["C47D", "C47D01"], lambda o: new_office_code(o, omap) or o)
    assert rows == sorted([(new["C47D"], "NSX01", 2, 1, 1), (new["C47D01"], "NCX01", 1, 1, 0),
                           (new["C47D01"], "NGC01", 1, 1, 0), (new["C47D01"], "XSX01", 1, 1, 0)])
    # the same totals as the per (DB, type) check the minutes carry
    before, after, quarantined = (eligible_declarations(con, ["C47D", "C47D01"]), snapshot_declarations(con, snap),
                                  quarantined_declarations(con))
    assert sum(r[2] for r in rows) == sum(before.values()) == 5
    assert sum(r[3] for r in rows) == sum(after.values()) and sum(r[4] for r in rows) == sum(quarantined.values())
    # earlier runs' declarations (incremental) count as "after" in their office
    more = declarations_by_office(con, snap, ["C47D", "C47D01"], lambda o: new_office_code(o, omap) or o,
                                  {(new["C47D"], "NSX01"): 1})
    assert (new["C47D"], "NSX01", 2, 2, 1) in more
