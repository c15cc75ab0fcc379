"""The converted snapshot (Phụ lục IV 5.2 / 6.1: "sao lưu lại CSDL đã được chuyển đổi").

One Parquet file per central table, written batch by batch, plus a manifest of rows and SHA-256;
the snapshot's own hash (SHA-256 of its manifest) is what validation and the minutes refer to.
Each file carries ``_SRC_KEY`` (the source row's table and logical key) for sampling and audit;
the central load drops it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from extract.package import sha256_file
from load.central_model import CENTRAL_TABLES, arrow_schema_of

SRC_KEY = "_SRC_KEY"


def snapshot_schema(table: str) -> pa.Schema:
    return arrow_schema_of(table).append(pa.field(SRC_KEY, pa.string()))


class SnapshotWriter:
    def __init__(self, root: Path) -> None:
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        self.root = root
        self.writers = {t.name: pq.ParquetWriter(root / f"{t.name}.parquet", snapshot_schema(t.name),
                                                 compression="zstd") for t in CENTRAL_TABLES}
        self.rows = {t.name: 0 for t in CENTRAL_TABLES}

    def write(self, table: str, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self.writers[table].write_batch(batch)
            self.rows[table] += batch.num_rows

    def close(self, extra_files: dict[str, int] | None = None) -> dict[str, object]:
        """Close every file and write the manifest; ``extra_files`` (name → rows) are hashed into it too."""
        for w in self.writers.values():
            w.close()
        files = {name: {"file": f"{name}.parquet", "rows": n, "sha256": sha256_file(self.root / f"{name}.parquet")}
                 for name, n in self.rows.items()}
        extras = {name: {"rows": n, "sha256": sha256_file(self.root / name)} for name, n in (extra_files or {}).items()}
        man: dict[str, object] = {"tables": files, "files": extras}
        text = json.dumps(man, indent=1, sort_keys=True)
        (self.root / "manifest.json").write_text(text, encoding="utf-8")
        man["snapshot_sha256"] = hashlib.sha256(text.encode()).hexdigest()
        return man


def read_manifest(root: Path) -> dict[str, object]:
    text = (root / "manifest.json").read_text(encoding="utf-8")
    man = json.loads(text)
    man["snapshot_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    return man


def iter_snapshot(root: Path, table: str, batch_rows: int = 50_000, drop_src_key: bool = True):  # type: ignore[no-untyped-def]
    pf = pq.ParquetFile(root / f"{table}.parquet")
    cols = [f.name for f in pf.schema_arrow if not (drop_src_key and f.name == SRC_KEY)]
    yield from pf.iter_batches(batch_size=batch_rows, columns=cols)
