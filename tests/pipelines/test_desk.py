"""The review desk over a real control store and a real staging file, through HTTP (Starlette's test client):
who may come in, who may decide what, CSRF, the login limit, decisions and corrections through the audited path.
The browser test with a real run is tests/pipelines/test_desk_browser.py."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient

from load.control_store import ControlStore
from pipelines.config import load_config
from pipelines.desk.accounts import add_account, load_accounts, verify
from pipelines.desk.app import MAX_FAILED_LOGINS, create_app
from sample_data.demo import write_config
from transform.errors import ConfigError
from validate.findings import Finding

RID = "c47d-test-run"
PW = {"an.nv": "mat-khau-an-123", "binh.tt": "mat-khau-binh-123", "cuong.lv": "mat-khau-cuong-123"}


@pytest.fixture
def desk(tmp_path: Path) -> dict[str, object]:
    cfg_path = write_config(tmp_path, tmp_path / "branch")
    cfg = load_config(cfg_path)
    con = duckdb.connect(str(cfg.staging_path))
    con.execute('CREATE SCHEMA src_sxxk; CREATE TABLE src_sxxk."DNPLNHAP" ("SOTK" INT, "MA_LH" VARCHAR, '
                '"MA_HQ" VARCHAR, "MA_NPL" VARCHAR, "LUONG" DECIMAL(18,3), "TON" DECIMAL(18,3)); '
                "INSERT INTO src_sxxk.\"DNPLNHAP\" VALUES (1, 'NSX01', 'C47D  ', NULL, 10, 4), "
                "(2, 'NSX01', 'C47D', 'VAI', 10, 12), (2, 'NSX01', 'C47D', 'VAI', 10, 12)")
    con.close()
    store = ControlStore(cfg.resolved_url("control"))
    store.start_run(RID, "C47D", True, {})
    store.step_started(RID, "gate_after_pl4_06_validate")
    store.set_run_status(RID, "waiting-decision")
    store.add_finding(RID, Finding("pl4_01_review", "null_key", "SXXK.DNPLNHAP", [{"SOTK": 1, "MA_LH": "NSX01", "MA_HQ": "C47D", "MA_NPL": None}], "1 rows with NULL in a key", "source_data_error", "critical"))
    store.add_finding(RID, Finding("pl4_01_review", "duplicate_key", "SXXK.DNPLNHAP", [{"SOTK": 2, "MA_LH": "NSX01", "MA_HQ": "C47D", "MA_NPL": "VAI", "n": 2}], "1 keys twice", "source_data_error", "critical"))
    store.add_finding(RID, Finding("pl4_01_review", "ton_gt_luong", "SXXK.DNPLNHAP", [{"SOTK": 2, "MA_LH": "NSX01", "MA_HQ": "C47D", "MA_NPL": "VAI"}], "1 stock rows TON > LUONG", "source_data_error", "major"))
    accounts = tmp_path / "desk_accounts.toml"
    add_account(accounts, "an.nv", "Nguyễn Văn An", "tong-cuc", "business", PW["an.nv"])
    add_account(accounts, "binh.tt", "Trần Thị Bình", "chi-cuc", "business", PW["binh.tt"])
    add_account(accounts, "cuong.lv", "Lê Văn Cường", "cuc", "business", PW["cuong.lv"], ["C99X"])
    app = create_app([cfg_path], accounts, secret="test-secret")
    return {"app": app, "store": store, "cfg": cfg, "accounts": accounts}


def _client(app: object) -> TestClient:
    return TestClient(app, base_url="https://testserver", follow_redirects=False)  # type: ignore[arg-type]


def _token(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html[:500]
    return m.group(1)


def _login(c: TestClient, login: str) -> str:
    tok = _token(c.get("/login").text)
    r = c.post("/login", data={"login": login, "password": PW[login], "csrf": tok})
    assert r.status_code == 303 and r.headers["location"] == "/", r.text[:500]
    return _token(c.get(f"/runs/{RID}").text)


def test_accounts_file_holds_argon2id_hashes_never_passwords(desk: dict[str, object]) -> None:
    text = Path(desk["accounts"]).read_text(encoding="utf-8")  # type: ignore[arg-type]
    assert text.count("$argon2id$") == 3 and not any(pw in text for pw in PW.values())
    accs = load_accounts(desk["accounts"])  # type: ignore[arg-type]
    assert verify(accs, "an.nv", PW["an.nv"]) is not None
    assert verify(accs, "an.nv", PW["binh.tt"]) is None and verify(accs, "nobody", PW["an.nv"]) is None
    with pytest.raises(ConfigError, match="already"):
        add_account(desk["accounts"], "an.nv", "X", "cuc", "business", "long-enough-pw")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="10 characters"):
        add_account(desk["accounts"], "new.one", "X", "cuc", "business", "short")  # type: ignore[arg-type]


def test_unauthenticated_requests_are_refused(desk: dict[str, object]) -> None:
    c = _client(desk["app"])
    for path in ("/", f"/runs/{RID}", f"/runs/{RID}/findings/1"):
        r = c.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/login", path
    assert c.get(f"/runs/{RID}/files/reports/x.xlsx").status_code == 401
    r = c.post(f"/runs/{RID}/decide", data={"finding_id": "1", "decision": "accept", "reason": "x", "csrf": "x"})
    assert r.status_code == 401
    assert all(f["status"] == "open" for f in desk["store"].findings(RID))  # type: ignore[attr-defined]


def test_cookie_flags_and_headers(desk: dict[str, object]) -> None:
    c = _client(desk["app"])
    r = c.get("/login")
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" in cookie
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"


def test_wrong_passwords_are_limited_per_address(desk: dict[str, object]) -> None:
    c = _client(desk["app"])
    tok = _token(c.get("/login").text)
    for _ in range(MAX_FAILED_LOGINS):
        r = c.post("/login", data={"login": "an.nv", "password": "wrong-password", "csrf": tok})
        assert r.status_code == 401 and "không đúng" in r.text
    r = c.post("/login", data={"login": "an.nv", "password": PW["an.nv"], "csrf": tok})
    assert r.status_code == 429 and "Thử lại sau" in r.text  # even the right password waits now


def test_a_form_without_the_csrf_token_is_refused(desk: dict[str, object]) -> None:
    c = _client(desk["app"])
    _login(c, "an.nv")
    r = c.post(f"/runs/{RID}/decide", data={"finding_id": "1", "decision": "accept", "reason": "đã đối chiếu"})
    assert r.status_code == 403
    r = c.post(f"/runs/{RID}/decide", data={"finding_id": "1", "decision": "accept", "reason": "x", "csrf": "forged"})
    assert r.status_code == 403
    assert desk["store"].finding(RID, 1)["status"] == "open"  # type: ignore[attr-defined]


def test_a_user_of_another_party_may_not_decide_a_critical_finding(desk: dict[str, object]) -> None:
    c = _client(desk["app"])
    tok = _login(c, "binh.tt")  # Chi cục: the policy lets it decide minor findings only
    page = c.get(f"/runs/{RID}").text
    assert "không được quyết định" in page
    r = c.post(f"/runs/{RID}/decide", data={"finding_id": ["1", "2"], "decision": "accept",
                                            "reason": "Chi cục tự chấp nhận", "csrf": tok})
    assert r.status_code == 403 and "policy.deciders" in r.text
    assert [f["status"] for f in desk["store"].findings(RID)] == ["open", "open", "open"]  # type: ignore[attr-defined]


def test_an_account_sees_only_its_branches(desk: dict[str, object]) -> None:
    c = _client(desk["app"])
    tok = _token(c.get("/login").text)
    c.post("/login", data={"login": "cuong.lv", "password": PW["cuong.lv"], "csrf": tok})
    assert RID not in c.get("/").text
    assert c.get(f"/runs/{RID}").status_code == 404


def test_accept_a_group_with_a_reason_logs_user_time_and_address(desk: dict[str, object]) -> None:
    store = desk["store"]
    c = _client(desk["app"])
    tok = _login(c, "an.nv")
    page = c.get(f"/runs/{RID}").text
    assert "Nghiêm trọng" in page and "Khóa bị trống" in page and "Đang chặn" in page
    # critical: a reason is required — refused with a Vietnamese message, nothing recorded
    r = c.post(f"/runs/{RID}/decide", data={"finding_id": ["1", "2"], "decision": "accept", "reason": " ",
                                            "csrf": tok})
    assert r.status_code == 303
    assert "phải ghi lý do" in c.get(r.headers["location"]).text
    assert store.finding(RID, 1)["status"] == "open"  # type: ignore[attr-defined]
    r = c.post(f"/runs/{RID}/decide", data={"finding_id": ["1", "2"], "decision": "accept",
                                            "reason": "Đã đối chiếu hồ sơ giấy", "csrf": tok})
    assert r.status_code == 303
    f1, f2, f3 = store.findings(RID)  # type: ignore[attr-defined]
    assert (f1["status"], f2["status"], f3["status"]) == ("accepted", "accepted", "open")
    assert f1["decided_by"] == "Nguyễn Văn An (tong-cuc-business)"
    log = store.decision_log(RID)  # type: ignore[attr-defined]
    assert [(e["finding_id"], e["login"], e["via"], e["address"]) for e in log] == [
        (1, "an.nv", "desk", "testclient"), (2, "an.nv", "desk", "testclient")]
    assert all(e["at"] and e["reason"] == "Đã đối chiếu hồ sơ giấy" for e in log)
    # decided once: a second decision on the same finding is refused, the first stands
    c.post(f"/runs/{RID}/decide", data={"finding_id": "1", "decision": "redo", "reason": "x", "csrf": tok})
    assert store.finding(RID, 1)["decision"] == "accept"  # type: ignore[attr-defined]


def test_finding_rows_show_source_values_filter_and_correct_in_place(desk: dict[str, object]) -> None:
    store, cfg = desk["store"], desk["cfg"]
    c = _client(desk["app"])
    tok = _login(c, "an.nv")
    page = c.get(f"/runs/{RID}/findings/3").text
    assert "Tồn lớn hơn lượng nhập" in page and "2 dòng cùng khóa" in page  # the duplicate shows both source rows
    page = c.get(f"/runs/{RID}/findings/1?q=NSX01").text
    assert "1 / 1" in page and "trống" in page  # the NULL key column, and the source row found by it
    assert "0 / 1" in c.get(f"/runs/{RID}/findings/1?q=khong-co").text
    # correct the NULL-key row's material code in place: applied to staging, audited, the finding decided
    r = c.post(f"/runs/{RID}/findings/1/correct", data={
        "csrf": tok, "key": "SOTK=1|MA_LH=NSX01|MA_HQ=C47D|MA_NPL=None", "column": "MA_NPL", "new_value": "VAI02",
        "reason": "Chi cục xác nhận mã NPL"})
    assert r.status_code == 303
    assert store.finding(RID, 1)["status"] == "corrected"  # type: ignore[attr-defined]
    [audit] = store.corrections(RID)  # type: ignore[attr-defined]
    assert (audit["column_name"], audit["old_value"], audit["new_value"]) == ("MA_NPL", None, "VAI02")
    assert audit["applied_by"] == "Nguyễn Văn An (tong-cuc-business)"
    con = duckdb.connect(str(cfg.staging_path), read_only=True)  # type: ignore[attr-defined]
    assert con.execute('SELECT "MA_NPL" FROM src_sxxk."DNPLNHAP" WHERE "SOTK" = 1').fetchall() == [("VAI02",)]
    con.close()
    # a key naming two rows (the duplicate) is refused with the reason, nothing changed
    r = c.post(f"/runs/{RID}/findings/2/correct", data={
        "csrf": tok, "key": "SOTK=2|MA_LH=NSX01|MA_HQ=C47D|MA_NPL=VAI", "column": "TON", "new_value": "5",
        "reason": "x"})
    assert "không xác định đúng một dòng" in c.get(r.headers["location"]).text
    assert store.finding(RID, 2)["status"] == "open"  # type: ignore[attr-defined]
    # the desk tells the two rows apart by their staging row number: correct the second one only
    keys = re.findall(r'name="key" value="([^"]+)"', c.get(f"/runs/{RID}/findings/2").text)
    assert len(keys) == 2 and all("|@row=" in k for k in keys)
    c.post(f"/runs/{RID}/findings/2/correct", data={"csrf": tok, "key": keys[1], "column": "MA_NPL",
                                                     "new_value": "VAI03", "reason": "dòng trùng là NPL khác"})
    assert store.finding(RID, 2)["status"] == "corrected"  # type: ignore[attr-defined]
    con = duckdb.connect(str(cfg.staging_path), read_only=True)  # type: ignore[attr-defined]
    assert sorted(con.execute('SELECT "MA_NPL" FROM src_sxxk."DNPLNHAP" WHERE "SOTK" = 2').fetchall()) == [
        ("VAI",), ("VAI03",)]
    con.close()


def test_downloads_only_the_runs_own_reports(desk: dict[str, object]) -> None:
    cfg = desk["cfg"]
    reports = cfg.run_dir_root / RID / "reports"  # type: ignore[attr-defined]
    reports.mkdir(parents=True)
    (reports / "buoc6_doi_chieu.xlsx").write_bytes(b"xlsx bytes")
    c = _client(desk["app"])
    _login(c, "an.nv")
    assert "reports/buoc6_doi_chieu.xlsx" in c.get(f"/runs/{RID}").text
    r = c.get(f"/runs/{RID}/files/reports/buoc6_doi_chieu.xlsx")
    assert r.status_code == 200 and r.content == b"xlsx bytes"
    for bad in ("../control.sqlite", "reports/../../branch.toml", "%2e%2e/branch.toml"):
        assert c.get(f"/runs/{RID}/files/{bad}").status_code == 404


def test_a_correction_must_name_a_row_of_its_own_finding(desk: dict[str, object]) -> None:
    """Deciding a finding one may decide must not reach rows of another (a key or a bare row number)."""
    store, cfg = desk["store"], desk["cfg"]
    c = _client(desk["app"])
    tok = _login(c, "an.nv")
    for key in ("SOTK=1|MA_LH=NSX01|MA_HQ=C47D|MA_NPL=None", "@row=0", "SOTK=2|MA_LH=NSX01|MA_HQ=C47D|MA_NPL=VAI|@row=x"):
        r = c.post(f"/runs/{RID}/findings/3/correct", data={"csrf": tok, "key": key, "column": "MA_NPL",
                                                             "new_value": "HACK", "reason": "x"})
        assert r.status_code == 400, key
    con = duckdb.connect(str(cfg.staging_path), read_only=True)  # type: ignore[attr-defined]
    assert con.execute("""SELECT count(*) FROM src_sxxk."DNPLNHAP" WHERE "MA_NPL" = 'HACK'""").fetchall() == [(0,)]
    con.close()
    assert [f["status"] for f in store.findings(RID)] == ["open", "open", "open"]  # type: ignore[attr-defined]


def test_nothing_is_decided_unless_the_run_waits_at_a_gate(desk: dict[str, object]) -> None:
    store = desk["store"]
    c = _client(desk["app"])
    tok = _login(c, "an.nv")
    store.set_run_status(RID, "running")  # type: ignore[attr-defined]  # resumed: steps 5-6 are re-running
    r = c.post(f"/runs/{RID}/decide", data={"finding_id": "3", "decision": "accept", "reason": "x", "csrf": tok})
    assert "không dừng ở điểm quyết định" in c.get(r.headers["location"]).text
    r = c.post(f"/runs/{RID}/findings/3/correct", data={
        "csrf": tok, "key": "SOTK=2|MA_LH=NSX01|MA_HQ=C47D|MA_NPL=VAI", "column": "TON", "new_value": "1",
        "reason": "x"})
    assert store.finding(RID, 3)["status"] == "open" and not store.corrections(RID)  # type: ignore[attr-defined]


def test_correct_many_rows_with_the_findings_xlsx_template(desk: dict[str, object]) -> None:
    """Business staff download the finding's rows as an XLSX template, fill two lines in Excel (both rows of a
    duplicate, told apart by @row), leave the others empty, upload it: both applied, audited with the file's name."""
    import io

    from openpyxl import load_workbook
    store, cfg = desk["store"], desk["cfg"]
    c = _client(desk["app"])
    tok = _login(c, "an.nv")
    assert "tải mẫu hiệu chỉnh" in c.get(f"/runs/{RID}/findings/2").text
    r = c.get(f"/runs/{RID}/findings/2/template.xlsx")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.openxmlformats")
    wb = load_workbook(io.BytesIO(r.content))
    ws = wb["Hiệu chỉnh"]
    head = [cell.value for cell in ws[1]]
    assert head[:4] == ["table", "key", "column", "new_value"] and "nguồn: TON" in head
    lines = list(ws.iter_rows(min_row=2, values_only=True))
    assert len(lines) == 2 and all(line[0] == "SXXK.DNPLNHAP" and "|@row=" in line[1] for line in lines)
    assert ws.data_validations.dataValidation and "Hướng dẫn" in wb.sheetnames
    ws["C2"], ws["D2"], ws["C3"], ws["D3"] = "TON", "7", "MA_NPL", "VAI09"
    ws.append(["SXXK.DNPLNHAP", lines[0][1], None, None])  # an untouched line: skipped
    buf = io.BytesIO()
    wb.save(buf)
    r = c.post(f"/runs/{RID}/findings/2/correct-file", data={"csrf": tok, "reason": "Theo hồ sơ giấy"},
               files={"upload": ("sua_trung_khoa.xlsx", buf.getvalue(), "application/octet-stream")})
    assert r.status_code == 303
    assert "2 giá trị đã sửa" in c.get(r.headers["location"]).text
    assert store.finding(RID, 2)["status"] == "corrected"  # type: ignore[attr-defined]
    audit = store.corrections(RID)  # type: ignore[attr-defined]
    assert sorted((a["column_name"], a["new_value"]) for a in audit) == [("MA_NPL", "VAI09"), ("TON", "7")]
    assert {a["source_file"] for a in audit} == {"desk upload: sua_trung_khoa.xlsx"}
    con = duckdb.connect(str(cfg.staging_path), read_only=True)  # type: ignore[attr-defined]
    assert sorted(con.execute('SELECT "MA_NPL", "TON" FROM src_sxxk."DNPLNHAP" WHERE "SOTK" = 2').fetchall()) == [
        ("VAI", 7), ("VAI09", 12)]
    con.close()


