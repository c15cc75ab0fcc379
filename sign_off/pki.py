"""A DEMO public-key infrastructure for the sample branch and the tests (clearly labelled DEMO).

Root → intermediate → a time-stamping authority (served with an OCSP responder on 127.0.0.1 by sign_off/trust_services.py) and six signer
certificates (technical and business staff of Tổng cục, Cục and
Chi cục; party in O, role in OU, name in CN), plus three bad ones for the tests: expired, revoked
(listed in the intermediate's CRL) and one issued by an untrusted root. Keys are in PKCS#12 files
protected by a passphrase that is generated per PKI and written next to them (never in code).

Revocation is hard-fail (sign_off/certs.py), so the demo provides its CRL, valid 30 days, and keeps it current:
the intermediate CA's key is kept (encrypted with the same passphrase) and :func:`demo_pki` issues a fresh CRL —
same revoked certificates, next CRL number — when the one on disk is about to go stale.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PARTY_NAMES = {"tong-cuc": "Tổng cục Hải quan", "cuc": "Cục Hải quan Đồng Nai", "chi-cuc": "Chi cục HQ Biên Hòa"}
ROLE_NAMES = {"technical": "Cán bộ kỹ thuật", "business": "Cán bộ nghiệp vụ"}
DEMO_SIGNERS = {
    "tong-cuc-technical": "Nguyễn Văn An", "tong-cuc-business": "Trần Thị Bình",
    "cuc-technical": "Lê Minh Cường", "cuc-business": "Phạm Thu Hà",
    "chi-cuc-technical": "Hoàng Quốc Dũng", "chi-cuc-business": "Vũ Ngọc Lan",
}


@dataclass(frozen=True)
class DemoPki:
    root: Path
    passphrase_file: Path

    def p12(self, name: str) -> Path:
        return self.root / f"{name}.p12"

    @property
    def trust(self) -> Path:
        return self.root / "demo_root.pem"

    @property
    def intermediate(self) -> Path:
        return self.root / "demo_intermediate.pem"

    @property
    def crl(self) -> Path:
        return self.root / "demo_intermediate.crl"

    @property
    def root_crl(self) -> Path:
        """The root's CRL (an ARL: it covers the intermediate CA certificate)."""
        return self.root / "demo_root.crl"

    @property
    def crls(self) -> list[Path]:
        """Every CRL of the DEMO PKI: the intermediate's (signers, TSA) and the root's (the intermediate)."""
        return [self.crl, self.root_crl]

    @property
    def root_key(self) -> Path:
        return self.root / "demo_root_key.pem"

    @property
    def tsa_cert(self) -> Path:
        """The DEMO time-stamping authority's certificate (issued by the intermediate, EKU timeStamping)."""
        return self.root / "demo_tsa.pem"

    @property
    def ocsp_cert(self) -> Path:
        """The DEMO OCSP responder's certificate (issued by the intermediate, EKU OCSPSigning, ocsp-nocheck)."""
        return self.root / "demo_ocsp.pem"

    @property
    def ocsp_key(self) -> Path:
        return self.root / "demo_ocsp_key.pem"

    @property
    def tsa_key(self) -> Path:
        return self.root / "demo_tsa_key.pem"

    @property
    def ca_key(self) -> Path:
        """The intermediate CA's private key (PEM, encrypted with the passphrase): to issue fresh CRLs."""
        return self.root / "demo_intermediate_key.pem"

    def passphrase(self) -> bytes:
        return self.passphrase_file.read_text(encoding="utf-8").strip().encode()


