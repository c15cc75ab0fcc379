"""The DEMO trust services on 127.0.0.1 — an RFC 3161 time-stamping authority (``POST /tsa``) and an RFC 6960
OCSP responder (``POST /ocsp``) — for the sample branch and the tests: a real HTTP service in its own process,
answering with certomancer's time stamper and OCSP responder over the DEMO PKI's keys (sign_off/pki.py).

Production takes the real services from the config (``signing.tsa_url``, ``signing.ocsp_url``,
``signing.tsa_certs``; Vietnamese practice: the Government CA publishes them). ``python -m
sign_off.trust_services --pki DIR --port-file F`` serves until stopped and writes its port to ``F`` once it
listens; :func:`running_services` starts and stops it around a block. The OCSP answers follow the intermediate's
CRL on disk (a certificate listed there is ``revoked`` from its revocation date, any other is ``good``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from transform.errors import SignOffError

TSA_QUERY, TSA_REPLY = "application/timestamp-query", "application/timestamp-reply"
OCSP_QUERY, OCSP_REPLY = "application/ocsp-request", "application/ocsp-response"
OCSP_VALIDITY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Services:
    """Where the trust services answer."""

    tsa_url: str
    ocsp_url: str | None = None


def _asn1_cert(path: Path) -> Any:
    from sign_off.certs import load_certs
    return load_certs([path])[0]


def _asn1_key(path: Path, passphrase: bytes) -> Any:
    from asn1crypto import keys
    from cryptography.hazmat.primitives import serialization
    key = serialization.load_pem_private_key(path.read_bytes(), passphrase)
    return keys.PrivateKeyInfo.load(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))


class _Handlers:
    def __init__(self, pki_dir: Path) -> None:
        from certomancer.services import TimeStamper

        from sign_off.pki import DemoPki
        self.pki = DemoPki(pki_dir, pki_dir / "PASSPHRASE")
        pw = self.pki.passphrase()
        tsa, self.intermediate = _asn1_cert(self.pki.tsa_cert), _asn1_cert(self.pki.intermediate)
        self.stamper = TimeStamper(tsa_cert=tsa, tsa_key=_asn1_key(self.pki.tsa_key, pw),
                                   certs_to_embed=[tsa, self.intermediate])
        self.ocsp_cert, self.ocsp_key = _asn1_cert(self.pki.ocsp_cert), _asn1_key(self.pki.ocsp_key, pw)

    def tsa(self, body: bytes) -> bytes:
        from asn1crypto import tsp
        req = tsp.TimeStampReq.load(body)
        _ = req["message_imprint"].native  # parse it all now: a malformed request is a 400
        return self.stamper.request_tsa_response(req).dump()

    def ocsp(self, body: bytes) -> bytes:
        from asn1crypto import algos, ocsp
        from certomancer.services import RevocationInfoInterface, SimpleOCSPResponder
        from cryptography import x509 as cx509
        revoked = {r.serial_number: r.revocation_date_utc
                   for r in cx509.load_der_x509_crl(self.pki.crl.read_bytes())}
        issuer = self.intermediate

        class FromCrl(RevocationInfoInterface):
            def get_issuer_cert(self) -> Any:
                return issuer

            def check_revocation_status(self, cid: Any, at_time: dt.datetime) -> tuple[Any, list[Any]]:
                when = revoked.get(cid["serial_number"].native)
                if when is not None and when <= at_time:
                    return ocsp.CertStatus(name="revoked", value=ocsp.RevokedInfo(
                        {"revocation_time": when, "revocation_reason": "unspecified"})), []
                return ocsp.CertStatus(name="good", value=None), []

        req = ocsp.OCSPRequest.load(body)
        _ = req.native
        responder = SimpleOCSPResponder(
            responder_cert=self.ocsp_cert, responder_key=self.ocsp_key,
            signature_algo=algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
            at_time=dt.datetime.now(dt.timezone.utc), revinfo_interface=FromCrl(), validity=OCSP_VALIDITY)
        return responder.build_ocsp_response(req).dump()


def serve(pki_dir: Path, port: int, port_file: Path | None) -> None:
    handlers = _Handlers(pki_dir)
    routes = {"/tsa": (TSA_QUERY, TSA_REPLY, handlers.tsa), "/ocsp": (OCSP_QUERY, OCSP_REPLY, handlers.ocsp)}

    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, ctype: str, data: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            route = routes.get(self.path.rstrip("/") or "/")
            if route is None:
                self._send(404, "text/plain; charset=utf-8", f"no service at {self.path}; /tsa, /ocsp".encode())
                return
            query, reply, fn = route
            try:
                if self.headers.get("Content-Type", "").split(";")[0].strip() != query:
                    raise ValueError(f"Content-Type must be {query}")
                out = fn(body)
            except Exception as exc:  # noqa: BLE001 - a bad request gets a 400 naming it; the service stays up
                self._send(400, "text/plain; charset=utf-8", f"bad request: {type(exc).__name__}: {exc}".encode())
                return
            self._send(200, reply, out)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - no access log
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    if port_file is not None:
        tmp = port_file.with_suffix(".tmp")
        tmp.write_text(str(httpd.server_address[1]), encoding="utf-8")
        os.replace(tmp, port_file)
    httpd.serve_forever()


@contextmanager
def running_services(pki_dir: Path, timeout: float = 30.0) -> Iterator[Services]:
    """Start the DEMO trust services in their own process on a free loopback port; stop them afterwards."""
    port_file = pki_dir / f"services-{os.getpid()}-{time.monotonic_ns()}.port"
    log_path = port_file.with_suffix(".log")  # never a pipe nobody reads: a full pipe would block the service
    log = log_path.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "sign_off.trust_services", "--pki", str(pki_dir),
                             "--port-file", str(port_file)], stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + timeout
        while not port_file.exists():
            if proc.poll() is not None:
                err = log_path.read_bytes().decode(errors="replace").strip().splitlines()
                raise SignOffError("the DEMO trust services (time-stamping, OCSP) did not start: "
                                   + (err[-1] if err else f"exit code {proc.returncode}"), table=str(pki_dir),
                                   hint="run `python -m sign_off.trust_services --pki DIR` to see why")
            if time.monotonic() > deadline:
                raise SignOffError(f"the DEMO trust services did not listen within {timeout:.0f} s",
                                   table=str(pki_dir))
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port_file.read_text(encoding='utf-8').strip()}"
        yield Services(tsa_url=f"{base}/tsa", ocsp_url=f"{base}/ocsp")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        port_file.unlink(missing_ok=True)
        log_path.unlink(missing_ok=True)


def fetch_ocsp(url: str, cert: Any, issuer: Any, timeout: float = 10.0) -> bytes:
    """One OCSP response (DER) for ``cert`` from the responder at ``url`` (asn1crypto certificates)."""
    from asn1crypto import algos, core, ocsp
    req = ocsp.OCSPRequest({"tbs_request": {"request_list": [{"req_cert": {
        "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha1"}),
        "issuer_name_hash": core.OctetString(issuer.subject.sha1),
        "issuer_key_hash": core.OctetString(issuer.public_key.sha1),
        "serial_number": cert.serial_number}}]}})
    http = urllib.request.Request(url, data=req.dump(), headers={"Content-Type": OCSP_QUERY}, method="POST")
    try:
        with urllib.request.urlopen(http, timeout=timeout) as r:  # noqa: S310 - the configured responder
            data = r.read()
    except (urllib.error.URLError, OSError) as exc:
        raise SignOffError(f"the OCSP responder {url} did not answer: {exc}",
                           hint="check signing.ocsp_url in the config and that the responder is reachable") from exc
    status = ocsp.OCSPResponse.load(data)["response_status"].native
    if status != "successful":
        raise SignOffError(f"the OCSP responder {url} answered {status!r} for certificate serial "
                           f"{cert.serial_number}", hint="check that the responder serves this certificate's issuer")
    return data


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="DEMO time-stamping (POST /tsa) and OCSP (POST /ocsp) on 127.0.0.1")
    ap.add_argument("--pki", type=Path, required=True, help="the DEMO PKI directory (sign_off/pki.py)")
    ap.add_argument("--port", type=int, default=0, help="0: any free port")
    ap.add_argument("--port-file", type=Path, help="write the port here once listening")
    a = ap.parse_args(argv)
    serve(a.pki, a.port, a.port_file)


if __name__ == "__main__":
    main()
