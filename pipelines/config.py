"""Typed branch configuration, resolved once at the edge (CLI or deployment parameters).

Unknown keys are rejected with the list of valid ones. URLs may reference environment variables
as ``${NAME}`` so that passwords never sit in a committed file; they are redacted in every log.
"""

from __future__ import annotations

import os
import re
import tomllib
from urllib.parse import quote
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from transform.errors import ConfigError
from transform.codes import office_map, unit_map
from transform.maps import OFFICE_MAP_LATEST, UNIT_MAP_LATEST
from transform.offices2025 import OfficeTable2025, parse_office_table

# the 2014 scripts cut these to the central sizes (domain doc §4.4)
TRUNCATIONS_2014 = ("DTO_KHAI_MD.DV_DT", "DTO_KHAI_MD.VAN_DON", "DTO_KHAI_MD.SO_HD", "DTO_KHAI_MD.SO_HDTM")
_ENV_RE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


def interpolate_env(value: str) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in os.environ:
            raise ConfigError(f"environment variable {name} is not set", hint=f"export {name}=... before the run")
        # characters that would end a URL's user or password part travel percent-encoded
        # (SQLAlchemy decodes them): a password "p@ss" must not turn "ss@host" into the host
        return quote(os.environ[name], safe="/:=;,+!$&'()*~.-_ ")
    return _ENV_RE.sub(sub, value)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sources(Strict):
    slxnk_url: str = Field(description="SQLAlchemy URL of the branch's SLXNK database")
    sxxk_url: str = Field(description="SQLAlchemy URL of the branch's SXXK database")
    admin_url: str | None = Field(None, description=(
        "administrative account for freezing and native backups (same server); default: each source URL"))
    native_backup: bool = Field(True, description="also back up with the engine's own tool (pg_dump, "
                                                  "mariadb-dump, SQLite backup)")


class Sampling(Strict):
    seed: int = 865
    confidence: float = Field(0.95, gt=0, lt=1)
    max_defect_rate: float = Field(0.01, gt=0, lt=1)


SignerField = Literal["tong-cuc-technical", "tong-cuc-business", "cuc-technical", "cuc-business",
                      "chi-cuc-technical", "chi-cuc-business"]


class Policy(Strict):
    """Which finding severities block which decision gate (after step 4, after step 6)."""

    block: dict[Literal["critical", "major", "minor"], list[Literal["pl4_04_restore", "pl4_06_validate"]]] = Field(
        default_factory=lambda: {"critical": ["pl4_04_restore", "pl4_06_validate"], "major": ["pl4_06_validate"]})
    decision_timeout_seconds: int = Field(3600, ge=1)
    poll_seconds: int = Field(10, ge=1)
    max_correction_rounds: int = Field(3, ge=0)
    deciders: dict[Literal["critical", "major", "minor"], list[SignerField]] = Field(
        default_factory=lambda: {"critical": ["tong-cuc-business"], "major": ["tong-cuc-business", "cuc-business"],
                                 "minor": ["tong-cuc-business", "cuc-business", "chi-cuc-business"]},
        description="which party × role (the minutes' signature fields) may decide a finding of each severity "
                    "at the review desk")
    prefect_ui_decisions: bool = Field(False, description=(
        "let the Prefect UI's pause form record decisions (no login there: the deciders policy cannot apply; "
        "logged as via prefect-ui). Off: decisions are made at the desk or with `ecm decide`"))


class Signing(Strict):
    """Who may sign the minutes, and how auditors' checks are anchored (all offline)."""

    trust: list[Path] = Field(default_factory=list, description="trusted root certificates (PEM/DER)")
    crls: list[Path] = Field(default_factory=list, description="CRLs supplied offline")
    other_certs: list[Path] = Field(default_factory=list, description="intermediate certificates")
    demo_pki: bool = Field(False, description="sign with the six DEMO signers (sample branch only)")
    revocation: Literal["required", "none-available"] = Field("required", description=(
        "required: every signer's certificate needs current revocation information (a CRL in `crls`), or "
        "`ecm sign` refuses it and verification fails (hard-fail); none-available: this deployment has no "
        "revocation service — signatures are accepted without it and every report says 'revocation not "
        "checked: none available by configuration'"))
    tsa_url: str | None = Field(None, pattern=r"^https?://", description=(
        "the RFC 3161 time-stamping authority every signature is time-stamped by (PAdES B-T) and that adds the "
        "archive time-stamp (B-LTA); without it signatures carry no trusted time and stop verifying once the "
        "certificates expire. The DEMO PKI runs its own on 127.0.0.1"))
    ocsp_url: str | None = Field(None, pattern=r"^https?://", description=(
        "the OCSP responder for the signers' and the TSA's certificates: its answers are embedded at signing "
        "(PAdES B-LT), so the signatures verify offline years later"))


