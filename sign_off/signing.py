"""PAdES signatures on the minutes (pyHanko): six signature fields, incremental signing, offline verification."""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asn1crypto import pem, x509 as asn1_x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from sign_off.minutes import PARTIES, ROLES, SIGNATURE_FIELDS
from sign_off.pki import PARTY_NAMES, ROLE_NAMES
from transform.errors import SignOffError

PASSPHRASE_ENV = "ECM_P12_PASSPHRASE"


def add_signature_fields(pdf: Path, only: str | None = None) -> None:
    """Add the six empty signature fields (technical, business × Tổng cục, Cục, Chi cục) on the last page,
    or just the field ``only`` (the backup report carries the branch's technical signature alone)."""
    with pdf.open("rb") as f:
        w = IncrementalPdfFileWriter(f)
        last = int(w.root["/Pages"]["/Count"]) - 1
        if only:
            fields.append_signature_field(w, fields.SigFieldSpec(only, on_page=last, box=(30, 60, 280, 116)))
        for i, (pk, _pn) in enumerate(PARTIES if not only else []):
            for j, (rk, _rn) in enumerate(ROLES):
                x0 = 30 + j * 275
                y1 = 740 - i * 91
                fields.append_signature_field(w, fields.SigFieldSpec(
                    f"{pk}-{rk}", on_page=last, box=(x0, y1 - 62, x0 + 250, y1 - 6)))
        buf = io.BytesIO()
        w.write(buf)
    pdf.write_bytes(buf.getvalue())


def sign(pdf: Path, field_name: str, p12: Path, passphrase: bytes, reason: str = "Xác nhận số liệu sau chuyển đổi"
         ) -> None:
    """Sign one field of ``pdf`` in place, as an incremental PAdES update."""
    if field_name not in SIGNATURE_FIELDS:
        raise SignOffError(f"unknown signature field {field_name!r}; fields: {', '.join(SIGNATURE_FIELDS)}")
    signer = signers.SimpleSigner.load_pkcs12(str(p12), passphrase=passphrase)
    if signer is None:
        raise SignOffError(f"cannot open {p12.name}: wrong passphrase or not a PKCS#12 file", table=str(p12),
                           hint=f"set {PASSPHRASE_ENV} or type the passphrase at the prompt")
    meta = signers.PdfSignatureMetadata(field_name=field_name, md_algorithm="sha256", reason=reason,
                                        location="Việt Nam", subfilter=fields.SigSeedSubFilter.PADES)
    with pdf.open("rb") as f:
        w = IncrementalPdfFileWriter(f)
        existing = {s.field_name for s in PdfFileReader(f).embedded_signatures}
        if field_name in existing:
            raise SignOffError(f"field {field_name} is already signed", table=str(pdf))
        with tempfile.NamedTemporaryFile(delete=False, dir=pdf.parent, suffix=".pdf") as tmp:
            signers.sign_pdf(w, meta, signer=signer, output=tmp)
    shutil.move(tmp.name, pdf)


@dataclass
class SignatureReport:
    field: str
    signer: str
    party: str
    role: str
    signing_time: str
    trusted: bool
    valid: bool
    intact: bool
    revoked: bool
    expected_party_role: bool
    covers_to_end: bool
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _load_certs(paths: list[Path]) -> list[asn1_x509.Certificate]:
    out = []
    for p in paths:
        data = p.read_bytes()
        if pem.detect(data):
            for _t, _h, der in pem.unarmor(data, multiple=True):
                out.append(asn1_x509.Certificate.load(der))
        else:
            out.append(asn1_x509.Certificate.load(data))
    return out


