"""Long-term validation (PAdES B-T/B-LT/B-LTA): minutes verified years later, with a moved clock, offline.

The time-stamping authority and the OCSP responder are the DEMO trust services, a real HTTP process on 127.0.0.1
(sign_off/trust_services.py) — never a stand-in inside the signing process.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sign_off.certs import Anchors
from sign_off.evidence import build_bundle
from sign_off.minutes import MinutesData, render_minutes
from sign_off.pki import DEMO_SIGNERS, DemoPki, make_demo_pki, refresh_crl
from sign_off.signing import add_archive_timestamp, add_signature_fields, minutes_binding, sign, verify_minutes
from sign_off.trust_services import Services, running_services

UTC = dt.timezone.utc
Y2035 = dt.datetime(2035, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DemoPki:
    return make_demo_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def services(pki: DemoPki) -> Iterator[Services]:
    with running_services(pki.root) as s:
        yield s


def _anchors(pki: DemoPki) -> Anchors:
    return Anchors.of([pki.trust], [pki.intermediate], pki.crls)


def _minutes(tmp: Path) -> tuple[Path, Path]:
    ev = tmp / "evidence"
    h = build_bundle(ev, {}, {"accounting.json": [{"t": "SXXK.DTOKHAIMD", "rows": 10}]})
    d = MinutesData("C47D", "Chi cục Hải quan Biên Hòa", "Cục Hải quan Đồng Nai", [("C47D", "47D1")], "r1",
                    "2026-11-24", False, "a" * 64, h, [("Tờ khai", 10, 8, 2, 0)], [("DTO_KHAI_MD", 8)],
                    [], 865, 0.95, 0.01)
    pdf = render_minutes(d, tmp / "bien_ban.pdf")
    add_signature_fields(pdf, binding=minutes_binding(run_id="r1", branch="C47D", snapshot_sha256="a" * 64,
                                                      evidence_dir=ev, evidence_sha256=h))
    return pdf, ev


def _sign_all(pdf: Path, pki: DemoPki, services: Services | None) -> None:
    for f in DEMO_SIGNERS:
        sign(pdf, f, pki.p12(f), pki.passphrase(), anchors=_anchors(pki), services=services)
    if services is not None:
        add_archive_timestamp(pdf, _anchors(pki), services)


def _verify(pdf: Path, pki: DemoPki, ev: Path | None, at: dt.datetime | None = None, crls: list[Path] | None = None):  # type: ignore[no-untyped-def]
    return verify_minutes(pdf, [pki.trust], crls or pki.crls, [pki.intermediate], ev, at=at)


def _cli(pdf: Path, pki: DemoPki, ev: Path, at: str) -> tuple[int, list[str]]:
    from pipelines.cli import app
    r = CliRunner().invoke(app, ["verify", str(pdf), "--evidence", str(ev), "--at", at, "--trust", str(pki.trust),
                                 "--certs", str(pki.intermediate), "--crl", str(pki.crl), "--crl",
                                 str(pki.root_crl)], terminal_width=200)
    return r.exit_code, [x for x in r.output.splitlines() if x.strip()]


@pytest.fixture(scope="module")
def lta(tmp_path_factory: pytest.TempPathFactory, pki: DemoPki, services: Services) -> tuple[Path, Path]:
    pdf, ev = _minutes(tmp_path_factory.mktemp("lta"))
    _sign_all(pdf, pki, services)
    return pdf, ev


def test_time_stamped_minutes_verify_years_after_every_signer_certificate_expired(lta: tuple[Path, Path],
                                                                                  pki: DemoPki) -> None:
    pdf, ev = lta
    now = _verify(pdf, pki, ev)
    assert now.ok, now.problems()
    assert all(r.timestamp for r in now.signatures), "every signature carries its RFC 3161 time-stamp"
    later = _verify(pdf, pki, ev, at=Y2035)  # the signers' certificates expired in 2027
    assert later.ok, later.problems()
    assert all("long-term validation" in r.trust for r in later.signatures)
    code, lines = _cli(pdf, pki, ev, "2035-01-01")
    assert code == 0 and lines[0].startswith("KẾT LUẬN: HỢP LỆ — VERDICT: VALID"), lines
    assert "Traceback" not in "\n".join(lines)


def test_minutes_without_trusted_time_fail_after_expiry_and_say_why(tmp_path: Path, pki: DemoPki) -> None:
    pdf, ev = _minutes(tmp_path)
    _sign_all(pdf, pki, None)
    assert _verify(pdf, pki, ev).ok  # today they verify …
    later = _verify(pdf, pki, ev, at=Y2035)  # … in 2035 nothing proves when they were made
    assert not later.ok
    assert all(any("no trusted time" in p and "expired on" in p for p in r.problems) for r in later.signatures), \
        later.problems()
    code, lines = _cli(pdf, pki, ev, "2035-01-01")
    assert code == 1 and lines[0].startswith("KẾT LUẬN: KHÔNG HỢP LỆ — VERDICT: NOT VALID"), lines
    assert any("no trusted time" in x for x in lines) and "Traceback" not in "\n".join(lines)


def test_a_certificate_revoked_after_the_time_stamp_leaves_the_signature_valid(tmp_path: Path,
                                                                                 services: Services) -> None:
    """Revocation after the trusted signing time does not undo the signature; the new CRL shows it revoked."""
    own = make_demo_pki(tmp_path / "pki")
    with running_services(own.root) as sv:
        pdf, ev = _minutes(tmp_path)
        _sign_all(pdf, own, sv)
    from cryptography.hazmat.primitives.serialization import pkcs12
    _k, cert, _c = pkcs12.load_key_and_certificates(own.p12("cuc-business").read_bytes(), own.passphrase())
    assert cert is not None
    now = dt.datetime.now(UTC)
    refresh_crl(own, now=now + dt.timedelta(hours=2), revoke=[(cert.serial_number, now + dt.timedelta(hours=1))])
    v = _verify(pdf, own, ev, at=now + dt.timedelta(hours=3))
    assert v.ok, v.problems()
    # without a time-stamp the same revocation makes the signature fail: that is what the time-stamp buys
    pdf2, ev2 = _minutes(tmp_path / "plain")
    own2 = make_demo_pki(tmp_path / "pki2")
    _sign_all(pdf2, own2, None)
    _k, cert2, _c = pkcs12.load_key_and_certificates(own2.p12("cuc-business").read_bytes(), own2.passphrase())
    assert cert2 is not None
    refresh_crl(own2, now=now + dt.timedelta(hours=2), revoke=[(cert2.serial_number, now + dt.timedelta(hours=1))])
    v2 = _verify(pdf2, own2, ev2, at=now + dt.timedelta(hours=3))
    assert not v2.ok and any("revoked" in p for p in v2.problems()), v2.problems()


def test_a_certificate_revoked_before_signing_fails_even_with_a_time_stamp(tmp_path: Path, pki: DemoPki,
                                                                           services: Services) -> None:
    """Another tool signed with the revoked certificate and a time-stamp: the time-stamp proves nothing good."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers, timestamps
    pdf, ev = _minutes(tmp_path)
    s = signers.SimpleSigner.load_pkcs12(str(pki.p12("revoked")), passphrase=pki.passphrase())
    meta = signers.PdfSignatureMetadata(field_name="chi-cuc-business", md_algorithm="sha256",
                                        subfilter=fields.SigSeedSubFilter.PADES)
    with pdf.open("rb") as f:
        out = io.BytesIO()
        signers.PdfSigner(meta, signer=s, timestamper=timestamps.HTTPTimeStamper(services.tsa_url)).sign_pdf(
            IncrementalPdfFileWriter(f), output=out)
    pdf.write_bytes(out.getvalue())
    for at in (None, Y2035):
        v = verify_minutes(pdf, [pki.trust], pki.crls, [pki.intermediate], ev, required=["chi-cuc-business"], at=at)
        assert not v.ok and any("revoked" in p for p in v.problems()), "\n".join(v.problems())


