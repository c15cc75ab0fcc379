"""kill -9 drill: `ecm run` killed at random points of steps 5 and 8, again and again; after every kill central
holds all of the branch or none of it, its ledger agrees with its rows, and the next run goes on.

    .venv/bin/python -m bench.kill_drill [--kills 20] [--seed 865] [--out bench/cache/kill_drill]

Writes bench/results/kill_drill_<UTC>.json and prints one line per kill. Exits 1 if any invariant breaks.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path


ROOT = Path(__file__).resolve().parent


def _ecm(args: list[str], home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_LOGGING_LEVEL": "WARNING",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    return subprocess.Popen([sys.executable, "-c", "from pipelines.cli import main; main()", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, env=env)


def main() -> None:  # noqa: C901 - one drill, read top to bottom
    from load.central import branch_counts, ledger, open_central
    from load.control_store import ControlStore
    from pipelines.config import load_config
    from pipelines.lifecycle import reconcile_with_central, unload
    from sample_data.demo import write_config
    from sample_data.generator import GenParams, generate_branch
    from transform.convert import branch_base_id

    ap = argparse.ArgumentParser(prog="python -m bench.kill_drill")
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=865)
    ap.add_argument("--out", type=Path, default=ROOT / "cache" / "kill_drill")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    out = args.out.resolve()
    if out.exists():
        import shutil
        shutil.rmtree(out)
    generate_branch(out / "branch", GenParams())
    cfg_path = write_config(out, out / "branch", rehearsal=False, demo_pki=True)
    cfg = load_config(cfg_path)
    store = ControlStore(cfg.control_url)
    base = branch_base_id(cfg.id_cuc_hq, cfg.id_chi_cuc)
    home = out / "prefect"
    results, broken = [], []
    full: int | None = None
    for i in range(args.kills):
        reconcile_with_central(cfg, store)  # a kill right after the commit left it loaded: central's ledger says so
        if store.branch_state(cfg.branch_code)["migrated"]:  # back to "not in central" for the next kill
            unload(cfg, "kill drill", f"reset before kill {i + 1}")
        step = ("pl4_05_convert", "pl4_08_load")[i % 2]
        delay = rng.uniform(0.0, 1.2)
        t0 = time.time()
        p = _ecm(["run", "--config", str(cfg_path), "--auto-approve-demo"], home)
        run_id = None
        while time.time() - t0 < 300 and p.poll() is None:
            lease = store.lease(cfg.branch_code)  # this process's run (not the lease a killed one left behind)
            if lease and lease["holder"].endswith(f":{p.pid}") and (run_id := lease["run_id"]) and \
                    any(s.step == step for s in store.steps(run_id)):
                break
            time.sleep(0.05)
        time.sleep(delay)
        finished_first = p.poll() is not None
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=60)
        engine = open_central(cfg.resolved_url("central"))
        rows = sum(branch_counts(engine, base).values())
        led = ledger(engine, cfg.branch_code)
        engine.dispose()
        last = led[-1]["ACTION"] if led else None
        if rows and last == "load":
            full = full or rows
        ok = run_id is not None and ((rows == 0 and last in (None, "unload")) or
                                     (rows == (full or rows) and last == "load"))
        r = {"kill": i + 1, "step": step, "delay_s": round(delay, 3), "run_id": run_id, "central_rows": rows,
             "ledger_last": last, "finished_before_kill": finished_first, "all_or_nothing_and_ledger_agrees": ok}
        results.append(r)
        print(json.dumps(r, ensure_ascii=False), flush=True)  # noqa: T201
        if not ok:
            broken.append(r)
    # after the last kill: the branch runs again to the end (taking the dead holder's lease over)
    reconcile_with_central(cfg, store)
    replace = ["--replace", "--by", "kill drill", "--reason", "final run"] \
        if store.branch_state(cfg.branch_code)["migrated"] else []
    final = subprocess.run([sys.executable, "-c", "from pipelines.cli import main; main()", "run", "--config",
                            str(cfg_path), "--auto-approve-demo", *replace],
                           env={**os.environ, "PREFECT_HOME": str(home)}, capture_output=True, text=True)
    engine = open_central(cfg.resolved_url("central"))
    end_rows = sum(branch_counts(engine, base).values())
    engine.dispose()
    summary = {"kills": args.kills, "seed": args.seed, "broken": broken, "results": results,
               "final_run_exit": final.returncode, "final_central_rows": end_rows,
               "crashed_runs": sum(1 for r in store.latest_runs(1000) if r["status"] == "crashed"),
               "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (ROOT / "results").mkdir(exist_ok=True)
    path = ROOT / "results" / f"kill_drill_{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(summary, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    print(f"kill drill: {args.kills} kills, {len(broken)} broken; final run exit {final.returncode}, "  # noqa: T201
          f"{end_rows} rows in central; {path}")
    if broken or final.returncode != 0:
        sys.exit(1)


if __name__ == "__main__":
    main()
