"""One run per branch at a time, and no new run over a migrated branch (issue: chain of custody, items 4 and 6).

A run takes its branch's lease in the control store when it starts and gives it back when it ends, whatever the
end. A second ``ecm run`` of the branch is refused at once, naming the holder. A holder that died (``kill -9``,
a power cut) cannot give it back: on the same host that is seen at once (its process is gone) and the lease is
taken over, recorded; from another host ``ecm runs close RUN --by … --reason …`` releases it, recorded.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from load.control_store import ControlStore
from transform.errors import MigrationError


class BranchBusy(MigrationError):
    """Another run of the same branch is under way."""


class BranchMigrated(MigrationError):
    """The branch is live in central: a new full run would replace it."""


def holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


HEARTBEAT_SECONDS = float(os.environ.get("ECM_LEASE_HEARTBEAT_SECONDS", "10"))
STALE_AFTER_SECONDS = float(os.environ.get("ECM_LEASE_STALE_SECONDS", "60"))
_beats: dict[tuple[str, str], tuple[threading.Event, threading.Thread]] = {}
LOG = logging.getLogger("ecm.runlock")


def _beat(store: ControlStore, branch: str, run_id: str, me: str, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_SECONDS):
        try:
            if not store.renew_lease(branch, run_id, me):
                LOG.error("run %s lost the lease of branch %s (taken over as dead, or closed): its heartbeat "
                          "stops; this process must not go on writing", run_id, branch)
                return
        except Exception:  # noqa: BLE001 - the control store is away for a moment: try at the next beat
            continue


def holder_alive(h: str, store: ControlStore | None = None, branch: str | None = None,
                 run_id: str | None = None) -> bool | None:
    """Whether the holder of a lease lives: on this host, its process exists or not; on another host, its
    heartbeat is recent or stale (None: no heartbeat known — unknown)."""
    host, _, pid = h.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        if store is None or branch is None or run_id is None:
            return None
        at = store.lease_renewed_at(branch, run_id)
        return None if at is None else time.time() - at < STALE_AFTER_SECONDS
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def take(store: ControlStore, branch: str, run_id: str) -> None:
    """Take the branch's lease for ``run_id`` or refuse at once, naming the holder and what to do."""
    me = holder()
    if store.take_lease(branch, run_id, me):
        _start_heartbeat(store, branch, run_id)
        return
    cur = store.lease(branch)
    if cur is not None and holder_alive(cur["holder"], store, branch, cur["run_id"]) is False:  # died: take over
        if store.take_lease(branch, run_id, me, stale=True):
            _start_heartbeat(store, branch, run_id)
            store.add_branch_event(branch, "lease-taken-over", run_id=run_id, by="ecm",
                                   reason=f"run {cur['run_id']} ({cur['holder']}) ended without giving the lease back",
                                   detail=cur)
            if cur["run_id"] != run_id:  # (the same run resumed here goes on: it is not ended)
                store.end_run(cur["run_id"], "crashed", error=f"its process {cur['holder']} ended without finishing")
            return
        cur = store.lease(branch)
    who = f"run {cur['run_id']} on {cur['holder']} since {cur['acquired_at']}" if cur else "another run"
    raise BranchBusy(f"branch {branch} is being migrated by {who}; two runs of one branch at once are refused",
                     table=branch, hint=f"wait for it (`ecm status {cur['run_id'] if cur else 'latest'}`), or, if that "
                     "run is dead on another host, `ecm runs close RUN --by NAME --reason TEXT`")


def _start_heartbeat(store: ControlStore, branch: str, run_id: str) -> None:
    me = holder()
    store.renew_lease(branch, run_id, me)
    stop = threading.Event()
    t = threading.Thread(target=_beat, args=(store, branch, run_id, me, stop), daemon=True,
                         name=f"lease-heartbeat-{branch}")
    _beats[(branch, run_id)] = (stop, t)
    t.start()


def give_back(store: ControlStore, branch: str, run_id: str) -> None:
    beat = _beats.pop((branch, run_id), None)
    if beat is not None:
        beat[0].set()
        beat[1].join(timeout=30)  # a renewal under way finishes before the lease goes
    store.give_back_lease(branch, run_id)


def refuse_over_migrated(store: ControlStore, branch: str, rehearsal: bool, incremental: bool,
                         replace: dict[str, Any] | None, run_id: str) -> None:
    """A migrated branch is live in central: a full production run would replace its rows. Refused unless it is
    unloaded first, or the operator says ``--replace`` with who and why (recorded)."""
    if rehearsal or incremental or not store.branch_state(branch)["migrated"]:
        return
    if replace and (replace.get("by") or "").strip() and (replace.get("reason") or "").strip():
        store.add_branch_event(branch, "replace", run_id=run_id, by=replace["by"], reason=replace["reason"],
                               detail={"note": "a new full run replaces the migrated branch in central"})
        return
    loaded = [e for e in store.branch_events(branch) if e["action"] == "migrated"]
    when = f" by run {loaded[-1]['run_id']} on {loaded[-1]['at']}" if loaded else ""
    raise BranchMigrated(f"branch {branch} is migrated{when}: it is live in central, and a new full run would "
                         "replace its rows there", table=branch,
                         hint="`ecm unload` it first (the switch-back drill), or run again with `--replace --by NAME "
                              "--reason TEXT` (recorded); an incremental run (`--incremental`) adds only what is new")


def close_run(store: ControlStore, run_id: str, by: str, reason: str) -> dict[str, Any]:
    """``ecm runs close``: end a run that can no longer end by itself (its process died), recorded, its lease given
    back."""
    if not by.strip() or not reason.strip():
        raise MigrationError("say who closes the run and why", hint="pass --by NAME and --reason TEXT")
    run = store.run(run_id)
    if run is None:
        raise MigrationError(f"no run {run_id}", hint="see `ecm status latest`")
    if run["status"] not in ("running", "waiting-decision", "crashed"):
        raise MigrationError(f"run {run_id} is {run['status']}: only a running, waiting or crashed run is closed",
                             hint="see `ecm status " + run_id + "`")
    cur = store.lease(run["branch"])
    if cur is not None and cur["run_id"] == run_id and holder_alive(cur["holder"], store, run["branch"],
                                                                    run_id) is True:
        raise MigrationError(f"run {run_id} is alive ({cur['holder']}); stop it first (Ctrl-C or `prefect flow-run "
                             "cancel`)", table=run["branch"])
    store.give_back_lease(run["branch"], run_id)
    store.end_run(run_id, "closed", error=f"closed by {by}: {reason}")
    store.add_branch_event(run["branch"], "close-run", run_id=run_id, by=by, reason=reason,
                           detail={"was": run["status"], "lease": cur})
    return {"run_id": run_id, "branch": run["branch"], "was": run["status"]}


def effective_status(store: ControlStore, run: dict[str, Any]) -> str:
    """What ``ecm status`` shows: a run recorded as running whose process is gone is *crashed*."""
    if run["status"] not in ("running", "waiting-decision"):
        return str(run["status"])
    cur = store.lease(run["branch"])
    if cur is None or cur["run_id"] != run["run_id"] or \
            holder_alive(cur["holder"], store, run["branch"], run["run_id"]) is False:
        return "crashed"
    return str(run["status"])
