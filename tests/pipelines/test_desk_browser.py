"""The review desk end to end, in a real browser (Debian's chromium, driven by Selenium through Debian's
chromedriver — no driver download): a real run of a defect-injected branch waits at its gates; business staff
log in, look, filter, accept a group with a reason, correct one value; the run resumes and finishes. A Chi cục
account is refused the critical findings; an unauthenticated browser is sent to the login page.

Screenshots of every page are written to out/test-artifacts/desk/ (the README shows two of them)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL
from prefect.testing.utilities import prefect_test_harness

from load.control_store import ControlStore
from pipelines.desk.accounts import add_account
from sample_data.demo import write_config
from sample_data.generator import GenParams, generate_branch
from tests.conftest import wait_for_run

pytestmark = pytest.mark.flow
ECM = str(Path(sys.executable).with_name("ecm"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "out" / "test-artifacts" / "desk"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PW = {"an.nv": "mat-khau-an-123", "binh.tt": "mat-khau-binh-123"}


def _browser():  # type: ignore[no-untyped-def]
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} not found")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000", "--lang=vi-VN",
              "--disable-extensions", "--no-first-run"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def _shot(d, name: str) -> None:  # type: ignore[no-untyped-def]
    """A full-page screenshot: the window grown to the page's height first."""
    height = d.execute_script("return document.documentElement.scrollHeight")
    d.set_window_size(1280, min(max(800, int(height) + 40), 6000))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    d.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    d.set_window_size(1280, 1000)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _go(d, element) -> None:  # type: ignore[no-untyped-def]
    """Click a link or a form button and wait until the browser has left the page (the old document is stale):
    reading the next page before that reads the old one or nothing (a race seen in CI after a GET filter)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
    old = d.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(d, 30).until(EC.staleness_of(old))
    WebDriverWait(d, 30).until(lambda x: x.execute_script("return document.readyState") == "complete")


def _login(d, base: str, login: str) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    d.get(base + "/login")
    d.find_element(By.NAME, "login").send_keys(login)
    d.find_element(By.NAME, "password").send_keys(PW[login])
    _go(d, d.find_element(By.CSS_SELECTOR, "form button.primary"))
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(d, 30).until(lambda x: not x.current_url.endswith("/login"))  # the redirect has landed


def _accept_group(d, base: str, rid: str, severity: str, reason: str) -> bool:  # type: ignore[no-untyped-def]
    """On the run page, accept the ticked findings of one severity group (its blocking ones come ticked); False if
    that group has nothing to accept at this moment."""
    from selenium.webdriver.common.by import By
    d.get(f"{base}/runs/{rid}")
    sections = d.find_elements(By.CSS_SELECTOR, f"section.sev-{severity}")
    if not sections or not sections[0].find_elements(By.CSS_SELECTOR, "button[value=accept]") \
            or not sections[0].find_elements(By.CSS_SELECTOR, "input[name=finding_id]:checked"):
        return False
    sections[0].find_element(By.NAME, "reason").send_keys(reason)
    _go(d, sections[0].find_element(By.CSS_SELECTOR, "button[value=accept]"))
    flash = _flash(d)
    assert "Đã ghi" in flash, d.find_element(By.TAG_NAME, "main").text[:1500]
    return True


def _flash(d) -> str:  # type: ignore[no-untyped-def]
    """The message the page shows after a form was sent (waiting for the redirect to land)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(d, 30).until(lambda x: x.find_elements(By.CSS_SELECTOR, ".flash"))
    return str(d.find_element(By.CSS_SELECTOR, ".flash").text)


