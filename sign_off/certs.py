"""`ecm certs check`: review signer certificates the way 2547/TCT-CNTT asks — right holder, not expired
(nor about to), not revoked, renewed at most once, issued under the trust list."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12


@dataclass
class CertReview:
    source: str
    subject: str
    not_after: dt.datetime
    problems: list[str] = field(default_factory=list)


def load_cert(path: Path, passphrase: bytes | None) -> x509.Certificate:
    data = path.read_bytes()
    if path.suffix.lower() in (".p12", ".pfx"):
        _k, cert, _chain = pkcs12.load_key_and_certificates(data, passphrase)
        if cert is None:
            raise ValueError(f"{path.name} holds no certificate")
        return cert
    return x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not issued by this one"
        return False


def review(signers: list[Path], trust: list[Path], intermediates: list[Path], crls: list[Path],
           passphrase: bytes | None, days: int = 30, now: dt.datetime | None = None) -> list[CertReview]:
    now = now or dt.datetime.now(dt.timezone.utc)
    roots = [load_cert(p, None) for p in trust]
    inters = [load_cert(p, None) for p in intermediates]
    revoked = set()
    for p in crls:
        crl = x509.load_der_x509_crl(p.read_bytes())
        revoked |= {(crl.issuer.rfc4514_string(), r.serial_number) for r in crl}
    certs = [(p, load_cert(p, passphrase)) for p in signers]
    holders = Counter(c.subject.rfc4514_string() for _p, c in certs)
    out = []
    for p, c in certs:
        r = CertReview(p.name, c.subject.rfc4514_string(), c.not_valid_after_utc)
        if c.not_valid_after_utc < now:
            r.problems.append(f"expired on {c.not_valid_after_utc:%Y-%m-%d}")
        elif c.not_valid_after_utc < now + dt.timedelta(days=days):
            r.problems.append(f"expires within {days} days ({c.not_valid_after_utc:%Y-%m-%d})")
        if (c.issuer.rfc4514_string(), c.serial_number) in revoked:
            r.problems.append("revoked (listed in the CRL)")
        chain = [i for i in inters if _issued_by(c, i)]
        trusted = any(_issued_by(c, t) for t in roots) or any(_issued_by(i, t) for i in chain for t in roots)
        if not trusted:
            r.problems.append("not issued under the trust list")
        if holders[c.subject.rfc4514_string()] > 2:
            r.problems.append(f"renewed more than once ({holders[c.subject.rfc4514_string()]} certificates)")
        out.append(r)
    return out
