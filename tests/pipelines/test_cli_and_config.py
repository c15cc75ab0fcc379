from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.config import load_config
from transform.errors import ConfigError

runner = CliRunner()


def test_sample_generate(tmp_path: Path) -> None:
    r = runner.invoke(app, ["sample", "generate", "--out", str(tmp_path / "b"), "--defects", "tcvn3_text=0.1"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "b" / "sxxk.sqlite").exists() and "injected defects" in r.output
    bad = runner.invoke(app, ["sample", "generate", "--out", str(tmp_path / "c"), "--defects", "nonsense=1"])
    assert bad.exit_code == 2 and "available:" in bad.output


def test_unknown_config_key_lists_valid_keys(tmp_path: Path) -> None:
    p = tmp_path / "b.toml"
    p.write_text('branch_code = "C47D"\nbranch_nmae = "x"\n')
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "branch_nmae" in str(e.value) and "valid keys:" in str(e.value) and "branch_name" in str(e.value)


def test_env_interpolation_and_no_secret_in_errors(tmp_path: Path, branch_config, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    text = Path(branch_config.output_dir / "branch.toml").read_text().replace(
        'central_url = "', 'central_url = "postgresql://u:${ECM_TEST_PW}@127.0.0.1/x" #')
    p = tmp_path / "env.toml"
    p.write_text(text)
    cfg = load_config(p)
    with pytest.raises(ConfigError, match="ECM_TEST_PW is not set"):
        cfg.resolved_url("central")
    monkeypatch.setenv("ECM_TEST_PW", "s3cret")
    assert "s3cret" in cfg.resolved_url("central") and "s3cret" not in cfg.model_dump_json()


def test_status_of_unknown_run_and_run_with_missing_config(tmp_path: Path, branch_config) -> None:  # type: ignore[no-untyped-def]
    cfgfile = branch_config.output_dir / "branch.toml"
    r = runner.invoke(app, ["status", "nope", "--config", str(cfgfile)])
    assert r.exit_code == 1 and "unknown run" in r.output
    r = runner.invoke(app, ["run", "--config", str(tmp_path / "missing.toml")])
    assert r.exit_code == 2 and "config file not found" in r.output


def test_truncate_config_accepts_the_2014_preset_and_refuses_unknown_columns(branch_config) -> None:  # type: ignore[no-untyped-def]
    from pipelines.config import parse_config
    data = branch_config.model_dump(mode="json")
    cfg = parse_config({**data, "truncate": ["2014"]})
    assert "DTO_KHAI_MD.VAN_DON" in cfg.truncate and len(cfg.truncate) == 4
    with pytest.raises(ConfigError, match="not a text column"):
        parse_config({**data, "truncate": ["DTO_KHAI_MD.NOPE"]})


def test_run_stops_before_the_flow_when_a_url_names_an_unset_variable(tmp_path: Path, sample_branch: Path) -> None:
    from sample_data.demo import write_config
    cfg = write_config(tmp_path, sample_branch, sxxk_url="mariadb+pyodbc://reader:${ECM_NOT_SET_PW}@db/c47d_sxxk")
    r = runner.invoke(app, ["run", "--config", str(cfg)])
    assert r.exit_code == 2
    out = " ".join(r.output.split())  # rich wraps long lines
    assert "ECM_NOT_SET_PW is not set" in out and "export ECM_NOT_SET_PW" in out
    assert not (tmp_path / "control.sqlite").exists()  # no run was started


def test_env_password_with_url_characters_stays_a_password(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy.engine import make_url

    from pipelines.config import interpolate_env
    monkeypatch.setenv("ECM_TEST_ODD_PW", "p@ss%w/rd:x")
    u = make_url(interpolate_env("postgresql+psycopg://reader:${ECM_TEST_ODD_PW}@db.branch:5432/slxnk"))
    assert u.password == "p@ss%w/rd:x" and u.host == "db.branch" and u.database == "slxnk"


def test_unfreeze_refuses_while_another_branch_is_frozen_on_the_same_mariadb(tmp_path: Path, sample_branch: Path) -> None:
    import pytest

    from load.control_store import ControlStore
    from pipelines import lifecycle
    from pipelines.config import load_config
    from sample_data.demo import write_config
    from transform.errors import ConfigError
    url = "mariadb+pyodbc://reader:x@10.0.0.5:3306/{}?driver=MariaDB+Unicode"
    cfg = load_config(write_config(tmp_path, sample_branch, code="C47D", slxnk_url=url.format("c47d_slxnk"),
                                   sxxk_url=url.format("c47d_sxxk")))
    store = ControlStore(cfg.resolved_url("control"))
    store.add_branch_event("C47E", "freeze", target="SXXK " + url.format("c47e_sxxk").replace(":x@", ":***@"))
    with pytest.raises(ConfigError, match="C47E is frozen on the same MariaDB server"):
        lifecycle.unfreeze(cfg, "Nguyễn Văn A", "drill over")


@pytest.mark.db
def test_a_source_refusing_the_login_is_one_line_naming_it_without_traceback(tmp_path: Path, branch_config,  # type: ignore[no-untyped-def]
                                                                            mariadb_admin_url: str) -> None:
    """What the operator reads when a source password is wrong: the source, the driver's words, the next action —
    and no traceback (Prefect logs one for every failed run)."""
    import os
    import subprocess
    import sys

    from sqlalchemy.engine import make_url
    u = make_url(mariadb_admin_url)
    wrong = u.render_as_string(False).replace(f"//{u.username}{':' + u.password if u.password else ''}@",
                                              f"//{u.username}:${{ECM_TEST_WRONG_PW}}@", 1)
    assert "${ECM_TEST_WRONG_PW}" in wrong
    text = Path(branch_config.output_dir / "branch.toml").read_text()
    lines = [f'slxnk_url = "{wrong}"' if ln.startswith("slxnk_url") else ln for ln in text.splitlines()]
    cfg = tmp_path / "wrong.toml"
    cfg.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "ECM_TEST_WRONG_PW": "definitely-wrong", "PREFECT_HOME": str(tmp_path / "ph"),
           "COLUMNS": "200"}
    r = subprocess.run([sys.executable, "-c", "from pipelines.cli import main; main()", "run", "--config", str(cfg)],
                       capture_output=True, text=True, env=env, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "Traceback" not in out and "definitely-wrong" not in out
    assert "SLXNK" in out and "refused the login" in out and "Access denied" in out and "password" in out
