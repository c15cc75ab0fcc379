"""``ecm`` — the command line of the branch migration (thin: parse, load config, call the flow)."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from pipelines.wave.cli import wave_app
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from transform.errors import ConfigError, MigrationError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Customs branch migration (Phụ lục IV, 865/QĐ-TCHQ)")
sample_app = typer.Typer(no_args_is_help=True, help="Sample branch databases")
app.add_typer(sample_app, name="sample")
runs_app = typer.Typer(no_args_is_help=True, help="Runs that cannot end by themselves")
app.add_typer(runs_app, name="runs")
app.add_typer(wave_app, name="wave")
console = Console(stderr=False)
err = Console(stderr=True)
DEFAULT_CONFIG = Path("out/demo/branch.toml")


def _prefect_env() -> None:
    """Embedded default: a project-local PREFECT_HOME and a patient ephemeral API start."""
    os.environ.setdefault("PREFECT_HOME", str(Path.cwd() / ".prefect"))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def _fail(exc: BaseException, debug: bool) -> None:
    if debug:
        raise exc
    msg = str(exc)
    cause = getattr(exc, "cause", None)
    hint = getattr(exc, "cause_hint", None) or getattr(exc, "hint", None)
    err.print(f"[bold red]error:[/] {msg}")
    if hint and "Next:" not in msg:
        err.print(f"[yellow]next:[/] {hint}")
    if cause is not None and debug:
        err.print(repr(cause))
    raise typer.Exit(2)


@sample_app.command("generate")
def sample_generate(
    out: Annotated[Path, typer.Option(help="directory for slxnk.sqlite, sxxk.sqlite, users.json, manifest.json")]
    = Path("out/sample"),
    scale: Annotated[float, typer.Option(help="1 = demo size (~7k rows); 500 ≈ 5 M rows")] = 1.0,
    seed: Annotated[int, typer.Option()] = 20140401,
    defects: Annotated[Optional[str], typer.Option(help="kind=rate,… e.g. decl_without_goods=0.02,tcvn3_text=0.05")]
    = None,
    shape: Annotated[str, typer.Option(
        metavar="[ecm|sqlserver-export]",
        help="ecm = the reference tables; sqlserver-export = the same branch as a SQL Server export to SQLite "
             "looks (mixed-case names, numbers and dates as text, extra columns; enables defect bad_value)")]
    = "ecm",
    without: Annotated[Optional[str], typer.Option(
        metavar="PART,…", help="optional parts the branch never used: cx (CX tables and _CX% declarations), "
                               "tcu (GC self-supplied materials)")]
    = None,
) -> None:
    """Generate a deterministic sample branch (same seed → same bytes)."""
    from sample_data.generator import OPTIONAL_PARTS, SHAPES, GenParams, generate_branch, total_rows
    rates: dict[str, float] = {}
    for part in filter(None, (defects or "").split(",")):
        k, _, v = part.partition("=")
        rates[k.strip()] = float(v or 0.02)
    left_out = {w.strip() for w in (without or "").split(",") if w.strip()}
    if shape not in SHAPES or left_out - set(OPTIONAL_PARTS):
        err.print(f"[bold red]error:[/] --shape is one of {', '.join(SHAPES)}; "
                  f"--without takes {', '.join(OPTIONAL_PARTS)} (comma-separated)")
        raise typer.Exit(2)
    t0 = time.perf_counter()
    try:
        m = generate_branch(out, GenParams(seed=seed, scale=scale, defects=rates, shape=shape,
                                           optional=tuple(o for o in OPTIONAL_PARTS if o not in left_out)))
    except ValueError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"generated {total_rows(m)} rows, {len(m['defects'])} injected defects, in "  # type: ignore[arg-type]
                  f"{time.perf_counter() - t0:.1f}s → {out}")


@sample_app.command("push")
def sample_push(
    slxnk_url: Annotated[str, typer.Option(help="target SLXNK database URL (e.g. mariadb+pyodbc://…/c47d_slxnk?…)")],
    sxxk_url: Annotated[str, typer.Option(help="target SXXK database URL")],
    central_url: Annotated[Optional[str], typer.Option(help="central URL for the config (default: SQLite file)")]
    = None,
    admin_url: Annotated[Optional[str], typer.Option(help="admin account for freeze/backup (written to the config)")]
    = None,
    out: Annotated[Path, typer.Option(help="where the sample, the config and the run outputs go")]
    = Path("out/server-branch"),
    code: Annotated[str, typer.Option(help="branch code")] = "C47D",
    id_chi_cuc: Annotated[int, typer.Option(help="branch number (its central ID window)")] = 1,
    scale: Annotated[float, typer.Option()] = 1.0,
    create: Annotated[bool, typer.Option("--create/--no-create", help="(re)create the two databases first")] = True,
) -> None:
    """Put the sample branch on a database server (MariaDB, PostgreSQL …) and write its branch config."""
    from sample_data.demo import write_config
    from sample_data.generator import GenParams, generate_branch
    from sample_data.server import copy_sample_db, create_database
    from sqlalchemy.engine import make_url

    from extract.source import redact
    from pipelines.config import interpolate_env
    out = out.resolve()
    branch = out / "branch"
    try:
        generate_branch(branch, GenParams(scale=scale))
        for db, url, f in (("SLXNK", slxnk_url, "slxnk.sqlite"), ("SXXK", sxxk_url, "sxxk.sqlite")):
            # created and filled with the admin account when given (the reader account may only read)
            as_admin = make_url(interpolate_env(admin_url)).set(database=make_url(url).database).render_as_string(
                hide_password=False) if admin_url else interpolate_env(url)
            if create:
                create_database(as_admin, drop_existing=True)
            n = copy_sample_db(branch / f, db, as_admin)
            console.print(f"{db}: {sum(n.values())} rows in {len(n)} tables → {redact(url)}")
    except MigrationError as exc:
        _fail(exc, False)
        return
    cfg = write_config(out, branch, code=code, rehearsal=False, demo_pki=True, id_chi_cuc=id_chi_cuc,
                       slxnk_url=slxnk_url, sxxk_url=sxxk_url, admin_url=admin_url, central_url=central_url)
    console.print(f"config: {cfg}\nnext: ecm run --config {cfg} --auto-approve-demo")


class _KnownErrorsWithoutTraceback(logging.Filter):
    """Prefect logs every failed run with its traceback. A MigrationError already names the object and the next
    action, so the operator gets that line alone (the traceback stays for anything unexpected, and --debug)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        seen = 0
        while exc is not None and seen < 10:
            if isinstance(exc, MigrationError):
                record.exc_info, record.exc_text = None, None
                break
            exc, seen = exc.__cause__ or exc.__context__, seen + 1
        return True


