"""PAdES signatures on the minutes (pyHanko): six signature fields, incremental signing, offline verification.

What the six signers vouch for is bound *inside* the signed content. The minutes print the snapshot and
evidence-bundle hashes on the page, and the incremental update that adds the six empty signature fields also
embeds ``ecm-binding.json`` (run, branch, snapshot SHA-256, evidence SHA-256 and the SHA-256 of every evidence
file). That revision comes before the first signature, so every signature covers it. Verification reads the
binding from the bytes the *first* signature covers (never from ``/Info`` or XMP, which any incremental
update may rewrite), checks that every later signature covers the same binding, and accepts nothing after the
last signature except DSS/document-timestamp updates (long-term validation material). Bytes after the end of
the last revision, or any other update after the last signature, fail verification, naming the revision.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyhanko.pdf_utils import embed, misc
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY, ModificationLevel, SuspiciousModification
from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature

from sign_off.certs import (
    NEXT_ACTION, REVOCATION_NOT_CHECKED, Anchors, Revocation, chain_problems, load_certs, party_role_problem,
    signer_problems,
)
from sign_off.ltv import (
    captured_pyhanko_log, issuer_of, last_archive_timestamp, lta_validate, signature_timestamp_time, tsa_certificate,
)
from sign_off.trust_services import Services, fetch_ocsp
from sign_off.evidence import BUNDLE_MANIFEST
from sign_off.minutes import FONT_DIR, PARTIES, ROLES, SIGNATURE_FIELDS, field_box_pt
from transform.errors import SignOffError

PASSPHRASE_ENV = "ECM_P12_PASSPHRASE"
BINDING_NAME = "ecm-binding.json"
BINDING_FORMAT = "ecm-minutes-binding/1"
REISSUE_HINT = ("render a new revision of the minutes with the same figures: `ecm minutes reissue --run RUN_ID "
                "--config BRANCH.toml --by NAME --reason TEXT`, then the six sign it")
# /Info entries a viewer shows; pyHanko itself rewrites /Producer and /ModDate on every incremental update
_INFO_SHOWN = ("/Title", "/Author", "/Subject", "/Keywords", "/Creator", "/CreationDate")
_XMP_VOLATILE = re.compile(rb'<(xmp:ModifyDate|xmp:MetadataDate|pdf:Producer)>.*?</\1>'
                           rb'|\s(xmp:ModifyDate|xmp:MetadataDate|pdf:Producer)="[^"]*"', re.S)

_load_certs = load_certs  # the name tests and older callers use


# ---- writing ------------------------------------------------------------------------------------------------

def minutes_binding(*, run_id: str, branch: str, snapshot_sha256: str, evidence_dir: Path, evidence_sha256: str,
                    reissue: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the signers vouch for: embedded in the minutes before the first signature (see the module doc)."""
    files = json.loads((evidence_dir / BUNDLE_MANIFEST).read_text(encoding="utf-8"))["files"]
    out: dict[str, Any] = {"format": BINDING_FORMAT, "run_id": run_id, "branch": branch,
                           "snapshot_sha256": snapshot_sha256, "evidence_sha256": evidence_sha256,
                           "evidence_files": files}
    if reissue:
        out["reissue"] = reissue
    return out