def verify(pdf: Path, trust: list[Path], crls: list[Path], other_certs: list[Path] | None = None
           ) -> list[SignatureReport]:
    """Verify every signature of ``pdf`` offline against the trust list and CRLs; name every problem."""
    vc_args: dict[str, Any] = {"trust_roots": _load_certs(trust), "other_certs": _load_certs(other_certs or []),
                               "crls": [c.read_bytes() for c in crls], "allow_fetching": False,
                               "revocation_mode": "soft-fail"}
    reports = []
    with pdf.open("rb") as f:
        r = PdfFileReader(f)
        sigs = r.embedded_signatures
        for sig in sigs:
            st = validate_pdf_signature(sig, ValidationContext(**vc_args))
            subj = st.signing_cert.subject.native
            name, org, unit = subj.get("common_name", ""), subj.get("organization_name", ""), \
                subj.get("organizational_unit_name", "")
            fname = sig.field_name
            party, _, role = fname.rpartition("-")
            expected = fname in SIGNATURE_FIELDS and PARTY_NAMES.get(party) == org and ROLE_NAMES.get(role) == unit
            problems = []
            if fname not in SIGNATURE_FIELDS:
                problems.append(f"signature in an unexpected field {fname!r} (not one of the six parties/roles)")
            elif not expected:
                problems.append(f"certificate is for {org!r} / {unit!r}, not the party and role of field {fname}")
            if not st.intact or not st.valid:
                problems.append("the document was changed after this signature (digest or signature invalid)")
            if st.revoked:
                problems.append("the signer's certificate is revoked (CRL)")
            elif not st.trusted:
                why = str(getattr(st, "trust_problem_indic", "") or "")
                if "EXPIRED" in why.upper() or "OUT_OF_BOUNDS" in why.upper() or _expired(st):
                    problems.append("the signer's certificate was expired at signing time")
                else:
                    problems.append("the signer's certificate does not chain to the trust list")
            level = getattr(st, "modification_level", None)
            if level is not None and getattr(level, "name", "") not in ("NONE", "LTA_UPDATES", "FORM_FILLING"):
                problems.append(f"changes after this signature go beyond adding signatures ({level.name})")
            reports.append(SignatureReport(
                field=fname, signer=name, party=org, role=unit,
                signing_time=str(st.signer_reported_dt or ""), trusted=bool(st.trusted), valid=bool(st.valid),
                intact=bool(st.intact), revoked=bool(st.revoked), expected_party_role=expected,
                covers_to_end=(getattr(st.coverage, "name", "") in ("ENTIRE_FILE", "ENTIRE_REVISION")),
                problems=problems))
    return reports


def _expired(st: Any) -> bool:
    c = st.signing_cert
    t = st.signer_reported_dt
    if t is None:
        return False
    v = c["tbs_certificate"]["validity"]
    return not (v["not_before"].native <= t <= v["not_after"].native)


def evidence_hash_in(pdf: Path) -> str | None:
    """The evidence-bundle SHA-256 the minutes carry (in their metadata keywords)."""
    with pdf.open("rb") as f:
        info = PdfFileReader(f).trailer_view.get("/Info")
        info = info.get_object() if info is not None else None
        kw = str(info.get("/Keywords", "")) if info is not None else ""
    m = re.search(r"evidence-sha256:([0-9a-f]{64})", kw)
    return m.group(1) if m else None


def passphrase_from_env() -> bytes | None:
    v = os.environ.get(PASSPHRASE_ENV)
    return v.encode() if v else None


@dataclass
class MinutesVerification:
    signatures: list[SignatureReport]
    missing_fields: list[str]
    evidence_expected: str | None
    evidence_actual: str | None

    @property
    def ok(self) -> bool:
        return (all(r.ok for r in self.signatures) and not self.missing_fields
                and (self.evidence_actual is None or self.evidence_actual == self.evidence_expected))

    def problems(self) -> list[str]:
        out = [f"{r.field}: {p}" for r in self.signatures for p in r.problems]
        out += [f"{f}: not signed" for f in self.missing_fields]
        if self.evidence_actual is not None and self.evidence_actual != self.evidence_expected:
            out.append(f"evidence bundle hash {self.evidence_actual[:16]}… differs from the minutes' "
                       f"{(self.evidence_expected or '')[:16]}…")
        return out


def verify_minutes(pdf: Path, trust: list[Path], crls: list[Path], other_certs: list[Path],
                   evidence_dir: Path | None = None, required: list[str] | None = None) -> MinutesVerification:
    """All of it: every signature, the required fields present, and the evidence bundle's hash."""
    from sign_off.evidence import verify_bundle
    reps = verify(pdf, trust, crls, other_certs)
    signed = {r.field for r in reps}
    missing = [f for f in (required if required is not None else SIGNATURE_FIELDS) if f not in signed]
    actual = None
    if evidence_dir is not None:
        try:
            actual = verify_bundle(evidence_dir)
        except SignOffError as exc:
            actual = f"invalid: {exc}"
    return MinutesVerification(reps, missing, evidence_hash_in(pdf), actual)