def _quiet_known_tracebacks() -> None:
    f = _KnownErrorsWithoutTraceback()
    for name in ("", "prefect", "prefect.flow_runs", "prefect.task_runs"):
        for h in logging.getLogger(name).handlers:
            if not any(isinstance(x, _KnownErrorsWithoutTraceback) for x in h.filters):
                h.addFilter(f)


def _run_flow(cfg: Any, run_id: str | None, auto_approve_demo: bool, debug: bool,
              replace: dict[str, str] | None = None, config_path: Path | None = None) -> dict[str, Any]:
    _prefect_env()
    from pipelines import progress
    from pipelines.migrate import migrate_branch
    if not debug:
        _quiet_known_tracebacks()

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,} rows"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def sink(step: str, label: str, rows: int, total: int | None) -> None:
            k = f"{step} {label}"
            if k not in tasks:
                tasks[k] = bar.add_task(k, total=total)
            bar.advance(tasks[k], rows)

        def notice(event: str, info: dict[str, Any]) -> None:
            if event == "waiting":  # close the bars (no redrawing while nobody moves) and say where to decide
                for t in list(tasks.values()):
                    bar.remove_task(t)
                tasks.clear()
                bar.stop()
                console.print(waiting_block({**info, "config": config_path or "BRANCH.toml"}), soft_wrap=True)
            elif event == "resumed":
                console.print(f"[green]run {info['run_id']} resumed[/] — decisions {info['gate_label']} taken",
                              soft_wrap=True)
                bar.start()
        progress.set_sink(sink, notice)
        try:
            return migrate_branch(config=cfg, run_id=run_id, auto_approve_demo=auto_approve_demo, replace=replace)
        except Exception as exc:  # noqa: BLE001 - one red line, traceback only with --debug
            _fail(exc, debug)
            raise
        finally:
            progress.set_sink(None)


def waiting_block(info: dict[str, Any]) -> str:
    """What the operator's terminal shows while a run waits at a decision gate: one block, printed once."""
    rid = info["run_id"]
    sev = ", ".join(f"{n} {k}" for k, n in info["by_severity"].items() if n)
    return (f"\n[bold yellow]Run {rid} waits for business decisions[/] — {info['gate_label']}\n"
            f"  {info['blocking']} blocking findings ({sev}); the run resumes by itself once none blocks "
            f"(waits up to {info['timeout']} s).\n"
            f"  Decide at the review desk: [bold]{info['desk_url']}/runs/{rid}[/]  "
            f"(serve it with `ecm desk --config {info['config']}`)\n"
            f"  Or from a shell: `ecm status {rid}` then `ecm decide {rid} FINDING --accept|--correct FILE|--redo "
            f"--reason … --by …`\n")


def _print_summary(s: dict[str, Any]) -> None:
    t = Table(title=f"Run {s['run_id']} — {s['branch']} ({'rehearsal' if s['rehearsal'] else 'production'})")
    for c in ("step", "status", "rows in", "rows out", "seconds"):
        t.add_column(c, justify="right" if c not in ("step", "status") else "left")
    for st in s["steps"]:
        t.add_row(st["name"], st["status"], f"{st['rows_in']:,}" if st["rows_in"] is not None else "—",
                  f"{st['rows_out']:,}" if st["rows_out"] is not None else "—", f"{st['seconds']:.2f}")
    console.print(t)
    for k, v in s["paths"].items():
        console.print(f"  {k:17} {v}")
    if s["paths"].get("minutes") and not s.get("minutes_signed"):
        console.print(f"[yellow]the minutes are not signed yet: each party signs with `ecm sign --run {s['run_id']}`"
                      "; nothing is loaded into the production central before that[/]")


