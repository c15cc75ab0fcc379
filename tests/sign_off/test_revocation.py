"""Issue 12, item 8: revocation is hard-fail, and `ecm sign` refuses a certificate that cannot verify before it
writes anything (so no good signature is ever lost to a bad one)."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from typer.testing import CliRunner

from sign_off.evidence import build_bundle
from sign_off.minutes import MinutesData, render_minutes
from sign_off.pki import DEMO_SIGNERS, DemoPki, demo_pki, make_demo_pki
from sign_off.signing import add_signature_fields, minutes_binding, sign, verify_minutes

NOT_CHECKED = "revocation not checked: none available by configuration"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DemoPki:
    return make_demo_pki(tmp_path_factory.mktemp("pki"))


def _minutes(tmp: Path, bound: bool = True) -> Path:
    """Minutes as step 7 renders them (with the signed binding), or as they were before it (``bound=False``)."""
    ev = tmp / "evidence"
    h = build_bundle(ev, {}, {"accounting.json": [{"t": "SXXK.DTOKHAIMD", "rows": 10}]})
    d = MinutesData("C47D", "Chi cục Hải quan Biên Hòa", "Cục Hải quan Đồng Nai", [("C47D", "47D1")], "r1",
                    "2026-11-24", False, "a" * 64, h, [], [], [], 865, 0.95, 0.01)
    pdf = render_minutes(d, tmp / "bien_ban.pdf")
    add_signature_fields(pdf, binding=minutes_binding(run_id="r1", branch="C47D", snapshot_sha256="a" * 64,
                                                      evidence_dir=ev, evidence_sha256=h) if bound else None)
    return pdf


def _config(tmp: Path, pki: DemoPki, crls: bool = True, revocation: str | None = None) -> Path:
    from sample_data.demo import write_config
    cfg = write_config(tmp, tmp / "branch", rehearsal=False, demo_pki=False)
    extra = f'trust = ["{pki.trust}"]\nother_certs = ["{pki.intermediate}"]\n'
    extra += f'crls = ["{pki.crl}", "{pki.root_crl}"]\n' if crls else ""
    extra += f'revocation = "{revocation}"\n' if revocation else ""
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("demo_pki = false", "demo_pki = false\n" + extra),
                   encoding="utf-8")
    return cfg


def _flat(text: str) -> str:
    """CLI output without the terminal's line wrapping."""
    return " ".join(text.split())


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_a_revoked_signer_is_not_ok_when_no_crl_is_given(tmp_path: Path, pki: DemoPki) -> None:
    """Soft-fail let this through: no CRL → the revoked certificate verified 'ok'."""
    pdf = _minutes(tmp_path)
    sign(pdf, "chi-cuc-business", pki.p12("revoked"), pki.passphrase())  # e.g. with another tool
    v = verify_minutes(pdf, [pki.trust], [], [pki.intermediate], required=["chi-cuc-business"])
    assert not v.ok
    assert any("no revocation information" in p for p in v.problems()), v.problems()


def test_no_revocation_information_fails_unless_the_deployment_has_none(tmp_path: Path, pki: DemoPki) -> None:
    pdf = _minutes(tmp_path)
    sign(pdf, "cuc-technical", pki.p12("cuc-technical"), pki.passphrase())
    hard = verify_minutes(pdf, [pki.trust], [], [pki.intermediate], required=["cuc-technical"])
    assert not hard.ok and any("no revocation information" in p for p in hard.problems()), hard.problems()
    none = verify_minutes(pdf, [pki.trust], [], [pki.intermediate], required=["cuc-technical"],
                          revocation="none-available")
    assert none.ok, none.problems()
    assert NOT_CHECKED in none.notes()
    # with a CRL and the default, it verifies and says nothing about unchecked revocation
    full = verify_minutes(pdf, [pki.trust], pki.crls, [pki.intermediate], required=["cuc-technical"])
    assert full.ok and NOT_CHECKED not in full.notes()