class BranchConfig(Strict):
    branch_code: str = Field(pattern=r"^[A-Z0-9]{3,8}$", description="short code of the branch, e.g. C47D")
    branch_name: str
    department_name: str
    offices: list[str] = Field(min_length=1, description="legacy office codes of the branch (e.g. C47D, C47D01)")
    id_cuc_hq: int = Field(ge=0, le=99)
    id_chi_cuc: int = Field(ge=0, le=99)
    sources: Sources
    staging_path: Path
    staging_memory_limit: str = Field("512MB", pattern=r"^[0-9]+(\.[0-9]+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
                                      description="DuckDB's memory budget for staging (steps 4–6); beyond it, it "
                                                  "spills to staging_temp_dir")
    staging_temp_dir: Path | None = Field(None, description="where staging spills (default: <staging_path>.tmp)")
    central_url: str
    rehearsal_central_url: str
    control_url: str
    output_dir: Path
    handover_dir: Path = Field(description="the HQ inbox directory the package is handed over to")
    users_file: Path | None = None
    office_map: str = OFFICE_MAP_LATEST
    central_office_codes: Literal["vnaccs-2014", "regional-2025"] = Field("vnaccs-2014", description=(
        "office codes written to central: the 2014 conversion's VNACCS codes, or the 2025 regional codes "
        "(then office_table_2025 is required)"))
    office_table_2025: Path | None = Field(None, description="CSV old_code,new_code,new_cuc_code,region,new_name "
                                                            "issued by HQ (the 2025 old→new office table)")
    unit_map: str = UNIT_MAP_LATEST
    sampling: Sampling = Sampling()
    policy: Policy = Policy()
    desk_url: str = Field("http://127.0.0.1:8765", pattern=r"^https?://[^\s]+$", description=(
        "where business staff reach the review desk (`ecm desk`): printed when a run waits at a gate"))
    signing: Signing = Signing()
    batch_rows: int = Field(50_000, ge=100)
    rehearsal: bool = False
    scope: Literal["catalogs", "declarations", "all"] = Field(
        "all", description="catalogs (before go-live), declarations (after; links to converted catalogs), or all")
    incremental: bool = Field(False, description="convert only what earlier runs of the branch did not")
    truncate: list[str] = Field(default_factory=list, description=(
        "central TABLE.COLUMN values that may be cut to the column's length under a named, reported rule "
        "('2014' = the truncations of the 2014 scripts); any other oversize value is quarantined"))

    @field_validator("truncate")
    @classmethod
    def _truncate(cls, v: list[str]) -> list[str]:
        from load.central_model import CENTRAL, text_limits
        out: list[str] = []
        for item in v:
            if item == "2014":
                out += list(TRUNCATIONS_2014)
                continue
            table, _, col = item.partition(".")
            if table not in CENTRAL or col not in text_limits(table):
                raise ValueError(f"{item!r} is not a text column of a central table (e.g. DTO_KHAI_MD.DV_DT)")
            out.append(item)
        return sorted(set(out))

    @field_validator("offices")
    @classmethod
    def _trim(cls, v: list[str]) -> list[str]:
        return [o.strip() for o in v]

    @field_validator("office_map", "unit_map")
    @classmethod
    def _map_version(cls, v: str, info: ValidationInfo) -> str:
        lookup = office_map if info.field_name == "office_map" else unit_map
        try:
            lookup(v)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        return v

    @model_validator(mode="after")
    def _offices_2025(self) -> BranchConfig:
        if self.central_office_codes == "regional-2025" and self.office_table_2025 is None:
            raise ValueError("central_office_codes = 'regional-2025' needs office_table_2025 (the HQ's CSV table)")
        return self

    def offices_2025(self) -> OfficeTable2025 | None:
        """The configured 2025 office table, parsed and validated (None unless regional-2025 is chosen)."""
        if self.central_office_codes != "regional-2025" or self.office_table_2025 is None:
            return None
        if not self.office_table_2025.exists():
            raise ConfigError(f"office table not found: {self.office_table_2025}",
                              hint="put the HQ's 2025 old→new office code table there (see README)")
        return parse_office_table(self.office_table_2025.read_text(encoding="utf-8"), str(self.office_table_2025))

    def resolved_url(self, which: str) -> str:
        """A URL with ``${ENV}`` references resolved (never log the result)."""
        if which == "admin":
            return interpolate_env(self.sources.admin_url) if self.sources.admin_url else None  # type: ignore[return-value]
        raw = {"slxnk": self.sources.slxnk_url, "sxxk": self.sources.sxxk_url, "central": self.central_url,
               "rehearsal_central": self.rehearsal_central_url, "control": self.control_url}[which]
        return interpolate_env(raw)

    @property
    def run_dir_root(self) -> Path:
        return self.output_dir / "runs"


def _known(model: type[BaseModel]) -> str:
    return ", ".join(model.model_fields)


def load_config(path: Path, overrides: dict[str, Any] | None = None) -> BranchConfig:
    """Read a branch config TOML; relative paths are taken relative to the file's directory."""
    if not path.exists():
        raise ConfigError(f"config file not found: {path}", hint="pass --config FILE, or run `ecm demo`")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    data.update(overrides or {})
    base = path.parent.resolve()
    for k in ("staging_path", "staging_temp_dir", "output_dir", "handover_dir", "users_file", "office_table_2025"):
        if isinstance(data.get(k), str) and not Path(data[k]).is_absolute():
            data[k] = str(base / data[k])
    return parse_config(data, str(path))


def parse_config(data: dict[str, Any], origin: str = "config") -> BranchConfig:
    try:
        return BranchConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            loc = ".".join(str(x) for x in e["loc"])
            msg = e["msg"]
            if e["type"] == "extra_forbidden":
                msg += f" (valid keys: {_known(BranchConfig)}; sources: {_known(Sources)})"
            lines.append(f"{loc}: {msg}")
        raise ConfigError(f"{origin} is invalid: " + "; ".join(lines), hint="fix the config file") from exc
