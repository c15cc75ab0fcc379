"""The wave's records, in a database every host of the wave reaches (PostgreSQL in production): the branches it
submitted (each attempt, its flow run and state) and every concurrency slot a branch held — taken, given back, or
expired with its holder — so that afterwards anyone can check that no limit was exceeded."""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa

md = sa.MetaData()
waves = sa.Table(
    "waves", md,
    sa.Column("wave", sa.String(40), primary_key=True), sa.Column("mode", sa.String(20), nullable=False),
    sa.Column("plan_json", sa.Text, nullable=False), sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float), sa.Column("state", sa.String(20), nullable=False),
    sa.Column("flow_run_id", sa.String(64)),
)
wave_branches = sa.Table(
    "wave_branches", md,
    sa.Column("wave", sa.String(40), primary_key=True), sa.Column("branch", sa.String(20), primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True), sa.Column("flow_run_id", sa.String(64)),
    sa.Column("run_id", sa.String(64)), sa.Column("state", sa.String(30), nullable=False),
    sa.Column("submitted_at", sa.Float, nullable=False), sa.Column("ended_at", sa.Float),
    sa.Column("note", sa.Text),
)
wave_slots = sa.Table(
    "wave_slots", md,
    sa.Column("slot_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("wave", sa.String(40), nullable=False), sa.Column("limit_name", sa.String(120), nullable=False),
    sa.Column("branch", sa.String(20), nullable=False), sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("step", sa.String(40), nullable=False), sa.Column("acquired_at", sa.Float, nullable=False),
    sa.Column("released_at", sa.Float), sa.Column("how", sa.String(20)),  # given-back | holder-died
    sa.Column("alive_at", sa.Float),  # the holder's last sign of life while it held the slot
)


class WaveStore:
    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)
        md.create_all(self.engine)

    # the wave ---------------------------------------------------------------------------------
    def start_wave(self, wave: str, mode: str, plan: dict[str, Any], flow_run_id: str | None) -> None:
        with self.engine.begin() as c:
            before = c.execute(sa.select(waves.c.mode).where(waves.c.wave == wave)).first()
            if before is not None and before[0] != mode:
                from transform.errors import ConfigError
                raise ConfigError(f"wave {wave} already ran as a {before[0]} wave; a {mode} wave needs its own name",
                                  hint="rename the wave in the plan (e.g. dot-1-production)")
            if before is not None:
                c.execute(sa.update(waves).where(waves.c.wave == wave).values(
                    state="running", ended_at=None, flow_run_id=flow_run_id))
            else:
                c.execute(sa.insert(waves).values(wave=wave, mode=mode, plan_json=json.dumps(plan, default=str),
                                                  started_at=time.time(), state="running", flow_run_id=flow_run_id))

    def end_wave(self, wave: str, state: str) -> None:
        with self.engine.begin() as c:
            c.execute(sa.update(waves).where(waves.c.wave == wave).values(state=state, ended_at=time.time()))

    def wave(self, wave: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            r = c.execute(sa.select(waves).where(waves.c.wave == wave)).mappings().first()
            return dict(r) if r else None

    def waves(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(sa.select(waves).order_by(waves.c.started_at)).mappings()]

    # its branches -----------------------------------------------------------------------------
    def submitted(self, wave: str, branch: str, attempt: int, flow_run_id: str, note: str = "") -> None:
        with self.engine.begin() as c:
            if not c.execute(sa.select(wave_branches.c.attempt).where(
                    wave_branches.c.wave == wave, wave_branches.c.branch == branch,
                    wave_branches.c.attempt == attempt)).first():
                c.execute(sa.insert(wave_branches).values(wave=wave, branch=branch, attempt=attempt,
                                                          flow_run_id=flow_run_id, state="submitted",
                                                          submitted_at=time.time(), note=note))

    def branch_state(self, wave: str, branch: str, attempt: int, state: str, run_id: str | None = None,
                     ended: bool = False, note: str | None = None) -> None:
        values: dict[str, Any] = {"state": state}
        if run_id:
            values["run_id"] = run_id
        if ended:
            values["ended_at"] = time.time()
        if note is not None:
            values["note"] = note
        with self.engine.begin() as c:
            c.execute(sa.update(wave_branches).where(wave_branches.c.wave == wave, wave_branches.c.branch == branch,
                                                     wave_branches.c.attempt == attempt).values(**values))

    def branches(self, wave: str) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(sa.select(wave_branches).where(wave_branches.c.wave == wave)
                                               .order_by(wave_branches.c.submitted_at)).mappings()]

    # slots ------------------------------------------------------------------------------------
    def slot_taken(self, wave: str, limit_name: str, branch: str, run_id: str, step: str) -> int:
        with self.engine.begin() as c:
            t = time.time()
            r = c.execute(sa.insert(wave_slots).values(wave=wave, limit_name=limit_name, branch=branch,
                                                       run_id=run_id, step=step, acquired_at=t, alive_at=t))
            return int(r.inserted_primary_key[0])

    def slot_given_back(self, slot_id: int) -> None:
        with self.engine.begin() as c:
            c.execute(sa.update(wave_slots).where(wave_slots.c.slot_id == slot_id, wave_slots.c.released_at.is_(None))
                      .values(released_at=time.time(), how="given-back"))

    def slots_alive(self, slot_ids: list[int]) -> None:
        with self.engine.begin() as c:
            c.execute(sa.update(wave_slots).where(wave_slots.c.slot_id.in_(slot_ids)).values(alive_at=time.time()))

    def slots_of_dead_holder(self, wave: str, run_id: str) -> int:
        """The slots a holder that died never gave back end at its last sign of life (after it, nothing of it
        touched the server; Prefect hands the slot on once the holder's lease runs out)."""
        with self.engine.begin() as c:
            return c.execute(sa.update(wave_slots).where(wave_slots.c.wave == wave, wave_slots.c.run_id == run_id,
                                                         wave_slots.c.released_at.is_(None))
                             .values(released_at=wave_slots.c.alive_at, how="holder-died")).rowcount

    def slots(self, wave: str) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(sa.select(wave_slots).where(wave_slots.c.wave == wave)
                                               .order_by(wave_slots.c.acquired_at)).mappings()]


def peak_holders(slots: list[dict[str, Any]], until: float | None = None) -> dict[str, int]:
    """Per limit, the most slots held at one moment (a slot still held counts until ``until``, default now)."""
    end = until or time.time()
    events: dict[str, list[tuple[float, int]]] = {}
    for s in slots:
        ev = events.setdefault(s["limit_name"], [])
        ev.append((s["acquired_at"], 1))
        ev.append((s["released_at"] if s["released_at"] is not None else end, -1))
    out = {}
    for name, ev in events.items():
        cur = peak = 0
        for _t, d in sorted(ev, key=lambda e: (e[0], e[1])):  # a release at the same instant comes first
            cur += d
            peak = max(peak, cur)
        out[name] = peak
    return out
