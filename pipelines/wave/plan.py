"""A wave plan (TOML), typed and validated like the branch config: the branch configs, their order, the cut-over
window, the limits — how many branches at once per source server, per central and in all — and whether it is a
rehearsal (6277/TCHQ trial run) or production.

```toml
wave = "dot-1"                      # the wave's name: part of every idempotency key
mode = "rehearsal"                  # or "production"; every branch config must agree (rehearsal = true/false)
control_url = "postgresql+psycopg://…/ecm_control"   # the wave's own records (shared by the workers' hosts)
deployment = "migrate-branch/migrate-branch"
window = { start = 2026-12-01T23:00:00+07:00, end = 2026-12-02T05:00:00+07:00 }
[limits]
total = 4                           # branch runs at work at once (a run waiting for people does not count)
per_source_server = 1               # steps 1–2 read the branch's servers
per_central = 2                     # step 8 loads central
[[branch]]
config = "branches/c47d.toml"       # relative to this file
priority = 1                        # lower first; ties in file order
```
"""

from __future__ import annotations

import re
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy.engine import make_url

from pipelines.config import BranchConfig, load_config
from transform.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Window(_Strict):
    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window start and end need a time zone (e.g. 2026-12-01T23:00:00+07:00)")
        if self.end <= self.start:
            raise ValueError("window end must come after its start")
        return self


class Limits(_Strict):
    total: int = Field(4, ge=1, description="branch runs at work at once")
    per_source_server: int = Field(1, ge=1, description="branches reading one source server at once (steps 1–2)")
    per_central: int = Field(2, ge=1, description="branches loading one central at once (step 8)")


class WaveBranch(_Strict):
    config: Path
    priority: int = 100


class WavePlan(_Strict):
    wave: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")
    mode: Literal["rehearsal", "production"]
    control_url: str = Field(description="where the wave records its branches and slots (shared by every host)")
    deployment: str = "migrate-branch/migrate-branch"
    resume_deployment: str = "resume-run/resume-run"
    window: Window | None = None
    limits: Limits = Field(default_factory=Limits)
    poll_seconds: float = Field(5.0, gt=0)
    max_attempts: int = Field(3, ge=1, description="submissions of one branch (a crash re-submits it)")
    output_dir: Path = Field(Path("out/waves"), description="where the wave report is written (relative to the plan)")
    auto_approve_demo: bool = Field(False, description="accept every finding automatically (sample branches and "
                                                       "drills only; recorded as such)")
    lease_seconds: float = Field(60.0, ge=60, description="a concurrency slot's lease: a dead holder's slot comes "
                                                          "back at most this long after its last renewal")
    branch: list[WaveBranch] = Field(min_length=1)


class PlannedBranch(BaseModel):
    """One branch of a loaded plan: its config, and the names of the concurrency limits it holds."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    code: str
    config_path: Path
    config: BranchConfig
    priority: int
    source_limits: list[str]  # one per server its two databases live on (usually one)
    central_limit: str

    @property
    def limits(self) -> list[str]:
        return [*self.source_limits, self.central_limit]


class LoadedPlan(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    plan: WavePlan
    path: Path
    branches: list[PlannedBranch]  # in the order they are submitted

    def limit_sizes(self) -> dict[str, int]:
        """Every concurrency limit the wave needs, with its size."""
        out = {name: self.plan.limits.per_source_server for b in self.branches for name in b.source_limits}
        out |= {b.central_limit: self.plan.limits.per_central for b in self.branches}
        return out


def limit_name(kind: str, url: str) -> str:
    """A Prefect concurrency limit name for a server: ``ecm-source-127-0-0-1-3306``. A file database (SQLite,
    DuckDB) is its own server: named after its folder. Only [a-z0-9-] (Prefect forbids / % & > <)."""
    u = make_url(url)
    if u.host:
        where = f"{u.host}-{u.port}" if u.port else u.host
    elif u.database:
        where = str(Path(u.database).resolve().parent)
    else:
        where = u.render_as_string(hide_password=True)
    slug = re.sub(r"[^a-z0-9]+", "-", where.lower()).strip("-")
    if len(slug) > 60:  # long folder paths: keep the end, which tells them apart
        slug = slug[-60:].lstrip("-")
    return f"ecm-{kind}-{slug}"


def load_plan(path: Path) -> LoadedPlan:
    if not path.exists():
        raise ConfigError(f"wave plan not found: {path}", hint="write one (README: Waves of branches)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        plan = WavePlan.model_validate(data)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e["loc"]) or "plan"
        raise ConfigError(f"wave plan {path}: {where}: {e['msg']}",
                          hint="see README, 'Waves of branches', for the plan's fields") from None
    base = path.parent.resolve()
    branches: list[PlannedBranch] = []
    for b in sorted(plan.branch, key=lambda b: b.priority):
        cpath = b.config if b.config.is_absolute() else base / b.config
        cfg = load_config(cpath)
        if cfg.rehearsal != (plan.mode == "rehearsal"):
            raise ConfigError(f"wave plan {path}: branch config {cpath} has rehearsal = {str(cfg.rehearsal).lower()}"
                              f" but the wave is a {plan.mode}", table=cfg.branch_code,
                              hint="a rehearsal wave takes rehearsal configs only, a production wave none")
        central = cfg.resolved_url("rehearsal_central" if cfg.rehearsal else "central")
        branches.append(PlannedBranch(code=cfg.branch_code, config_path=cpath, config=cfg, priority=b.priority,
                                      source_limits=sorted({limit_name("source", cfg.resolved_url(db))
                                                            for db in ("sxxk", "slxnk")}),
                                      central_limit=limit_name("central", central)))
    codes = [b.code for b in branches]
    dup = sorted({c for c in codes if codes.count(c) > 1})
    if dup:
        raise ConfigError(f"wave plan {path} names branch {', '.join(dup)} twice", hint="one entry per branch")
    if not plan.output_dir.is_absolute():
        plan.output_dir = base / plan.output_dir
    return LoadedPlan(plan=plan, path=path.resolve(), branches=branches)
