"""The wave plan: typed, validated, with the concurrency limits named after the servers; and the check that no
limit was exceeded, from the slot records."""

from __future__ import annotations

from pathlib import Path

import pytest

from load.wave_store import peak_holders
from pipelines.wave.plan import limit_name, load_plan
from sample_data.demo import write_config
from transform.errors import ConfigError


def _plan(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "wave.toml"
    p.write_text(body, encoding="utf-8")
    return p


def _branches(tmp_path: Path, n: int, rehearsal: bool = True, **kw: str) -> list[Path]:
    out = []
    for i in range(n):
        d = tmp_path / f"b{i}"
        d.mkdir()
        out.append(write_config(d, tmp_path / f"src{i}", code=f"C47{'DEFG'[i]}", id_chi_cuc=i + 1,
                                rehearsal=rehearsal, **kw))  # type: ignore[arg-type]
    return out


def test_a_plan_orders_its_branches_and_names_a_limit_per_server(tmp_path: Path) -> None:
    mdb = "mariadb+pyodbc://root@10.0.0.5:3306/{}?driver=MariaDB+Unicode"
    _branches(tmp_path, 2, slxnk_url=mdb.format("a_slxnk"), sxxk_url=mdb.format("a_sxxk"))  # one server
    (tmp_path / "b2").mkdir()
    write_config(tmp_path / "b2", tmp_path / "src2", code="C47F", id_chi_cuc=3)  # SQLite files: its own "server"
    plan = _plan(tmp_path, f"""wave = "dot-1"\nmode = "rehearsal"\ncontrol_url = "sqlite:///{tmp_path}/w.sqlite"
window = {{ start = 2026-12-01T23:00:00+07:00, end = 2026-12-02T05:00:00+07:00 }}
[limits]\ntotal = 2\nper_source_server = 1\nper_central = 1
[[branch]]\nconfig = "b0/branch.toml"\npriority = 5
[[branch]]\nconfig = "b1/branch.toml"\npriority = 1
[[branch]]\nconfig = "b2/branch.toml"\n""")
    lp = load_plan(plan)
    assert [b.code for b in lp.branches] == ["C47E", "C47D", "C47F"]  # by priority, then file order
    assert lp.branches[0].source_limits == ["ecm-source-10-0-0-5-3306"] == lp.branches[1].source_limits
    assert lp.branches[2].source_limits[0].startswith("ecm-source-") and lp.branches[2].source_limits[0].endswith(
        "src2")
    sizes = lp.limit_sizes()
    assert sizes["ecm-source-10-0-0-5-3306"] == 1 and all(v == 1 for v in sizes.values())
    assert lp.plan.output_dir == tmp_path / "out" / "waves"
    assert limit_name("central", "postgresql+psycopg://u:secret@db.hq:5432/central") == "ecm-central-db-hq-5432"


@pytest.mark.parametrize(("top", "tail", "says"), [
    ('mode = "production"', "", "rehearsal = true but the wave is a production"),
    ('mode = "rehearsal"\nwave = "Đợt 1"', "", "wave: String should match pattern"),
    ('mode = "rehearsal"\nwindow = { start = 2026-12-02T05:00:00+07:00, end = 2026-12-01T23:00:00+07:00 }', "",
     "window end must come after its start"),
    ('mode = "rehearsal"\nwindow = { start = 2026-12-01T23:00:00, end = 2026-12-02T05:00:00 }', "", "time zone"),
    ('mode = "rehearsal"', "[limits]\nper_source_server = 0", "limits.per_source_server"),
    ('mode = "rehearsal"', '[[branch]]\nconfig = "b0/branch.toml"', "names branch C47D twice"),
    ('mode = "rehearsal"\nspeed = "fast"', "", "speed: Extra inputs are not permitted"),
    ('mode = "rehearsal"', '[[branch]]\nconfig = "nowhere/branch.toml"', "config file not found"),
])
def test_a_bad_plan_is_refused_naming_what_is_wrong(tmp_path: Path, top: str, tail: str, says: str) -> None:
    _branches(tmp_path, 1)
    wave = "" if "wave =" in top else 'wave = "dot-1"\n'
    plan = _plan(tmp_path, f'{wave}{top}\ncontrol_url = "sqlite:///x.sqlite"\n'
                           f'[[branch]]\nconfig = "b0/branch.toml"\n{tail}\n')
    with pytest.raises(ConfigError, match=says):
        load_plan(plan)


def test_peak_holders_counts_overlapping_slots_only() -> None:
    s = [{"limit_name": "x", "acquired_at": 0.0, "released_at": 10.0},
         {"limit_name": "x", "acquired_at": 10.0, "released_at": 20.0},  # starts as the first ends: not overlapping
         {"limit_name": "y", "acquired_at": 5.0, "released_at": 15.0},
         {"limit_name": "y", "acquired_at": 14.0, "released_at": None}]  # still held
    assert peak_holders(s, until=30.0) == {"x": 1, "y": 2}


def test_a_wave_name_belongs_to_one_mode(tmp_path: Path) -> None:
    """A production wave named like an earlier rehearsal would find the rehearsal's records and idempotency keys:
    refused, naming what to do."""
    from load.wave_store import WaveStore
    store = WaveStore(f"sqlite:///{tmp_path / 'w.sqlite'}")
    store.start_wave("dot-1", "rehearsal", {}, None)
    store.start_wave("dot-1", "rehearsal", {}, None)  # the same wave again: it goes on
    with pytest.raises(ConfigError, match="already ran as a rehearsal wave"):
        store.start_wave("dot-1", "production", {}, None)