@pytest.mark.parametrize("p12,field,crls,message", [
    ("expired", "chi-cuc-technical", True, "expired on"),
    ("revoked", "chi-cuc-business", True, "revoked"),
    ("untrusted", "cuc-technical", True, "not issued under the trust list"),
    ("cuc-business", "chi-cuc-business", True, "not the party and role of field chi-cuc-business"),
    ("cuc-technical", "cuc-technical", False, "no revocation information"),
])
def test_ecm_sign_refuses_a_certificate_that_cannot_verify_before_writing(tmp_path: Path, pki: DemoPki, p12: str,
                                                                          field: str, crls: bool, message: str
                                                                          ) -> None:
    from pipelines.cli import app
    pdf = _minutes(tmp_path)
    before = _digest(pdf)
    cfg = _config(tmp_path, pki, crls=crls)
    r = CliRunner().invoke(app, ["sign", str(pdf), "--field", field, "--p12", str(pki.p12(p12)), "--config",
                                 str(cfg)], env={"ECM_P12_PASSPHRASE": pki.passphrase().decode()})
    assert r.exit_code != 0, r.output
    assert message in _flat(r.output), r.output
    assert "next:" in r.output.lower()  # what to do about it
    assert _digest(pdf) == before  # nothing written
    assert pki.passphrase().decode() not in r.output


def test_ecm_sign_signs_with_a_good_certificate_and_says_what_it_checked(tmp_path: Path, pki: DemoPki) -> None:
    from pipelines.cli import app
    pdf = _minutes(tmp_path)
    r = CliRunner().invoke(app, ["sign", str(pdf), "--field", "tong-cuc-business", "--p12",
                                 str(pki.p12("tong-cuc-business")), "--config", str(_config(tmp_path, pki))],
                           env={"ECM_P12_PASSPHRASE": pki.passphrase().decode()})
    assert r.exit_code == 0, r.output
    assert "signed field tong-cuc-business" in r.output
    v = verify_minutes(pdf, [pki.trust], pki.crls, [pki.intermediate], required=["tong-cuc-business"])
    assert v.ok, v.problems()


def test_ecm_sign_without_crl_signs_when_the_config_says_none_available_and_says_so(tmp_path: Path,
                                                                                    pki: DemoPki) -> None:
    from pipelines.cli import app
    pdf = _minutes(tmp_path)
    cfg = _config(tmp_path, pki, crls=False, revocation="none-available")
    r = CliRunner().invoke(app, ["sign", str(pdf), "--field", "cuc-business", "--p12", str(pki.p12("cuc-business")),
                                 "--config", str(cfg)], env={"ECM_P12_PASSPHRASE": pki.passphrase().decode()})
    assert r.exit_code == 0, r.output
    assert NOT_CHECKED in _flat(r.output)


def test_ecm_sign_refuses_to_add_to_minutes_that_already_carry_a_bad_signature(tmp_path: Path, pki: DemoPki
                                                                               ) -> None:
    """A good signer's signature would be wasted on minutes that must be reissued anyway: say so first."""
    from pipelines.cli import app
    pdf = _minutes(tmp_path)
    sign(pdf, "chi-cuc-business", pki.p12("revoked"), pki.passphrase())
    before = _digest(pdf)
    r = CliRunner().invoke(app, ["sign", str(pdf), "--field", "cuc-business", "--p12", str(pki.p12("cuc-business")),
                                 "--config", str(_config(tmp_path, pki))],
                           env={"ECM_P12_PASSPHRASE": pki.passphrase().decode()})
    assert r.exit_code != 0 and "chi-cuc-business" in r.output and "revoked" in r.output, r.output
    assert "ecm minutes reissue" in _flat(r.output)
    assert _digest(pdf) == before


def test_ecm_sign_refuses_minutes_that_carry_no_signed_binding(tmp_path: Path, pki: DemoPki) -> None:
    """Minutes rendered before the binding existed cannot be tied to the evidence: signing them is wasted."""
    from pipelines.cli import app
    pdf = _minutes(tmp_path, bound=False)
    before = _digest(pdf)
    r = CliRunner().invoke(app, ["sign", str(pdf), "--field", "cuc-business", "--p12", str(pki.p12("cuc-business")),
                                 "--config", str(_config(tmp_path, pki))],
                           env={"ECM_P12_PASSPHRASE": pki.passphrase().decode()})
    assert r.exit_code != 0 and "ecm-binding.json" in _flat(r.output) and "ecm minutes reissue" in _flat(r.output)
    assert _digest(pdf) == before


