"""Signer certificates: the one check used before signing (`ecm sign`), when verifying (`ecm verify`, steps 3, 7,
8) and in `ecm certs check` (the review 2547/TCT-CNTT asks for — right holder, not expired nor about to, not
revoked, renewed at most once, issued under the trust list).

Chain, validity and revocation are decided by pyhanko-certvalidator, the engine pyHanko verifies signatures
with, so a certificate `ecm sign` accepts is one `ecm verify` accepts. Revocation is **hard-fail**: the
signer's certificate needs current revocation information (a CRL from its issuer, given offline), and a CA
certificate that names where its revocation information lives needs it too. Only a deployment whose
configuration says ``signing.revocation = "none-available"`` skips that, and then every output says
:data:`REVOCATION_NOT_CHECKED`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from asn1crypto import pem, x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    ExpiredError, InsufficientRevinfoError, NotYetValidError, PathBuildingError, PathValidationError, RevokedError,
    StaleRevinfoError, ValidationError,
)
from pyhanko_certvalidator.policy_decl import CertRevTrustPolicy, RevocationCheckingPolicy, RevocationCheckingRule

Revocation = Literal["required", "none-available"]
REVOCATION_MODES: tuple[Revocation, ...] = ("required", "none-available")
REVOCATION_NOT_CHECKED = "revocation not checked: none available by configuration"

# hard-fail: the signer's certificate always needs revocation information; a CA certificate needs it when it
# declares where it lives (a CRL distribution point / OCSP responder) — a root-issued CA certificate that declares
# none cannot be checked by anyone
HARD_FAIL = CertRevTrustPolicy(RevocationCheckingPolicy(
    ee_certificate_rule=RevocationCheckingRule.CRL_OR_OCSP_REQUIRED,
    intermediate_ca_cert_rule=RevocationCheckingRule.CHECK_IF_DECLARED))
# "none-available": a CRL that is given is still used (a listed certificate is still revoked), nothing is required
NONE_AVAILABLE = CertRevTrustPolicy(RevocationCheckingPolicy(
    ee_certificate_rule=RevocationCheckingRule.CHECK_IF_DECLARED_SOFT,
    intermediate_ca_cert_rule=RevocationCheckingRule.CHECK_IF_DECLARED_SOFT))


@dataclass(frozen=True)
class Anchors:
    """What a certificate is checked against, all offline: trusted roots, intermediates, CRLs, revocation mode."""

    trust: tuple[Path, ...]
    intermediates: tuple[Path, ...] = ()
    crls: tuple[Path, ...] = ()
    revocation: Revocation = "required"

    @classmethod
    def of(cls, trust: list[Path], intermediates: list[Path] | None = None, crls: list[Path] | None = None,
           revocation: Revocation = "required") -> Anchors:
        if revocation not in REVOCATION_MODES:
            raise ValueError(f"revocation must be one of {', '.join(REVOCATION_MODES)}, not {revocation!r}")
        return cls(tuple(trust), tuple(intermediates or ()), tuple(crls or ()), revocation)

    def notes(self) -> list[str]:
        return [REVOCATION_NOT_CHECKED] if self.revocation == "none-available" else []

    def validation_context(self, moment: dt.datetime | None = None, ocsps: list[bytes] | None = None,
                           extra_certs: list[asn1_x509.Certificate] | None = None) -> ValidationContext:
        return ValidationContext(
            trust_roots=load_certs(list(self.trust)),
            other_certs=load_certs(list(self.intermediates)) + list(extra_certs or []),
            crls=load_crls(list(self.crls)), ocsps=list(ocsps or []), allow_fetching=False, moment=moment,
            revinfo_policy=HARD_FAIL if self.revocation == "required" else NONE_AVAILABLE)


def load_certs(paths: list[Path]) -> list[asn1_x509.Certificate]:
    """Certificates from PEM (one or several) or DER files."""
    out = []
    for p in paths:
        data = p.read_bytes()
        if pem.detect(data):
            for _t, _h, der in pem.unarmor(data, multiple=True):
                out.append(asn1_x509.Certificate.load(der))
        else:
            out.append(asn1_x509.Certificate.load(data))
    return out


def load_crls(paths: list[Path]) -> list[bytes]:
    """DER CRLs from DER files or PEM files (one or several ``X509 CRL`` blocks)."""
    out = []
    for p in paths:
        data = p.read_bytes()
        if pem.detect(data):
            out += [der for _t, _h, der in pem.unarmor(data, multiple=True)]
        else:
            out.append(data)
    return out


@dataclass(frozen=True)
class CertProblem:
    kind: Literal["expired", "not-yet-valid", "revoked", "no-revocation-info", "stale-revocation-info",
                  "untrusted", "invalid", "wrong-party"]
    message: str


def _cn(name: asn1_x509.Name) -> str:
    n = name.native
    return str(n.get("common_name") or name.human_friendly)


def chain_problems(cert: asn1_x509.Certificate, others: list[asn1_x509.Certificate], anchors: Anchors,
                   moment: dt.datetime | None = None) -> list[CertProblem]:
    """Path to the trust list, validity at ``moment`` (now) and revocation — empty when the certificate holds."""
    validator = CertificateValidator(cert, intermediate_certs=others,
                                     validation_context=anchors.validation_context(moment))
    issuer = _cn(cert.issuer)
    try:
        asyncio.run(validator.async_validate_path())
    except ExpiredError:
        return [CertProblem("expired", f"expired on {cert.not_valid_after:%Y-%m-%d}")]
    except NotYetValidError:
        return [CertProblem("not-yet-valid", f"not valid before {cert.not_valid_before:%Y-%m-%d}")]
    except RevokedError as exc:
        if not exc.is_ee_cert:
            return [CertProblem("revoked", f"a CA certificate of its chain is revoked: {exc.failure_msg}")]
        return [CertProblem("revoked", f"revoked on {exc.revocation_dt:%Y-%m-%d} (listed in the CRL of {issuer})")]
    except StaleRevinfoError:
        return [CertProblem("stale-revocation-info", f"the CRL of its issuer {issuer} is out of date: no current "
                                                     "revocation information")]
    except InsufficientRevinfoError as exc:
        if not exc.is_ee_cert:
            return [CertProblem("no-revocation-info", "no revocation information for a CA certificate of its "
                                                      f"chain: {exc.failure_msg}")]
        return [CertProblem("no-revocation-info", f"no revocation information: no current CRL from its issuer "
                                                  f"{issuer} was given")]
    except PathBuildingError:
        return [CertProblem("untrusted", "not issued under the trust list")]
    except PathValidationError as exc:
        return [CertProblem("invalid", f"does not validate: {exc.failure_msg}")]
    except ValidationError as exc:
        return [CertProblem("invalid", f"does not validate: {exc}")]
    return []


def party_role_problem(cert: asn1_x509.Certificate, field_name: str) -> CertProblem | None:
    """The certificate's O/OU must be the party and role of the signature field (``cuc-technical`` …)."""
    from sign_off.minutes import SIGNATURE_FIELDS
    from sign_off.pki import PARTY_NAMES, ROLE_NAMES
    subj = cert.subject.native
    org, unit = subj.get("organization_name", ""), subj.get("organizational_unit_name", "")
    party, _, role = field_name.rpartition("-")
    if field_name in SIGNATURE_FIELDS and PARTY_NAMES.get(party) == org and ROLE_NAMES.get(role) == unit:
        return None
    return CertProblem("wrong-party", f"certificate is for {org!r} / {unit!r}, not the party and role of field "
                                      f"{field_name}")


