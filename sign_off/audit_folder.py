"""The auditor's folder (hồ sơ kiểm tra): everything needed to verify a branch's migration years later, offline,
with standard tools (``sha256sum``, ``pdfsig``, ``openssl``) and with ``ecm verify FOLDER``.

Layout (names in Vietnamese, as the auditor reads them)::

    HUONG_DAN_KIEM_TRA.txt          step-by-step instructions, Vietnamese
    SHA256SUMS                      `sha256sum -c SHA256SUMS` — every other file of the folder
    bien_ban_xac_nhan_so_lieu.pdf   the signed minutes (PAdES B-LTA)
    chung_cu/                       the evidence bundle the signatures bind (manifest.json + its files)
    tin_cay/                        trust anchors (roots), intermediates, the TSA certificate, CRLs used
    bao_cao/                        the step reports, and the load report (step 8) with its RFC 3161 time-stamp
    PHIEN_BAN_CONG_CU.json          the tool and library versions that built it

and beside it one archive of the folder (``.tar.gz``) with its own ``.sha256`` (sha256sum format).

The load report is dated, names the minutes by the SHA-256 of the bytes the last signature covers (a prefix of
the file: stays true when archive time-stamps are appended) and, where a time-stamping authority is configured,
carries an RFC 3161 time-stamp token over its exact bytes (``.tsr``; ``openssl ts -verify``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import platform
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from extract.package import sha256_file
from transform.errors import SignOffError

MINUTES = "bien_ban_xac_nhan_so_lieu.pdf"
EVIDENCE, TRUST, REPORTS = "chung_cu", "tin_cay", "bao_cao"
SUMS, GUIDE, VERSIONS = "SHA256SUMS", "HUONG_DAN_KIEM_TRA.txt", "PHIEN_BAN_CONG_CU.json"
LOAD_REPORT = "buoc8_bao_cao_nap.json"


def tool_versions() -> dict[str, Any]:
    def v(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "?"
    commit = None
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        commit = out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"tool": "ecm (ecustoms-migration)", "version": v("ecustoms-migration"), "commit": commit,
            "python": platform.python_version(), "pyhanko": v("pyHanko"),
            "pyhanko-certvalidator": v("pyhanko-certvalidator"), "cryptography": v("cryptography")}


def signed_prefix(pdf: Path) -> tuple[int, str]:
    """(length, SHA-256) of the bytes the last signature of ``pdf`` covers: `head -c LENGTH FILE | sha256sum`."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    data = pdf.read_bytes()
    sigs = [s for s in PdfFileReader(io.BytesIO(data)).embedded_signatures if s.sig_object_type == "/Sig"]
    if not sigs:
        raise SignOffError(f"{pdf.name} carries no signature", table=str(pdf), hint="sign the minutes first")
    br = [int(x) for x in sigs[-1].byte_range]
    end = br[2] + br[3]
    return end, hashlib.sha256(data[:end]).hexdigest()


def time_stamp_file(path: Path, tsa_url: str) -> Path:
    """An RFC 3161 time-stamp token (``PATH.tsr``) over the exact bytes of ``path`` (`openssl ts -verify`)."""
    import asyncio

    from asn1crypto import tsp
    from pyhanko.sign.timestamps import HTTPTimeStamper
    digest = hashlib.sha256(path.read_bytes()).digest()
    ts = HTTPTimeStamper(tsa_url)
    try:
        token = asyncio.run(ts.async_timestamp(digest, "sha256"))
    except Exception as exc:  # noqa: BLE001 - the TSA, named
        raise SignOffError(f"the time-stamping authority {tsa_url} did not time-stamp {path.name}: {exc}",
                           hint="check signing.tsa_url") from exc
    resp = tsp.TimeStampResp({"status": tsp.PKIStatusInfo({"status": "granted"}), "time_stamp_token": token})
    out = path.with_name(path.name + ".tsr")
    out.write_bytes(resp.dump())
    return out


@dataclass
class FolderInputs:
    run_id: str
    branch: str
    minutes: Path
    evidence_dir: Path
    reports_dir: Path
    trust: list[Path]
    intermediates: list[Path]
    crls: list[Path]
    extra_certs: dict[str, bytes] = field(default_factory=dict)   # file name -> PEM (the TSA's certificate)