@pytest.mark.parametrize(("name", "body", "says"), [
    ("sua.csv", "table,key,column,new_value\nSXXK.DNPLNHAP,SOTK=1|MA_LH=NSX01|MA_HQ=C47D|MA_NPL=None,MA_NPL,X\n"
                .encode(), None),  # a row of another finding: refused (400)
    ("sua.csv", b"table,key,column,new_value\nSXXK.DNPLNHAP,MA_NPL=V\xe0i,TON,1\n", "không phải văn bản UTF-8"),
    ("sua.csv", b"table,key\nSXXK.DNPLNHAP,SOTK=2\n", "thiếu: column, new_value"),
    ("sua.xlsx", b"PK\x03\x04 not really a workbook", "không phải tệp XLSX đọc được"),
    ("sua.csv", b"table,key,column,new_value\nSXXK.DNPLNHAP,SOTK=2,,\n", "không có dòng hiệu chỉnh nào"),
])
def test_a_bad_correction_file_is_refused_with_a_reason_and_changes_nothing(
        desk: dict[str, object], name: str, body: bytes, says: str | None) -> None:
    store, cfg = desk["store"], desk["cfg"]
    c = _client(desk["app"])
    tok = _login(c, "an.nv")
    r = c.post(f"/runs/{RID}/findings/3/correct-file", data={"csrf": tok, "reason": "x"},
               files={"upload": (name, body, "text/csv")})
    if says is None:
        assert r.status_code == 400 and "không thuộc các dòng của phát hiện này" in r.text
    else:
        assert r.status_code == 303
        assert says in c.get(r.headers["location"]).text
    assert store.finding(RID, 3)["status"] == "open" and not store.corrections(RID)  # type: ignore[attr-defined]
    con = duckdb.connect(str(cfg.staging_path), read_only=True)  # type: ignore[attr-defined]
    assert con.execute("""SELECT count(*) FROM src_sxxk."DNPLNHAP" WHERE "MA_NPL" = 'X'""").fetchall() == [(0,)]
    con.close()


