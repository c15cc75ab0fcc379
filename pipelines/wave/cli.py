"""`ecm wave run|status|cancel`: a wave from the operator's terminal."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from transform.errors import MigrationError

wave_app = typer.Typer(no_args_is_help=True, help="Waves of branches on Prefect workers")
console = Console()
err = Console(stderr=True)
STEP_COLUMNS = ("pl4_01_review", "pl4_02_freeze_backup", "pl4_03_handover", "pl4_04_restore", "pl4_05_convert",
                "pl4_06_validate", "pl4_07_sign_off", "pl4_08_load")
MARK = {"completed": "[green]✓[/]", "running": "[cyan]…[/]", "failed": "[red]✗[/]", "waiting": "[yellow]⏸[/]"}


def _need_server() -> None:
    if not os.environ.get("PREFECT_API_URL"):
        err.print("[bold red]error:[/] a wave runs on a Prefect server with workers; PREFECT_API_URL is not set")
        err.print("[yellow]next:[/] start the server and the workers (README: Waves of branches), then "
                  "export PREFECT_API_URL=http://SERVER:4200/api")
        raise typer.Exit(2)


def _fail(exc: BaseException) -> None:
    err.print(f"[bold red]error:[/] {exc}")
    hint = getattr(exc, "hint", None)
    if hint:
        err.print(f"[yellow]next:[/] {hint}")
    raise typer.Exit(2)


@wave_app.command("run")
def wave_run(plan: Annotated[Path, typer.Argument(help="wave plan (TOML)")]) -> None:
    """Submit every branch of the plan to the work pool and watch them to the end.

    Submitting the same plan again never starts a branch twice."""
    _need_server()
    from pipelines.wave.flow import migrate_wave
    from pipelines.wave.plan import load_plan
    try:
        load_plan(plan)  # a bad plan is said here, before Prefect is involved
        report = migrate_wave(plan=str(plan.resolve()))
    except MigrationError as exc:
        _fail(exc)
        return
    console.print(_table_from_report(report))
    ok = "[green]respected[/]" if report["limits_respected"] else "[red]EXCEEDED[/]"
    console.print(f"wave {report['wave']} {report['state']} in {report['wall_seconds']} s; limits {ok}")
    console.print(f"report: {report['files']['xlsx']}", soft_wrap=True)


def _table_from_report(report: dict) -> Table:  # type: ignore[type-arg]
    t = Table(title=f"wave {report['wave']} ({report['mode']})")
    for c in ("branch", "state", "attempts", "steps", "rows loaded", "seconds", "waiting findings"):
        t.add_column(c)
    for r in report["branches"]:
        t.add_row(r["branch"], r["state"], str(r["attempts"]), f"{r['steps_done']}/8", str(r["rows_loaded"] or ""),
                  str(r["seconds"] or ""), str(r["findings_waiting"] or ""))
    return t


def status_table(plan: Path) -> Table:
    """Branches × steps, from the branches' control stores and the wave store."""
    from pipelines.wave.flow import control_store, run_id_for, wave_store
    from pipelines.wave.plan import load_plan
    lp = load_plan(plan)
    ws = wave_store(lp.plan.control_url)
    recs = ws.branches(lp.plan.wave)
    t = Table(title=f"wave {lp.plan.wave} ({lp.plan.mode}) — {time.strftime('%H:%M:%S')}")
    t.add_column("branch")
    t.add_column("state")
    for i in range(1, 9):
        t.add_column(str(i), justify="center")
    t.add_column("attempts")
    for b in lp.branches:
        mine = [r for r in recs if r["branch"] == b.code]
        last = max(mine, key=lambda r: r["attempt"]) if mine else None
        steps = {s.step: s.status for s in control_store(b).steps(run_id_for(lp.plan.wave, b.code))}
        t.add_row(b.code, last["state"] if last else "not submitted",
                  *(MARK.get(steps.get(s, ""), "·") for s in STEP_COLUMNS), str(len(mine)))
    return t


@wave_app.command("status")
def wave_status(plan: Annotated[Path, typer.Argument(help="wave plan (TOML)")],
                once: Annotated[bool, typer.Option(help="print once instead of following live")] = False,
                every: Annotated[float, typer.Option(help="seconds between refreshes")] = 2.0) -> None:
    """The wave's branches × steps, live.

    Ctrl+C stops watching; the wave goes on."""
    try:
        if once:
            console.print(status_table(plan))
            return
        with Live(status_table(plan), console=console, refresh_per_second=1) as live:
            while True:
                time.sleep(every)
                live.update(status_table(plan))
    except MigrationError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        return


@wave_app.command("cancel")
def wave_cancel(plan: Annotated[Path, typer.Argument(help="wave plan (TOML)")]) -> None:
    """Cancel the wave and the branch runs it started that have not ended.

    Recorded in Prefect and the wave store; a branch stopped mid-step goes on later with `ecm resume --run`."""
    _need_server()
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    from pipelines.wave.flow import wave_store
    from pipelines.wave.plan import load_plan
    try:
        lp = load_plan(plan)
    except MigrationError as exc:
        _fail(exc)
        return
    ws = wave_store(lp.plan.control_url)
    w = ws.wave(lp.plan.wave)
    n = 0
    with get_client(sync_client=True) as client:
        ids = [r["flow_run_id"] for r in ws.branches(lp.plan.wave) if r["flow_run_id"] and r["ended_at"] is None]
        if w and w.get("flow_run_id"):
            ids.append(w["flow_run_id"])
        for fid in ids:
            st = client.read_flow_run(fid).state  # type: ignore[arg-type]
            if st is not None and not st.is_final():
                client.set_flow_run_state(fid, Cancelling(), force=True)  # type: ignore[arg-type]
                n += 1
    for r in ws.branches(lp.plan.wave):
        if r["ended_at"] is None:
            ws.branch_state(lp.plan.wave, r["branch"], r["attempt"], "cancelled", ended=True, note="ecm wave cancel")
    ws.end_wave(lp.plan.wave, "cancelled")
    console.print(f"wave {lp.plan.wave}: {n} flow run(s) cancelled")


@wave_app.command("drill")
def wave_drill(plan: Annotated[Path, typer.Argument(help="rehearsal wave plan (TOML)")],
               branch: Annotated[str, typer.Option(help="the branch to unload and load again")],
               by: Annotated[str, typer.Option(help="who runs the drill (name, unit); recorded")],
               reason: Annotated[str, typer.Option(help="why; recorded")]) -> None:
    """Switch-over-and-back drill: unload one branch from the rehearsal central and load it again.

    Every other branch of that central must stay byte-identical; prints and writes the drill report."""
    from pipelines.wave.drill import drill
    from pipelines.wave.plan import load_plan
    try:
        report = drill(load_plan(plan), branch, by, reason)
    except MigrationError as exc:
        _fail(exc)
        return
    t = Table(title=f"drill {report['branch']} ({report['wave']})")
    for c in ("branch", "role", "before", "after unload", "after reload", "ok"):
        t.add_column(c)
    for r in report["branches"]:
        t.add_row(r["branch"], r["role"], r["before"][:12], r["after_unload"][:12], r["after_reload"][:12],
                  "[green]yes[/]" if r["ok"] else "[red]NO[/]")
    console.print(t)
    console.print(f"drill {'passed' if report['ok'] else '[red]FAILED[/]'} in {report['seconds']} s; "
                  f"report: {report['files']['xlsx']}", soft_wrap=True)
    if not report["ok"]:
        raise typer.Exit(1)
