"""Issue 12, item 2: what the six signers vouch for lives inside the signed revision, and nothing may be added
after the last signature except a DSS/timestamp update. Each tampering below is what an attacker with write
access to the minutes (but no signing key) can do; `verify_minutes` and `ecm verify` must fail naming it."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from asn1crypto import crl as asn1_crl
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from typer.testing import CliRunner

from sign_off.evidence import build_bundle
from sign_off.minutes import MinutesData, render_minutes
from sign_off.pki import DEMO_SIGNERS, DemoPki, make_demo_pki
from sign_off.signing import add_signature_fields, sign, verify_minutes

ACCOUNTING = [{"t": "SXXK.DTOKHAIMD", "rows": 10}]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DemoPki:
    return make_demo_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def six_signed(tmp_path_factory: pytest.TempPathFactory, pki: DemoPki) -> tuple[Path, Path, str]:
    """Minutes rendered the way step 7 renders them (hashes on the page and in the signed binding), signed by
    the six DEMO signers; the evidence bundle beside them. Each test works on a copy."""
    tmp = tmp_path_factory.mktemp("minutes")
    ev = tmp / "evidence"
    h = build_bundle(ev, {}, {"accounting.json": ACCOUNTING})
    d = MinutesData("C47D", "Chi cục Hải quan Biên Hòa", "Cục Hải quan Đồng Nai", [("C47D", "47D1")], "r1",
                    "2026-11-24", False, "a" * 64, h, [("Tờ khai", 10, 8, 2, 0)], [("DTO_KHAI_MD", 8)],
                    [], 865, 0.95, 0.01)
    pdf = render_minutes(d, tmp / "bien_ban.pdf")
    add_signature_fields(pdf, binding=_binding(ev, h))
    for f in DEMO_SIGNERS:
        sign(pdf, f, pki.p12(f), pki.passphrase())
    return pdf, ev, h


def _binding(ev: Path, h: str) -> dict[str, object]:
    from sign_off.signing import minutes_binding
    return minutes_binding(run_id="r1", branch="C47D", snapshot_sha256="a" * 64, evidence_dir=ev, evidence_sha256=h)


@pytest.fixture
def copy(six_signed: tuple[Path, Path, str], tmp_path: Path) -> tuple[Path, Path]:
    pdf, ev, _h = six_signed
    shutil.copy(pdf, tmp_path / pdf.name)
    shutil.copytree(ev, tmp_path / "evidence")
    return tmp_path / pdf.name, tmp_path / "evidence"


def _check(pdf: Path, pki: DemoPki, ev: Path | None):  # type: ignore[no-untyped-def]
    return verify_minutes(pdf, [pki.trust], pki.crls, [pki.intermediate], ev)


def _last_revision(pdf: Path) -> int:
    with pdf.open("rb") as f:
        return PdfFileReader(f).xrefs.total_revisions - 1


def _update(pdf: Path, change) -> None:  # type: ignore[no-untyped-def]
    """Apply ``change(writer)`` as an unsigned incremental update (what any PDF library can do)."""
    with pdf.open("rb") as f:
        w = IncrementalPdfFileWriter(f)
        change(w)
        buf = io.BytesIO()
        w.write(buf)
    pdf.write_bytes(buf.getvalue())


def _rebuild_evidence(ev: Path) -> str:
    """The attacker's evidence: one figure changed, the bundle rebuilt so that it is self-consistent."""
    files = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in ev.iterdir() if p.name != "manifest.json"}
    files["accounting.json"] = [{"t": "SXXK.DTOKHAIMD", "rows": 11}]
    return build_bundle(ev, {}, files)


def test_six_signed_minutes_verify_and_say_which_revision_covers_what(copy: tuple[Path, Path], pki: DemoPki
                                                                     ) -> None:
    pdf, ev = copy
    v = _check(pdf, pki, ev)
    assert v.ok, v.problems()
    assert v.evidence_expected == v.evidence_actual  # read from the signed revision, recomputed from the files
    lines = v.revision_lines()
    assert any("revision 1" in x and "binding" in x for x in lines), lines  # the hashes, before any signature
    assert all(any(f"revision {2 + i}" in x and f in x for x in lines) for i, f in enumerate(DEMO_SIGNERS)), lines
    assert v.binding_revision == 1 and v.binding is not None and v.binding["evidence_sha256"] == v.evidence_expected


