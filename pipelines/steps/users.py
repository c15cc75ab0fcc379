"""The branch's users (Phụ lục IV bước 8: phân quyền): read the users file the branch exported, map
their offices to central's codes and their legacy roles to central roles. Step 6 does it first, so
that unknown roles are findings the business sees and the minutes list before anyone signs; step 8
does it again to grant them."""

from __future__ import annotations

import json
from typing import Any

from load.errors import LoadError, LoadRefused
from pipelines.config import BranchConfig
from pipelines.steps.base import StepContext
from transform.codes import new_office_code, office_map
from transform.roles import map_user_roles
from validate.findings import Finding


def branch_users(cfg: BranchConfig) -> tuple[list[dict[str, Any]], list[Any]]:
    """(central accounts, unknown legacy roles) of the branch's users file (none if no file is configured)."""
    if cfg.users_file and not cfg.users_file.exists():
        raise LoadError(f"the branch users file is missing: {cfg.users_file}", table=str(cfg.users_file),
                        hint="export the branch's users (login, full_name, legacy_roles, office) to that file")
    users_raw = json.loads(cfg.users_file.read_text(encoding="utf-8")) if cfg.users_file else []
    omap = office_map(cfg.office_map)
    table_2025 = cfg.offices_2025()

    def central_office(o: str) -> str:
        code = new_office_code(o, omap) or o
        if table_2025 is not None:
            if code not in table_2025.offices:
                raise LoadRefused(f"user office {o} ({code}) is not in the 2025 office table",
                                  table=str(cfg.office_table_2025), hint="complete the table or fix the users file")
            return table_2025.offices[code].new_code
        return code
    return map_user_roles(users_raw, central_office)


def add_unknown_roles(ctx: StepContext, step: str, unknown: list[Any]) -> None:
    ctx.store.add_finding(ctx.run_id, Finding.raised(
        step, "unknown_role", "users", unknown,
        f"{len(unknown)} legacy roles have no central role; those grants will not be made"))