def _name(cn: str, org: str, unit: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    if unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _cert(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, issuer_key: ec.EllipticCurvePrivateKey,
          ca: bool, start: dt.datetime, end: dt.datetime, tsa: bool = False, crl_url: str | None = None,
          ocsp_responder: bool = False) -> x509.Certificate:
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None if ca else None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False))
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    else:
        b = b.add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
        if ocsp_responder:  # the responder's own status is not checked (RFC 6960 id-pkix-ocsp-nocheck)
            b = (b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=True)
                 .add_extension(x509.OCSPNoCheck(), critical=False))
        else:
            b = (b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True) if tsa else
                 b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False))
            # and its OCSP responder (the DEMO one answers on 127.0.0.1: sign_off/trust_services.py); long-term
            # validation needs an OCSP response for the signer and TSA certificates (see signing.collect_ocsp)
            b = b.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
                x509.oid.AuthorityInformationAccessOID.OCSP,
                x509.UniformResourceIdentifier("http://ocsp.demo.invalid/"))]), critical=False)
        crl_url = crl_url or "http://crl.demo.invalid/demo_intermediate.crl"
    if crl_url:
        # where the CRL lives; verification never fetches it (.invalid never resolves): the CRL is given offline
        b = b.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            [x509.UniformResourceIdentifier(crl_url)], None, None, None)]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def make_demo_pki(root: Path, now: dt.datetime | None = None) -> DemoPki:
    now = now or dt.datetime.now(dt.timezone.utc)
    root.mkdir(parents=True, exist_ok=True)
    pw = secrets.token_urlsafe(18)
    (root / "PASSPHRASE").write_text(pw + "\n", encoding="utf-8")
    enc = serialization.BestAvailableEncryption(pw.encode())
    day = dt.timedelta(days=1)

    rk = ec.generate_private_key(ec.SECP256R1())
    rname = _name("DEMO Root CA — không dùng thật", "DEMO Ban Cơ yếu (mô phỏng)")
    # the CA and TSA certificates outlive the signers' by far: an auditor verifies in 2035 with the chain of the
    # archival timestamp (a real deployment renews it with `ecm timestamp --renew`)
    rcert = _cert(rname, rk, rname, rk, True, now - 30 * day, now + 25 * 365 * day)
    ik = ec.generate_private_key(ec.SECP256R1())
    iname = _name("DEMO Intermediate CA", "DEMO Ban Cơ yếu (mô phỏng)")
    # the intermediate declares the root's CRL (an ARL): long-term validation needs revocation data for every
    # certificate of the path at signing time, the intermediate's too
    icert = _cert(iname, ik, rname, rk, True, now - 30 * day, now + 20 * 365 * day,
                  crl_url="http://crl.demo.invalid/demo_root.crl")
    (root / "demo_root.pem").write_bytes(rcert.public_bytes(serialization.Encoding.PEM))
    (root / "demo_intermediate.pem").write_bytes(icert.public_bytes(serialization.Encoding.PEM))
    (root / "demo_intermediate_key.pem").write_bytes(ik.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc))
    (root / "demo_root_key.pem").write_bytes(rk.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc))

    def signer(file: str, cn: str, party: str, role: str, start: dt.datetime, end: dt.datetime,
               issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey, x509.Certificate] = (iname, ik, icert)
               ) -> x509.Certificate:
        k = ec.generate_private_key(ec.SECP256R1())
        c = _cert(_name(f"DEMO {cn}", PARTY_NAMES[party], ROLE_NAMES[role]), k, issuer[0], issuer[1], False, start, end)
        (root / f"{file}.p12").write_bytes(pkcs12.serialize_key_and_certificates(
            file.encode(), k, c, [issuer[2]], enc))
        return c

    tk = ec.generate_private_key(ec.SECP256R1())
    tcert = _cert(_name("DEMO TSA — dịch vụ cấp dấu thời gian (mô phỏng)", "DEMO Ban Cơ yếu (mô phỏng)"), tk, iname, ik,
                  False, now - day, now + 12 * 365 * day, tsa=True)
    (root / "demo_tsa.pem").write_bytes(tcert.public_bytes(serialization.Encoding.PEM))
    ok_ = ec.generate_private_key(ec.SECP256R1())
    ocert = _cert(_name("DEMO OCSP — trạng thái chứng thư (mô phỏng)", "DEMO Ban Cơ yếu (mô phỏng)"), ok_, iname, ik,
                  False, now - day, now + 12 * 365 * day, ocsp_responder=True)
    (root / "demo_ocsp.pem").write_bytes(ocert.public_bytes(serialization.Encoding.PEM))
    (root / "demo_ocsp_key.pem").write_bytes(ok_.private_bytes(serialization.Encoding.PEM,
                                                               serialization.PrivateFormat.PKCS8, enc))
    (root / "demo_tsa_key.pem").write_bytes(tk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                             enc))
    for field, person in DEMO_SIGNERS.items():
        party, role = field.rsplit("-", 1)
        signer(field, person, party, role, now - day, now + 365 * day)
    signer("expired", "Người Hết Hạn", "chi-cuc", "technical", now - 400 * day, now - 30 * day)
    revoked = signer("revoked", "Người Bị Thu Hồi", "chi-cuc", "business", now - day, now + 365 * day)
    ok = ec.generate_private_key(ec.SECP256R1())
    oname = _name("Untrusted Root (not on the trust list)", "Somewhere Else")
    ocert = _cert(oname, ok, oname, ok, True, now - day, now + 365 * day)
    signer("untrusted", "Người Lạ", "cuc", "technical", now - day, now + 365 * day, (oname, ok, ocert))
    _write_crl(root / "demo_intermediate.crl", iname, ik, [(revoked.serial_number, now - day / 2)], 1, now)
    _write_crl(root / "demo_root.crl", rname, rk, [], 1, now)
    return DemoPki(root, root / "PASSPHRASE")


CRL_DAYS = 30


def _write_crl(path: Path, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, revoked: list[tuple[int, dt.datetime]],
               number: int, now: dt.datetime) -> None:
    b = (x509.CertificateRevocationListBuilder().issuer_name(issuer).last_update(now - dt.timedelta(days=1))
         .next_update(now + dt.timedelta(days=CRL_DAYS))
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
         .add_extension(x509.CRLNumber(number), critical=False))
    for serial, when in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                      .revocation_date(when).build())
    path.write_bytes(b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))


def refresh_crl(p: DemoPki, now: dt.datetime | None = None,
                revoke: list[tuple[int, dt.datetime]] | None = None) -> None:
    """Issue the next CRLs of the DEMO intermediate and root: the same revoked certificates (plus ``revoke``: serial
    and revocation time, in the intermediate's), valid from ``now``."""
    now = now or dt.datetime.now(dt.timezone.utc)
    for crl, key_file, extra in ((p.crl, p.ca_key, revoke or []), (p.root_crl, p.root_key, [])):
        if not key_file.exists():
            continue
        old = x509.load_der_x509_crl(crl.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), p.passphrase())
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        number = old.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
        _write_crl(crl, old.issuer, key, [(r.serial_number, r.revocation_date_utc) for r in old] + extra, number, now)


def demo_pki(root: Path) -> DemoPki:
    """The demo PKI under ``root``: reused when complete (its CRL renewed when it goes stale within a day), made
    otherwise."""
    p = DemoPki(root, root / "PASSPHRASE")
    if (p.passphrase_file.exists() and all(c.exists() for c in p.crls) and p.tsa_cert.exists() and p.ocsp_cert.exists()
            and all(p.p12(f).exists() for f in DEMO_SIGNERS)):
        now = dt.datetime.now(dt.timezone.utc)
        if all(x509.load_der_x509_crl(c.read_bytes()).next_update_utc > now + dt.timedelta(days=1) for c in p.crls):
            return p
        if p.ca_key.exists():
            refresh_crl(p, now)
            return p
    return make_demo_pki(root)