def test_ecm_sign_refuses_what_would_not_verify_even_with_the_services(tmp_path: Path, pki: DemoPki,
                                                                        services: Services) -> None:
    """Untrusted issuer, wrong party: refused before anything is written, time-stamping or not."""
    from transform.errors import SignOffError
    pdf, _ev = _minutes(tmp_path)
    before = pdf.read_bytes()
    for p12, field, why in (("untrusted", "cuc-technical", "not issued under the trust list"),
                            ("cuc-business", "chi-cuc-business", "not the party and role")):
        with pytest.raises(SignOffError, match=why):
            sign(pdf, field, pki.p12(p12), pki.passphrase(), anchors=_anchors(pki), services=services)
    assert pdf.read_bytes() == before


def test_anything_but_a_time_stamp_after_the_archive_time_stamp_is_refused(tmp_path: Path, lta: tuple[Path, Path],
                                                                            pki: DemoPki) -> None:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    pdf, ev = lta
    bad = tmp_path / "bad.pdf"
    with pdf.open("rb") as f:
        w = IncrementalPdfFileWriter(f)
        w.root["/Lang"] = generic.TextStringObject("en")  # a catalogue change: not DSS, not a time-stamp
        w.update_root()
        out = io.BytesIO()
        w.write(out)
    bad.write_bytes(out.getvalue())
    for at in (None, Y2035):
        v = _verify(bad, pki, ev, at=at)
        assert not v.ok and any("is not a permitted DSS/timestamp update" in p for p in v.problems()), v.problems()