@app.command()
def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="branch config (TOML)")],
    rehearsal: Annotated[bool, typer.Option("--rehearsal", help="trial run: load into the rehearsal central")] = False,
    scope: Annotated[Optional[str], typer.Option(help="catalogs | declarations | all (default: the config's)")]
    = None,
    incremental: Annotated[bool, typer.Option("--incremental", help="convert only what earlier runs did not")]
    = False,
    run_id: Annotated[Optional[str], typer.Option(help="reuse a run id (default: new)")] = None,
    auto_approve_demo: Annotated[bool, typer.Option(
        "--auto-approve-demo", help="sample data only: accept the decision gates automatically (recorded)")] = False,
    replace: Annotated[bool, typer.Option(
        "--replace", help="run over a MIGRATED branch, replacing it in central (needs --by and --reason; recorded)")]
    = False,
    by: Annotated[Optional[str], typer.Option(help="with --replace: who decides it")] = None,
    reason: Annotated[Optional[str], typer.Option(help="with --replace: why")] = None,
    debug: Annotated[bool, typer.Option(help="show tracebacks")] = False,
) -> None:
    """Run the eight steps for one branch."""
    from pipelines.config import load_config
    overrides: dict[str, Any] = {}
    if rehearsal:
        overrides["rehearsal"] = True
    if scope:
        overrides["scope"] = scope
    if incremental:
        overrides["incremental"] = True
    try:
        cfg = load_config(config, overrides)
        # every ${ENV} reference resolves before the flow starts (not at the step that needs it)
        for which in ("slxnk", "sxxk", "admin", "control", "rehearsal_central" if cfg.rehearsal else "central"):
            cfg.resolved_url(which)
        cfg.offices_2025()
        if replace and not ((by or "").strip() and (reason or "").strip()):
            raise ConfigError("--replace needs --by NAME and --reason TEXT (it is recorded)")
    except MigrationError as exc:
        _fail(exc, debug)
        return
    _print_summary(_run_flow(cfg, run_id, auto_approve_demo, debug,
                             {"by": by or "", "reason": reason or ""} if replace else None, config_path=config))


@app.command()
def resume(
    run_id: Annotated[str, typer.Option("--run", help="a run waiting for signatures, or one that crashed or failed")],
    config: Annotated[Path, typer.Option("--config", "-c", help="branch config (TOML)")],
    auto_approve_demo: Annotated[bool, typer.Option(
        "--auto-approve-demo", help="sample data only: accept the decision gates automatically (recorded)")] = False,
    debug: Annotated[bool, typer.Option(help="show tracebacks")] = False,
) -> None:
    """Continue a run where it stopped. A run left 'waiting-signatures' (its wait timed out): step 7 on the same
    minutes — signatures already made are kept — then step 8. A run that crashed (its process was killed) or
    failed: after its last completed step; what earlier steps wrote is re-verified by the steps that read it."""
    _prefect_env()  # before Prefect is imported
    from load.control_store import ControlStore
    from pipelines.config import load_config
    from pipelines.migrate import check_crash_resumable, check_resumable, resume_run, resume_signing
    try:
        cfg = load_config(config)
        for which in ("control", "rehearsal_central" if cfg.rehearsal else "central"):
            cfg.resolved_url(which)
        store = ControlStore(cfg.resolved_url("control"))
        run = store.run(run_id)
        waiting = run is not None and run["status"] == "waiting-signatures"
        if waiting:
            check_resumable(store, run_id, cfg.branch_code)
        else:
            check_crash_resumable(store, run_id, cfg.branch_code)
    except MigrationError as exc:
        _fail(exc, debug)
        return
    if not debug:
        _quiet_known_tracebacks()
    try:
        _print_summary(resume_signing(config=cfg, run_id=run_id) if waiting else
                       resume_run(config=cfg, run_id=run_id, auto_approve_demo=auto_approve_demo))
    except Exception as exc:  # noqa: BLE001 - one red line, traceback only with --debug
        _fail(exc, debug)
        raise


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="where everything is written")] = Path("out/demo"),
    debug: Annotated[bool, typer.Option(help="show tracebacks")] = False,
) -> None:
    """Generate (or reuse) the sample branch and migrate it: all eight steps, DEMO signers, decisions accepted
    automatically (recorded as such). Each demo starts from an empty central and control store."""
    from sample_data.demo import ensure_demo
    cfg_path = ensure_demo(out.resolve())
    from pipelines.config import load_config
    cfg = load_config(cfg_path)
    t0 = time.perf_counter()
    s = _run_flow(cfg, None, True, debug)
    _print_summary(s)
    console.print(f"demo wall time {time.perf_counter() - t0:.1f}s; summary: {out / 'summary.json'}")


