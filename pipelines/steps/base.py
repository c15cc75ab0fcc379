"""What every step receives and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from load.control_store import ControlStore
from pipelines.config import BranchConfig
from sign_off.certs import Anchors
from transform.convert import branch_base_id


@dataclass
class StepContext:
    cfg: BranchConfig
    store: ControlStore
    run_id: str
    auto_approve_demo: bool = False
    resuming: bool = False  # `ecm resume`: the step continues what this run began (step 7: the same minutes)

    @property
    def run_dir(self) -> Path:
        return self.cfg.run_dir_root / self.run_id

    @property
    def package_dir(self) -> Path:
        return self.run_dir / "package"

    @property
    def received_dir(self) -> Path:
        return self.cfg.handover_dir / self.cfg.branch_code / self.run_id

    @property
    def snapshot_dir(self) -> Path:
        return self.run_dir / "converted"

    @property
    def reports_dir(self) -> Path:
        p = self.run_dir / "reports"
        p.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def pki_dir(self) -> Path:
        """Where the DEMO PKI lives (sample branch only)."""
        return self.cfg.output_dir / "pki"

    def signing_anchors(self) -> tuple[list[Path], list[Path], list[Path]]:
        """(trust roots, CRLs, intermediates) for verification: those of :func:`config_anchors`."""
        a = config_anchors(self.cfg)
        return list(a.trust), list(a.crls), list(a.intermediates)

    @property
    def base_id(self) -> int:
        return branch_base_id(self.cfg.id_cuc_hq, self.cfg.id_chi_cuc)

    def verified_snapshot(self, when: str) -> dict[str, Any]:
        """The snapshot of step 5, every file re-hashed now against the hashes step 5 recorded (extract/custody.py)."""
        from extract.custody import verify_snapshot_custody
        recorded = self.store.step_detail(self.run_id, "pl4_05_convert").get("snapshot_sha256")
        return verify_snapshot_custody(self.snapshot_dir, recorded, when)

    def recorded_package_sha256(self) -> str | None:
        """The package manifest's SHA-256 as step 2 recorded it when it wrote the package."""
        return self.store.step_detail(self.run_id, "pl4_02_freeze_backup").get("package_manifest_sha256")

    def freeze_time(self) -> datetime:
        """When the source was frozen (step 2); dates after it are impossible."""
        d = self.store.step_detail(self.run_id, "pl4_02_freeze_backup")
        at = d.get("frozen_at")
        if at:
            return datetime.fromisoformat(at).replace(tzinfo=None)
        return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass
class StepOutcome:
    rows_in: int | None
    rows_out: int | None
    detail: dict[str, Any] = field(default_factory=dict)
    markdown: str = ""  # what the Prefect artifact shows
    status: str = "completed"


def config_anchors(cfg: BranchConfig) -> Anchors:
    """What signers' certificates are checked against: the configured trust list, intermediates, CRLs and
    revocation setting, plus the DEMO PKI's for the sample branch (it provides its CRLs: revocation stays
    required)."""
    sg, pki = cfg.signing, cfg.output_dir / "pki"
    demo = sg.demo_pki
    return Anchors.of([*sg.trust, *([pki / "demo_root.pem"] if demo else [])],
                      [*sg.other_certs, *([pki / "demo_intermediate.pem"] if demo else [])],
                      [*sg.crls, *([pki / "demo_intermediate.crl", pki / "demo_root.crl"] if demo else [])],
                      sg.revocation)