def test_renewing_the_archive_time_stamp_keeps_everything_verifiable(tmp_path: Path, lta: tuple[Path, Path],
                                                                     pki: DemoPki, services: Services) -> None:
    import shutil

    from sign_off.ltv import last_archive_timestamp
    pdf, ev = lta
    copy = tmp_path / "renewed.pdf"
    shutil.copyfile(pdf, copy)
    first = last_archive_timestamp(copy)
    add_archive_timestamp(copy, _anchors(pki), services)
    second = last_archive_timestamp(copy)
    assert first is not None and second is not None and second[0] >= first[0]
    assert copy.read_bytes().startswith(pdf.read_bytes())  # appended, nothing rewritten
    assert _verify(copy, pki, ev, at=Y2035).ok


def test_verify_without_evidence_is_explicit(lta: tuple[Path, Path], pki: DemoPki) -> None:
    from pipelines.cli import app
    pdf, _ev = lta
    base = ["verify", str(pdf), "--trust", str(pki.trust), "--certs", str(pki.intermediate), "--crl", str(pki.crl),
            "--crl", str(pki.root_crl)]
    r = CliRunner().invoke(app, base, terminal_width=200)
    assert r.exit_code == 1 and r.output.startswith("KẾT LUẬN: KHÔNG HỢP LỆ") and "evidence bundle was not checked" in \
        r.output
    r = CliRunner().invoke(app, [*base, "--no-evidence"], terminal_width=200)
    assert r.exit_code == 0 and r.output.startswith("KẾT LUẬN: HỢP LỆ") and "NOT CHECKED (--no-evidence)" in r.output


def test_pdfsig_sees_six_signatures_and_the_archive_time_stamp(lta: tuple[Path, Path]) -> None:
    import shutil
    import subprocess
    if shutil.which("pdfsig") is None:
        pytest.skip("pdfsig (poppler-utils) is not installed: independent check skipped")
    pdf, _ev = lta
    out = subprocess.run(["pdfsig", str(pdf)], capture_output=True, text=True).stdout
    names = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if "Signature Field Name:" in ln]
    assert names == [*DEMO_SIGNERS, "luu-tru-1"], out
    assert out.count("Signature is Valid.") == 6, out


def test_the_stamp_font_is_dejavu_at_1000_units_per_em_with_every_vietnamese_letter() -> None:
    """The shipped stamp font (sign_off/fonts/make_stamp_font.py): pyHanko writes TrueType widths unscaled, so the
    font must be at 1000 units/em, and it must draw every letter a Vietnamese name or unit can hold."""
    from fontTools.ttLib import TTFont

    from sign_off.signing import STAMP_FONT
    font = TTFont(str(STAMP_FONT))
    assert font["head"].unitsPerEm == 1000
    letters = ("aàảãáạăằẳẵắặâầẩẫấậbcdđeèẻẽéẹêềểễếệghiìỉĩíịklmnoòỏõóọôồổỗốộơờởỡớợpqrstuùủũúụưừửữứựvxyỳỷỹýỵ"
               "—–…“”‘’")
    cmap = font.getBestCmap()
    missing = [c for c in letters + letters.upper() if ord(c) not in cmap]
    assert not missing, missing
