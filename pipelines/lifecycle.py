"""A branch's life outside a run: undo the freeze (``ecm unfreeze``), take it out of central
(``ecm unload``, the switch-over-and-back drill), and show its state. Each action is recorded in
the control store with who and why.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import make_url

from extract.freeze import unfreeze_source
from extract.source import redact
from load.central import branch_counts, open_central, unload_branch
from load.control_store import ControlStore
from pipelines.config import BranchConfig
from transform.convert import branch_base_id
from transform.errors import ConfigError


def _who(by: str, reason: str) -> None:
    if not by.strip() or not reason.strip():
        raise ConfigError("say who does this and why", hint="pass --by NAME and --reason TEXT")


def reconcile_with_central(cfg: BranchConfig, store: ControlStore) -> list[str]:
    """Bring the control store in line with production central's ledger (written in the same transaction as the
    rows): a run killed after its load committed but before it recorded the branch as migrated — or an unload
    the control store missed — is recorded now. Returns what was added. A central that cannot be reached or has
    no ledger yet changes nothing."""
    import sqlalchemy as sa
    from load.central import ledger
    from load.central_model import LEDGER
    try:
        engine = sa.create_engine(cfg.resolved_url("central"))
        if not sa.inspect(engine).has_table(LEDGER):
            engine.dispose()
            return []
        entries = ledger(engine, cfg.branch_code)
        engine.dispose()
    except sa.exc.SQLAlchemyError:
        return []
    if not entries:
        return []
    last = entries[-1]
    state = store.branch_state(cfg.branch_code)
    added = []
    if last["ACTION"] == "load" and not state["migrated"]:
        store.add_branch_event(cfg.branch_code, "migrated", run_id=last["RUN_ID"], target="production central",
                               by="ecm (reconciled from central's ledger)",
                               reason="central holds the branch (ledger entry of its load transaction); the run "
                                      "ended before recording it", detail={k: last[k] for k in last})
        added.append("migrated")
    elif last["ACTION"] == "unload" and state["migrated"]:
        store.add_branch_event(cfg.branch_code, "unload", run_id=last["RUN_ID"], target="production central",
                               by=last["BY_WHOM"] or "ecm (reconciled from central's ledger)",
                               reason=last["REASON"] or "central's ledger records the unload",
                               detail={k: last[k] for k in last})
        added.append("unload")
    return added


def unfreeze(cfg: BranchConfig, by: str, reason: str) -> list[dict[str, Any]]:
    """Make the branch's source databases writable again (a redo from step 1, or an abandoned cut-over)."""
    _who(by, reason)
    store = ControlStore(cfg.resolved_url("control"))
    reconcile_with_central(cfg, store)  # a branch loaded by a run killed before it said so is migrated all the same
    if store.branch_state(cfg.branch_code)["migrated"]:
        raise ConfigError(f"branch {cfg.branch_code} is migrated: its sources stay frozen",
                          hint="`ecm unload` it from central first if the cut-over is being rolled back")
    admin = cfg.resolved_url("admin")
    _refuse_shared_server(store, cfg)
    done = []
    for db, which in (("SLXNK", "slxnk"), ("SXXK", "sxxk")):
        url = cfg.resolved_url(which)
        stmts = unfreeze_source(url, admin)
        store.add_branch_event(cfg.branch_code, "unfreeze", target=f"{db} {redact(url)}", by=by, reason=reason,
                               detail={"statements": stmts})
        done.append({"db": db, "source": redact(url), "statements": stmts})
    return done


def _refuse_shared_server(store: ControlStore, cfg: BranchConfig) -> None:
    """MariaDB's read_only is server-wide: unfreezing this branch would unfreeze any other branch on the
    same server. Refuse while another branch recorded in this control store is frozen or migrated there."""
    hosts = set()
    for which in ("slxnk", "sxxk"):
        u = make_url(cfg.resolved_url(which))
        if u.get_backend_name() in ("mysql", "mariadb"):
            hosts.add(f"@{u.host}:{u.port or 3306}/")
    if not hosts:
        return
    for other in store.branches():
        if other == cfg.branch_code:
            continue
        state = store.branch_state(other)
        shared = [t for t, frozen in state["frozen"].items() if frozen and any(h in t for h in hosts)]
        if shared:
            raise ConfigError(f"branch {other} is frozen on the same MariaDB server ({shared[0]}); read_only is "
                              "server-wide, so unfreezing would unfreeze it too",
                              hint=f"unfreeze {other} first (or keep both frozen)")


def unload(cfg: BranchConfig, by: str, reason: str, rehearsal: bool = False) -> dict[str, int]:
    """Remove the branch from central (its ID window and its users) in one transaction."""
    _who(by, reason)
    store = ControlStore(cfg.resolved_url("control"))
    url = cfg.resolved_url("rehearsal_central" if rehearsal else "central")
    engine = open_central(url)
    base = branch_base_id(cfg.id_cuc_hq, cfg.id_chi_cuc)
    removed = unload_branch(engine, base, cfg.branch_code, by=by, reason=reason)
    left = sum(branch_counts(engine, base).values())
    engine.dispose()
    if left:
        raise ConfigError(f"{left} rows of {cfg.branch_code} are still in central after the unload",
                          hint="check central's log; run `ecm unload` again")
    store.add_branch_event(cfg.branch_code, "unload", target=f"{'rehearsal' if rehearsal else 'production'} "
                           f"{redact(url)}", by=by, reason=reason, detail={"removed": removed})
    return removed
