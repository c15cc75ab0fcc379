"""Step 8's writes: PostgreSQL central through binary COPY (db tier), and the same contract on SQLite."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from load.central import branch_counts, central_integrity, iter_branch_rows, load_branch, open_central, unload_branch
from load.central_model import CENTRAL
from load.errors import LoadError
from load.snapshot import SRC_KEY, SnapshotWriter, snapshot_schema

BASE_A, BASE_B = 47_001 * 10**9, 47_002 * 10**9
USERS = [{"login": "nva", "full_name": "Nguyễn Văn Ánh", "office": "47D1", "roles": ["KIEM_HOA"]}]


def _snapshot(root: Path, base: int, n_decl: int, *, duplicate: bool = False) -> Path:
    """A small converted snapshot: declarations with two goods lines each (Vietnamese text, exact decimals)."""
    w = SnapshotWriter(root)
    decl = [{"TK_ID": base + i, "MA_HQ": "47D1", "MA_CUC_HQ": "47", "SO_TK": 100 + i, "MA_LH": "NSX01",
             "NAM_DK": 2013, "NGAY_DK": datetime(2013, 5, 1, 10, 2, 3, 123000), "MA_DV": "3600252848",
             "DV_DT": "Công ty TNHH Hải Đăng – Đồng Nai", "TYGIA_VND": 21036.5, SRC_KEY: f"k{i}"}
            for i in range(1, n_decl + 1)]
    if duplicate:
        decl.append(dict(decl[0]))
    goods = [{"TK_ID": d["TK_ID"], "STT_HANG": s, "MA_HQ": "47D1", "TEN_HANG": "Vải dệt kim 100% cotton, khổ 1,6 m",
              "LUONG": Decimal("1234.56789012"), "DGIA_KB": Decimal("0.123456"), SRC_KEY: f"g{s}"}
             for d in decl[:n_decl] for s in (1, 2)]
    for name, rows in (("DTO_KHAI_MD", decl), ("DHANG_MD", goods)):
        sch = snapshot_schema(name)
        full = [{f.name: r.get(f.name) for f in sch} for r in rows]
        w.write(name, pa.RecordBatch.from_pylist(full, schema=sch))
    w.close()
    return root


def _contract(engine: sa.Engine, tmp_path: Path) -> None:
    a = _snapshot(tmp_path / "a", BASE_A, 40)
    loaded = load_branch(engine, a, BASE_A, "C47D", USERS, {"KIEM_HOA": "Kiểm hóa"})
    assert loaded["DTO_KHAI_MD"] == 40 and loaded["DHANG_MD"] == 80 and loaded["CENTRAL_USER"] == 1
    # idempotent: the same load again replaces, never duplicates
    load_branch(engine, a, BASE_A, "C47D", USERS, {"KIEM_HOA": "Kiểm hóa"})
    counts = branch_counts(engine, BASE_A)
    assert counts["DTO_KHAI_MD"] == 40 and counts["DHANG_MD"] == 80
    rows = list(iter_branch_rows(engine, "DHANG_MD", BASE_A))
    assert rows[0]["TEN_HANG"] == "Vải dệt kim 100% cotton, khổ 1,6 m"
    assert rows[0]["LUONG"] == Decimal("1234.56789012") and rows[0]["DGIA_KB"] == Decimal("0.123456")
    decl = list(iter_branch_rows(engine, "DTO_KHAI_MD", BASE_A))[0]
    assert decl["NGAY_DK"] == datetime(2013, 5, 1, 10, 2, 3, 123000) and decl["DV_DT"].endswith("Đồng Nai")
    # a second branch coexists in its own window
    b = _snapshot(tmp_path / "b", BASE_B, 7)
    load_branch(engine, b, BASE_B, "C47E", [], {})
    assert branch_counts(engine, BASE_B)["DTO_KHAI_MD"] == 7
    assert branch_counts(engine, BASE_A)["DHANG_MD"] == 80
    assert all(c["status"] == "pass" for c in central_integrity(engine, BASE_A, set(CENTRAL)))
    # all or nothing: a snapshot that breaks a key loads nothing and leaves the earlier rows in place
    bad = _snapshot(tmp_path / "bad", BASE_A, 40, duplicate=True)
    with pytest.raises(LoadError, match="nothing was loaded"):
        load_branch(engine, bad, BASE_A, "C47D", USERS, {"KIEM_HOA": "Kiểm hóa"})
    assert branch_counts(engine, BASE_A)["DHANG_MD"] == 80
    # unload removes one branch, the other stays untouched
    removed = unload_branch(engine, BASE_B, "C47E")
    assert removed["DTO_KHAI_MD"] == 7 and removed["DHANG_MD"] == 14
    assert sum(branch_counts(engine, BASE_B).values()) == 0
    assert branch_counts(engine, BASE_A)["DTO_KHAI_MD"] == 40


def test_sqlite_central_load_contract(tmp_path: Path) -> None:
    _contract(open_central(f"sqlite:///{tmp_path / 'central.sqlite'}"), tmp_path)


@pytest.mark.db
def test_postgresql_central_binary_copy_contract(tmp_path: Path, pg_database: str) -> None:
    engine = open_central(pg_database)
    assert engine.dialect.driver == "psycopg"
    _contract(engine, tmp_path)
    engine.dispose()


@pytest.mark.db
def test_integrity_finds_an_unresolved_reference_on_central(tmp_path: Path, pg_database: str) -> None:
    engine = open_central(pg_database)
    load_branch(engine, _snapshot(tmp_path / "a", BASE_A, 3), BASE_A, "C47D", [], {})
    with engine.begin() as c:  # a parent disappears behind the loader's back
        c.exec_driver_sql(f'DELETE FROM "DTO_KHAI_MD" WHERE "TK_ID" = {BASE_A + 1}')
    checks = {(c["check_id"], c["table_name"]): c for c in central_integrity(engine, BASE_A, set(CENTRAL))}
    ref = checks[("central_reference", "DHANG_MD")]
    assert ref["status"] == "fail" and ref["actual"] == "2 unresolved"
    engine.dispose()


@pytest.mark.db
def test_pushdown_reconciliation_agrees_with_the_streaming_one(tmp_path: Path, pg_database: str) -> None:
    from load.central import WINDOW
    from load.central_model import central_metadata
    from validate.fingerprint import reconcile
    from validate.fingerprint_sql import kind_of, reconcile_pushdown
    from extract.staging import iter_parquet_sorted

    engine = open_central(pg_database)
    snap = _snapshot(tmp_path / "a", BASE_A, 60)
    load_branch(engine, snap, BASE_A, "C47D", [], {})
    md = central_metadata()

    def both(name: str):  # type: ignore[no-untyped-def]
        spec = CENTRAL[name]
        cols = [c for c, _ in spec.columns]
        where = f'"{spec.window}" > {BASE_A} AND "{spec.window}" <= {BASE_A + WINDOW}'
        push = reconcile_pushdown(name, list(spec.key), [(c, kind_of(md.tables[name].c[c].type)) for c in cols],
                                  snap / f"{name}.parquet", engine, where,
                                  bucket_col=spec.window)
        stream = reconcile(name, list(spec.key), cols, iter_parquet_sorted(snap / f"{name}.parquet", list(spec.key)),
                           iter_branch_rows(engine, name, BASE_A))
        return push, stream

    for name in ("DTO_KHAI_MD", "DHANG_MD"):  # equal: digests match, no row is fetched
        push, stream = both(name)
        assert push.n_diffs == stream.n_diffs == 0 and push.rows_central == stream.rows_central > 0
    with engine.begin() as c:  # one value changed, one row gone, one row too many, one float changed
        c.exec_driver_sql(f'UPDATE "DHANG_MD" SET "LUONG" = "LUONG" + 0.00000001 WHERE "TK_ID" = {BASE_A + 5} '
                          'AND "STT_HANG" = 2')
        c.exec_driver_sql(f'DELETE FROM "DHANG_MD" WHERE "TK_ID" = {BASE_A + 7} AND "STT_HANG" = 1')
        c.exec_driver_sql(f'INSERT INTO "DHANG_MD" ("TK_ID", "STT_HANG") VALUES ({BASE_A + 9}, 3)')
        c.exec_driver_sql(f'UPDATE "DTO_KHAI_MD" SET "TYGIA_VND" = 21036.50000000001 WHERE "TK_ID" = {BASE_A + 3}')
    for name, n in (("DHANG_MD", 3), ("DTO_KHAI_MD", 1)):
        push, stream = both(name)
        assert push.n_diffs == stream.n_diffs == n
        assert sorted((d.key, d.kind, d.columns) for d in push.diffs) == \
            sorted((d.key, d.kind, d.columns) for d in stream.diffs)
    engine.dispose()


def test_copy_types_match_each_central_column_exactly() -> None:
    """Binary COPY carries no types: smallint must travel as int16, numeric(p,s) as decimal(p,s)."""
    from load.central import pg_copy_schema
    from load.central_model import central_metadata
    md = central_metadata()
    s = pg_copy_schema(md.tables["DHANG_MD"])
    assert s.field("NAM_DK").type == pa.int16() and s.field("STT_HANG").type == pa.int32()
    assert s.field("TK_ID").type == pa.int64() and s.field("LUONG").type == pa.decimal128(24, 8)
    assert s.field("TEN_HANG").type == pa.string()
    t = pg_copy_schema(md.tables["DTO_KHAI_MD"])
    assert t.field("NGAY_DK").type == pa.timestamp("us") and t.field("TYGIA_VND").type == pa.float64()


@pytest.mark.db
def test_pushdown_drill_down_with_text_and_decimal_keys(tmp_path: Path, pg_database: str) -> None:
    """Keys like "00123" / "NA" (text) and DGIA_TT (decimal) join exactly; the differences match the streaming path."""
    from extract.staging import iter_parquet_sorted
    from load.central import WINDOW
    from load.central_model import central_metadata
    from validate.fingerprint import reconcile
    from validate.fingerprint_sql import kind_of, reconcile_pushdown

    w = SnapshotWriter(tmp_path / "s")
    items = [{"HD_ID": BASE_A + 1, "MA_SP_GC": code, "TEN_SP_GC": "Áo jacket", "SO_LUONG": Decimal("10.5"),
              SRC_KEY: code} for code in ("00123", "NA", "", "123")]
    stock = [{"HS_TL_ID": BASE_A + i, "DGIA_TT": Decimal(p), "MA_NPL": "V01", "TON": Decimal("1.25"), SRC_KEY: str(i)}
             for i, p in ((1, "0.500000"), (1, "12.000000"), (2, "12.000000"))]
    for name, rows in (("DGC_LOAI_SP", items), ("DSX_NPL_NHAP_TL", stock)):
        sch = snapshot_schema(name)
        w.write(name, pa.RecordBatch.from_pylist([{f.name: r.get(f.name) for f in sch} for r in rows], schema=sch))
    w.close()
    snap = tmp_path / "s"
    engine = open_central(pg_database)
    load_branch(engine, snap, BASE_A, "C47D", [], {})
    with engine.begin() as c:
        c.exec_driver_sql("UPDATE \"DGC_LOAI_SP\" SET \"TEN_SP_GC\" = 'Áo khác' WHERE \"MA_SP_GC\" = '00123'")
        c.exec_driver_sql('UPDATE "DSX_NPL_NHAP_TL" SET "TON" = 2 WHERE "DGIA_TT" = 12 AND "HS_TL_ID" = '
                          f"{BASE_A + 1}")
    md = central_metadata()
    for name in ("DGC_LOAI_SP", "DSX_NPL_NHAP_TL"):
        spec = CENTRAL[name]
        cols = [c for c, _ in spec.columns]
        where = f'"{spec.window}" > {BASE_A} AND "{spec.window}" <= {BASE_A + WINDOW}'
        push = reconcile_pushdown(name, list(spec.key), [(c, kind_of(md.tables[name].c[c].type)) for c in cols],
                                  snap / f"{name}.parquet", engine, where, bucket_col=spec.window)
        stream = reconcile(name, list(spec.key), cols, iter_parquet_sorted(snap / f"{name}.parquet", list(spec.key)),
                           iter_branch_rows(engine, name, BASE_A))
        assert push.n_diffs == stream.n_diffs == 1, (name, push.diffs)
        assert [(d.key, d.kind, d.columns) for d in push.diffs] == [(d.key, d.kind, d.columns) for d in stream.diffs]
    engine.dispose()
