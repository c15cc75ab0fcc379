"""Real PAdES signatures with the DEMO PKI: valid ones verify, each bad certificate is rejected for its reason."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers

from sign_off.evidence import build_bundle
from sign_off.minutes import SIGNATURE_FIELDS, MinutesData, render_minutes
from sign_off.pki import DEMO_SIGNERS, DemoPki, make_demo_pki
from sign_off.signing import add_signature_fields, minutes_binding, sign, verify_minutes


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DemoPki:
    return make_demo_pki(tmp_path_factory.mktemp("pki"))


def _minutes(tmp: Path, evidence_hash: str, evidence: Path | None = None) -> Path:
    """Minutes as step 7 renders them; with ``evidence``, the signed binding of its hashes is embedded."""
    d = MinutesData("C47D", "Chi cục Hải quan Biên Hòa", "Cục Hải quan Đồng Nai", [("C47D", "47D1")], "r1",
                    "2026-11-24", False, "a" * 64, evidence_hash, [("Tờ khai", 10, 8, 2, 0)], [("DTO_KHAI_MD", 8)],
                    [], 865, 0.95, 0.01)
    pdf = render_minutes(d, tmp / "bien_ban.pdf")
    binding = None if evidence is None else minutes_binding(
        run_id="r1", branch="C47D", snapshot_sha256="a" * 64, evidence_dir=evidence, evidence_sha256=evidence_hash)
    add_signature_fields(pdf, binding=binding)
    return pdf


def _check(pdf: Path, pki: DemoPki, evidence: Path | None = None, required: list[str] | None = None):  # type: ignore[no-untyped-def]
    return verify_minutes(pdf, [pki.trust], pki.crls, [pki.intermediate], evidence, required)


@pytest.fixture
def signed(tmp_path: Path, pki: DemoPki) -> tuple[Path, Path]:
    ev = tmp_path / "evidence"
    h = build_bundle(ev, {}, {"accounting.json": [{"t": "SXXK.DTOKHAIMD", "rows": 10}]})
    pdf = _minutes(tmp_path, h, ev)
    for f in DEMO_SIGNERS:
        sign(pdf, f, pki.p12(f), pki.passphrase())
    return pdf, ev


def test_six_signatures_verify_with_the_evidence(signed: tuple[Path, Path], pki: DemoPki) -> None:
    pdf, ev = signed
    v = _check(pdf, pki, ev)
    assert v.ok, v.problems()
    assert [r.field for r in v.signatures] == SIGNATURE_FIELDS
    assert all(r.trusted and r.intact and not r.revoked and r.expected_party_role for r in v.signatures)


def test_independent_tool_sees_the_same_signatures(signed: tuple[Path, Path]) -> None:
    if shutil.which("pdfsig") is None:
        pytest.skip("pdfsig (poppler-utils) is not installed: independent check skipped")
    out = subprocess.run(["pdfsig", str(signed[0])], capture_output=True, text=True).stdout
    assert out.count("Signature is Valid.") == 6
    for name in DEMO_SIGNERS.values():
        assert f"DEMO {name}" in out


@pytest.mark.parametrize("p12,field,reason", [
    ("expired", "chi-cuc-technical", "expired at signing time"),
    ("revoked", "chi-cuc-business", "revoked"),
    ("untrusted", "cuc-technical", "does not chain to the trust list"),
    ("cuc-business", "chi-cuc-business", "not the party and role"),
])
def test_bad_certificates_are_rejected_for_the_right_reason(tmp_path: Path, pki: DemoPki, p12: str, field: str,
                                                           reason: str) -> None:
    pdf = _minutes(tmp_path, "0" * 64)
    sign(pdf, field, pki.p12(p12), pki.passphrase())
    v = _check(pdf, pki, required=[field])
    assert not v.ok and any(reason in p for p in v.problems()), v.problems()


def test_changed_byte_or_evidence_file_fails_and_says_what(signed: tuple[Path, Path], pki: DemoPki) -> None:
    pdf, ev = signed
    data = bytearray(pdf.read_bytes())
    i = data.find(b"ecustoms-migration")
    assert i > 0
    data[i] ^= 0x01
    pdf.write_bytes(bytes(data))
    v = _check(pdf, pki, ev)
    assert not v.ok and any("changed after this signature" in p for p in v.problems())
    (ev / "accounting.json").write_text('[{"t": "SXXK.DTOKHAIMD", "rows": 11}]')
    assert any("evidence" in p for p in _check(pdf, pki, ev).problems())


def test_partial_and_extra_signatures(tmp_path: Path, pki: DemoPki) -> None:
    pdf = _minutes(tmp_path, "0" * 64)
    for f in list(DEMO_SIGNERS)[:5]:
        sign(pdf, f, pki.p12(f), pki.passphrase())
    v = _check(pdf, pki)
    assert v.missing_fields == ["chi-cuc-business"] and not v.ok
    sign(pdf, "chi-cuc-business", pki.p12("chi-cuc-business"), pki.passphrase())
    # a seventh signature by a party outside the six fields is flagged
    with pdf.open("rb") as f:
        w = IncrementalPdfFileWriter(f)
        out = signers.sign_pdf(w, signers.PdfSignatureMetadata(field_name="nguoi-khac"),
                               signer=signers.SimpleSigner.load_pkcs12(str(pki.p12("cuc-technical")),
                                                                       passphrase=pki.passphrase()),
                               new_field_spec=fields.SigFieldSpec("nguoi-khac"))
    pdf.write_bytes(out.getvalue())
    assert any("unexpected field 'nguoi-khac'" in p for p in _check(pdf, pki).problems())


def test_certs_check_names_each_bad_certificate(pki: DemoPki) -> None:
    from sign_off.certs import review
    files = [pki.p12(n) for n in (*DEMO_SIGNERS, "expired", "revoked", "untrusted")]
    rows = {r.source: r.problems for r in review(files, [pki.trust], [pki.intermediate], pki.crls, pki.passphrase())}
    assert all(not rows[f"{n}.p12"] for n in DEMO_SIGNERS)
    assert any("expired" in p for p in rows["expired.p12"])
    assert any("revoked" in p for p in rows["revoked.p12"])
    assert any("trust list" in p for p in rows["untrusted.p12"])
    soon = review([pki.p12("cuc-business")], [pki.trust], [pki.intermediate], [], pki.passphrase(), days=400)
    assert any("expires within 400 days" in p for p in soon[0].problems)


def _appearance_texts(pdf: Path) -> dict[str, str]:
    """The text each signature's visible stamp shows (its /ActualText), and the widths its font declares."""
    import re as _re

    from pyhanko.pdf_utils.reader import PdfFileReader
    out = {}
    with pdf.open("rb") as f:
        r = PdfFileReader(f)
        for s in r.embedded_signatures:
            texts, stack = [], [s.sig_field["/AP"]["/N"].get_object()]
            while stack:
                x = stack.pop()
                data = getattr(x, "data", b"")
                for m in _re.finditer(rb"/ActualText \((.*?)\)\s*>>", data, _re.S):
                    raw = m.group(1).decode("latin-1").encode("latin-1").decode("unicode_escape").encode("latin-1")
                    texts.append(raw.decode("utf-16"))
                res = x.get("/Resources") or {}
                stack += [v.get_object() for v in (res.get("/XObject") or {}).values()]
            out[s.field_name] = " | ".join(texts)
    return out