@app.command()
def status(
    run_id: Annotated[str, typer.Argument(help="run id (see summary.json); 'latest' for the newest")],
    config: Annotated[Path, typer.Option("--config", "-c")] = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show a run's steps from the control store."""
    from load.control_store import ControlStore
    from pipelines.config import load_config
    try:
        cfg = load_config(config)
    except MigrationError as exc:
        _fail(exc, False)
        return
    store = ControlStore(cfg.resolved_url("control"))
    if run_id == "latest":
        runs = store.latest_runs(1)
        if not runs:
            err.print("[red]no runs recorded[/]")
            raise typer.Exit(1)
        run_id = runs[0]["run_id"]
    r = store.run(run_id)
    if r is None:
        known = ", ".join(x["run_id"] for x in store.latest_runs(5)) or "none"
        err.print(f"[bold red]error:[/] unknown run {run_id!r}. Recent runs: {known}")
        raise typer.Exit(1)
    from pipelines.runlock import effective_status
    r = {**r, "status": effective_status(store, r)}  # a run whose process is gone shows as crashed
    steps = store.steps(run_id)
    findings = store.findings(run_id)
    if as_json:
        console.print_json(json.dumps({"run": r, "steps": [vars(s) for s in steps], "findings": len(findings)},
                                      default=str))
        return
    t = Table(title=f"{run_id} — {r['status']}")
    for c in ("step", "status", "rows in", "rows out", "seconds", "error"):
        t.add_column(c)
    for s in steps:
        t.add_row(s.step, s.status, str(s.rows_in if s.rows_in is not None else "—"),
                  str(s.rows_out if s.rows_out is not None else "—"), f"{s.seconds or 0:.2f}", s.error or "")
    console.print(t)
    by: dict[tuple[str, str], int] = {}
    for f in findings:
        by[(f["severity"], f["status"])] = by.get((f["severity"], f["status"]), 0) + 1
    console.print("findings: " + (", ".join(f"{n} {sev}/{st}" for (sev, st), n in sorted(by.items())) or "none"))
    for d in store.documents(run_id):
        console.print(f"{d['kind']}: {'SIGNED' if d['signed'] else 'not signed'} — {d['note']} ({d['path']})")
    open_ = [f for f in findings if f["status"] == "open"]
    if open_:
        ft = Table(title="open findings" + (" — the run is WAITING for decisions" if r["status"] == "waiting-decision"
                                            else ""))
        for c in ("#", "severity", "check", "table", "keys", "owner", "message"):
            ft.add_column(c)
        for f in open_:
            ft.add_row(str(f["finding_id"]), f["severity"], f["check_id"], f["table_name"] or "", str(f["n_keys"]),
                       f["owner"] or "", f["message"] or "")
        console.print(ft)
        console.print("decide with: ecm decide RUN_ID FINDING --accept|--correct FILE|--redo --reason TEXT --by NAME")


minutes_app = typer.Typer(no_args_is_help=True, help="The minutes of step 7")
app.add_typer(minutes_app, name="minutes")


@minutes_app.command("reissue")
def minutes_reissue(
    run_id: Annotated[str, typer.Option("--run", help="the run whose minutes carry a signature that does not verify")],
    by: Annotated[str, typer.Option(help="who reissues (name, unit); recorded")] = "",
    reason: Annotated[str, typer.Option(help="why (which signature does not verify); recorded")] = "",
    config: Annotated[Path, typer.Option("--config", "-c", help="branch config (TOML)")] = DEFAULT_CONFIG,
    debug: Annotated[bool, typer.Option(help="show tracebacks")] = False,
) -> None:
    """Render a new revision of a run's minutes with the same figures (steps 1–6 are not repeated). The old file is
    kept; who, why and both SHA-256 are recorded; the six sign the new one, then `ecm resume --run RUN_ID`."""
    from pipelines.config import load_config
    from pipelines.steps.pl4_07_sign_off import reissue_minutes
    try:
        msg = reissue_minutes(load_config(config), run_id, by, reason)
    except MigrationError as exc:
        _fail(exc, debug)
        return
    console.print(msg, soft_wrap=True)


@runs_app.command("close")
def runs_close(
    run_id: Annotated[str, typer.Argument(help="the run to close (see `ecm status`)")],
    config: Annotated[Path, typer.Option("--config", "-c")] = DEFAULT_CONFIG,
    by: Annotated[str, typer.Option(help="who closes it")] = "",
    reason: Annotated[str, typer.Option(help="why")] = "",
) -> None:
    """End a run that cannot end by itself (its process died): recorded with who and why; its branch can run again."""
    from load.control_store import ControlStore
    from pipelines.config import load_config
    from pipelines.runlock import close_run
    try:
        cfg = load_config(config)
        done = close_run(ControlStore(cfg.resolved_url("control")), run_id, by, reason)
    except MigrationError as exc:
        _fail(exc, False)
        return
    console.print(f"run {done['run_id']} ({done['branch']}, was {done['was']}) closed; the branch can run again")


@app.command()
def decide(
    run_id: Annotated[str, typer.Argument(help="the waiting run")],
    finding: Annotated[int, typer.Argument(help="finding number (see `ecm status RUN_ID`)")],
    accept: Annotated[bool, typer.Option("--accept", help="accept the discrepancy")] = False,
    correct: Annotated[Optional[Path], typer.Option("--correct", help="CSV (UTF-8) or XLSX with columns table,key,column,new_value (the desk's template)")] = None,
    redo: Annotated[bool, typer.Option("--redo", help="the branch must correct its data: redo from step 1")]
    = False,
    reason: Annotated[str, typer.Option(help="why (required to accept a critical finding)")] = "",
    by: Annotated[str, typer.Option(help="who decides (name, unit)")] = "",
    config: Annotated[Path, typer.Option("--config", "-c")] = DEFAULT_CONFIG,
    debug: Annotated[bool, typer.Option(help="show tracebacks")] = False,
) -> None:
    """Record a business decision on a finding and resume the waiting run."""
    _prefect_env()
    from pipelines.decide import record_decision
    chosen = [name for name, on in (("accept", accept), ("correct", correct is not None), ("redo", redo)) if on]
    if len(chosen) != 1 or not by.strip():
        err.print("[bold red]error:[/] give exactly one of --accept, --correct FILE, --redo, and --by NAME")
        raise typer.Exit(2)
    try:
        msg = record_decision(config, run_id, finding, chosen[0], reason, by, correct)
    except MigrationError as exc:
        _fail(exc, debug)
        return
    console.print(msg)


@app.command()
def desk(
    config: Annotated[list[Path], typer.Option("--config", "-c", help="branch config(s) whose runs the desk shows")]
    = [DEFAULT_CONFIG],  # noqa: B006 - typer reads the default
    accounts: Annotated[Path, typer.Option(help="desk accounts file (see `ecm desk-account`)")] = Path("desk_accounts.toml"),
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8765,
    cert: Annotated[Optional[Path], typer.Option(help="TLS certificate (PEM) for serving HTTPS")] = None,
    key: Annotated[Optional[Path], typer.Option(help="TLS private key (PEM)")] = None,
    insecure_http: Annotated[bool, typer.Option(help="serve plain HTTP on a non-loopback address (cookies then "
                                                     "travel unencrypted; only on a closed network)")] = False,
) -> None:
    """The review desk: business staff see and decide the findings of waiting runs in a browser (Vietnamese)."""
    _prefect_env()
    import ipaddress

    import uvicorn

    from pipelines.desk.app import create_app
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and cert is None and not insecure_http:
        err.print(f"[bold red]error:[/] {host} is not a loopback address: serve HTTPS (--cert, --key) or pass "
                  "--insecure-http on a closed network")
        raise typer.Exit(2)
    try:
        application = create_app(config, accounts, secret=os.environ.get("ECM_DESK_SECRET"),
                                 secure_cookies=cert is not None or loopback)
    except MigrationError as exc:
        _fail(exc, False)
        return
    scheme = "https" if cert else "http"
    console.print(f"review desk on [bold]{scheme}://{host}:{port}/[/] — accounts from {accounts}; Ctrl+C to stop")
    uvicorn.run(application, host=host, port=port, ssl_certfile=str(cert) if cert else None,
                ssl_keyfile=str(key) if key else None, log_level="warning", access_log=False,
                proxy_headers=False)  # the address logged with each decision is the peer's, not a header's


@app.command("desk-account")
def desk_account(
    accounts: Annotated[Path, typer.Argument(help="desk accounts file (created if absent)")],
    login: Annotated[str, typer.Option(help="login name (a-z, 0-9, . _ -)")],
    name: Annotated[str, typer.Option(help="full name, as it will stand beside each decision")],
    party: Annotated[str, typer.Option(help="tong-cuc, cuc or chi-cuc")],
    role: Annotated[str, typer.Option(help="business or technical")],
    branch: Annotated[Optional[list[str]], typer.Option(help="branch code this account sees (repeat); default all")]
    = None,
) -> None:
    """Add a desk account; the password is asked for (or read from ECM_DESK_PASSWORD) and stored as an argon2id hash."""
    from pipelines.desk.accounts import add_account
    password = os.environ.get("ECM_DESK_PASSWORD") or typer.prompt("password", hide_input=True,
                                                                      confirmation_prompt=True)
    try:
        acc = add_account(accounts, login, name, party, role, password, branch)
    except MigrationError as exc:
        _fail(exc, False)
        return
    console.print(f"account {acc.login} ({acc.field}) added to {accounts}")


@app.command("desk-revoke")
def desk_revoke(
    accounts: Annotated[Path, typer.Argument(help="desk accounts file")],
    login: Annotated[str, typer.Option(help="the account whose open sessions end now")],
) -> None:
    """End every open desk session of an account now (a lost laptop, a person leaving); the account stays and may
    log in again. To shut an account out, remove it from the file: the desk re-reads the file on each request."""
    from pipelines.desk.accounts import revoke_sessions
    try:
        acc = revoke_sessions(accounts, login)
    except MigrationError as exc:
        _fail(exc, False)
        return
    console.print(f"sessions of {acc.login} opened before {acc.sessions_after:%Y-%m-%d %H:%M:%S} UTC are refused")


@app.command()
def unfreeze(
    by: Annotated[str, typer.Option(help="who (name, unit)")] = "",
    reason: Annotated[str, typer.Option(help="why the branch may write again")] = "",
    config: Annotated[Path, typer.Option("--config", "-c")] = DEFAULT_CONFIG,
    debug: Annotated[bool, typer.Option(help="show tracebacks")] = False,
) -> None:
    """Undo step 2's freeze of the branch's source databases (recorded with who and why)."""
    from pipelines.config import load_config
    from pipelines.lifecycle import unfreeze as do_unfreeze
    try:
        done = do_unfreeze(load_config(config), by, reason)
    except MigrationError as exc:
        _fail(exc, debug)
        return
    for d in done:
        console.print(f"{d['db']} ({d['source']}): writable again " + ("; ".join(d["statements"]) or "(SQLite: "
                      "the file was only ever opened read-only)"))


@app.command()
def unload(
    branch: Annotated[str, typer.Option(help="branch code; must match the config's branch_code")],
    by: Annotated[str, typer.Option(help="who (name, unit)")] = "",
    reason: Annotated[str, typer.Option(help="why (e.g. switch-over-and-back drill)")] = "",
    rehearsal: Annotated[bool, typer.Option("--rehearsal", help="unload from the rehearsal central")] = False,
    config: Annotated[Path, typer.Option("--config", "-c")] = DEFAULT_CONFIG,
    debug: Annotated[bool, typer.Option(help="show tracebacks")] = False,
) -> None:
    """Remove a branch's rows and users from central in one transaction (recorded with who and why)."""
    from pipelines.config import load_config
    from pipelines.lifecycle import unload as do_unload
    try:
        cfg = load_config(config)
        if cfg.branch_code != branch:
            err.print(f"[bold red]error:[/] --branch {branch} but {config} is the config of {cfg.branch_code}")
            raise typer.Exit(2)
        removed = do_unload(cfg, by, reason, rehearsal)
    except MigrationError as exc:
        _fail(exc, debug)
        return
    console.print(f"{branch}: {sum(removed.values())} rows removed from central "
                  + ", ".join(f"{k} {v}" for k, v in removed.items() if v))


@app.command("sign")
def sign_cmd(
    minutes: Annotated[Path, typer.Argument(help="the minutes PDF (signed in place, incrementally)")],
    field: Annotated[str, typer.Option(help="tong-cuc|cuc|chi-cuc + -technical|-business")],
    p12: Annotated[Path, typer.Option(help="the signer's PKCS#12 file")],
    run: Annotated[Optional[str], typer.Option("--run", help="resume this run if it waits for signatures")] = None,
    config: Annotated[Path, typer.Option("--config", "-c", help="branch config: its [signing] trust list, CRLs and "
                                                               "revocation setting (unless --trust is given)")]
    = DEFAULT_CONFIG,
    trust: Annotated[list[Path], typer.Option(help="trusted root certificate(s) (instead of the config's)")]
    = [],  # noqa: B006
    certs: Annotated[list[Path], typer.Option(help="intermediate certificate(s)")] = [],  # noqa: B006
    crl: Annotated[list[Path], typer.Option(help="CRL file(s), supplied offline")] = [],  # noqa: B006
    revocation: Annotated[Optional[str], typer.Option(
        metavar="[required|none-available]", help="default: the config's signing.revocation, else required")]
    = None,
    tsa_url: Annotated[Optional[str], typer.Option(help="RFC 3161 time-stamping authority (default: the config's "
                                                        "signing.tsa_url)")] = None,
    ocsp_url: Annotated[Optional[str], typer.Option(help="OCSP responder for the signer's and the TSA's "
                                                         "certificates (default: the config's signing.ocsp_url)")]
    = None,
    debug: Annotated[bool, typer.Option(help="show tracebacks")] = False,
) -> None:
    """Add one PAdES signature — only one that will verify: the certificate (chain, expiry, revocation, party and
    role of the field) and the minutes are checked first, and nothing is written otherwise. The passphrase comes
    from ECM_P12_PASSPHRASE or a prompt, never an argument."""
    from sign_off.certs import REVOCATION_MODES, Anchors
    from sign_off.signing import passphrase_from_env, sign
    from transform.errors import SignOffError
    try:
        if revocation is not None and revocation not in REVOCATION_MODES:
            raise SignOffError(f"--revocation is one of {', '.join(REVOCATION_MODES)}, not {revocation!r}")
        from sign_off.trust_services import Services
        services = Services(tsa_url, ocsp_url) if tsa_url else None
        if trust:
            anchors = Anchors.of(trust, certs, crl, revocation or "required")  # type: ignore[arg-type]
        else:
            from pipelines.config import load_config
            if not config.exists():
                raise SignOffError(f"cannot check {p12.name} before signing: no trust list (config {config} not "
                                   "found)", hint="give --config BRANCH.toml, or --trust ROOT.pem [--certs …] "
                                                  "[--crl …]")
            from pipelines.steps.pl4_07_sign_off import config_anchors, config_services
            cfg = load_config(config)
            anchors = config_anchors(cfg)
            services = services or config_services(cfg)
            if revocation is not None:
                anchors = Anchors.of(list(anchors.trust), list(anchors.intermediates), list(anchors.crls),
                                     revocation)  # type: ignore[arg-type]
            if not anchors.trust:
                raise SignOffError(f"cannot check {p12.name} before signing: {config} has no signing.trust",
                                   hint="add the trusted root(s) to [signing] trust, or give --trust ROOT.pem")
        pw = passphrase_from_env() or typer.prompt(f"passphrase for {p12.name}", hide_input=True).encode()
        notes = sign(minutes, field, p12, pw, anchors=anchors, services=services)
        msg = ""
        if run:
            _prefect_env()
            from pipelines.decide import resume_if_waiting
            msg = "; " + resume_if_waiting(config, run, "waiting-signatures", field)
    except MigrationError as exc:
        _fail(exc, debug)
        return
    lt = (f"; time-stamped by {services.tsa_url}, revocation data embedded (PAdES B-LT)" if services is not None
          else "")
    console.print(f"signed field {field} of {minutes} (certificate checked: chain, validity, revocation, party and "
                  f"role){lt}{msg}", soft_wrap=True)
    for n in notes:
        console.print(f"[yellow]{n}[/]", soft_wrap=True)


def _parse_at(text: str | None) -> Any:
    from datetime import datetime, timezone
    if text is None:
        return None
    try:
        d = datetime.fromisoformat(text)
    except ValueError:
        err.print(f"[bold red]error:[/] --at {text!r} is not a date (YYYY-MM-DD, or YYYY-MM-DDTHH:MM[+07:00])")
        raise typer.Exit(2) from None
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


@app.command("timestamp")
def timestamp_cmd(
    target: Annotated[Path, typer.Argument(help="the auditor's folder (hồ sơ kiểm tra), or the signed minutes PDF")],
    renew: Annotated[bool, typer.Option("--renew", help="add the next archive time-stamp (PAdES B-LTA renewal)")]
    = False,
    config: Annotated[Path, typer.Option("--config", "-c", help="branch config: its [signing] trust list, CRLs, "
                                                               "tsa_url and ocsp_url")] = DEFAULT_CONFIG,
    debug: Annotated[bool, typer.Option(help="show tracebacks")] = False,
) -> None:
    """Renew the archive time-stamp of signed minutes before the TSA certificate of the last one expires: the
    minutes must verify now; fresh revocation data for the last time-stamp's TSA goes into the DSS, then a new
    document time-stamp covers it all. In a folder, SHA256SUMS and the archive are rebuilt."""
    from contextlib import nullcontext

    from pipelines.config import load_config
    from pipelines.steps.pl4_07_sign_off import config_anchors, config_services
    from sign_off import audit_folder as af
    from sign_off.ltv import last_archive_timestamp
    from sign_off.signing import add_archive_timestamp, verify_minutes
    from sign_off.trust_services import running_services
    from transform.errors import SignOffError
    try:
        if not renew:
            raise SignOffError("say what to do: --renew adds the next archive time-stamp")
        cfg = load_config(config)
        anchors = config_anchors(cfg)
        folder = target if target.is_dir() else None
        pdf = folder / af.MINUTES if folder else target
        if folder is not None:
            sums = af.check_sums(folder)
            if sums.problems:
                raise SignOffError("the folder is not intact, so it is not renewed: " + "; ".join(sums.problems[:4]),
                                   table=str(folder), hint="restore the folder from its archive (.tar.gz, checked "
                                                           "with its .sha256) and renew that")
        v = verify_minutes(pdf, list(anchors.trust), list(anchors.crls), list(anchors.intermediates), None,
                           revocation=anchors.revocation)
        if v.problems():
            raise SignOffError(f"{pdf.name} does not verify now, so it is not time-stamped: "
                               + "; ".join(v.problems()[:4]), table=str(pdf),
                               hint="a time-stamp would vouch for a file that fails; investigate first")
        services = config_services(cfg)
        if services is None and not cfg.signing.demo_pki:
            raise SignOffError(f"{config} configures no time-stamping authority", hint="set signing.tsa_url")
        with (running_services(cfg.output_dir / "pki") if cfg.signing.demo_pki else nullcontext(services)) as sv:
            when = add_archive_timestamp(pdf, anchors, sv)
        last = last_archive_timestamp(pdf)
        archive = af.refresh(folder)[0] if folder is not None else None
    except MigrationError as exc:
        _fail(exc, debug)
        return
    until = last[1]["tbs_certificate"]["validity"]["not_after"].native if last else None
    console.print(f"archive time-stamp added to {pdf} at {when:%Y-%m-%d %H:%M:%S %Z}"
                  + (f"; its TSA certificate is valid until {until:%Y-%m-%d}: renew before then" if until else "")
                  + (f"; {af.SUMS} and {archive.name} rebuilt" if archive else ""), soft_wrap=True, highlight=False)


@app.command("verify")
def verify_cmd(
    target: Annotated[Path, typer.Argument(help="the auditor's folder (hồ sơ kiểm tra), or the signed minutes PDF")],
    evidence: Annotated[Optional[Path], typer.Option(help="the evidence bundle directory (with a minutes PDF)")]
    = None,
    no_evidence: Annotated[bool, typer.Option(
        "--no-evidence", help="check the signatures alone, knowingly (the output says the evidence was not checked)")]
    = False,
    at: Annotated[Optional[str], typer.Option(
        help="verify as of this date (default now), from the time-stamps and revocation data embedded in the "
             "minutes, offline; e.g. --at 2035-01-01")] = None,
    trust: Annotated[list[Path], typer.Option(help="trusted root certificate(s) (default in a folder: tin_cay/)")]
    = [],  # noqa: B006
    crl: Annotated[list[Path], typer.Option(help="CRL file(s), supplied offline")] = [],  # noqa: B006
    certs: Annotated[list[Path], typer.Option(help="intermediate certificate(s)")] = [],  # noqa: B006
    revocation: Annotated[str, typer.Option(
        metavar="[required|none-available]",
        help="required (default): every signer needs revocation information; none-available: this "
             "deployment has none (said in the output)")] = "required",
    root_fingerprint: Annotated[list[str], typer.Option(
        help="a folder: trust its root whose SHA-256 fingerprint is this one (compared with the CA's published "
             "fingerprint first; colons and case ignored)")] = [],  # noqa: B006
) -> None:
    """Verify offline, as an auditor: every signature (as of --at, by long-term validation when the certificates
    have expired), the six parties/roles, what each revision adds, the evidence against the signed hashes — and,
    for a folder, its SHA256SUMS and the load report. The first line is the verdict; exit 0 only if it is VALID."""
    from sign_off import audit_folder as af
    from sign_off.certs import REVOCATION_MODES, Anchors
    from sign_off.ltv import captured_pyhanko_log
    from sign_off.signing import verify_minutes
    if revocation not in REVOCATION_MODES:
        err.print(f"[bold red]error:[/] --revocation is one of {', '.join(REVOCATION_MODES)}, not {revocation!r}")
        raise typer.Exit(2)
    moment = _parse_at(at)
    problems: list[str] = []
    lines: list[str] = []
    folder = target if target.is_dir() else None
    if folder is not None:
        minutes = folder / af.MINUTES
        sums = af.check_sums(folder)
        problems += sums.problems
        lines += sums.lines
        roots, others, crls = af.anchors_in(folder)
        certs, crl = certs or others, crl or crls
        if not trust:
            # the folder's own roots are trusted only by name of their fingerprint: anyone who can change the
            # folder can add a root of their own (and re-sign everything under it)
            wanted = {f.replace(":", "").replace(" ", "").upper() for f in root_fingerprint}
            found = dict(zip(roots, (fp for _cn, fp in af.fingerprints(roots)), strict=True)) if roots else {}
            trust = [p for p, fp in found.items() if fp in wanted]
            for cn, fp in af.fingerprints(roots):
                lines.append(f"root in tin_cay/: {cn} — SHA-256 {fp}"
                             + (" — trusted (--root-fingerprint)" if fp in wanted else " — NOT trusted"))
            if not wanted:
                problems.append("no trust anchor was given: the folder's own roots are not trusted by themselves — "
                                "compare the root's SHA-256 fingerprint (listed below) with the one the CA publishes "
                                "and pass it: --root-fingerprint SHA256 (or --trust ROOT.pem)")
            elif not trust:
                problems.append("no root in tin_cay/ has the fingerprint given with --root-fingerprint")
        if evidence is None and not no_evidence:
            evidence = folder / af.EVIDENCE
    else:
        minutes = target
    if not minutes.is_file():
        err.print(f"KẾT LUẬN: KHÔNG HỢP LỆ — VERDICT: NOT VALID — {minutes} not found", soft_wrap=True)
        raise typer.Exit(1)
    with captured_pyhanko_log() as log:
        try:
            v = verify_minutes(minutes, trust, crl, certs, evidence, revocation=revocation,  # type: ignore[arg-type]
                               at=moment)
        except Exception as exc:  # noqa: BLE001 - an unreadable file is a verdict, not a traceback
            err.print(f"KẾT LUẬN: KHÔNG HỢP LỆ — VERDICT: NOT VALID — {minutes.name} cannot be read as signed "
                      f"minutes: {type(exc).__name__}: {exc}", soft_wrap=True)
            raise typer.Exit(1) from None
    problems += v.problems()
    if folder is not None:
        with captured_pyhanko_log() as lr_log:  # the verdict stays the first line: no library log before it
            lr = af.check_load_report(folder, (v.binding or {}).get("snapshot_sha256"),
                                      Anchors.of(trust, certs, crl, revocation),  # type: ignore[arg-type]
                                      time_stamped=any(r.timestamp for r in v.signatures))
        log += [x for x in lr_log if x not in log]
        problems += lr.problems
        lines += lr.lines
    if evidence is not None:
        same = v.evidence_expected is not None and v.evidence_expected == v.evidence_actual
        lines.append(f"evidence bundle: signed binding {v.evidence_expected or 'NONE'}, recomputed "
                     f"{v.evidence_actual} — {'the same' if same else 'DIFFERENT'}")
    elif no_evidence:
        lines.append("evidence bundle: NOT CHECKED (--no-evidence)")
    else:
        problems.append("the evidence bundle was not checked: pass the auditor's folder, or --evidence DIR (the "
                        "folder handed over with the minutes), or --no-evidence to check the signatures alone")
    n_ok = sum(1 for r in v.signatures if r.ok)
    when = f"as of {moment:%Y-%m-%d}" if moment else "as of now"
    if not problems:
        console.print(f"[bold green]KẾT LUẬN: HỢP LỆ — VERDICT: VALID[/] — {n_ok} of 6 signatures verify {when}"
                      + (", and the evidence bundle is exactly what they signed" if evidence is not None else
                         "; the evidence bundle was NOT checked (--no-evidence)"), soft_wrap=True, highlight=False)
    else:
        console.print(f"[bold red]KẾT LUẬN: KHÔNG HỢP LỆ — VERDICT: NOT VALID[/] — {len(problems)} problem(s), "
                      f"{n_ok} of 6 signatures verify {when}", soft_wrap=True, highlight=False)
    t = Table(title=f"signatures of {minutes.name}")
    for c in ("field", "signer", "party / role", "time-stamp (RFC 3161)", "rev.", "intact", "result"):
        t.add_column(c)
    for r in v.signatures:
        t.add_row(r.field, r.signer, f"{r.party} / {r.role}", r.timestamp or "[red]none[/]", str(r.revision),
                  "yes" if r.intact and r.valid else "NO", "[green]ok[/]" if r.ok else "[red]NOT VALID[/]")
    console.print(t)
    for r in v.signatures:
        console.print(f"  {r.field}: " + (r.trust if r.ok else "[red]" + "; ".join(r.problems) + "[/]"),
                      soft_wrap=True, highlight=False)
    console.print("revisions (what each one adds, and which signatures cover it):")
    for line in v.document.revisions:
        console.print(("  " if line.ok else "  [red]") + line.text + ("" if line.ok else "[/]"), soft_wrap=True,
                      markup=True, highlight=False)
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False)
    for n in v.notes():
        console.print(f"[yellow]{n}[/]", soft_wrap=True)
    for p in problems:
        console.print(f"[bold red]problem:[/] {p}", soft_wrap=True, highlight=False)
    if problems and log:
        console.print("pyHanko's validation log (first line of each message):", highlight=False)
        for entry in log[:20]:
            console.print(f"  {entry}", soft_wrap=True, highlight=False, markup=False)
    raise typer.Exit(0 if not problems else 1)


