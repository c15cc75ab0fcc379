"""Long-term validation: what lets the minutes verify in 2035, offline, long after every signer's certificate expired.

PAdES baseline levels, as the minutes get them (sign_off/signing.py):

* **B-T** — each signature carries an RFC 3161 time-stamp from the configured time-stamping authority (TSA) over
  its signature value: trusted proof that the signature existed at that time;
* **B-LT** — the revocation data (OCSP responses for the signer's and the TSA's certificates, the CRL for the
  intermediate CA) and the certificates are embedded in the document security store (DSS), so nothing needs to
  be fetched later;
* **B-LTA** — after the last signature, a document time-stamp covers all of it; ``ecm timestamp --renew`` adds
  the next one before the TSA certificate of the last one expires.

Verification at a date (``ecm verify --at``) runs pyHanko's ETSI EN 319 102-1 long-term validation
(:func:`pyhanko.sign.validation.ades.ades_lta_validation`) with the trust list and, offline, only what the file
and the auditor's folder hold. The last document time-stamp is validated *at* that date: its TSA chain must be
valid then; its revocation data is the data embedded when it was made (no service is asked years later), which
the details say.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asn1crypto import crl as asn1_crl, x509 as asn1_x509

from sign_off.certs import HARD_FAIL, NONE_AVAILABLE, Anchors, load_certs, load_crls
from transform.errors import SignOffError

# the archival time-stamp's own chain is checked with the revocation data embedded when it was made: accepted
# for as long as an archive lives (a renewal adds fresh data and a new time-stamp; see the module doc)
ARCHIVE_REVINFO_FRESHNESS = dt.timedelta(days=365 * 50)


@dataclass(frozen=True)
class LtaResult:
    ok: bool
    indication: str           # ETSI sub-indication (PASSED/OK, NO_POE, REVOKED_NO_POE …)
    best_time: dt.datetime | None
    message: str


@contextmanager
def captured_pyhanko_log() -> Iterator[list[str]]:
    """pyHanko logs each failed check with a traceback: keep the messages (first line) for the details, print none."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            msg = record.getMessage().strip().splitlines()
            if msg and msg[0] not in lines:
                lines.append(msg[0])
    loggers = [logging.getLogger(n) for n in ("pyhanko", "pyhanko_certvalidator")]
    saved = [(lg.level, lg.propagate, list(lg.handlers)) for lg in loggers]
    h = Keep()
    for lg in loggers:
        lg.handlers = [h]
        lg.propagate = False
        lg.setLevel(logging.WARNING)
    try:
        yield lines
    finally:
        for lg, (lv, prop, hs) in zip(loggers, saved, strict=True):
            lg.setLevel(lv)
            lg.propagate = prop
            lg.handlers = hs


# ---- signing: B-T and B-LT ------------------------------------------------------------------------------------

def tsa_certificate(timestamper: Any) -> asn1_x509.Certificate:
    """The TSA's certificate, read from a token it issues (its chain is embedded in every token)."""
    try:
        token = asyncio.run(timestamper.async_dummy_response("sha256"))
    except Exception as exc:  # noqa: BLE001 - any transport/format failure: name the service
        raise SignOffError(f"the time-stamping authority {getattr(timestamper, 'url', '?')} did not answer: "
                           f"{type(exc).__name__}: {exc}",
                           hint="check signing.tsa_url in the config and that the TSA is reachable") from exc
    sd = token["content"]
    sid = sd["signer_infos"][0]["sid"]
    for c in sd["certificates"]:
        cert = c.chosen
        if sid.name == "issuer_and_serial_number" and cert.serial_number == sid.chosen["serial_number"].native:
            return cert
        if sid.name == "subject_key_identifier" and cert.key_identifier == sid.chosen.native:
            return cert
    raise SignOffError(f"the time-stamping authority {getattr(timestamper, 'url', '?')} sends tokens without its "
                       "certificate", hint="configure a TSA that includes its certificate (certReq)")


def issuer_of(cert: asn1_x509.Certificate, candidates: list[asn1_x509.Certificate]) -> asn1_x509.Certificate:
    for c in candidates:
        if c.subject == cert.issuer and (not cert.authority_key_identifier
                                         or c.key_identifier == cert.authority_key_identifier):
            return c
    raise SignOffError(f"no issuer certificate for {cert.subject.human_friendly} among the trust list and "
                       "intermediates", hint="add the issuing CA certificate to signing.other_certs (--certs)")


