"""Measurement behind the staging choice (README, Architecture): restore the same package into
DuckDB (read_parquet) and into SQLite (Arrow batches → executemany), and time a typical
conversion-side query (goods candidates grouped per declaration) on both.

    python -m bench.staging_choice --scale 20
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from extract import staging
from extract.package import PackageManifest, write_package
from extract.source import open_source
from sample_data.generator import GenParams, generate_branch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        generate_branch(root / "b", GenParams(scale=args.scale))
        engines = {db: open_source(f"sqlite:///{root / 'b' / (db.lower() + '.sqlite')}") for db in ("SLXNK", "SXXK")}
        write_package("BENCH", engines, root / "pkg")
        man = PackageManifest.read(root / "pkg")
        rows = sum(f.rows for f in man.files)

        t0 = time.perf_counter()
        con = staging.connect(root / "s.duckdb")
        staging.restore(con, root / "pkg", man)
        duck_restore = time.perf_counter() - t0
        t0 = time.perf_counter()
        n = sum(b.num_rows for b in staging.sxxk_goods_candidates(con, 50_000))
        duck_query = time.perf_counter() - t0
        con.close()

        t0 = time.perf_counter()
        sq = sqlite3.connect(root / "s.sqlite")
        for f in man.files:
            pf = pq.ParquetFile(root / "pkg" / f.path)
            cols = [c.name for c in pf.schema_arrow]
            sq.execute(f'CREATE TABLE "{f.db}_{f.table}" ({", ".join(chr(34) + c + chr(34) for c in cols)})')
            ins = f'INSERT INTO "{f.db}_{f.table}" VALUES ({",".join("?" * len(cols))})'
            for b in pf.iter_batches(50_000):
                sq.executemany(ins, [tuple(str(v) if v is not None and not isinstance(v, (int, float, str)) else v
                                           for v in r.values()) for r in b.to_pylist()])
        sq.commit()
        sqlite_restore = time.perf_counter() - t0
        print(json.dumps({"rows": rows, "goods_candidates": n, "duckdb_restore_s": round(duck_restore, 3),
                          "duckdb_goods_query_s": round(duck_query, 3),
                          "sqlite_restore_s": round(sqlite_restore, 3)}, indent=1))  # noqa: T201


if __name__ == "__main__":
    main()