def test_info_keywords_rewritten_after_signing_with_rebuilt_evidence_fail(copy: tuple[Path, Path], pki: DemoPki
                                                                         ) -> None:
    """The attack of item 2: the /Info keywords (covered by no signature) carry the rebuilt bundle's hash."""
    pdf, ev = copy
    new_hash = _rebuild_evidence(ev)

    def rewrite(w: IncrementalPdfFileWriter) -> None:
        info = w.trailer["/Info"]
        info["/Keywords"] = generic.pdf_string(f"evidence-sha256:{new_hash} snapshot-sha256:{'a' * 64} run:r1")
        w.update_container(info)
    _update(pdf, rewrite)
    v = _check(pdf, pki, ev)
    rev = _last_revision(pdf)
    assert not v.ok
    assert any(f"revision {rev}" in p and "after the last signature" in p and "/Info" in p for p in v.problems()), \
        v.problems()
    assert any("evidence bundle" in p and "accounting.json" in p for p in v.problems()), v.problems()


def test_bytes_appended_after_the_last_signature_fail(copy: tuple[Path, Path], pki: DemoPki) -> None:
    pdf, ev = copy
    rev = _last_revision(pdf)
    pdf.write_bytes(pdf.read_bytes() + b"\n% not part of any revision\n1 0 obj (x) endobj\n")
    v = _check(pdf, pki, ev)
    assert not v.ok
    assert any("bytes after the end of revision" in p and f"revision {rev}" in p for p in v.problems()), v.problems()


@pytest.mark.parametrize("what", ["page content", "xmp metadata", "new annotation"])
def test_an_unsigned_update_after_the_last_signature_fails_naming_its_revision(copy: tuple[Path, Path],
                                                                               pki: DemoPki, what: str) -> None:
    pdf, ev = copy

    def change(w: IncrementalPdfFileWriter) -> None:
        page = w.root["/Pages"]["/Kids"][0].get_object()
        if what == "page content":
            page["/Contents"] = w.add_object(generic.StreamObject(stream_data=b"BT /F1 24 Tf 72 400 Td (X) Tj ET"))
            w.update_container(page)
        elif what == "xmp metadata":
            meta = generic.StreamObject({generic.pdf_name("/Type"): generic.pdf_name("/Metadata"),
                                         generic.pdf_name("/Subtype"): generic.pdf_name("/XML")}, stream_data=(
                b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
                b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
                b'xmlns:pdf="http://ns.adobe.com/pdf/1.3/" pdf:Keywords="evidence-sha256:' + b"b" * 64 +
                b'"/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'))
            w.root["/Metadata"] = w.add_object(meta)
            w.update_root()
        else:
            annot = generic.DictionaryObject({
                generic.pdf_name("/Type"): generic.pdf_name("/Annot"),
                generic.pdf_name("/Subtype"): generic.pdf_name("/FreeText"),
                generic.pdf_name("/Rect"): generic.ArrayObject([generic.NumberObject(x) for x in (72, 72, 300, 120)]),
                generic.pdf_name("/Contents"): generic.pdf_string("Số liệu đã điều chỉnh")})
            annots = page.get("/Annots", generic.ArrayObject())
            annots.append(w.add_object(annot))
            page["/Annots"] = annots
            w.update_container(page)
    _update(pdf, change)
    v = _check(pdf, pki, ev)
    rev = _last_revision(pdf)
    assert not v.ok
    assert any(f"revision {rev}" in p and "after the last signature" in p for p in v.problems()), v.problems()


def test_a_dss_update_after_the_last_signature_is_permitted(copy: tuple[Path, Path], pki: DemoPki) -> None:
    """Long-term validation material (certificates and CRLs in the DSS) may be added after signing."""
    from pyhanko.sign.validation.dss import DocumentSecurityStore
    from sign_off.certs import load_certs
    pdf, ev = copy
    with pdf.open("r+b") as f:
        DocumentSecurityStore.add_dss(f, None, certs=load_certs([pki.intermediate]),
                                      crls=[asn1_crl.CertificateList.load(pki.crl.read_bytes())])
    v = _check(pdf, pki, ev)
    assert v.ok, v.problems()
    assert any(f"revision {_last_revision(pdf)}" in x and "DSS" in x for x in v.revision_lines())