def field_of(cert: asn1_x509.Certificate) -> str | None:
    """The signature field whose party and role this certificate holds, if any."""
    from sign_off.pki import PARTY_NAMES, ROLE_NAMES
    subj = cert.subject.native
    party = {v: k for k, v in PARTY_NAMES.items()}.get(subj.get("organization_name", ""))
    role = {v: k for k, v in ROLE_NAMES.items()}.get(subj.get("organizational_unit_name", ""))
    return f"{party}-{role}" if party and role else None


NEXT_ACTION = {
    "expired": "the holder needs a current certificate from the CA; check certificates with `ecm certs check`",
    "not-yet-valid": "wait until the certificate is valid, or use the holder's current certificate",
    "revoked": "the holder needs a new certificate from the CA; check certificates with `ecm certs check`",
    "no-revocation-info": "give the CA's current CRL (--crl, or signing.crls in the config); a deployment that has "
                          "no revocation service says so with signing.revocation = \"none-available\"",
    "stale-revocation-info": "fetch the CA's current CRL and give it (--crl, or signing.crls in the config)",
    "untrusted": "use a certificate issued under the trust list (--trust, or signing.trust in the config)",
    "invalid": "check the certificate with `ecm certs check`",
    "wrong-party": "sign the field of this certificate's party and role, or use the certificate of this field's "
                   "signer",
}


def signer_problems(cert: asn1_x509.Certificate, chain: list[asn1_x509.Certificate], field_name: str,
                    anchors: Anchors, moment: dt.datetime | None = None) -> list[CertProblem]:
    """Everything that would make a signature by ``cert`` in ``field_name`` fail `ecm verify` — checked before
    anything is written."""
    out = chain_problems(cert, chain, anchors, moment)
    pr = party_role_problem(cert, field_name)
    return out + ([pr] if pr else [])


# ---- `ecm certs check` -----------------------------------------------------------------------------------------

@dataclass
class CertReview:
    source: str
    subject: str
    not_after: dt.datetime
    problems: list[str] = field(default_factory=list)


def load_cert(path: Path, passphrase: bytes | None) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """The certificate of a .p12/.pfx (with the chain it carries) or of a PEM/DER file."""
    data = path.read_bytes()
    if path.suffix.lower() in (".p12", ".pfx"):
        _k, cert, chain = pkcs12.load_key_and_certificates(data, passphrase)
        if cert is None:
            raise ValueError(f"{path.name} holds no certificate")
        return cert, list(chain or [])
    return (x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)), []


def _asn1(c: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(c.public_bytes(Encoding.DER))


def review(signers: list[Path], trust: list[Path], intermediates: list[Path], crls: list[Path],
           passphrase: bytes | None, days: int = 30, now: dt.datetime | None = None,
           revocation: Revocation = "required") -> list[CertReview]:
    now = now or dt.datetime.now(dt.timezone.utc)
    anchors = Anchors.of(trust, intermediates, crls, revocation)
    certs = [(p, *load_cert(p, passphrase)) for p in signers]
    holders = Counter(c.subject.rfc4514_string() for _p, c, _ch in certs)
    out = []
    for p, c, chain in certs:
        r = CertReview(p.name, c.subject.rfc4514_string(), c.not_valid_after_utc)
        r.problems += [pr.message for pr in chain_problems(_asn1(c), [_asn1(x) for x in chain], anchors, now)]
        if now <= c.not_valid_after_utc < now + dt.timedelta(days=days):
            r.problems.append(f"expires within {days} days ({c.not_valid_after_utc:%Y-%m-%d})")
        if holders[c.subject.rfc4514_string()] > 2:
            r.problems.append(f"renewed more than once ({holders[c.subject.rfc4514_string()]} certificates)")
        out.append(r)
    return out
