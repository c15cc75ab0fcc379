"""Where step 5's time and memory go, table by table: re-run the conversion of a finished benchmark run.

    .venv/bin/python -m bench.step5_trace bench/cache/work/L4      # the work folder of `python -m bench`

Step 5 runs again in this process on the run's staging (its snapshot goes to a scratch folder, the run's own
files stay as they are); a thread samples this process's RSS every 50 ms and every progress report of the step
(one per source table or batch) of a new label closes a segment. Printed: per source table, wall seconds and the peak RSS while
it converted — the profile behind bench/README's notes on step 5. Not a test, and it changes nothing the run
recorded except what a correction round would (findings of step 5 are superseded by the re-run's).
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from extract import staging
from load.control_store import ControlStore
from pipelines import progress
from pipelines.config import load_config
from pipelines.steps import pl4_05_convert
from pipelines.steps.base import StepContext

MIB = 1024 * 1024


class _TimedConnection:
    """The staging connection, timing each SQL statement (a statement's result is read within the same call when
    it is a DDL/DML; a query's reading is timed by whoever reads it)."""

    def __init__(self, con: Any, slow: list[tuple[float, str]]) -> None:
        self._con, self._slow = con, slow

    def execute(self, sql: str, *args: Any) -> Any:
        t0 = time.perf_counter()
        out = self._con.execute(sql, *args)
        self._slow.append((time.perf_counter() - t0, " ".join(sql.split())))
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def main(work: Path) -> None:
    cfg = load_config(work / "branch.toml")
    store = ControlStore(f"sqlite:///{work / 'control.sqlite'}")
    run_id = store.latest_runs(1)[0]["run_id"]
    scratch = Path(tempfile.mkdtemp(prefix="step5-trace-"))
    cfg = cfg.model_copy(update={"run_dir_root": scratch})
    src_run = work / "runs" / run_id
    (scratch / run_id).mkdir(parents=True)
    if (src_run / "reports").exists():
        (scratch / run_id / "reports").mkdir()
    me = psutil.Process()
    segments: list[tuple[str, float, int]] = []  # (label, seconds, peak RSS bytes)
    state = {"label": "start", "t": time.perf_counter(), "peak": me.memory_info().rss}
    lock, stop = threading.Lock(), threading.Event()

    def sample() -> None:
        while not stop.is_set():
            rss = me.memory_info().rss
            with lock:
                state["peak"] = max(state["peak"], rss)
            time.sleep(0.05)

    def sink(step: str, label: str, rows: int, total: int | None) -> None:
        with lock:
            if label != state["label"]:
                now = time.perf_counter()
                segments.append((label, now - float(state["t"]), int(state["peak"])))
                state.update(label=label, t=now, peak=me.memory_info().rss)

    slow: list[tuple[float, str]] = []
    connect = staging.connect
    pl4_05_convert.staging.connect = lambda *a, **k: _TimedConnection(connect(*a, **k), slow)  # type: ignore
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    progress.set_sink(sink)
    t0 = time.perf_counter()
    out = pl4_05_convert.run(StepContext(cfg, store, run_id))
    wall = time.perf_counter() - t0
    sink("", "end", 0, None)
    stop.set()
    # a segment ends at a label's first report: a plan reports once, after its SQL ran (so its segment holds
    # its SQL and the previous table's writing); a table of the Python rules reports after its first batch
    print(f"step 5 again on {work}: {wall:.1f} s, {out.rows_out:,} central rows, peak RSS "
          f"{max(p for _l, _s, p in segments) / MIB:,.0f} MiB")
    print(f"{'until progress of':<34}{'seconds':>9}{'peak MiB':>10}")
    for label, secs, peak in segments:
        print(f"{label:<34}{secs:>9.1f}{peak / MIB:>10,.0f}")
    print("\nSQL statements of 1 s or more, in order:")
    for secs, sql in slow:
        if secs >= 1:
            print(f"{secs:7.1f} s  {sql[:150]}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/cache/work/L4"))