def test_the_binding_is_read_from_the_first_signed_revision(copy: tuple[Path, Path], pki: DemoPki) -> None:
    """Replacing the embedded binding later (with the rebuilt bundle's hashes) changes nothing verify believes,
    and the replacement is itself named as a modification after the last signature."""
    from pyhanko.pdf_utils.embed import EmbeddedFileObject
    pdf, ev = copy
    new_hash = _rebuild_evidence(ev)

    def swap(w: IncrementalPdfFileWriter) -> None:
        names = w.root["/Names"]["/EmbeddedFiles"]["/Names"]
        spec = names[1].get_object()
        fake = json.dumps({**json.loads(spec["/EF"]["/F"].get_object().data), "evidence_sha256": new_hash})
        spec["/EF"]["/F"] = EmbeddedFileObject.from_file_data(w, fake.encode()).ef_stream_ref
        w.update_container(spec)
    _update(pdf, swap)
    v = _check(pdf, pki, ev)
    assert not v.ok and v.evidence_expected != new_hash
    assert any(f"revision {_last_revision(pdf)}" in p for p in v.problems()), v.problems()


def test_minutes_without_a_signed_binding_do_not_verify_against_evidence(tmp_path: Path, pki: DemoPki) -> None:
    """Minutes whose hashes are only in /Info (as before) prove nothing about the evidence bundle."""
    ev = tmp_path / "evidence"
    h = build_bundle(ev, {}, {"accounting.json": ACCOUNTING})
    d = MinutesData("C47D", "B", "D", [("C47D", "47D1")], "r1", "2026-11-24", False, "a" * 64, h, [], [], [],
                    865, 0.95, 0.01)
    pdf = render_minutes(d, tmp_path / "bien_ban.pdf")
    add_signature_fields(pdf)  # no binding
    for f in DEMO_SIGNERS:
        sign(pdf, f, pki.p12(f), pki.passphrase())
    v = _check(pdf, pki, ev)
    assert not v.ok and any("no signed binding" in p for p in v.problems()), v.problems()


def test_ecm_verify_names_the_tampering_and_exits_1(copy: tuple[Path, Path], pki: DemoPki) -> None:
    from pipelines.cli import app
    pdf, ev = copy
    args = ["verify", str(pdf), "--evidence", str(ev), "--trust", str(pki.trust), "--certs", str(pki.intermediate),
            "--crl", str(pki.crl), "--crl", str(pki.root_crl)]
    ok = CliRunner().invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert "revision 1" in ok.output and "binding" in ok.output
    pdf.write_bytes(pdf.read_bytes() + b"junk\n")
    bad = CliRunner().invoke(app, args)
    assert bad.exit_code == 1
    assert "bytes after the end of revision" in bad.output, bad.output


def test_a_document_timestamp_after_the_last_signature_is_permitted(copy: tuple[Path, Path], pki: DemoPki) -> None:
    import datetime as dt

    from asn1crypto import keys, x509 as asn1_x509
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    from pyhanko.sign.signers.pdf_signer import PdfTimeStamper
    from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
    pdf, ev = copy
    now = dt.datetime.now(dt.timezone.utc)
    key = rsa.generate_private_key(65537, 2048)  # pyHanko's test TSA signs with RSA only
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "DEMO TSA")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=9))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .sign(key, hashes.SHA256()))
    tsa = DummyTimeStamper(asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
                           keys.PrivateKeyInfo.load(key.private_bytes(serialization.Encoding.DER,
                                                                      serialization.PrivateFormat.PKCS8,
                                                                      serialization.NoEncryption())))
    with pdf.open("rb") as f:
        buf = io.BytesIO()
        PdfTimeStamper(tsa).timestamp_pdf(IncrementalPdfFileWriter(f), "sha256", output=buf)
    pdf.write_bytes(buf.getvalue())
    v = _check(pdf, pki, ev)
    assert v.ok, v.problems()
    assert any(f"revision {_last_revision(pdf)}" in x and "document timestamp" in x for x in v.revision_lines())
    pdf.write_bytes(pdf.read_bytes() + b"x")  # and still nothing after it
    assert not _check(pdf, pki, ev).ok