def test_sessions_end_on_revocation_password_change_and_account_removal(desk: dict[str, object]) -> None:
    """No restart: the desk re-reads the accounts file; a session of a revoked, re-keyed or removed account is
    refused on its next request (and a fresh login after a revocation works)."""
    import subprocess
    import sys
    import time

    from pipelines.desk.accounts import load_accounts, save_accounts
    accounts = desk["accounts"]
    c = _client(desk["app"])
    _login(c, "an.nv")
    time.sleep(0.01)
    ecm = str(Path(sys.executable).with_name("ecm"))
    out = subprocess.run([ecm, "desk-revoke", str(accounts), "--login", "an.nv"], capture_output=True, text=True)
    assert out.returncode == 0 and "are refused" in out.stdout, out.stdout + out.stderr
    assert "an.nv" in accounts.read_text(encoding="utf-8") and "sessions_after" in accounts.read_text()  # type: ignore[attr-defined]
    r = c.get(f"/runs/{RID}")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    time.sleep(1.1)  # the revocation is rounded up to the next second
    _login(c, "an.nv")  # logging in again works
    assert c.get(f"/runs/{RID}").status_code == 200
    # a password changed in the file ends the sessions opened with the old one
    b = _client(desk["app"])
    _login(b, "binh.tt")
    accs = load_accounts(accounts)  # type: ignore[arg-type]
    from pipelines.desk.accounts import hash_password
    accs.account[1] = accs.account[1].model_copy(update={"password_hash": hash_password("mat-khau-moi-456")})
    save_accounts(accounts, accs)  # type: ignore[arg-type]
    assert c.get(f"/runs/{RID}").status_code == 200 and b.get(f"/runs/{RID}").status_code == 303
    # an account removed from the file is out at once
    accs = load_accounts(accounts)  # type: ignore[arg-type]
    accs.account = [a for a in accs.account if a.login != "an.nv"]
    save_accounts(accounts, accs)  # type: ignore[arg-type]
    assert c.get(f"/runs/{RID}").status_code == 303
    out = subprocess.run([ecm, "desk-revoke", str(accounts), "--login", "khong-co"], capture_output=True, text=True)
    assert out.returncode != 0 and "khong-co" in out.stdout + out.stderr and "Traceback" not in out.stderr
