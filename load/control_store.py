"""The migration control store: runs, step states, counts, row accounting, findings, signatures.

Reports and the minutes are built from here, never from memory. SQLite by default; any
SQLAlchemy URL works (PostgreSQL in production).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

import sqlalchemy as sa

from validate.findings import MAX_STORED_KEYS, Finding, finding_identity

StepStatus = Literal["pending", "running", "completed", "failed", "waiting"]

md = sa.MetaData()
runs = sa.Table(
    "runs", md,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("branch", sa.String(20), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("rehearsal", sa.Boolean, nullable=False),
    sa.Column("config_json", sa.Text, nullable=False),
    sa.Column("started_at", sa.String(40)), sa.Column("ended_at", sa.String(40)),
    sa.Column("error", sa.Text),
    sa.Column("flow_run_id", sa.String(64)),
)
steps = sa.Table(
    "steps", md,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("step", sa.String(40), primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("rows_in", sa.BigInteger), sa.Column("rows_out", sa.BigInteger),
    sa.Column("seconds", sa.Float), sa.Column("detail_json", sa.Text),
    sa.Column("started_at", sa.String(40)), sa.Column("ended_at", sa.String(40)),
    sa.Column("error", sa.Text),
)
counts = sa.Table(
    "counts", md,
    sa.Column("run_id", sa.String(64), nullable=False), sa.Column("step", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),  # e.g. source, restored, by_office_type, central
    sa.Column("table_name", sa.String(80), nullable=False),
    sa.Column("office", sa.String(10)), sa.Column("ma_lh", sa.String(10)), sa.Column("category", sa.String(20)),
    sa.Column("rows", sa.BigInteger, nullable=False),
)
accounting = sa.Table(
    "accounting", md,
    sa.Column("run_id", sa.String(64), nullable=False), sa.Column("source_table", sa.String(80), nullable=False),
    sa.Column("fate", sa.String(20), nullable=False), sa.Column("code", sa.String(40), nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
)
findings = sa.Table(
    "findings", md,
    sa.Column("finding_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False), sa.Column("step", sa.String(40), nullable=False),
    sa.Column("check_id", sa.String(60), nullable=False), sa.Column("category", sa.String(30), nullable=False),
    sa.Column("severity", sa.String(10), nullable=False), sa.Column("table_name", sa.String(80)),
    sa.Column("n_keys", sa.BigInteger, nullable=False), sa.Column("keys_json", sa.Text),
    sa.Column("message", sa.Text), sa.Column("status", sa.String(20), nullable=False),
    sa.Column("owner", sa.String(60)),
    sa.Column("decision", sa.String(20)), sa.Column("reason", sa.Text), sa.Column("decided_by", sa.String(100)),
    sa.Column("decided_at", sa.String(40)),
)
checks = sa.Table(
    "checks", md,
    sa.Column("run_id", sa.String(64), nullable=False), sa.Column("step", sa.String(40), nullable=False),
    sa.Column("check_id", sa.String(60), nullable=False), sa.Column("table_name", sa.String(80)),
    sa.Column("key", sa.Text), sa.Column("field", sa.String(80)), sa.Column("expected", sa.Text),
    sa.Column("actual", sa.Text), sa.Column("status", sa.String(10), nullable=False),
)
corrections = sa.Table(
    "corrections", md,
    sa.Column("run_id", sa.String(64), nullable=False), sa.Column("finding_id", sa.Integer, nullable=False),
    sa.Column("table_name", sa.String(80), nullable=False), sa.Column("key", sa.Text, nullable=False),
    sa.Column("column_name", sa.String(80), nullable=False), sa.Column("old_value", sa.Text),
    sa.Column("new_value", sa.Text), sa.Column("applied_by", sa.String(100), nullable=False),
    sa.Column("applied_at", sa.String(40), nullable=False), sa.Column("source_file", sa.Text),
)
# every decision as it was taken: the authenticated desk user (login, address) or the CLI's --by, and when
decision_log = sa.Table(
    "decision_log", md,
    sa.Column("entry_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False), sa.Column("finding_id", sa.Integer, nullable=False),
    sa.Column("decision", sa.String(20), nullable=False), sa.Column("reason", sa.Text),
    sa.Column("by", sa.String(200), nullable=False), sa.Column("login", sa.String(60)),
    sa.Column("via", sa.String(20), nullable=False),  # desk, cli, prefect-ui, auto-approve-demo
    sa.Column("address", sa.String(80)), sa.Column("at", sa.String(40), nullable=False),
)
id_registry = sa.Table(
    "id_registry", md,
    sa.Column("branch", sa.String(20), primary_key=True), sa.Column("kind", sa.String(30), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True), sa.Column("value", sa.Text, nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
)
documents = sa.Table(
    "documents", md,
    sa.Column("run_id", sa.String(64), nullable=False), sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("path", sa.Text, nullable=False), sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("signed", sa.Boolean, nullable=False), sa.Column("note", sa.Text),
)

# what happened to a branch outside the data: freeze/unfreeze of its sources, loads into and
# removals from central, "migrated" (the branch's lifecycle, for the decommission list and drills)
branch_events = sa.Table(
    "branch_events", md,
    sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("branch", sa.String(20), nullable=False), sa.Column("run_id", sa.String(64)),
    sa.Column("action", sa.String(20), nullable=False),  # freeze, unfreeze, load, unload, migrated
    sa.Column("target", sa.String(200)), sa.Column("by", sa.String(100)), sa.Column("reason", sa.Text),
    sa.Column("detail_json", sa.Text), sa.Column("at", sa.String(40), nullable=False),
)


# one run per branch at a time: the holder of a branch's lease (process on a host), taken when a run starts and
# given back when it ends; a holder that died without giving it back is seen as such (same host) or released
# by `ecm runs close` (recorded)
branch_leases = sa.Table(
    "branch_leases", md,
    sa.Column("branch", sa.String(20), primary_key=True), sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("holder", sa.String(200), nullable=False), sa.Column("acquired_at", sa.String(40), nullable=False),
)

# the lease's heartbeat: its holder renews it while it runs; a holder on another host whose heartbeat stopped is
# dead (a killed worker, a host that went down) — seen by a wave and by `ecm status` without anyone on that host
lease_heartbeats = sa.Table(
    "lease_heartbeats", md,
    sa.Column("branch", sa.String(20), primary_key=True), sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("renewed_at", sa.Float, nullable=False),  # epoch seconds (UTC)
)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class StepRecord:
    step: str
    status: str
    rows_in: int | None
    rows_out: int | None
    seconds: float | None
    detail: dict[str, Any]
    error: str | None


class ControlStore:
    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)
        md.create_all(self.engine)

    # runs ---------------------------------------------------------------------------------------
    def start_run(self, run_id: str, branch: str, rehearsal: bool, config: dict[str, Any]) -> None:
        with self.engine.begin() as c:
            c.execute(sa.delete(runs).where(runs.c.run_id == run_id))
            for tbl in (steps, counts, accounting, findings, checks, documents, decision_log):
                c.execute(sa.delete(tbl).where(tbl.c.run_id == run_id))
            c.execute(sa.insert(runs).values(run_id=run_id, branch=branch, status="running", rehearsal=rehearsal,
                                             config_json=json.dumps(config, ensure_ascii=False, default=str),
                                             started_at=now()))

    def end_run(self, run_id: str, status: str, error: str | None = None) -> None:
        with self.engine.begin() as c:
            c.execute(sa.update(runs).where(runs.c.run_id == run_id).values(status=status, ended_at=now(),
                                                                            error=error))

    def run(self, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            r = c.execute(sa.select(runs).where(runs.c.run_id == run_id)).mappings().first()
            return dict(r) if r else None

    def latest_runs(self, limit: int = 10) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(sa.select(runs).order_by(runs.c.started_at.desc()).limit(limit))
                    .mappings()]

    # steps --------------------------------------------------------------------------------------
    def step_started(self, run_id: str, step: str) -> None:
        with self.engine.begin() as c:
            c.execute(sa.delete(steps).where(steps.c.run_id == run_id, steps.c.step == step))
            c.execute(sa.insert(steps).values(run_id=run_id, step=step, status="running", started_at=now()))

    def step_finished(self, run_id: str, step: str, status: StepStatus, rows_in: int | None, rows_out: int | None,
                      seconds: float, detail: dict[str, Any] | None = None, error: str | None = None) -> None:
        with self.engine.begin() as c:
            c.execute(sa.update(steps).where(steps.c.run_id == run_id, steps.c.step == step).values(
                status=status, rows_in=rows_in, rows_out=rows_out, seconds=seconds, ended_at=now(), error=error,
                detail_json=json.dumps(detail or {}, ensure_ascii=False, default=str)))

    def steps(self, run_id: str) -> list[StepRecord]:
        with self.engine.connect() as c:
            rows = c.execute(sa.select(steps).where(steps.c.run_id == run_id).order_by(steps.c.step)).mappings()
            return [StepRecord(r["step"], r["status"], r["rows_in"], r["rows_out"], r["seconds"],
                               json.loads(r["detail_json"] or "{}"), r["error"]) for r in rows]

    def step_detail(self, run_id: str, step: str) -> dict[str, Any]:
        for s in self.steps(run_id):
            if s.step == step:
                return s.detail
        return {}

    # counts, accounting, checks, findings, documents ------------------------------------------------
    def add_counts(self, run_id: str, step: str, kind: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            with self.engine.begin() as c:
                c.execute(sa.insert(counts), [{"run_id": run_id, "step": step, "kind": kind, **r} for r in rows])

    def counts(self, run_id: str, kind: str) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            q = sa.select(counts).where(counts.c.run_id == run_id, counts.c.kind == kind)
            return [dict(r) for r in c.execute(q).mappings()]

    def set_accounting(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as c:
            c.execute(sa.delete(accounting).where(accounting.c.run_id == run_id))
            if rows:
                c.execute(sa.insert(accounting), [{"run_id": run_id, **r} for r in rows])

    def accounting(self, run_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            q = sa.select(accounting).where(accounting.c.run_id == run_id).order_by(
                accounting.c.source_table, accounting.c.fate, accounting.c.code)
            return [dict(r) for r in c.execute(q).mappings()]

    def add_checks(self, run_id: str, step: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            with self.engine.begin() as c:
                c.execute(sa.insert(checks), [{"run_id": run_id, "step": step, **r} for r in rows])

    def checks(self, run_id: str, step: str | None = None) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            q = sa.select(checks).where(checks.c.run_id == run_id)
            if step:
                q = q.where(checks.c.step == step)
            return [dict(r) for r in c.execute(q).mappings()]

    def add_finding(self, run_id: str, f: Finding) -> None:
        """Record a finding raised by a step (numbered here); an acceptance of an identical finding of an earlier
        correction round carries over."""
        step, check_id, table, keys = f.step, f.check_id, f.table, list(f.keys)
        ident = f.identity
        with self.engine.begin() as c:
            # a correction round raises its findings again: one that an earlier round's finding had accepted, with
            # the same check, table and keys, keeps that acceptance (logged as carried over) — not decided twice
            earlier = None if ident is None else next((dict(r) for r in c.execute(sa.select(findings).where(
                findings.c.run_id == run_id, findings.c.step == step, findings.c.check_id == check_id,
                findings.c.status == "superseded", findings.c.decision == "accept",
                findings.c.n_keys == len(keys)).order_by(findings.c.finding_id.desc())).mappings()
                if finding_identity(r["check_id"], r["table_name"], json.loads(r["keys_json"] or "[]")) == ident
                and (r["table_name"] or None) == (table or None)), None)
            carried = {"status": "accepted", "decision": "accept", "reason": earlier["reason"],
                       "decided_by": earlier["decided_by"], "decided_at": earlier["decided_at"]} if earlier else {}
            r = c.execute(sa.insert(findings).values(
                run_id=run_id, step=step, check_id=check_id, category=f.category, severity=f.severity,
                table_name=table, n_keys=f.n_keys,
                keys_json=json.dumps(keys[:MAX_STORED_KEYS], ensure_ascii=False, default=str),
                message=f.message, owner=f.owner, **({"status": "open"} | carried)))
            if earlier:
                c.execute(sa.insert(decision_log).values(
                    run_id=run_id, finding_id=r.inserted_primary_key[0], decision="accept",
                    reason=f"carried over from finding {earlier['finding_id']} (same check, table and keys): "
                           f"{earlier['reason'] or ''}", by=earlier["decided_by"] or "", via="carried-over",
                    at=now()))

    def finding(self, run_id: str, finding_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            r = c.execute(sa.select(findings).where(findings.c.run_id == run_id,
                                                    findings.c.finding_id == finding_id)).mappings().first()
            return dict(r) if r else None

    def decide(self, run_id: str, finding_id: int, status: str, decision: str, reason: str | None, by: str, *,
               via: str = "cli", address: str | None = None, login: str | None = None) -> bool:
        """Decide an open finding and log who, when, from where and through what (desk, cli, auto). False if the
        finding was no longer open (decided meanwhile by someone else): nothing is changed then."""
        at = now()
        with self.engine.begin() as c:
            r = c.execute(sa.update(findings).where(findings.c.run_id == run_id, findings.c.finding_id == finding_id,
                                                    findings.c.status == "open")
                          .values(status=status, decision=decision, reason=reason, decided_by=by, decided_at=at))
            if not r.rowcount:
                return False
            c.execute(sa.insert(decision_log).values(run_id=run_id, finding_id=finding_id, decision=decision,
                                                     reason=reason, by=by, login=login, via=via, address=address,
                                                     at=at))
        return True

    def reopen(self, run_id: str, finding_id: int, why: str) -> None:
        """Undo a decision whose correction failed (the finding is open again; the log says so)."""
        with self.engine.begin() as c:
            f = c.execute(sa.select(findings).where(findings.c.run_id == run_id,
                                                    findings.c.finding_id == finding_id)).mappings().first()
            c.execute(sa.update(findings).where(findings.c.run_id == run_id, findings.c.finding_id == finding_id)
                      .values(status="open", decision=None, reason=None, decided_by=None, decided_at=None))
            c.execute(sa.insert(decision_log).values(run_id=run_id, finding_id=finding_id, decision="reopen",
                                                     reason=why, by=(f or {}).get("decided_by") or "", via="system",
                                                     at=now()))

    def decision_log(self, run_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            q = sa.select(decision_log).where(decision_log.c.run_id == run_id).order_by(decision_log.c.entry_id)
            return [dict(r) for r in c.execute(q).mappings()]

    def add_corrections(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            with self.engine.begin() as c:
                c.execute(sa.insert(corrections), rows)

    def corrections(self, run_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(sa.select(corrections).where(corrections.c.run_id == run_id))
                    .mappings()]

    def set_run_status(self, run_id: str, status: str, flow_run_id: str | None = None) -> None:
        values: dict[str, Any] = {"status": status}
        if flow_run_id:
            values["flow_run_id"] = flow_run_id
            values["ended_at"] = None  # a (re)started flow run: the run is not over (`ecm resume`)
        with self.engine.begin() as c:
            c.execute(sa.update(runs).where(runs.c.run_id == run_id).values(**values))

    def supersede_findings(self, run_id: str, steps: tuple[str, ...]) -> int:
        """A correction round re-runs ``steps``: their earlier findings are kept, marked 'superseded' (the decision
        taken on each stays in ``decision``/``reason``); the new round raises its own."""
        with self.engine.begin() as c:
            r = c.execute(sa.update(findings).where(findings.c.run_id == run_id, findings.c.step.in_(steps),
                                                    findings.c.status != "superseded").values(status="superseded"))
            return int(r.rowcount or 0)

    def findings(self, run_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            q = sa.select(findings).where(findings.c.run_id == run_id).order_by(findings.c.finding_id)
            return [dict(r) for r in c.execute(q).mappings()]

    def add_document(self, run_id: str, kind: str, path: str, sha256: str, signed: bool, note: str = "") -> None:
        with self.engine.begin() as c:
            c.execute(sa.delete(documents).where(documents.c.run_id == run_id, documents.c.kind == kind))
            c.execute(sa.insert(documents).values(run_id=run_id, kind=kind, path=path, sha256=sha256, signed=signed,
                                                  note=note))

    def documents(self, run_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(sa.select(documents).where(documents.c.run_id == run_id)).mappings()]

    # ID registry ---------------------------------------------------------------------------------
    def registry(self, branch: str, kinds: tuple[str, ...] | None = None) -> list[dict[str, str]]:
        with self.engine.connect() as c:
            q = sa.select(id_registry.c.kind, id_registry.c.key, id_registry.c.value).where(
                id_registry.c.branch == branch)
            if kinds is not None:
                q = q.where(id_registry.c.kind.in_(kinds))
            return [dict(r) for r in c.execute(q).mappings()]

    def commit_registry(self, branch: str, run_id: str, rows: Iterable[list[dict[str, str]]] | list[dict[str, str]],
                        replace_kinds: tuple[str, ...] = ()) -> None:
        """Store the IDs a loaded run issued (a list, or batches of rows); a non-incremental run first drops
        the kinds it replaced."""
        batches = [rows[i:i + 10_000] for i in range(0, len(rows), 10_000)] if isinstance(rows, list) else rows
        with self.engine.begin() as c:
            if replace_kinds:
                c.execute(sa.delete(id_registry).where(id_registry.c.branch == branch,
                                                       id_registry.c.kind.in_(replace_kinds)))
            for batch in batches:
                if batch:
                    c.execute(sa.insert(id_registry), [{"branch": branch, "run_id": run_id, **r} for r in batch])

    # branch lifecycle -----------------------------------------------------------------------------
    def add_branch_event(self, branch: str, action: str, *, run_id: str | None = None, target: str | None = None,
                         by: str | None = None, reason: str | None = None,
                         detail: dict[str, Any] | None = None) -> None:
        with self.engine.begin() as c:
            c.execute(sa.insert(branch_events).values(
                branch=branch, run_id=run_id, action=action, target=target, by=by, reason=reason,
                detail_json=json.dumps(detail or {}, ensure_ascii=False, default=str), at=now()))

    def branch_events(self, branch: str) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            rows = c.execute(sa.select(branch_events).where(branch_events.c.branch == branch)
                             .order_by(branch_events.c.event_id)).mappings()
            return [{**dict(r), "detail": json.loads(r["detail_json"] or "{}")} for r in rows]

    def branch_state(self, branch: str) -> dict[str, Any]:
        """Latest freeze state and central state of a branch, from its events."""
        ev = self.branch_events(branch)
        frozen = {e["target"]: e["action"] == "freeze" for e in ev if e["action"] in ("freeze", "unfreeze")}
        central = [e for e in ev if e["action"] in ("load", "unload", "migrated")]
        return {"frozen": frozen, "central": central[-1]["action"] if central else None,
                "migrated": any(e["action"] == "migrated" for e in ev)
                and (not central or central[-1]["action"] == "migrated")}

    # one run per branch ------------------------------------------------------------------------
    def lease(self, branch: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            r = c.execute(sa.select(branch_leases).where(branch_leases.c.branch == branch)).mappings().first()
            return dict(r) if r else None

    def take_lease(self, branch: str, run_id: str, holder: str, stale: bool = False) -> bool:
        """Take the branch's lease for ``run_id``. False when another holder has it (and it is not ``stale``: a
        holder known to be dead). The primary key makes two takers at once impossible: one insert wins."""
        with self.engine.begin() as c:
            cur = c.execute(sa.select(branch_leases).where(branch_leases.c.branch == branch)).mappings().first()
            if cur is not None:
                if (cur["run_id"] != run_id or cur["holder"] != holder) and not stale:
                    return False  # another run — or the same run resumed elsewhere — holds it: only if it is dead
                c.execute(sa.delete(branch_leases).where(branch_leases.c.branch == branch,
                                                         branch_leases.c.run_id == cur["run_id"]))
        try:
            with self.engine.begin() as c:
                c.execute(sa.insert(branch_leases).values(branch=branch, run_id=run_id, holder=holder,
                                                          acquired_at=now()))
        except sa.exc.IntegrityError:
            return False  # another run took it between our two statements
        return True

    def give_back_lease(self, branch: str, run_id: str) -> None:
        with self.engine.begin() as c:
            c.execute(sa.delete(branch_leases).where(branch_leases.c.branch == branch,
                                                     branch_leases.c.run_id == run_id))
            c.execute(sa.delete(lease_heartbeats).where(lease_heartbeats.c.branch == branch,
                                                        lease_heartbeats.c.run_id == run_id))

    def renew_lease(self, branch: str, run_id: str, holder: str) -> bool:
        """The holder is alive: record the time (one row per branch) — only while it still holds the lease.
        False: the lease is no longer its own (taken over as dead, or closed)."""
        t = time.time()
        with self.engine.begin() as c:
            mine = c.execute(sa.select(branch_leases.c.branch).where(
                branch_leases.c.branch == branch, branch_leases.c.run_id == run_id,
                branch_leases.c.holder == holder)).first()
            if mine is None:
                return False
            if not c.execute(sa.update(lease_heartbeats).where(lease_heartbeats.c.branch == branch)
                             .values(run_id=run_id, renewed_at=t)).rowcount:
                c.execute(sa.insert(lease_heartbeats).values(branch=branch, run_id=run_id, renewed_at=t))
        return True

    def lease_renewed_at(self, branch: str, run_id: str) -> float | None:
        with self.engine.connect() as c:
            r = c.execute(sa.select(lease_heartbeats.c.renewed_at).where(
                lease_heartbeats.c.branch == branch, lease_heartbeats.c.run_id == run_id)).first()
            return float(r[0]) if r else None

    def branches(self) -> list[str]:
        with self.engine.connect() as c:
            return [r[0] for r in c.execute(sa.select(branch_events.c.branch).distinct())]