def test_ecm_verify_is_hard_fail_and_says_when_revocation_is_not_checked(tmp_path: Path, pki: DemoPki) -> None:
    from pipelines.cli import app
    pdf = _minutes(tmp_path)
    for f in DEMO_SIGNERS:
        sign(pdf, f, pki.p12(f), pki.passphrase())
    base = ["verify", str(pdf), "--trust", str(pki.trust), "--certs", str(pki.intermediate), "--no-evidence"]
    no_crl = CliRunner().invoke(app, base)
    assert no_crl.exit_code == 1 and "no revocation information" in _flat(no_crl.output), no_crl.output
    declared = CliRunner().invoke(app, [*base, "--revocation", "none-available"])
    assert declared.exit_code == 0, declared.output
    assert NOT_CHECKED in _flat(declared.output)
    with_crl = CliRunner().invoke(app, [*base, "--crl", str(pki.crl), "--crl", str(pki.root_crl)])
    assert with_crl.exit_code == 0 and NOT_CHECKED not in _flat(with_crl.output), with_crl.output


def test_certs_check_names_missing_revocation_information(pki: DemoPki) -> None:
    from sign_off.certs import review
    good = [pki.p12(n) for n in DEMO_SIGNERS]
    rows = review(good, [pki.trust], [pki.intermediate], [], pki.passphrase())
    assert all(any("no revocation information" in p for p in r.problems) for r in rows), [r.problems for r in rows]
    rows = review(good, [pki.trust], [pki.intermediate], [], pki.passphrase(), revocation="none-available")
    assert all(not r.problems for r in rows), [r.problems for r in rows]
    rows = review([pki.p12("revoked")], [pki.trust], [pki.intermediate], [], pki.passphrase(),
                  revocation="none-available")
    assert rows[0].problems == [], "with no CRL at all, nothing can say it is revoked: that is what the setting means"


def test_the_signing_setting_is_explicit_and_validated() -> None:
    from pipelines.config import Signing
    assert Signing().revocation == "required"
    assert Signing(revocation="none-available").revocation == "none-available"
    with pytest.raises(ValueError):
        Signing(revocation="soft-fail")  # type: ignore[arg-type]


def test_the_demo_pki_renews_its_crl_before_it_goes_stale(tmp_path: Path) -> None:
    """Hard-fail needs a current CRL: a demo PKI made 40 days ago (CRL valid 30 days) gets a fresh one."""
    old = make_demo_pki(tmp_path / "pki", now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40))
    stale = x509.load_der_x509_crl(old.crl.read_bytes())
    assert stale.next_update_utc < dt.datetime.now(dt.timezone.utc)
    p = demo_pki(tmp_path / "pki")
    assert p.trust.read_bytes() == old.trust.read_bytes()  # the same PKI (earlier signatures still verify) …
    fresh = x509.load_der_x509_crl(p.crl.read_bytes())
    assert fresh.next_update_utc > dt.datetime.now(dt.timezone.utc)  # … with a current CRL
    assert any(r.serial_number for r in fresh)  # still listing the revoked signer


def test_ecm_verify_without_evidence_is_not_a_pass_and_ends_with_a_verdict(tmp_path: Path, pki: DemoPki) -> None:
    """An auditor who forgets --evidence must not read exit 0 as 'all checked'; the last line says what holds."""
    from pipelines.cli import app
    pdf = _minutes(tmp_path)
    for f in DEMO_SIGNERS:
        sign(pdf, f, pki.p12(f), pki.passphrase())
    base = ["verify", str(pdf), "--trust", str(pki.trust), "--certs", str(pki.intermediate), "--crl", str(pki.crl),
            "--crl", str(pki.root_crl)]
    r = CliRunner().invoke(app, base)
    out = _flat(r.output)
    assert r.exit_code == 1 and "evidence bundle was not checked" in out and "VERDICT: NOT VALID" in out
    knowingly = CliRunner().invoke(app, [*base, "--no-evidence"])
    out = _flat(knowingly.output)
    assert knowingly.exit_code == 0 and "VERDICT: VALID" in out and "NOT checked" in out