def test_stamps_say_who_signed_in_which_capacity_when_readably(signed: tuple[Path, Path]) -> None:
    """The visible stamp reads 'Đã ký số bởi: <name>', the capacity and the time — not 'þÿ D i g i t a l l y'."""
    pdf, _ev = signed
    texts = _appearance_texts(pdf)
    assert set(texts) == set(DEMO_SIGNERS)
    for field, text in texts.items():
        assert text.startswith("Đã ký số bởi: DEMO "), (field, text)
        assert "Thời điểm ký: " in text and "þÿ" not in text
    assert "Cán bộ nghiệp vụ — Cục Hải quan Đồng Nai" in texts["cuc-business"]
    # the font's widths are in thousandths of an em (DejaVu's own 2048-unit widths would space letters apart)
    from pyhanko.pdf_utils.reader import PdfFileReader
    with pdf.open("rb") as f:
        r = PdfFileReader(f)
        ap = r.embedded_signatures[0].sig_field["/AP"]["/N"].get_object()
        fonts, stack = [], [ap]
        while stack:
            x = stack.pop()
            res = x.get("/Resources") or {}
            fonts += [v.get_object() for v in (res.get("/Font") or {}).values()]
            stack += [v.get_object() for v in (res.get("/XObject") or {}).values()]
        widths = [int(w) for font in fonts for d in font["/DescendantFonts"]
                  for item in d.get_object()["/W"] if isinstance(item, list) for w in item]
    assert widths and max(widths) <= 1000


def test_the_minutes_never_say_they_are_unsigned(tmp_path: Path) -> None:
    """What the page says is true before, during and after signing (issue: minutes an auditor can trust)."""
    pdf = _minutes(tmp_path, "b" * 64)
    text = " ".join(subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                                   check=True).stdout.split())  # words, whatever the line breaks
    assert "chưa ký" not in text.casefold() and "chưa được hỗ trợ" not in text and "CHƯA KÝ SỐ" not in text
    assert "Đã ký số bởi" not in text  # the page itself claims no signature; the stamps do, when they exist
    assert "ecm verify" in text
