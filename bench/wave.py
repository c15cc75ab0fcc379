"""``python -m bench.wave``: the wall time of one wave of branches with one worker and with two, on the same
branches, one Prefect server (this machine), a PostgreSQL central. Never a timed test: the numbers go to
bench/results/wave-<UTC timestamp>.json and are printed.

    python -m bench.wave                    # 4 sample branches (GenParams scale 1), 1 then 2 workers
    python -m bench.wave --branches 6 --scale 4

Each worker runs one branch at a time (``--limit 1``): with one worker the wave is serial, with two at most two
branches work at once. Each branch reads its own SQLite files (its own "server"), so the per-source limit does not
serialise them; central's limit is 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import references as ref
from sample_data.demo import write_config
from sample_data.generator import GENERATOR_VERSION, GenParams, generate_branch, total_rows

ROOT = Path(__file__).resolve().parent
PROJECT = ROOT.parent
BIN = Path(sys.executable).parent
PG_ADMIN = os.environ.get("ECM_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(api: str) -> bool:
    try:
        with urllib.request.urlopen(api + "/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _branches(n: int, scale: float, work: Path) -> tuple[list[Path], int]:
    src = ROOT / "cache" / f"v{GENERATOR_VERSION}-wave-scale{scale:g}" / "branch"
    if not (src / "manifest.json").exists():
        generate_branch(src, GenParams(scale=scale))
    rows = total_rows(json.loads((src / "manifest.json").read_text(encoding="utf-8")))
    users = json.loads((src / "users.json").read_text(encoding="utf-8"))
    out = []
    for i in range(n):
        code = f"C{47 + i // 9:02d}{'DEFGHJKLM'[i % 9]}"
        d = work / code.lower()
        d.mkdir(parents=True)
        b = d / "branch"
        shutil.copytree(src, b)
        (b / "users.json").write_text(json.dumps([{**u, "login": f"{code.lower()}_{u['login']}"} for u in users],
                                                 ensure_ascii=False), encoding="utf-8")
        out.append((code, i + 1, d, b))
    return [d for _c, _i, d, _b in out], rows  # configs written per round (fresh central)


def _round(workers: int, n: int, scale: float, work: Path) -> dict[str, Any]:
    rdir = work / f"workers-{workers}"
    if rdir.exists():
        shutil.rmtree(rdir)
    rdir.mkdir(parents=True)
    dirs, rows = _branches(n, scale, rdir)
    central = ref.fresh_db(PG_ADMIN, f"ecm_bench_wave_central_{workers}")
    control = f"sqlite:///{rdir / 'control.sqlite'}"
    cfgs = []
    for i, d in enumerate(dirs, start=1):
        code = d.name.upper()
        p = write_config(d, d / "branch", code=code, id_chi_cuc=i, rehearsal=False, central_url=central)
        p.write_text(p.read_text(encoding="utf-8").replace(
            f'control_url = "sqlite:///{(d / "control.sqlite").as_posix()}"', f'control_url = "{control}"'),
            encoding="utf-8")
        cfgs.append(p)
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "PREFECT_API_URL": api,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false",
           "ECM_PROJECT_DIR": str(PROJECT), "PREFECT_LOGGING_LEVEL": "WARNING"}
    procs: list[subprocess.Popen[bytes]] = []
    logs = rdir / "logs"
    logs.mkdir()

    def start(cmd: list[str], name: str, **extra: str) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(cmd, env={**env, "PREFECT_HOME": str(rdir / f"home-{name}"), **extra},
                             stdout=(logs / f"{name}.log").open("wb"), stderr=subprocess.STDOUT, cwd=PROJECT)
        procs.append(p)
        return p
    try:
        start([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)], "server")
        deadline = time.monotonic() + 180
        while not _healthy(api):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Prefect server did not start; see {logs / 'server.log'}")
            time.sleep(0.5)
        for cmd in (["work-pool", "create", "ecm-branches", "--type", "process"], ["--no-prompt", "deploy", "--all"]):
            r = subprocess.run([str(BIN / "prefect"), *cmd], env={**env, "PREFECT_HOME": str(rdir / "home-hq")},
                               cwd=PROJECT, capture_output=True, text=True, timeout=300)
            if r.returncode:
                raise RuntimeError(r.stdout[-2000:] + r.stderr[-2000:])
        for w in range(workers):
            start([str(BIN / "prefect"), "worker", "start", "--pool", "ecm-branches", "--type", "process",
                   "--name", f"w{w + 1}", "--limit", "1"], f"worker{w + 1}")
        plan = rdir / "wave.toml"
        plan.write_text(f'wave = "bench-{workers}"\nmode = "production"\ncontrol_url = "{control}"\n'
                        f'auto_approve_demo = true\npoll_seconds = 1\n[limits]\ntotal = {n}\nper_central = 2\n'
                        + "".join(f'[[branch]]\nconfig = "{p.relative_to(rdir).as_posix()}"\n' for p in cfgs),
                        encoding="utf-8")
        t0 = time.time()
        r = subprocess.run([str(BIN / "ecm"), "wave", "run", str(plan)], env={**env, "PREFECT_HOME": str(
            rdir / "home-hq")}, cwd=PROJECT, capture_output=True, text=True)
        wall = time.time() - t0
        if r.returncode:
            raise RuntimeError(f"ecm wave run failed: {r.stdout[-3000:]}{r.stderr[-3000:]}")
        report = json.loads((rdir / "out" / "waves" / f"bench-{workers}" / "wave_report.json").read_text())
        bad = [b for b in report["branches"] if b["state"] != "completed"]
        if bad:
            raise RuntimeError(f"branches not completed: {bad}")
        return {"workers": workers, "branches": n, "legacy_rows_per_branch": rows, "wall_seconds": round(wall, 1),
                "wave_seconds": report["wall_seconds"], "limits_respected": report["limits_respected"],
                "branch_seconds": {b["branch"]: b["seconds"] for b in report["branches"]},
                "rows_loaded": sum(b["rows_loaded"] or 0 for b in report["branches"])}
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.wave", description=__doc__.split("\n")[0])
    ap.add_argument("--branches", type=int, default=4)
    ap.add_argument("--scale", type=float, default=1.0, help="GenParams scale of each branch")
    args = ap.parse_args(argv)
    work = ROOT / "cache" / "wave-work"
    rounds = [_round(w, args.branches, args.scale, work) for w in (1, 2)]
    speedup = rounds[0]["wall_seconds"] / rounds[1]["wall_seconds"]
    out = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpu_count": os.cpu_count(),
           "rounds": rounds, "speedup_2_workers": round(speedup, 2)}
    print(json.dumps(out, indent=1))
    res = ROOT / "results" / f"wave-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    res.parent.mkdir(exist_ok=True)
    res.write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(f"bench.wave: 1 worker {rounds[0]['wall_seconds']} s, 2 workers {rounds[1]['wall_seconds']} s "
          f"(× {speedup:.2f}) for {args.branches} branches of {rounds[0]['legacy_rows_per_branch']:,} legacy rows; "
          f"→ {res}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
