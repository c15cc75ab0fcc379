from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.steps.pl4_06_validate import _rows_at


def test_rows_at_reads_exact_positions_across_batches(tmp_path: Path) -> None:
    p = tmp_path / "t.parquet"
    pq.write_table(pa.table({"i": list(range(120_000))}), p, row_group_size=30_000)
    picks = [0, 1, 49_999, 50_000, 99_999, 119_999]
    assert [r["i"] for r in _rows_at(pq.ParquetFile(p), picks)] == picks