def _write_sums(folder: Path) -> None:
    lines = [f"{sha256_file(p)}  {p.relative_to(folder).as_posix()}"
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != SUMS]
    (folder / SUMS).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _archive(folder: Path) -> tuple[Path, str]:
    """``FOLDER.tar.gz`` (files in name order, fixed owner and times) and its ``.sha256``."""
    out = folder.with_name(folder.name + ".tar.gz")

    def norm(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        ti.mtime = 0
        return ti
    with tarfile.open(out, "w:gz", compresslevel=6) as tar:
        tar.add(folder, arcname=folder.name, recursive=False, filter=norm)
        for p in sorted(folder.rglob("*")):
            tar.add(p, arcname=f"{folder.name}/{p.relative_to(folder).as_posix()}", recursive=False, filter=norm)
    digest = sha256_file(out)
    out.with_name(out.name + ".sha256").write_text(f"{digest}  {out.name}\n", encoding="utf-8")
    return out, digest


def refresh(folder: Path) -> tuple[Path, str]:
    """After the minutes in ``folder`` changed legitimately (an archive time-stamp renewal): new sums, archive."""
    _write_sums(folder)
    return _archive(folder)


def build(folder: Path, inp: FolderInputs, guide: str) -> tuple[Path, str]:
    """Assemble the folder from the run's files; return the archive and its SHA-256."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / TRUST).mkdir(parents=True)
    shutil.copyfile(inp.minutes, folder / MINUTES)
    shutil.copytree(inp.evidence_dir, folder / EVIDENCE)
    shutil.copytree(inp.reports_dir, folder / REPORTS,
                    ignore=lambda _d, names: [n for n in names if n.startswith(Path(MINUTES).stem)])
    seen: set[str] = set()
    for kind, paths in (("goc", inp.trust), ("trung_gian", inp.intermediates), ("crl", inp.crls)):
        for p in paths:
            name = p.name if p.name not in seen else f"{kind}_{p.name}"
            seen.add(name)
            shutil.copyfile(p, folder / TRUST / name)
    for name, pem in inp.extra_certs.items():
        (folder / TRUST / name).write_bytes(pem)
    (folder / VERSIONS).write_text(json.dumps(tool_versions(), ensure_ascii=False, indent=1), encoding="utf-8")
    (folder / GUIDE).write_text(guide, encoding="utf-8")
    _write_sums(folder)
    return _archive(folder)


# ---- checking a folder --------------------------------------------------------------------------------------------

@dataclass
class FolderCheck:
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def check_sums(folder: Path) -> FolderCheck:
    """`sha256sum -c SHA256SUMS`, and no file that is not listed."""
    out = FolderCheck()
    sums = folder / SUMS
    if not sums.exists():
        out.problems.append(f"{folder.name}: no {SUMS} — not an auditor's folder built by ecm")
        return out
    listed: dict[str, str] = {}
    try:
        text = sums.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        out.problems.append(f"{SUMS} cannot be read ({type(exc).__name__}: {exc})")
        return out
    for line in text.splitlines():
        if line.strip():
            digest, _, name = line.partition("  ")
            listed[name] = digest
    bad = []
    for name, digest in listed.items():
        p = folder / name
        if not name or Path(name).is_absolute() or ".." in Path(name).parts:
            bad.append(f"{name!r} is not a file of the folder (absolute or outside it)")
        elif not p.is_file():
            bad.append(f"{name} missing")
        elif sha256_file(p) != digest:
            bad.append(f"{name} altered (its SHA-256 is not the one in {SUMS})")
    extra = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if p.is_file() and p.name != SUMS and p.relative_to(folder).as_posix() not in listed)
    bad += [f"{n} added (not in {SUMS})" for n in extra]
    out.problems += [f"{SUMS}: {b}" for b in bad]
    out.lines.append(f"{SUMS}: {len(listed)} files" + (" — all match" if not bad else f" — {len(bad)} problem(s)"))
    return out


def anchors_in(folder: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """(roots, other certificates, CRLs) from ``tin_cay/``: self-signed certificates are the roots."""
    from sign_off.certs import load_certs
    roots, others, crls = [], [], []
    for p in sorted((folder / TRUST).glob("*")):
        if p.suffix.lower() == ".crl":
            crls.append(p)
            continue
        try:
            certs = load_certs([p])
        except Exception:  # noqa: BLE001 - not a certificate: ignored, listed by the sums check anyway
            continue
        (roots if certs and all(c.self_signed != "no" for c in certs) else others).append(p)
    return roots, others, crls


def fingerprints(paths: list[Path]) -> list[tuple[str, str]]:
    from sign_off.certs import load_certs
    return [(c.subject.native.get("common_name", c.subject.human_friendly), c.sha256.hex().upper())
            for c in load_certs(paths)]


def check_load_report(folder: Path, snapshot_sha256: str | None, anchors: Any, time_stamped: bool = True
                      ) -> FolderCheck:
    """The load report: its hash link to the signed minutes, its snapshot, and its time-stamp token."""
    out = FolderCheck()
    rep_path = folder / REPORTS / LOAD_REPORT
    if not rep_path.exists():
        out.problems.append(f"{REPORTS}/{LOAD_REPORT}: missing — the folder does not show that the branch was loaded")
        return out
    try:
        rep = json.loads(rep_path.read_text(encoding="utf-8"))
        link = rep.get("minutes_signed") or {}
        if not isinstance(rep, dict) or not isinstance(link, dict):
            raise ValueError("not the load report's structure")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as exc:
        out.problems.append(f"{REPORTS}/{LOAD_REPORT} cannot be read as the load report ({type(exc).__name__}: "
                            f"{exc})")
        return out
    try:
        length, digest = signed_prefix(folder / MINUTES)
    except SignOffError as exc:
        out.problems.append(str(exc))
        return out
    if link.get("bytes") != length or link.get("sha256") != digest:
        out.problems.append(f"{LOAD_REPORT} names other minutes (signed part {link.get('sha256', '?')[:16]}…, "
                            f"{link.get('bytes')} bytes) than {MINUTES} ({digest[:16]}…, {length} bytes)")
    if snapshot_sha256 and rep.get("snapshot_sha256") != snapshot_sha256:
        out.problems.append(f"{LOAD_REPORT}: loaded snapshot {str(rep.get('snapshot_sha256'))[:16]}… is not the "
                            f"signed {snapshot_sha256[:16]}…")
    out.lines.append(f"load report: loaded {rep.get('loaded_at', '?')} into {rep.get('central', '?')} central, "
                     f"{(rep.get('load') or {}).get('rows', '?')} rows; names the signed minutes "
                     f"({digest[:16]}…, first {length} bytes) and snapshot {str(rep.get('snapshot_sha256'))[:16]}…")
    tsr = rep_path.with_name(rep_path.name + ".tsr")
    if tsr.exists():
        when, problem = verify_file_timestamp(rep_path, tsr, anchors)
        if problem:
            out.problems.append(f"{LOAD_REPORT}.tsr: {problem}")
        else:
            out.lines.append(f"load report time-stamp: {when:%Y-%m-%d %H:%M:%S %Z} (RFC 3161, TSA verified)")
    elif time_stamped:
        out.problems.append(f"{LOAD_REPORT}.tsr is missing: the minutes carry time-stamps, so step 8 time-stamped the "
                            "load report too — without the token its date and content are nobody's word")
    else:
        out.lines.append("load report time-stamp: none (the minutes carry no time-stamp either: no TSA configured)")
    return out


def verify_file_timestamp(path: Path, tsr: Path, anchors: Any) -> tuple[dt.datetime | None, str | None]:
    """Check an RFC 3161 token over ``path``: imprint, signature, TSA chain (as of the token's own time)."""
    import asyncio

    from asn1crypto import tsp
    from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
    try:
        resp = tsp.TimeStampResp.load(tsr.read_bytes())
        token = resp["time_stamp_token"]
        sd = token["content"]
        info = sd["encap_content_info"]["content"].parsed
        when = info["gen_time"].native
        expected = hashlib.sha256(path.read_bytes()).digest()
        if info["message_imprint"]["hashed_message"].native != expected:
            return when, "the token is over other bytes than the file (the file changed after it was time-stamped)"
        status = asyncio.run(validate_tst_signed_data(
            sd, anchors.validation_context(moment=when), expected_tst_imprint=lambda _algo: expected))
        if not (status["intact"] and status["valid"]):
            return when, "the token's signature does not verify"
        if status.get("trust_problem_indic") is not None or status.get("validation_path") is None:
            return when, (f"the TSA's certificate is not trusted ({status.get('trust_problem_indic')}): not issued "
                          "under the trust list, revoked, or without revocation data")
        return when, None
    except Exception as exc:  # noqa: BLE001 - any failure to read or check: named
        return None, f"cannot be checked: {type(exc).__name__}: {exc}"


def guide_text(*, run_id: str, branch: str, branch_name: str, roots: list[tuple[str, str]], demo: bool,
               tsa: bool, root_file: str = "<tệp gốc>.pem", intermediate_file: str = "<chứng thư trung gian>.pem"
               ) -> str:
    """HUONG_DAN_KIEM_TRA.txt: what an auditor does with this folder, step by step (Vietnamese, NFC)."""
    import unicodedata
    fp = "\n".join(f"      {cn}\n      SHA-256: {f}" for cn, f in roots) or "      (không có)"
    demo_note = ("\n  LƯU Ý: đây là hồ sơ của dữ liệu MẪU, ký bằng hạ tầng khóa DEMO (không có giá trị pháp lý).\n"
                 if demo else "")
    tsa_note = ("" if tsa else
                "\n  CẢNH BÁO: khi ký không có dịch vụ cấp dấu thời gian (TSA): sau khi chứng thư số của người ký hết\n"
                "  hạn, không còn gì chứng minh chữ ký được tạo khi chứng thư còn hiệu lực; `ecm verify --at` sẽ\n"
                "  báo KHÔNG HỢP LỆ và nói rõ lý do.\n")
    text = f"""HƯỚNG DẪN KIỂM TRA HỒ SƠ CHUYỂN ĐỔI DỮ LIỆU
Chi cục: {branch_name} ({branch}) — lần chạy: {run_id}
Căn cứ: Phụ lục IV Quyết định 865/QĐ-TCHQ (2014), bước 7 (biên bản xác nhận) và bước 8 (nạp CSDL tập trung).
{demo_note}{tsa_note}
Hồ sơ này đủ để kiểm tra NGOẠI TUYẾN, kể cả nhiều năm sau khi chứng thư số của những người ký đã hết hạn.

1. NỘI DUNG HỒ SƠ
  bien_ban_xac_nhan_so_lieu.pdf  Biên bản xác nhận số liệu, ký số PAdES bởi 6 người (cán bộ kỹ thuật và
                                 nghiệp vụ của Tổng cục, Cục, Chi cục); mỗi chữ ký có dấu thời gian
                                 RFC 3161 và dữ liệu thu hồi (OCSP/CRL) nhúng trong tệp; sau chữ ký cuối
                                 có dấu thời gian lưu trữ (PAdES B-LTA).
  chung_cu/                      Bộ chứng cứ (số liệu đối chiếu, kiểm tra, phát hiện, mẫu ngẫu nhiên);
                                 mã băm của manifest.json được ghi trong biên bản và được 6 chữ ký bảo vệ.
  tin_cay/                       Chứng thư gốc (tin cậy), chứng thư trung gian, chứng thư TSA, danh sách
                                 thu hồi (CRL) đã dùng khi ký.
  bao_cao/                       Báo cáo các bước; buoc8_bao_cao_nap.json là báo cáo nạp dữ liệu (có ngày
                                 giờ, mã băm phần đã ký của biên bản, mã băm bản chụp dữ liệu) kèm dấu
                                 thời gian buoc8_bao_cao_nap.json.tsr.
  PHIEN_BAN_CONG_CU.json         Phiên bản công cụ đã lập hồ sơ.
  SHA256SUMS                     Mã băm SHA-256 của từng tệp trên (trừ chính nó).

2. KIỂM TRA TÍNH NGUYÊN VẸN CỦA HỒ SƠ (công cụ chuẩn)
  Tệp nén: so mã băm của tệp .tar.gz với tệp .tar.gz.sha256 đi kèm:
      sha256sum -c ho_so_kiem_tra_{run_id}.tar.gz.sha256
  Mã băm ghi trong .sha256 là `sha256sum` của MỘT tệp (tệp .tar.gz), không phải của thư mục.
  Trong thư mục hồ sơ:
      sha256sum -c SHA256SUMS
  Mọi dòng phải là "OK". Một tệp bị sửa, thiếu hoặc thêm là hồ sơ không còn nguyên vẹn.

3. KIỂM TRA CHỨNG THƯ GỐC
  So dấu vân tay SHA-256 của chứng thư gốc trong tin_cay/ với dấu vân tay do tổ chức cung cấp dịch vụ
  chứng thực chữ ký số (Ban Cơ yếu Chính phủ) công bố — KHÔNG tin vào tệp trong hồ sơ nếu chưa so:
      openssl x509 -in tin_cay/{root_file} -noout -fingerprint -sha256
  Dấu vân tay lúc lập hồ sơ:
{fp}

4. KIỂM TRA CHỮ KÝ BẰNG CÔNG CỤ CHUẨN
      pdfsig bien_ban_xac_nhan_so_lieu.pdf
  phải liệt kê 6 chữ ký (tong-cuc-technical … chi-cuc-business), mỗi chữ ký có dòng "Signature is Valid",
  và dấu thời gian lưu trữ (trường luu-tru-N, chữ ký của dịch vụ cấp dấu thời gian). pdfsig không tự
  kiểm tra chứng thư theo danh sách tin cậy của hồ sơ và không xác thực dài hạn; xem mục 5.
  Dấu thời gian của từng chữ ký (thuộc tính id-smime-aa-timeStampToken):
      pdfsig -dump bien_ban_xac_nhan_so_lieu.pdf
      openssl cms -inform DER -in bien_ban_xac_nhan_so_lieu.pdf.sig0 -cmsout -print | grep -A2 timeStampToken
  Báo cáo nạp và dấu thời gian của nó:
      openssl ts -reply -in bao_cao/buoc8_bao_cao_nap.json.tsr -text
      openssl ts -verify -in bao_cao/buoc8_bao_cao_nap.json.tsr -data bao_cao/buoc8_bao_cao_nap.json \\
          -CAfile tin_cay/{root_file} -untrusted tin_cay/{intermediate_file}
  Báo cáo nạp ghi "minutes_signed": số byte và mã băm phần biên bản mà chữ ký cuối cùng bảo vệ:
      head -c <bytes> bien_ban_xac_nhan_so_lieu.pdf | sha256sum

5. KIỂM TRA ĐẦY ĐỦ BẰNG CÔNG CỤ ecm (ngoại tuyến)
      ecm verify <thư mục hồ sơ> --at <ngày kiểm tra, ví dụ 2035-01-01> --root-fingerprint <dấu vân tay ở mục 3>
  Công cụ chỉ tin chứng thư gốc trong tin_cay/ có đúng dấu vân tay được đưa vào (đã so với dấu vân tay do tổ
  chức chứng thực công bố ở mục 3), hoặc chứng thư gốc đưa bằng --trust; không có thì kết luận KHÔNG HỢP LỆ.
  Dòng đầu tiên là kết luận: "KẾT LUẬN: HỢP LỆ" hoặc "KẾT LUẬN: KHÔNG HỢP LỆ", rồi đến chi tiết:
  từng chữ ký (người ký, bên, vai trò, dấu thời gian, cách xác định tin cậy), từng phiên bản (revision)
  của tệp PDF và chữ ký nào bảo vệ nó, bộ chứng cứ so với mã băm đã ký, báo cáo nạp và dấu thời gian.
  Mã thoát 0 khi hợp lệ, khác 0 khi không hợp lệ.
  Không cần mạng: dùng dấu thời gian và dữ liệu thu hồi nhúng trong biên bản, chứng thư trong tin_cay/.

6. GIA HẠN DẤU THỜI GIAN LƯU TRỮ
  Trước khi chứng thư TSA của dấu thời gian lưu trữ cuối cùng hết hạn, đơn vị lưu trữ chạy:
      ecm timestamp --renew <thư mục hồ sơ> --config <tệp cấu hình>
  (thêm dữ liệu thu hồi mới và một dấu thời gian lưu trữ mới; SHA256SUMS và tệp nén được lập lại).
"""
    return unicodedata.normalize("NFC", text)