certs_app = typer.Typer(no_args_is_help=True, help="Signer certificates")
app.add_typer(certs_app, name="certs")


@certs_app.command("check")
def certs_check(
    signers: Annotated[list[Path], typer.Argument(help="signer certificates (.p12 / .pem / .der)")],
    trust: Annotated[list[Path], typer.Option(help="trusted root certificate(s)")] = [],  # noqa: B006
    certs: Annotated[list[Path], typer.Option(help="intermediate certificate(s)")] = [],  # noqa: B006
    crl: Annotated[list[Path], typer.Option(help="CRL file(s)")] = [],  # noqa: B006
    days: Annotated[int, typer.Option(help="warn about certificates expiring within this many days")] = 30,
    revocation: Annotated[str, typer.Option(
        metavar="[required|none-available]",
        help="required (default): a certificate without revocation information (--crl) is a problem")]
    = "required",
) -> None:
    """Review signer certificates: expired, expiring soon, revoked, no revocation information, renewed more than
    once, not trusted."""
    from sign_off.certs import REVOCATION_MODES, REVOCATION_NOT_CHECKED, review
    from sign_off.signing import passphrase_from_env
    if revocation not in REVOCATION_MODES:
        err.print(f"[bold red]error:[/] --revocation is one of {', '.join(REVOCATION_MODES)}, not {revocation!r}")
        raise typer.Exit(2)
    rows = review(signers, trust, certs, crl, passphrase_from_env(), days,
                  revocation=revocation)  # type: ignore[arg-type]
    t = Table(title="signer certificates")
    for c in ("file", "subject", "valid until", "result"):
        t.add_column(c)
    for r in rows:
        t.add_row(r.source, r.subject, f"{r.not_after:%Y-%m-%d}", "[green]ok[/]" if not r.problems
                  else "[red]" + "; ".join(r.problems) + "[/]")
    console.print(t)
    if revocation == "none-available":
        console.print(f"[yellow]{REVOCATION_NOT_CHECKED}[/]")
    raise typer.Exit(0 if all(not r.problems for r in rows) else 1)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