# ---- verifying at a date ----------------------------------------------------------------------------------------

def _spec(anchors: Anchors, extra_certs: list[asn1_x509.Certificate]) -> Any:
    from pyhanko.sign.validation.policy_decl import (
        LocalKnowledge, PdfSignatureValidationSpec, RevinfoOnlineFetchingRule, RevocationInfoGatheringSpec,
        SignatureValidationSpec,
    )
    from pyhanko_certvalidator.context import CertValidationPolicySpec
    from pyhanko_certvalidator.policy_decl import CertRevTrustPolicy, FreshnessReqType
    from pyhanko_certvalidator.registry import SimpleTrustManager
    from pyhanko_certvalidator.revinfo.archival import CRLContainer
    rev = HARD_FAIL if anchors.revocation == "required" else NONE_AVAILABLE
    trust = SimpleTrustManager.build(load_certs(list(anchors.trust)))
    archive = CertRevTrustPolicy(rev.revocation_checking_policy, freshness=ARCHIVE_REVINFO_FRESHNESS,
                                 freshness_req_type=FreshnessReqType.MAX_DIFF_REVOCATION_VALIDATION)
    known = LocalKnowledge(
        known_certs=load_certs(list(anchors.intermediates)) + extra_certs,
        known_crls=[CRLContainer(asn1_crl.CertificateList.load(d)) for d in load_crls(list(anchors.crls))])
    return PdfSignatureValidationSpec(SignatureValidationSpec(
        cert_validation_policy=CertValidationPolicySpec(trust_manager=trust, revinfo_policy=rev),
        ts_cert_validation_policy=CertValidationPolicySpec(trust_manager=trust, revinfo_policy=archive),
        revinfo_gathering_policy=RevocationInfoGatheringSpec(RevinfoOnlineFetchingRule.LOCAL_ONLY),
        local_knowledge=known))


def lta_validate(sig: Any, anchors: Anchors, at: dt.datetime) -> LtaResult:
    """ETSI long-term validation of one embedded signature as of ``at``, offline."""
    from pyhanko.sign.validation import ades
    from pyhanko.sign.ades.report import AdESPassed
    from pyhanko_certvalidator.context import ValidationTimingInfo
    timing = ValidationTimingInfo(validation_time=at, best_signature_time=at, point_in_time_validation=True)
    with captured_pyhanko_log() as log:
        try:
            res = asyncio.run(ades.ades_lta_validation(sig, _spec(anchors, list(sig.other_embedded_certs)),
                                                       timing_info=timing))
        except Exception as exc:  # noqa: BLE001 - pyHanko's internals: a failure to validate, named
            return LtaResult(False, "ERROR", None, f"long-term validation could not run: {type(exc).__name__}: {exc}")
    ok = res.ades_subindic == AdESPassed.OK
    name = getattr(res.ades_subindic, "name", str(res.ades_subindic))
    msg = res.failure_msg if isinstance(res.failure_msg, str) else " ".join(map(str, res.failure_msg or ()))
    if not ok and log:
        msg = (msg + " — " if msg else "") + "; ".join(log[-2:])
    return LtaResult(ok, name, res.best_signature_time if ok else None, msg or "")


def signature_timestamp_time(sig: Any) -> dt.datetime | None:
    """The time in the signature's own RFC 3161 time-stamp (unverified here: the validation checks it)."""
    from pyhanko.sign.general import find_unique_cms_attribute
    try:
        tst = find_unique_cms_attribute(sig.signer_info["unsigned_attrs"], "signature_time_stamp_token")
        return tst["content"]["encap_content_info"]["content"].parsed["gen_time"].native
    except Exception:  # noqa: BLE001 - no (readable) time-stamp
        return None


def last_archive_timestamp(pdf: Path) -> tuple[dt.datetime, asn1_x509.Certificate] | None:
    """The newest document time-stamp's time and TSA certificate, if any."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    r = PdfFileReader(io.BytesIO(pdf.read_bytes()))
    stamps = [s for s in r.embedded_signatures if s.sig_object_type == "/DocTimeStamp"]
    if not stamps:
        return None
    s = stamps[-1]
    tst = s.signed_data["encap_content_info"]["content"].parsed
    return tst["gen_time"].native, s.signer_cert