def test_business_staff_decide_a_real_run_in_the_browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    branch = tmp_path / "branch"
    generate_branch(branch, GenParams(seed=3, defects={"duplicate_key": 0.05, "null_key": 0.05,
                                                      "ton_gt_luong": 0.03}))
    cfg_path = write_config(tmp_path, branch)
    with cfg_path.open("a", encoding="utf-8") as f:
        f.write("\n[policy]\npoll_seconds = 1\ndecision_timeout_seconds = 600\n")
    accounts = tmp_path / "desk_accounts.toml"
    add_account(accounts, "an.nv", "Nguyễn Văn An", "tong-cuc", "business", PW["an.nv"])
    add_account(accounts, "binh.tt", "Trần Thị Bình", "chi-cuc", "business", PW["binh.tt"])
    store = ControlStore(f"sqlite:///{tmp_path / 'control.sqlite'}")
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    d = _browser()
    with prefect_test_harness(server_startup_timeout=120):
        monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())  # the desk's threads resume the run
        env = {**os.environ, "PREFECT_HOME": str(tmp_path / "ph")}
        run = subprocess.Popen([ECM, "run", "--config", str(cfg_path)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        import uvicorn

        from pipelines.desk.app import create_app
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(create_app([cfg_path], accounts), host="127.0.0.1", port=port,
                                               log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        base = f"http://127.0.0.1:{port}"
        try:
            rid = wait_for_run(store, lambda r: r["status"] in ("waiting-decision", "failed", "completed"),
                               timeout=240)["run_id"]
            assert store.run(rid)["status"] == "waiting-decision"  # type: ignore[index]
            # unauthenticated: sent to the login page, the run's page is not shown
            d.get(f"{base}/runs/{rid}")
            assert d.current_url.endswith("/login") and d.find_elements(By.NAME, "password")
            _shot(d, "01_login")
            # a Chi cục account sees the gate but may not decide its critical findings
            _login(d, base, "binh.tt")
            d.get(f"{base}/runs/{rid}")
            crit = d.find_element(By.CSS_SELECTOR, "section.sev-critical")
            assert "không được quyết định" in crit.text and not crit.find_elements(By.NAME, "finding_id")
            _shot(d, "02_chi_cuc_refused")
            _go(d, d.find_element(By.CSS_SELECTOR, "header button.link"))  # log out
            WebDriverWait(d, 30).until(lambda x: x.current_url.endswith("/login"))
            # a Tổng cục business officer: the runs, the waiting gate, a finding's rows, a filter
            _login(d, base, "an.nv")
            assert "Chờ quyết định" in d.find_element(By.CSS_SELECTOR, "table.grid").text
            _shot(d, "03_runs")
            _go(d, d.find_element(By.LINK_TEXT, rid))
            assert "Quyết định sau bước 4" in d.find_element(By.CSS_SELECTOR, "section.gate").text
            _shot(d, "04_gate_after_step_4")
            _go(d, d.find_element(By.LINK_TEXT, "Khóa bị trống"))
            total = d.find_element(By.CSS_SELECTOR, "section.card h2 small").text  # "27 / 27"
            d.find_element(By.NAME, "q").send_keys("C47D01")
            _go(d, d.find_element(By.CSS_SELECTOR, "form.filter button"))
            shown = d.find_element(By.CSS_SELECTOR, "section.card h2 small").text
            assert shown != total and shown.split(" / ")[1] == total.split(" / ")[1], (shown, total)
            assert all("C47D01" in row.text for row in d.find_elements(By.CSS_SELECTOR, "table.rows tbody tr"))
            assert d.find_elements(By.CSS_SELECTOR, "td.src .srcrow")  # the source values beside the keys
            _shot(d, "05_finding_rows_filtered")
            # accept the critical group with a reason: the run resumes and stops at the next gate
            assert _accept_group(d, base, rid, "critical", "Đã đối chiếu với hồ sơ giấy")
            _shot(d, "06_after_accepting")
            wait_for_run(store, lambda r: r["status"] == "waiting-decision" and any(
                s.step == "gate_after_pl4_06_validate" and s.status == "running" for s in store.steps(rid)),
                timeout=240)
            # correct one value in place: a stock row whose TON exceeds LUONG gets TON = 0
            d.get(f"{base}/runs/{rid}")
            _shot(d, "07_gate_after_step_6")
            _go(d, d.find_element(By.LINK_TEXT, "Tồn lớn hơn lượng nhập"))
            form = d.find_element(By.CSS_SELECTOR, "form.correct")
            Select(form.find_element(By.NAME, "column")).select_by_visible_text("TON")
            form.find_element(By.NAME, "new_value").send_keys("0")
            form.find_element(By.NAME, "reason").send_keys("Chi cục xác nhận tồn bằng 0")
            _shot(d, "08_correcting_a_value")
            _go(d, form.find_element(By.CSS_SELECTOR, "button"))
            assert "Đã ghi 1 quyết định “Hiệu chỉnh”" in _flash(d)
            # the correction re-runs steps 5–6; the run waits again: accept what still blocks, until it goes on
            deadline = time.monotonic() + 300
            while store.run(rid)["status"] not in ("completed", "failed"):  # type: ignore[index]
                assert time.monotonic() < deadline, "the run did not finish"
                if store.run(rid)["status"] == "waiting-decision":  # type: ignore[index]
                    for severity in ("critical", "major", "minor"):
                        _accept_group(d, base, rid, severity, "Đã xem xét, chấp nhận")
                time.sleep(1)
            d.get(f"{base}/runs/{rid}")
            _shot(d, "09_run_completed")
            assert "Hoàn thành" in d.find_element(By.CSS_SELECTOR, "h1").text
            out, _ = run.communicate(timeout=120)
        finally:
            d.quit()
            server.should_exit = True
            if run.poll() is None:
                run.kill()
    final = store.run(rid)
    assert final is not None and final["status"] == "completed", out[-3000:]
    # the operator's terminal said, once per wait, where the decision is made
    assert out.count("waits for business decisions") >= 2 and f"http://127.0.0.1:8765/runs/{rid}" in out
    assert f"ecm status {rid}" in out and "resumed" in out
    [corr] = store.corrections(rid)
    assert (corr["column_name"], corr["new_value"], corr["applied_by"]) == ("TON", "0",
                                                                           "Nguyễn Văn An (tong-cuc-business)")
    log = store.decision_log(rid)
    desk_log = [e for e in log if e["via"] == "desk"]
    assert desk_log and all(e["login"] == "an.nv" and e["address"] == "127.0.0.1" for e in desk_log)
    assert {e["decision"] for e in desk_log} == {"accept", "correct"}
    # the correction round re-raised steps 5–6's findings; those already accepted kept their acceptance
    carried = [e for e in log if e["via"] == "carried-over"]
    assert carried and all(e["by"] == "Nguyễn Văn An (tong-cuc-business)" for e in carried)
    assert {e["via"] for e in log} == {"desk", "carried-over"}
    assert not [f for f in store.findings(rid) if f["status"] == "open" and f["severity"] == "critical"]
    assert sorted(p.name for p in ARTIFACTS.glob("*.png")) == [
        "01_login.png", "02_chi_cuc_refused.png", "03_runs.png", "04_gate_after_step_4.png",
        "05_finding_rows_filtered.png", "06_after_accepting.png", "07_gate_after_step_6.png",
        "08_correcting_a_value.png", "09_run_completed.png"]
