"""The review desk: a small server-rendered web application over the control store (FastAPI + Jinja2, no script
needed, every asset in the package). Pages: log in; the runs; a run with the gate it waits at, its findings by
severity and its charts and reports; a finding with its rows (source values from staging) and the decisions.

Security: accounts from a file (argon2id hashes); a signed session cookie (HttpOnly, SameSite=Strict, Secure unless
the desk is told it runs behind plain HTTP on a non-loopback address); a CSRF token on every form; failed logins
limited per address; who may decide what is the branch config's ``policy.deciders``; every decision is logged with
the user, the time and the address. Nothing here runs a step: decisions go through ``pipelines.decide``.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware

from extract.staging import ROW_MARK
from load.control_store import ControlStore
from pipelines.config import BranchConfig, load_config
from pipelines.decide import Decider, current_gate, decide_findings, resume_after_decisions
from pipelines.desk import charts
from pipelines.desk.accounts import Account, AccountsFile, may_decide, verify
from pipelines.desk.rows import finding_keys, key_text, rows_page
from pipelines.desk.template import correction_template
from sign_off.decisions import ALLOWED_AT_GATE, STEP_ORDER, blocking, read_correction_file
from transform.errors import MigrationError
from validate import vocabulary as vn

HERE = Path(__file__).parent
LOG = logging.getLogger("ecm.desk")
DOWNLOADABLE = (".pdf", ".xlsx", ".html", ".json", ".csv")
MAX_FAILED_LOGINS, FAILED_LOGIN_WINDOW = 5, 300.0


@dataclass
class Desk:
    configs: dict[str, BranchConfig]  # branch code -> its config
    accounts: AccountsFile
    _stores: dict[str, ControlStore] = field(default_factory=dict)  # control URL -> its store, built once

    def store_of(self, cfg: BranchConfig) -> ControlStore:
        url = cfg.resolved_url("control")
        if url not in self._stores:
            self._stores[url] = ControlStore(url)
        return self._stores[url]

    def stores(self) -> list[ControlStore]:
        for cfg in self.configs.values():
            self.store_of(cfg)
        return list(self._stores.values())

    def run(self, run_id: str) -> tuple[BranchConfig, ControlStore, dict[str, Any]] | None:
        for store in self.stores():
            r = store.run(run_id)
            if r is not None and r["branch"] in self.configs:
                cfg = self.configs[r["branch"]]
                if self.store_of(cfg) is store:
                    return cfg, store, r
        return None


class LoginLimiter:
    """At most MAX_FAILED_LOGINS failed logins in FAILED_LOGIN_WINDOW seconds, per address and per login name
    (so that neither many addresses against one account nor one address against many accounts gets far)."""

    def __init__(self) -> None:
        self.failed: dict[str, deque[float]] = {}
        self.lock = threading.Lock()

    def _prune(self) -> None:
        horizon = time.monotonic() - FAILED_LOGIN_WINDOW
        for k in [k for k, q in self.failed.items() if not q or q[-1] < horizon]:
            del self.failed[k]
        for q in self.failed.values():
            while q and q[0] < horizon:
                q.popleft()

    def blocked_for(self, *who: str) -> float:
        with self.lock:
            self._prune()
            waits = [q[0] + FAILED_LOGIN_WINDOW - time.monotonic() for k in who
                     if len(q := self.failed.get(k, deque())) >= MAX_FAILED_LOGINS]
            return max(waits, default=0.0)

    def fail(self, *who: str) -> None:
        with self.lock:
            for k in who:
                self.failed.setdefault(k, deque()).append(time.monotonic())

    def clear(self, *who: str) -> None:
        with self.lock:
            for k in who:
                self.failed.pop(k, None)


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def create_app(configs: list[Path], accounts_file: Path, secret: str | None = None,
               secure_cookies: bool = True) -> FastAPI:
    """The desk over the branches of ``configs``; ``secret`` signs the session cookies (a random one per start
    by default: restarting the desk logs everyone out)."""
    loaded = [load_config(p) for p in configs]
    desk = Desk({c.branch_code: c for c in loaded}, AccountsFile(accounts_file))
    app = FastAPI(title="ecm desk", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(SessionMiddleware, secret_key=secret or secrets.token_urlsafe(32), session_cookie="ecm_desk",
                       max_age=8 * 3600, same_site="strict", https_only=secure_cookies)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(vn=vn, key_text=key_text)
    templates.env.filters["num"] = _num
    limiter = LoginLimiter()
    app.state.desk = desk

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        resp = await call_next(request)
        resp.headers["Content-Security-Policy"] = ("default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                                   "script-src 'self'; form-action 'self'; frame-ancestors 'none'")
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "no-referrer"
        if not request.url.path.startswith("/static"):
            resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> Response:  # logged by the server; the user gets a page
        LOG.error("desk: %s %s failed: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
        return templates.TemplateResponse(request, "error.html", {
            "account": None, "csrf": "", "flash": None,
            "message": "Lỗi của bàn xét duyệt khi xử lý yêu cầu này; cán bộ kỹ thuật xem nhật ký (log) của "
                       f"`ecm desk` ({type(exc).__name__}). Dữ liệu và các quyết định không bị thay đổi."},
            status_code=500)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return page(request, "error.html", {"message": exc.message}, status=exc.status)

    def page(request: Request, name: str, ctx: dict[str, Any], status: int = 200) -> Response:
        account = _account(request, desk)
        flash = request.session.pop("flash", None)
        return templates.TemplateResponse(request, name, {"account": account, "csrf": _csrf(request),
                                                          "flash": flash, **ctx}, status_code=status)

    def user(request: Request) -> Account:
        acc = _account(request, desk)
        if acc is None:
            raise Refused(401, "Cần đăng nhập để xem trang này.")
        return acc

    def check_csrf(request: Request, token: str) -> None:
        if not token or not secrets.compare_digest(token, request.session.get("csrf", "")):
            raise Refused(403, "Phiên làm việc không hợp lệ (mã chống giả mạo). Tải lại trang và thử lại.")

    def the_run(acc: Account, run_id: str) -> tuple[BranchConfig, ControlStore, dict[str, Any]]:
        found = desk.run(run_id)
        if found is None or not acc.sees(found[2]["branch"]):
            raise Refused(404, f"Không có lượt chạy {run_id} (hoặc tài khoản không được xem chi nhánh này).")
        return found

    # --- log in / out ------------------------------------------------------------------------------------------
    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> Response:
        return page(request, "login.html", {})

    @app.post("/login")
    def login(request: Request, login: str = Form(""), password: str = Form(""),
                    csrf: str = Form("")) -> Response:
        check_csrf(request, csrf)
        address = _address(request)
        who = (f"addr:{address}", f"login:{login.strip().lower()[:60]}")
        wait = limiter.blocked_for(*who)
        if wait:
            return page(request, "login.html", {"error": f"Đăng nhập sai quá {MAX_FAILED_LOGINS} lần. Thử lại sau "
                                                         f"{int(wait // 60) + 1} phút."}, status=429)
        acc = verify(desk.accounts.current(), login.strip(), password)
        if acc is None:
            limiter.fail(*who)
            return page(request, "login.html", {"error": "Tên đăng nhập hoặc mật khẩu không đúng."}, status=401)
        limiter.clear(*who)
        request.session.clear()
        request.session.update({"login": acc.login, "csrf": secrets.token_urlsafe(24), "stamp": acc.stamp,
                                "issued": time.time()})
        return RedirectResponse("/", status_code=303)

    @app.post("/logout")
    def logout(request: Request, csrf: str = Form("")) -> Response:
        check_csrf(request, csrf)
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    # --- pages ---------------------------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def runs(request: Request) -> Response:
        acc = _account(request, desk)
        if acc is None:
            return RedirectResponse("/login", status_code=303)
        rows = []
        for store in desk.stores():
            for r in store.latest_runs(50):
                if r["branch"] not in desk.configs or not acc.sees(r["branch"]):
                    continue
                gate = current_gate(store, r["run_id"]) if r["status"] == "waiting-decision" else None
                cfg = desk.configs[r["branch"]]
                waiting = blocking(store.findings(r["run_id"]), gate, cfg.policy.block) if gate else []
                rows.append({**r, "gate": gate, "waiting": len(waiting)})
        rows.sort(key=lambda r: r["started_at"] or "", reverse=True)
        rows.sort(key=lambda r: r["status"] != "waiting-decision")  # stable: waiting runs first, newest first
        return page(request, "runs.html", {"runs": rows})

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    def run_page(request: Request, run_id: str) -> Response:
        acc = _account(request, desk)
        if acc is None:
            return RedirectResponse("/login", status_code=303)
        cfg, store, run = the_run(acc, run_id)
        return page(request, "run.html", _run_context(cfg, store, run, acc))

    @app.get("/runs/{run_id}/findings/{finding_id}", response_class=HTMLResponse)
    def finding_page(request: Request, run_id: str, finding_id: int, q: str = "",
                           page_no: int = Query(1, alias="page")) -> Response:
        acc = _account(request, desk)
        if acc is None:
            return RedirectResponse("/login", status_code=303)
        cfg, store, run = the_run(acc, run_id)
        f = store.finding(run_id, finding_id)
        if f is None:
            raise Refused(404, f"Không có phát hiện số {finding_id} trong lượt chạy này.")
        checks = [c for c in store.checks(run_id, f["step"]) if c["check_id"] == f["check_id"]] \
            if f["step"] == "pl4_06_validate" else []
        rows = rows_page(f, checks, cfg.staging_path if cfg.staging_path.exists() else None, q=q, page=page_no,
                         memory_limit="256MB")
        gate = current_gate(store, run_id) if run["status"] == "waiting-decision" else None
        return page(request, "finding.html", {
            "run": run, "f": f, "text": vn.check_text(f["check_id"]), "rows": rows, "q": q, "gate": gate,
            "allowed": ALLOWED_AT_GATE.get(gate, ()) if gate and f["status"] == "open" else (),
            "may": may_decide(acc, f, cfg.policy.deciders), "log": [e for e in store.decision_log(run_id)
                                                                     if e["finding_id"] == finding_id]})

    @app.post("/runs/{run_id}/decide")
    def decide(request: Request, run_id: str, csrf: str = Form(""), finding_id: list[str] = Form(default=[]),  # noqa: B008 - FastAPI form field
               decision: str = Form(""), reason: str = Form(""), back: str = Form("")) -> Response:
        acc = user(request)
        check_csrf(request, csrf)
        cfg, store, run = the_run(acc, run_id)
        ids = [int(x) for x in finding_id if x.isascii() and x.isdigit() and len(x) < 10]
        reason = reason.strip()
        if not back.startswith(f"/runs/{run_id}"):
            back = f"/runs/{run_id}"
        if not ids:
            request.session["flash"] = {"kind": "bad", "text": "Chưa chọn phát hiện nào."}
            return RedirectResponse(back, status_code=303)
        for fid in ids:
            f = store.finding(run_id, fid)
            if f is not None and not may_decide(acc, f, cfg.policy.deciders):
                raise Refused(403, f"Tài khoản {acc.title} không được quyết định phát hiện mức "
                                   f"“{vn.SEVERITIES.get(f['severity'], f['severity'])}” (số {fid}) theo quy định "
                                   "của cấu hình (policy.deciders).")
        return _decide(request, cfg, store, run, acc, ids, decision, reason, None, back)

    def finding_to_decide(request: Request, run_id: str, finding_id: int, csrf: str
                          ) -> tuple[Account, BranchConfig, ControlStore, dict[str, Any], dict[str, Any]]:
        """The logged-in account, after the CSRF check, with the run and the finding it may decide (else refused)."""
        acc = user(request)
        check_csrf(request, csrf)
        cfg, store, run = the_run(acc, run_id)
        f = store.finding(run_id, finding_id)
        if f is None:
            raise Refused(404, f"Không có phát hiện số {finding_id}.")
        if not may_decide(acc, f, cfg.policy.deciders):
            raise Refused(403, f"Tài khoản {acc.title} không được quyết định phát hiện này.")
        return acc, cfg, store, run, f

    @app.post("/runs/{run_id}/findings/{finding_id}/correct")
    def correct(request: Request, run_id: str, finding_id: int, csrf: str = Form(""), key: str = Form(""),
                      column: str = Form(""), new_value: str = Form(""), reason: str = Form("")) -> Response:
        acc, cfg, store, run, f = finding_to_decide(request, run_id, finding_id, csrf)
        if not _names_own_row(key, finding_keys(f)):
            raise Refused(400, "Khóa hiệu chỉnh không thuộc các dòng của phát hiện này.")
        rows = [{"table": str(f["table_name"]), "key": key, "column": column, "new_value": new_value}]
        return _decide(request, cfg, store, run, acc, [finding_id], "correct", reason.strip(), rows,
                       f"/runs/{run_id}/findings/{finding_id}")

    @app.get("/runs/{run_id}/findings/{finding_id}/template.xlsx")
    def template(request: Request, run_id: str, finding_id: int) -> Response:
        acc = user(request)
        cfg, store, run = the_run(acc, run_id)
        f = store.finding(run_id, finding_id)
        if f is None or not f.get("table_name"):
            raise Refused(404, f"Phát hiện số {finding_id} không gắn với một bảng nguồn: không có tệp hiệu chỉnh.")
        page_ = rows_page(f, [], cfg.staging_path if cfg.staging_path.exists() else None, size=TEMPLATE_ROWS,
                          memory_limit="256MB")
        body = correction_template(str(f["table_name"]), page_)
        name = f"hieu-chinh_{run_id}_phat-hien-{finding_id}.xlsx"
        return Response(body, media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.post("/runs/{run_id}/findings/{finding_id}/correct-file")
    def correct_file(request: Request, run_id: str, finding_id: int, csrf: str = Form(""),
                     reason: str = Form(""), upload: UploadFile = File(...)) -> Response:  # noqa: B008 - FastAPI
        acc, cfg, store, run, f = finding_to_decide(request, run_id, finding_id, csrf)
        back = f"/runs/{run_id}/findings/{finding_id}"
        data = upload.file.read(MAX_UPLOAD_BYTES + 1)
        name = Path(upload.filename or "tep-hieu-chinh").name
        try:
            if len(data) > MAX_UPLOAD_BYTES:
                raise Refused(413, f"Tệp {name} lớn hơn {MAX_UPLOAD_BYTES // 1_000_000} MB.")
            rows = read_correction_file(name, data)
        except MigrationError as exc:
            request.session["flash"] = {"kind": "bad", "text": f"Không đọc được tệp {name}: {_vn_error(exc)}"}
            return RedirectResponse(back, status_code=303)
        if not rows:
            request.session["flash"] = {"kind": "bad", "text": f"Tệp {name} không có dòng hiệu chỉnh nào (cột "
                                        "“column” để trống ở mọi dòng)."}
            return RedirectResponse(back, status_code=303)
        mine = finding_keys(f)
        for i, r in enumerate(rows, start=1):
            if r["table"] != f["table_name"] or not _names_own_row(r["key"], mine):
                raise Refused(400, f"Dòng hiệu chỉnh thứ {i} của tệp {name} ({r['table']}, {r['key'][:120]}) không "
                                   "thuộc các dòng của phát hiện này: tải lại mẫu của phát hiện và chỉ điền cột "
                                   "“column” và “new_value”.")
        return _decide(request, cfg, store, run, acc, [finding_id], "correct", reason.strip(), rows, back,
                       source_file=f"desk upload: {name}")

    def _decide(request: Request, cfg: BranchConfig, store: ControlStore, run: dict[str, Any], acc: Account,
                ids: list[int], decision: str, reason: str, corrections: list[dict[str, str]] | None,
                back: str, source_file: str | None = None) -> Response:
        decider = Decider(by=f"{acc.name} ({acc.field})", via="desk", login=acc.login, address=_address(request))
        try:
            outcome = decide_findings(cfg, store, run["run_id"], ids, decision, reason, decider, corrections,
                                      source_file)
        except MigrationError as exc:
            request.session["flash"] = {"kind": "bad", "text": _vn_error(exc)}
            return RedirectResponse(back, status_code=303)
        threading.Thread(target=resume_after_decisions, args=(store, run["run_id"], decider.by), daemon=True).start()
        done = [fid for fid, ok in outcome if ok]
        skipped = len(outcome) - len(done)
        request.session["flash"] = {"kind": "ok" if done else "bad", "text": f"Đã ghi {len(done)} quyết định "
                                    f"“{vn.DECISIONS.get(decision, decision)}”" + (
                                        f" ({len(corrections)} giá trị đã sửa)" if corrections and done else "") + "." + (
                                        f" {skipped} phát hiện đã được người khác quyết định trước, giữ nguyên."
                                        if skipped else "") + " Lượt chạy tiếp tục khi không còn phát hiện chặn nào."}
        return RedirectResponse(back, status_code=303)

    @app.get("/runs/{run_id}/files/{name:path}")
    def download(request: Request, run_id: str, name: str) -> Response:
        acc = user(request)
        cfg, _store, run = the_run(acc, run_id)
        files = {rel: p for rel, p in _documents(cfg, run_id)}
        if name not in files:
            raise Refused(404, f"Không có tệp {name} trong lượt chạy này.")
        return FileResponse(files[name], filename=Path(name).name)

    return app


TEMPLATE_ROWS = 5000  # a finding's correction template lists at most this many keys
MAX_UPLOAD_BYTES = 20_000_000


def _run_context(cfg: BranchConfig, store: ControlStore, run: dict[str, Any], acc: Account) -> dict[str, Any]:
    rid = run["run_id"]
    steps = store.steps(rid)
    gate = current_gate(store, rid) if run["status"] == "waiting-decision" else None
    findings = [f for f in store.findings(rid) if f["status"] != "superseded"]
    block = {f["finding_id"] for f in blocking(findings, gate, cfg.policy.block)} if gate else set()
    groups = []
    for sev in ("critical", "major", "minor"):
        fs = [f for f in findings if f["severity"] == sev]
        fs.sort(key=lambda f: (f["finding_id"] not in block, f["status"] != "open", f["finding_id"]))
        if fs:
            groups.append({"severity": sev, "findings": fs, "blocking": sum(f["finding_id"] in block for f in fs),
                           "open": [f for f in fs if f["status"] == "open"],
                           "may": may_decide(acc, fs[0], cfg.policy.deciders)})
    timeline = charts.bars("Thời gian từng bước (giây)", [
        (vn.step_label(s.step).split(" — ")[0] if not s.step.startswith("gate") else "Quyết định",
         [("giây", round(s.seconds or 0, 1), "bad" if s.status == "failed" else "a")])
        for s in sorted(steps, key=_step_order) if s.seconds is not None], unit=" s")
    by_sev_cat: dict[tuple[str, str], int] = {}
    for f in findings:
        by_sev_cat[(f["category"], f["severity"])] = by_sev_cat.get((f["category"], f["severity"]), 0) + 1
    cats = sorted({c for c, _ in by_sev_cat})
    findings_chart = charts.bars("Phát hiện theo nhóm và mức độ", [
        (vn.CATEGORIES.get(c, c), [(vn.SEVERITIES[s], by_sev_cat.get((c, s), 0), col) for s, col in
                                   (("critical", "bad"), ("major", "b"), ("minor", "grey"))]) for c in cats])
    s6 = store.step_detail(rid, "pl4_06_validate")
    before_after = s6.get("before_after") or []
    by_office = s6.get("before_after_by_office") or []
    ba_chart = charts.bars("Số tờ khai trước và sau chuyển đổi theo đơn vị hải quan × loại hình", [
        (f"{office} {lh}", [("trước", b, "a"), ("sau + cách ly", a + q, "bad" if b != a + q else "ok")])
        for office, lh, b, a, q in by_office]) if by_office else charts.bars(
        "Số tờ khai trước và sau chuyển đổi theo loại hình", [
            (f"{db} {lh}", [("trước", b, "a"), ("sau + cách ly", a + q, "bad" if st == "fail" else "ok")])
            for db, lh, b, a, q, st in before_after])
    return {"run": run, "steps": sorted(steps, key=_step_order), "gate": gate, "groups": groups,
            "blocking_ids": block, "charts": [c for c in (findings_chart, ba_chart, timeline) if c],
            "documents": [rel for rel, _ in _documents(cfg, rid)], "allowed": ALLOWED_AT_GATE.get(gate, ()) if gate
            else (), "before_after": before_after}


def _step_order(s: Any) -> tuple[int, int]:
    name = s.step.removeprefix("gate_after_")
    return (STEP_ORDER.index(name) if name in STEP_ORDER else 99, 1 if s.step.startswith("gate") else 0)


def _documents(cfg: BranchConfig, run_id: str) -> list[tuple[str, Path]]:
    root = (cfg.run_dir_root / run_id).resolve()
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix.lower() in DOWNLOADABLE and "snapshot" not in p.parts and not p.is_symlink():
            out.append((p.relative_to(root).as_posix(), p))
    return out


def _names_own_row(key: str, finding_keys_: set[str]) -> bool:
    """A correction's key names a row of the finding: one of its keys, optionally with a staging row number."""
    base, _, row_no = key.partition(f"|{ROW_MARK}=")
    return base in finding_keys_ and (not row_no or (row_no.isascii() and row_no.isdigit()))


