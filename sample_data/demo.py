"""The bundled demo branch: generate (or reuse) it and write its branch config."""

from __future__ import annotations

import json
from pathlib import Path

from sample_data.generator import BRANCH_OFFICES, GENERATOR_VERSION, GenParams, generate_branch

DEMO_PARAMS = GenParams()


def ensure_demo(out: Path, params: GenParams = DEMO_PARAMS) -> Path:
    """Generate the sample branch under ``out/branch`` unless an identical one is there; write ``branch.toml``."""
    branch = out / "branch"
    mp = branch / "manifest.json"
    fresh = True
    if mp.exists():
        m = json.loads(mp.read_text(encoding="utf-8"))
        fresh = not (m.get("generator_version") == GENERATOR_VERSION and m.get("seed") == params.seed and m.get("scale") == params.scale
                     and m.get("defect_rates") == params.defects
                     and (branch / "slxnk.sqlite").exists() and (branch / "sxxk.sqlite").exists())
    if fresh:
        generate_branch(branch, params)
    # every demo starts from an empty central and control store: the demo migrates the sample branch for real
    # (a production run, signed minutes), and a second full run over a migrated branch is refused by design
    for stale in ("central.sqlite", "central_rehearsal.sqlite", "control.sqlite", "staging.duckdb",
                  "staging.duckdb.wal"):
        (out / stale).unlink(missing_ok=True)
    return write_config(out, branch, rehearsal=False, demo_pki=True)


def write_config(out: Path, branch: Path, *, code: str = "C47D", rehearsal: bool = True, demo_pki: bool = True,
                 id_chi_cuc: int = 1, slxnk_url: str | None = None, sxxk_url: str | None = None,
                 admin_url: str | None = None, central_url: str | None = None,
                 rehearsal_central_url: str | None = None, name: str = "branch.toml") -> Path:
    """The branch config of a sample branch: SQLite sources and central by default, or the URLs given
    (server sources, PostgreSQL central). URLs may hold ``${ENV}`` references."""
    cfg = out / name
    slxnk_url = slxnk_url or f"sqlite:///{(branch / 'slxnk.sqlite').as_posix()}"
    sxxk_url = sxxk_url or f"sqlite:///{(branch / 'sxxk.sqlite').as_posix()}"
    central_url = central_url or f"sqlite:///{(out / 'central.sqlite').as_posix()}"
    rehearsal_central_url = rehearsal_central_url or f"sqlite:///{(out / 'central_rehearsal.sqlite').as_posix()}"
    admin = f'admin_url = "{admin_url}"\n' if admin_url else ""
    offices = ", ".join(f'"{o.strip()}"' for o in BRANCH_OFFICES)
    cfg.write_text(f"""# Demo branch (generated sample data, not real customs data)
branch_code = "{code}"
branch_name = "Chi cục Hải quan Biên Hòa (dữ liệu mẫu)"
department_name = "Cục Hải quan tỉnh Đồng Nai"
offices = [{offices}]
id_cuc_hq = 47
id_chi_cuc = {id_chi_cuc}
staging_path = "staging.duckdb"
central_url = "{central_url}"
rehearsal_central_url = "{rehearsal_central_url}"
control_url = "sqlite:///{(out / 'control.sqlite').as_posix()}"
output_dir = "."
handover_dir = "hq_inbox"
users_file = "{(branch / 'users.json').as_posix()}"
rehearsal = {"true" if rehearsal else "false"}

[sources]
slxnk_url = "{slxnk_url}"
sxxk_url = "{sxxk_url}"
{admin}
[signing]
demo_pki = {"true" if demo_pki else "false"}  # the six DEMO signers sign the minutes (sample data only)

[sampling]
seed = 865
confidence = 0.95
max_defect_rate = 0.01
""", encoding="utf-8")
    return cfg