def add_signature_fields(pdf: Path, only: str | None = None, binding: dict[str, Any] | None = None) -> None:
    """Add the six empty signature fields (technical, business × Tổng cục, Cục, Chi cục) on the last page,
    or just the field ``only`` (the backup report carries the branch's technical signature alone); embed
    ``binding`` as ``ecm-binding.json`` in the same revision, so every signature covers it."""
    with pdf.open("rb") as f:
        w = IncrementalPdfFileWriter(f)
        last = int(w.root["/Pages"]["/Count"]) - 1
        if only:
            fields.append_signature_field(w, fields.SigFieldSpec(only, on_page=last, box=(30, 60, 280, 116)))
        page_h = float(w.root["/Pages"]["/Kids"][last]["/MediaBox"][3]) if "/MediaBox" in \
            w.root["/Pages"]["/Kids"][last] else 841.89
        for i, (pk, _pn) in enumerate(PARTIES if not only else []):
            for j, (rk, _rn) in enumerate(ROLES):
                left, top, right, bottom = field_box_pt(i, j)  # the boxes the minutes print (top-left origin)
                fields.append_signature_field(w, fields.SigFieldSpec(
                    f"{pk}-{rk}", on_page=last, box=(int(left), int(page_h - bottom), int(right), int(page_h - top))))
        if binding is not None:
            data = json.dumps(binding, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8")
            ef = embed.EmbeddedFileObject.from_file_data(w, data, params=embed.EmbeddedFileParams())
            embed.embed_file(w, embed.FileSpec(
                file_spec_string=BINDING_NAME, file_name=BINDING_NAME, embedded_data=ef,
                description="Mã băm dữ liệu và hồ sơ chứng cứ được các bên ký xác nhận (hashes the signers vouch for)"))
        buf = io.BytesIO()
        w.write(buf)
    pdf.write_bytes(buf.getvalue())


STAMP_FONT = FONT_DIR / "DejaVuSans-stamp.ttf"  # DejaVu Sans, Latin + Vietnamese, 1000 units/em: fonts/make_stamp_font.py


def _stamp_style() -> Any:
    """The visible stamp: who signed, in which capacity, when — in Vietnamese, drawn with the embedded DejaVu Sans
    (an OpenType font subset into the file; pyHanko's default font has no Vietnamese glyphs)."""
    from pyhanko.pdf_utils.font.opentype import GlyphAccumulatorFactory
    from pyhanko.pdf_utils.text import TextBoxStyle
    from pyhanko.stamp import TextStampStyle
    return TextStampStyle(
        stamp_text="Đã ký số bởi: %(signer)s\n%(capacity)s\nThời điểm ký: %(ts)s\n%(trusted_time)s",
        text_box_style=TextBoxStyle(font=GlyphAccumulatorFactory(str(STAMP_FONT), font_size=8), font_size=8,
                                    leading=11),
        timestamp_format="%d/%m/%Y %H:%M:%S %Z", border_width=1)


def _stamp_params(signer: signers.SimpleSigner, time_stamped: bool) -> dict[str, str]:
    subject = signer.signing_cert.subject.native
    capacity = " — ".join(x for x in (subject.get("organizational_unit_name"), subject.get("organization_name"))
                          if isinstance(x, str))
    # the time-stamp is made over the finished signature, so its time cannot be drawn here: the stamp says it exists
    return {"signer": str(subject.get("common_name", "")), "capacity": capacity,
            "trusted_time": "Kèm dấu thời gian RFC 3161 (TSA)" if time_stamped else "Không có dấu thời gian (TSA)"}


def load_signer(p12: Path, passphrase: bytes) -> signers.SimpleSigner:
    signer = signers.SimpleSigner.load_pkcs12(str(p12), passphrase=passphrase)
    if signer is None:
        raise SignOffError(f"cannot open {p12.name}: wrong passphrase or not a PKCS#12 file", table=str(p12),
                           hint=f"set {PASSPHRASE_ENV} or type the passphrase at the prompt")
    return signer


def check_before_signing(pdf: Path, field_name: str, signer: signers.SimpleSigner, source: str,
                         anchors: Anchors) -> None:
    """Refuse, before anything is written, a signature that `ecm verify` would reject: the certificate (chain,
    expiry, revocation, party and role of the field) and minutes that already fail verification."""
    cert = signer.signing_cert
    chain = [c for c in signer.cert_registry if c.dump() != cert.dump()]
    problems = signer_problems(cert, chain, field_name, anchors)
    if problems:
        first = problems[0]
        raise SignOffError(f"{source} cannot sign field {field_name}: " + "; ".join(p.message for p in problems)
                           + f" (certificate of {cert.subject.native.get('common_name', '?')}; nothing was written)",
                           hint=NEXT_ACTION[first.kind])
    with captured_pyhanko_log():
        reps, doc = _inspect(pdf, anchors)
    bad = [f"{r.field}: {p}" for r in reps for p in r.problems] + doc.problems
    with pdf.open("rb") as f:
        present = {name for name, _v, _f in fields.enumerate_sig_fields(PdfFileReader(f))}
    if set(SIGNATURE_FIELDS) <= present and doc.binding is None:  # the six-party minutes, rendered before binding
        bad.append(f"the minutes carry no {BINDING_NAME}: no signature on them can be tied to the evidence")
    if bad:
        raise SignOffError(f"the minutes {pdf.name} already fail verification, so a signature added now would be "
                           "lost: " + "; ".join(bad[:4]) + " (nothing was written)", hint=REISSUE_HINT)


def sign(pdf: Path, field_name: str, p12: Path, passphrase: bytes, reason: str = "Xác nhận số liệu sau chuyển đổi",
         anchors: Anchors | None = None, services: Services | None = None) -> list[str]:
    """Sign one field of ``pdf`` in place, as an incremental PAdES update; return notes for the operator.

    With ``anchors`` (what `ecm sign` and step 7 pass), the certificate and the minutes are checked first
    (:func:`check_before_signing`) and nothing is written unless the signature would verify. Without them
    the caller has already decided (tests that need a bad signature in the file, as another tool would write).
    With ``services`` (the configured TSA and OCSP responder) the signature is PAdES B-LT: an RFC 3161
    time-stamp over it, and the revocation data of the signer's and the TSA's certificates embedded (DSS).
    """
    if field_name not in SIGNATURE_FIELDS:
        raise SignOffError(f"unknown signature field {field_name!r}; fields: {', '.join(SIGNATURE_FIELDS)}")
    signer = load_signer(p12, passphrase)
    with pdf.open("rb") as f:
        existing = {s.field_name for s in PdfFileReader(f).embedded_signatures}
    if field_name in existing:
        raise SignOffError(f"field {field_name} is already signed", table=str(pdf))
    if anchors is not None:
        check_before_signing(pdf, field_name, signer, p12.name, anchors)
    notes = anchors.notes() if anchors is not None else []
    meta_kw: dict[str, Any] = {}
    timestamper = None
    if services is not None:
        timestamper, vc = _long_term_material(signer, anchors, services)
        meta_kw = {"embed_validation_info": True, "validation_context": vc}
    else:
        notes.append(NO_TSA_NOTE)
    meta = signers.PdfSignatureMetadata(field_name=field_name, md_algorithm="sha256", reason=reason,
                                        location="Việt Nam", subfilter=fields.SigSeedSubFilter.PADES, **meta_kw)
    with pdf.open("rb") as f:
        w = IncrementalPdfFileWriter(f)
        with tempfile.NamedTemporaryFile(delete=False, dir=pdf.parent, suffix=".pdf") as tmp:
            try:
                with captured_pyhanko_log():
                    signers.PdfSigner(meta, signer=signer, stamp_style=_stamp_style(),
                                      timestamper=timestamper).sign_pdf(
                        w, output=tmp, appearance_text_params=_stamp_params(signer, timestamper is not None))
            except SignOffError:
                Path(tmp.name).unlink(missing_ok=True)
                raise
            except Exception as exc:  # noqa: BLE001 - pyHanko/TSA failure: nothing written, named
                Path(tmp.name).unlink(missing_ok=True)
                raise SignOffError(f"signing field {field_name} failed: {type(exc).__name__}: {exc} (nothing was "
                                   "written)", table=str(pdf),
                                   hint="check the time-stamping and OCSP services (signing.tsa_url, "
                                        "signing.ocsp_url)") from exc
    shutil.move(tmp.name, pdf)
    return notes


def has_trusted_archive_timestamp(pdf: Path, anchors: Anchors) -> bool:
    """Whether a document time-stamp after the last signature verifies now under the trust list (B-LTA done)."""
    with pdf.open("rb") as f:
        sigs = PdfFileReader(f).embedded_signatures
        last_sig = max((s.signed_revision for s in sigs if s.sig_object_type == "/Sig"), default=-1)
        with captured_pyhanko_log():
            for s in sigs:
                if s.sig_object_type == "/DocTimeStamp" and s.signed_revision > last_sig:
                    try:
                        st = validate_pdf_timestamp(s, validation_context=anchors.validation_context())
                    except Exception:  # noqa: BLE001 - does not verify
                        continue
                    if st.intact and st.valid and st.trusted:
                        return True
    return False


ARCHIVE_FIELD_PREFIX = "luu-tru-"  # archive time-stamp fields: luu-tru-1, luu-tru-2 (renewals) …
NO_TSA_NOTE = ("no time-stamping authority configured (signing.tsa_url): this signature carries no trusted time, "
               "so once its certificate expires nothing proves it was made while the certificate was valid")


def _long_term_material(signer: signers.SimpleSigner | None, anchors: Anchors | None,
                        services: Services) -> tuple[Any, Any]:
    """The TSA client and a validation context holding current OCSP responses for the signer's (if any) and the
    TSA's certificates: pyHanko embeds what it validated with into the DSS (B-LT, and B-LTA's DSS update)."""
    from pyhanko.sign.timestamps import HTTPTimeStamper
    ts = HTTPTimeStamper(services.tsa_url)
    anchors = anchors or Anchors.of([])
    tsa = tsa_certificate(ts)
    pool = load_certs(list(anchors.intermediates)) + (list(signer.cert_registry) if signer else []) \
        + load_certs(list(anchors.trust))
    certs = [signer.signing_cert, tsa] if signer else [tsa]
    ocsps = [fetch_ocsp(services.ocsp_url, c, issuer_of(c, pool)) for c in certs] if services.ocsp_url else []
    return ts, anchors.validation_context(ocsps=ocsps, extra_certs=[tsa])


def add_archive_timestamp(pdf: Path, anchors: Anchors, services: Services) -> dt.datetime:
    """PAdES B-LTA: the DSS completed with the TSA's revocation data, then a document time-stamp over the whole
    file (after the last signature, or after the last archive time-stamp: ``ecm timestamp --renew``)."""
    ts, vc = _long_term_material(None, anchors, services)
    with pdf.open("rb") as f:
        r = PdfFileReader(f)
        n = 1 + sum(1 for s in r.embedded_signatures if s.sig_object_type == "/DocTimeStamp")
        f.seek(0)
        w = IncrementalPdfFileWriter(f)
        with tempfile.NamedTemporaryFile(delete=False, dir=pdf.parent, suffix=".pdf") as tmp:
            try:
                with captured_pyhanko_log():
                    signers.PdfTimeStamper(ts, field_name=f"{ARCHIVE_FIELD_PREFIX}{n}").timestamp_pdf(
                        w, "sha256", vc, output=tmp)
            except Exception as exc:  # noqa: BLE001 - nothing written, named
                Path(tmp.name).unlink(missing_ok=True)
                raise SignOffError(f"the archive time-stamp failed: {type(exc).__name__}: {exc} (nothing was "
                                   "written)", table=str(pdf), hint="check signing.tsa_url / signing.ocsp_url") from exc
    shutil.move(tmp.name, pdf)
    last = last_archive_timestamp(pdf)
    assert last is not None
    return last[0]


# ---- verifying ----------------------------------------------------------------------------------------------

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
    revision: int = -1
    coverage: str = ""
    modification: str = ""
    timestamp: str = ""   # the time in the signature's RFC 3161 time-stamp, if it has one
    trust: str = ""       # how the certificate was found trustworthy (now, or by long-term validation)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class RevisionLine:
    revision: int
    text: str
    ok: bool = True


@dataclass
class DocumentReport:
    """What is true of the file as a whole: which revision covers what, and what may not be there."""

    revisions: list[RevisionLine] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    binding: dict[str, Any] | None = None
    binding_revision: int | None = None
    binding_signed: bool = False


def _revision_end(data: bytes, r: PdfFileReader, rev: int) -> int | None:
    """Offset just after revision ``rev``'s ``%%EOF`` marker (and one end-of-line)."""
    meta = r.xrefs.get_xref_container_info(rev)
    i = data.find(b"%%EOF", meta.end_location)
    if i < 0:
        return None
    end = i + 5
    if data[end:end + 2] == b"\r\n":
        return end + 2
    return end + 1 if data[end:end + 1] in (b"\n", b"\r") else end


def _signed_end(sig: EmbeddedPdfSignature) -> int:
    _s1, len1, start2, len2 = (int(x) for x in sig.byte_range)
    return start2 + len2 if len(sig.byte_range) == 4 else len1


def _binding_in(data: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The ``ecm-binding.json`` of the document ``data`` (its latest revision), or why there is none."""
    try:
        r = PdfFileReader(io.BytesIO(data))
        names = r.root.get("/Names")
        tree = names.get_object().get("/EmbeddedFiles") if names is not None else None
        found: list[Any] = []

        def walk(node: Any) -> None:
            node = node.get_object()
            arr = node.get("/Names")
            if arr is not None:
                arr = arr.get_object()
                for i in range(0, len(arr) - 1, 2):
                    if str(arr[i]) == BINDING_NAME:
                        found.append(arr[i + 1].get_object())
            for kid in node.get("/Kids", []) or []:
                walk(kid)
        if tree is not None:
            walk(tree)
        if not found:
            return None, None
        if len(found) > 1:
            return None, f"{len(found)} embedded files are named {BINDING_NAME}"
        b = json.loads(found[0]["/EF"]["/F"].get_object().data.decode("utf-8"))
        if not isinstance(b, dict) or b.get("format") != BINDING_FORMAT:
            return None, f"{BINDING_NAME} is not an {BINDING_FORMAT} document"
        return b, None
    except (misc.PdfError, KeyError, ValueError, AttributeError, TypeError) as exc:
        return None, f"{BINDING_NAME} cannot be read ({type(exc).__name__}: {exc})"


def binding_in(pdf: Path) -> dict[str, Any] | None:
    """The binding a minutes file carries in its latest revision, signed or not (for `reissue`: what it
    replaces). Verification never uses this: see :func:`verify_minutes`."""
    return _binding_in(pdf.read_bytes())[0]


def _state(prefix: bytes) -> dict[str, Any]:
    """What a viewer or a long-term validator reads outside the page, in the document ``prefix`` (one revision):
    the shown /Info entries, the XMP metadata without the fields pyHanko refreshes on every update, the DSS."""
    try:
        r = PdfFileReader(io.BytesIO(prefix))
        info = r.trailer_view.get("/Info")
        info = info.get_object() if info is not None else {}
        m = r.root.get("/Metadata")
        xmp = _XMP_VOLATILE.sub(b"", m.get_object().data) if m is not None else None
        dss = r.root.get("/DSS")
        dss = dss.get_object() if dss is not None else {}
        return {"info": {k: str(info.get(k)) for k in _INFO_SHOWN if k in info}, "xmp": xmp,
                "dss": sorted((k, len(v.get_object()) if isinstance(v.get_object(), (list, dict)) else 1)
                              for k, v in dss.items())}
    except (misc.PdfError, KeyError, AttributeError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def _level_name(level: Any) -> str:
    return getattr(level, "name", str(level or ""))


def _check_after_last(data: bytes, r: PdfFileReader, last: EmbeddedPdfSignature, timestamps: dict[int, str],
                      doc: DocumentReport) -> None:
    """Every revision after the last signature must be a DSS or document-timestamp update and nothing else."""
    base = last.signed_revision
    n = r.xrefs.total_revisions
    before = _state(data[:_signed_end(last)])
    for k in range(base + 1, n):
        why: list[str] = []
        try:
            res = DEFAULT_DIFF_POLICY.apply(old=r.get_historical_resolver(base), new=r.get_historical_resolver(k))
            if res.modification_level > ModificationLevel.LTA_UPDATES:
                why.append(f"it changes the document ({_level_name(res.modification_level)})")
        except SuspiciousModification as exc:
            why.append("it changes the document: " + str(exc).splitlines()[0])
        except (misc.PdfError, KeyError, ValueError) as exc:
            why.append(f"it cannot be analysed ({type(exc).__name__}: {exc})")
        end_k = _revision_end(data, r, k)
        now = _state(data[:end_k]) if end_k is not None else {"error": "no end-of-file marker"}
        prev = _state(data[:_revision_end(data, r, k - 1) or 0]) if k - 1 > base else before
        if "error" in now:
            why.append(f"it cannot be read ({now['error']})")
        else:
            changed_info = sorted(x for x in set(before["info"]) | set(now["info"])
                                  if before["info"].get(x) != now["info"].get(x))
            if changed_info:
                why.append("it rewrites /Info " + ", ".join(changed_info))
            if now["xmp"] != before["xmp"]:
                why.append("it rewrites the XMP metadata")
        is_lta = k in timestamps or ("error" not in now and "error" not in prev and now["dss"] != prev["dss"])
        if not is_lta:
            why.append("it adds no DSS or document timestamp")
        if why:
            text = (f"revision {k}, after the last signature ({last.field_name}, revision {base}), is not a "
                    f"permitted DSS/timestamp update: " + "; ".join(why))
            doc.problems.append(text)
            doc.revisions.append(RevisionLine(k, text, ok=False))
        else:
            what = f"document timestamp {timestamps[k]}" if k in timestamps else "DSS update"
            doc.revisions.append(RevisionLine(k, f"revision {k}: {what} after the last signature (long-term "
                                                 "validation material; permitted, covered by no signature)"))


def _listed_revoked(cert: Any, anchors: Anchors) -> dt.datetime | None:
    """When a given CRL of the certificate's issuer lists it as revoked (whatever the CRL's age)."""
    from asn1crypto import crl as asn1_crl
    from sign_off.certs import load_crls
    for der in load_crls(list(anchors.crls)):
        c = asn1_crl.CertificateList.load(der)
        if c.issuer != cert.issuer:
            continue
        for entry in c["tbs_cert_list"]["revoked_certificates"]:
            if entry["user_certificate"].native == cert.serial_number:
                return entry["revocation_date"].native
    return None


def _trust_problem(st: Any, s: EmbeddedPdfSignature, cert: Any, anchors: Anchors, moment: dt.datetime,
                   ts_time: dt.datetime | None, lta: Any) -> str:
    """Why the signer's certificate is not trusted as of ``moment``, said precisely."""
    not_after = cert["tbs_certificate"]["validity"]["not_after"].native
    reported = st.signer_reported_dt
    listed = _listed_revoked(cert, anchors)
    signed_at = ts_time or reported
    if listed is not None and signed_at is not None and listed <= signed_at:
        return (f"the signer's certificate was revoked on {listed:%Y-%m-%d %H:%M} UTC (listed in its issuer's CRL), "
                f"before it signed ({signed_at:%Y-%m-%d %H:%M} UTC" + (", time-stamp)" if ts_time else ")"))
    if st.revoked:
        return ("the signer's certificate is revoked (CRL/OCSP)" + ("" if ts_time else ", and the signature carries "
                "no time-stamp that would prove it was made before") + f" [{lta.indication}]")
    if reported is not None and reported > not_after:
        return (f"the signer's certificate was expired at signing time (it expired on {not_after:%Y-%m-%d}; the "
                f"signature says {reported:%Y-%m-%d %H:%M})")
    if reported is not None and reported < cert["tbs_certificate"]["validity"]["not_before"].native:
        return f"the signer's certificate was not yet valid at signing time ({reported:%Y-%m-%d %H:%M})"
    if not_after < moment:
        if ts_time is None:
            return (f"no trusted time: the signature carries no RFC 3161 time-stamp, and its certificate expired on "
                    f"{not_after:%Y-%m-%d} (before {moment:%Y-%m-%d}), so nothing proves it was made while the "
                    "certificate was valid; minutes signed with a time-stamping authority (signing.tsa_url) keep "
                    "verifying")
        return (f"its certificate expired on {not_after:%Y-%m-%d} and long-term validation failed "
                f"[{lta.indication}]: {lta.message}")
    why = chain_problems(cert, list(s.other_embedded_certs), anchors, moment)
    kind = why[0].kind if why else "untrusted"
    if kind == "untrusted":
        return "the signer's certificate does not chain to the trust list"
    if kind == "revoked":
        return f"the signer's certificate is revoked: {why[0].message}"
    return f"the signer's certificate: {why[0].message} (long-term validation: {lta.indication})"


def _inspect(pdf: Path, anchors: Anchors, at: dt.datetime | None = None) -> tuple[list[SignatureReport], DocumentReport]:
    data = pdf.read_bytes()
    doc = DocumentReport()
    reports: list[SignatureReport] = []
    r = PdfFileReader(io.BytesIO(data))
    n = r.xrefs.total_revisions
    all_sigs = sorted(r.embedded_signatures, key=lambda s: s.signed_revision)
    sigs = [s for s in all_sigs if s.sig_object_type == "/Sig"]
    stamps = [s for s in all_sigs if s.sig_object_type == "/DocTimeStamp"]
    timestamps: dict[int, str] = {}
    for s in stamps:
        try:
            ts = validate_pdf_timestamp(s, validation_context=anchors.validation_context(moment=at))
            intact, trusted = bool(ts.intact and ts.valid), bool(ts.trusted)
            when = f" {ts.timestamp:%Y-%m-%d %H:%M:%S %Z}" if getattr(ts, "timestamp", None) else ""
        except Exception:  # noqa: BLE001 - any failure means "does not verify", named below
            intact, trusted, when = False, False, ""
        # intact is required; its TSA's trust is what long-term validation of each signature relies on and checks
        timestamps[s.signed_revision] = (f"{s.field_name}{when}" + ("" if trusted else
                                         " (its TSA is not trusted on the revocation data current at the "
                                         "verification date by itself; long-term validation checks its chain)"))
        if not intact:
            doc.problems.append(f"document timestamp {s.field_name} (revision {s.signed_revision}) does not verify")

    moment = at or dt.datetime.now(dt.timezone.utc)
    for s in sigs:
        st = validate_pdf_signature(s, anchors.validation_context(moment=at))
        cert = st.signing_cert
        subj = cert.subject.native
        name, org, unit = subj.get("common_name", ""), subj.get("organization_name", ""), \
            subj.get("organizational_unit_name", "")
        fname = s.field_name
        problems = []
        pr = party_role_problem(cert, fname)
        if fname not in SIGNATURE_FIELDS:
            problems.append(f"signature in an unexpected field {fname!r} (not one of the six parties/roles)")
        elif pr is not None:
            problems.append(pr.message)
        if not st.intact or not st.valid:
            problems.append("the document was changed after this signature (digest or signature invalid)")
        ts_time = signature_timestamp_time(s)
        trust_how = (f"certificate valid {moment:%Y-%m-%d}, revocation checked" if st.trusted and not st.revoked
                     else "")
        if st.intact and st.valid and not (st.trusted and not st.revoked):
            # not trusted as of the moment: long-term validation decides with the embedded time-stamps and
            # revocation data (a certificate that expired or was revoked *after* the trusted time stays good)
            lta = lta_validate(s, anchors, moment)
            if lta.ok:
                trust_how = (f"long-term validation: existed {lta.best_time:%Y-%m-%d %H:%M} UTC (time-stamp), "
                             "certificate and revocation data valid then")
            else:
                problems.append(_trust_problem(st, s, cert, anchors, moment, ts_time, lta))
        coverage = _level_name(st.coverage)
        if coverage not in ("ENTIRE_FILE", "ENTIRE_REVISION"):
            problems.append(f"the signature does not cover its whole revision ({coverage})")
        level = st.modification_level
        if level is None or _level_name(level) not in ("NONE", "LTA_UPDATES", "FORM_FILLING"):
            problems.append(f"changes after this signature (revision {s.signed_revision}) go beyond adding "
                            f"signatures ({_level_name(level) or 'not analysed'})")
        reports.append(SignatureReport(
            field=fname, signer=name, party=org, role=unit,
            signing_time=str(st.signer_reported_dt or ""), trusted=bool(trust_how), valid=bool(st.valid),
            intact=bool(st.intact), revoked=bool(st.revoked) and not trust_how, expected_party_role=pr is None,
            covers_to_end=coverage == "ENTIRE_FILE", problems=problems, revision=s.signed_revision,
            coverage=coverage, modification=_level_name(level),
            timestamp=f"{ts_time:%Y-%m-%d %H:%M:%S %Z}" if ts_time else "", trust=trust_how))

    # the binding: read from the bytes the first signature covers, the same in what every later one covers
    if sigs:
        first = sigs[0]
        doc.binding, err = _binding_in(data[:_signed_end(first)])
        doc.binding_signed = doc.binding is not None
        if err:
            doc.problems.append(f"the revision covered by the first signature ({first.field_name}, revision "
                                f"{first.signed_revision}): {err}")
        for s in sigs[1:]:
            b, _e = _binding_in(data[:_signed_end(s)])
            if b != doc.binding:
                doc.problems.append(f"{s.field_name} (revision {s.signed_revision}) covers a different "
                                    f"{BINDING_NAME} than the first signature (revision {first.signed_revision})")
        limit = first.signed_revision
    else:
        doc.binding, _e = _binding_in(data)  # provisional: no signature covers it yet
        limit = n
    if doc.binding is not None:
        for k in range(limit):
            end = _revision_end(data, r, k)
            if end is not None and _binding_in(data[:end])[0] == doc.binding:
                doc.binding_revision = k
                break

    first_rev = sigs[0].signed_revision if sigs else n
    for k in range(min(first_rev, n)):
        cov = f"covered by all {len(sigs)} signatures" if sigs else "covered by no signature yet"
        if k == doc.binding_revision and doc.binding is not None:
            b = doc.binding
            doc.revisions.append(RevisionLine(k, f"revision {k}: signature fields and the signed binding "
                                                 f"{BINDING_NAME} (evidence {b.get('evidence_sha256', '?')}, snapshot "
                                                 f"{b.get('snapshot_sha256', '?')}, run {b.get('run_id', '?')}) — {cov}"))
        elif k == 0:
            doc.revisions.append(RevisionLine(k, f"revision 0: the document as rendered (hashes printed on the "
                                                 f"page) — {cov}"))
        else:
            doc.revisions.append(RevisionLine(k, f"revision {k}: update before the first signature — {cov}"))
    if sigs and doc.binding is None:
        doc.revisions.append(RevisionLine(first_rev, f"no signed binding ({BINDING_NAME}) in the revisions the "
                                                     f"signatures cover", ok=False))
    by_rev = {s.signed_revision: s for s in sigs}
    rep_by_field = {rp.field: rp for rp in reports}
    for k in range(first_rev, (sigs[-1].signed_revision + 1) if sigs else first_rev):
        if k in by_rev:
            s = by_rev[k]
            rp = rep_by_field[s.field_name]
            doc.revisions.append(RevisionLine(k, f"revision {k}: signature {s.field_name} ({rp.signer}) — covers "
                                                 f"revisions 0–{k} ({rp.coverage})", ok=rp.ok))
        elif k in timestamps:
            doc.revisions.append(RevisionLine(k, f"revision {k}: document timestamp {timestamps[k]}"))
        else:
            later = ", ".join(s.field_name for s in sigs if s.signed_revision > k)
            doc.revisions.append(RevisionLine(k, f"revision {k}: unsigned update, covered by the later signatures "
                                                 f"({later})"))
    if sigs:
        _check_after_last(data, r, sigs[-1], timestamps, doc)
    end = _revision_end(data, r, n - 1)
    if end is None or len(data) > end:
        extra = len(data) - end if end is not None else "some"
        after = (f"after the last signature ({sigs[-1].field_name}, revision {sigs[-1].signed_revision})"
                 if sigs else "")
        text = (f"{extra} bytes after the end of revision {n - 1} (the last one) belong to no revision: appended "
                f"{after or 'to the file'}, covered by no signature")
        doc.problems.append(text)
        doc.revisions.append(RevisionLine(n, text, ok=False))
    return reports, doc


def verify(pdf: Path, trust: list[Path], crls: list[Path], other_certs: list[Path] | None = None,
           revocation: Revocation = "required", at: dt.datetime | None = None) -> list[SignatureReport]:
    """Verify every signature of ``pdf`` offline against the trust list and CRLs, as of ``at`` (now); name every
    problem."""
    with captured_pyhanko_log():
        return _inspect(pdf, Anchors.of(trust, other_certs or [], crls, revocation), at)[0]


def passphrase_from_env() -> bytes | None:
    v = os.environ.get(PASSPHRASE_ENV)
    return v.encode() if v else None


@dataclass
class MinutesVerification:
    signatures: list[SignatureReport]
    missing_fields: list[str]
    evidence_expected: str | None
    evidence_actual: str | None
    document: DocumentReport = field(default_factory=DocumentReport)
    revocation: Revocation = "required"
    evidence_problem: str | None = None

    @property
    def binding(self) -> dict[str, Any] | None:
        """The hashes the signers vouch for, from the revision covered by the first signature."""
        return self.document.binding

    @property
    def binding_revision(self) -> int | None:
        return self.document.binding_revision

    @property
    def ok(self) -> bool:
        return (all(r.ok for r in self.signatures) and not self.missing_fields and not self.document.problems
                and (self.evidence_actual is None or self.evidence_actual == self.evidence_expected))

    @property
    def tampered(self) -> bool:
        """A signature that does not verify, or a file changed outside signing: waiting will not fix it."""
        return (any(not r.ok for r in self.signatures) or bool(self.document.problems)
                or (self.evidence_actual is not None and self.evidence_actual != self.evidence_expected))

    def problems(self) -> list[str]:
        out = [f"{r.field}: {p}" for r in self.signatures for p in r.problems]
        out += list(self.document.problems)
        out += [f"{f}: not signed" for f in self.missing_fields]
        if self.evidence_problem:
            out.append(self.evidence_problem)
        return out

    def notes(self) -> list[str]:
        return [REVOCATION_NOT_CHECKED] if self.revocation == "none-available" else []

    def revision_lines(self) -> list[str]:
        return [x.text for x in self.document.revisions]


def _evidence_problem(binding: dict[str, Any] | None, signed: bool, evidence_dir: Path, actual: str) -> str | None:
    if binding is None:
        return (f"evidence bundle {actual[:16]}…: the minutes carry no signed binding ({BINDING_NAME}) in the "
                "revision the signatures cover, so nothing ties the evidence to the signatures")
    expected = str(binding.get("evidence_sha256"))
    if actual == expected:
        return None
    if actual.startswith("invalid:"):
        return f"evidence bundle {evidence_dir}: {actual[9:]}"
    try:
        files = json.loads((evidence_dir / BUNDLE_MANIFEST).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError):
        files = {}
    signed_files: dict[str, str] = binding.get("evidence_files") or {}
    diff = sorted(n for n in set(files) | set(signed_files) if files.get(n) != signed_files.get(n))
    what = "signed" if signed else "recorded (not yet signed)"

    def how(n: str) -> str:
        return "altered" if n in files and n in signed_files else "missing" if n in signed_files else "added"
    return (f"evidence bundle hash {actual[:16]}… differs from the {what} {expected[:16]}… of {BINDING_NAME}: "
            + (", ".join(f"{n} {how(n)}" for n in diff) or "its manifest differs"))


def verify_minutes(pdf: Path, trust: list[Path], crls: list[Path], other_certs: list[Path],
                   evidence_dir: Path | None = None, required: list[str] | None = None,
                   revocation: Revocation = "required", at: dt.datetime | None = None) -> MinutesVerification:
    """All of it: every signature, the required fields present, nothing after the last signature but DSS and
    timestamps, and the evidence bundle's hash against the binding in the signed revision."""
    from sign_off.evidence import verify_bundle
    with captured_pyhanko_log():
        reps, doc = _inspect(pdf, Anchors.of(trust, other_certs, crls, revocation), at)
    signed = {r.field for r in reps}
    missing = [f for f in (required if required is not None else SIGNATURE_FIELDS) if f not in signed]
    actual, problem = None, None
    expected = str(doc.binding["evidence_sha256"]) if doc.binding and "evidence_sha256" in doc.binding else None
    if evidence_dir is not None:
        try:
            actual = verify_bundle(evidence_dir)
        except SignOffError as exc:
            actual = f"invalid: {exc}"
        problem = _evidence_problem(doc.binding, doc.binding_signed, evidence_dir, actual)
    return MinutesVerification(reps, missing, expected, actual, doc, revocation, problem)