def _account(request: Request, desk: Desk) -> Account | None:
    """The session's account — if it still exists, its password is the one the session was opened with, and its
    sessions were not revoked since (`ecm desk-revoke`); otherwise the session is ended."""
    login = request.session.get("login")
    acc = desk.accounts.current().by_login(login) if login else None
    if acc is not None and acc.session_valid(request.session.get("stamp"), request.session.get("issued")):
        return acc
    if login:
        request.session.clear()
    return None


def _csrf(request: Request) -> str:
    if "csrf" not in request.session:
        request.session["csrf"] = secrets.token_urlsafe(24)
    return str(request.session["csrf"])


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _vn_error(exc: MigrationError) -> str:
    """The refusal in Vietnamese; what the desk does not know how to say is logged for the technical staff and
    shown as a generic message (no paths, process ids or engine text in a business user's page)."""
    msg = str(exc).split("\n")[0]
    if m := re.search(r"must have the columns .*\(missing: ([^)]*)\)", msg):
        return f"Tệp phải có các cột table, key, column, new_value (thiếu: {m.group(1)})."
    if m := re.search(r"correction file line (\d+) is incomplete", msg):
        return f"Dòng {m.group(1)} của tệp thiếu bảng hoặc khóa (cột table, key)."
    known = [("not UTF-8 text", "Tệp CSV không phải văn bản UTF-8: lưu lại với mã hóa UTF-8, hoặc dùng mẫu XLSX."),
             ("not a readable XLSX", "Tệp không phải tệp XLSX đọc được: lưu lại từ Excel dưới dạng .xlsx."),
             ("more than", "Tệp có quá nhiều dòng hiệu chỉnh: sửa tại Chi cục và làm lại từ bước 1."),
("needs a reason", "Phát hiện nghiêm trọng: chấp nhận phải ghi lý do."),
             ("choices are", "Quyết định này không được phép tại điểm quyết định hiện tại."),
             ("already", "Phát hiện đã được quyết định trước đó."),
             ("decided meanwhile", "Phát hiện vừa được người khác quyết định; hiệu chỉnh không được áp dụng."),
             ("not waiting at a decision gate", "Lượt chạy không dừng ở điểm quyết định: chỉ quyết định khi lượt "
                                                "chạy đang chờ."),
             ("later gate", "Phát hiện này được quyết định ở điểm quyết định sau."),
             ("matches", "Khóa hiệu chỉnh không xác định đúng một dòng nguồn."),
             ("at least one row", "Hiệu chỉnh cần ít nhất một giá trị mới."),
             ("cannot open staging", "Dữ liệu trung gian đang được sử dụng; thử lại sau ít phút."),
             ("correction line", "Dòng hiệu chỉnh không hợp lệ.")]
    for needle, text in known:
        if needle in msg:
            return text
    LOG.warning("desk: refused: %s", msg)
    return "Không thực hiện được quyết định; cán bộ kỹ thuật xem nhật ký của `ecm desk`."


def _num(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, int):
        return f"{v:,}".replace(",", ".")
    return str(v)
