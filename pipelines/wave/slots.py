"""The concurrency slots a branch run of a wave holds: its source servers' while steps 1–2 read them, its
central's while step 8 loads it. Prefect global concurrency limits with leases (a killed worker's slot comes back
when its lease runs out); each slot also recorded in the wave store, so that the limits can be checked after."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import BaseModel, Field

from load.wave_store import WaveStore
from pipelines.config import interpolate_env
from pipelines.runlock import HEARTBEAT_SECONDS

LOG = logging.getLogger("ecm.wave")
SOURCE_STEPS = ("pl4_01_review", "pl4_02_freeze_backup")
CENTRAL_STEPS = ("pl4_08_load",)


class WaveSlots(BaseModel):
    """What a wave tells each of its branch runs (a flow parameter)."""

    wave: str
    control_url: str
    source_limits: list[str]
    central_limit: str
    lease_seconds: float = Field(60.0, ge=60)  # Prefect's minimum


def limits_for(ws: WaveSlots | None, step: str) -> list[str]:
    if ws is None:
        return []
    if step in SOURCE_STEPS:
        return list(ws.source_limits)
    if step in CENTRAL_STEPS:
        return [ws.central_limit]
    return []


@contextmanager
def holding(ws: WaveSlots | None, step: str, branch: str, run_id: str) -> Iterator[None]:
    """Hold the step's slots for its whole duration (waiting for them first); nothing outside a wave."""
    names = limits_for(ws, step)
    if ws is None or not names:
        yield
        return
    from prefect.concurrency.sync import concurrency
    store = WaveStore(interpolate_env(ws.control_url))
    with concurrency(names, occupy=1, lease_duration=ws.lease_seconds, strict=True):
        ids = [store.slot_taken(ws.wave, n, branch, run_id, step) for n in names]
        stop = threading.Event()
        beat = threading.Thread(target=_alive, args=(store, ids, stop), daemon=True, name=f"slots-{branch}")
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join(timeout=30)
            try:
                for i in ids:
                    store.slot_given_back(i)
            except Exception as exc:  # noqa: BLE001 - bookkeeping must not fail a step whose work is done
                LOG.error("wave %s: could not record that %s gave back slots %s: %s", ws.wave, branch, ids, exc)
            finally:
                store.engine.dispose()


def _alive(store: WaveStore, ids: list[int], stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_SECONDS):
        try:
            store.slots_alive(ids)
        except Exception:  # noqa: BLE001 - the wave store is away for a moment: next beat
            continue
