"""A finding keeps its identity (check, table, set of keys) across correction rounds: an acceptance carries over
to the same finding of the next round instead of being asked for again; anything else is decided again."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from load.control_store import ControlStore
from validate.findings import Finding, finding_identity

RID = "r1"


def test_identity_ignores_order_and_repetition_but_not_the_keys() -> None:
    a = finding_identity("quarantine", "SXXK.SNPL", [{"A": 1, "B": "x"}, {"A": 2, "B": None}])
    assert a == finding_identity("quarantine", "SXXK.SNPL", [{"B": None, "A": 2}, {"A": 1, "B": "x"}, {"A": 1, "B": "x"}])
    assert a != finding_identity("quarantine", "SXXK.SNPL", [{"A": 1, "B": "x"}])
    assert a != finding_identity("quarantine", "SXXK.DNPLNHAP", [{"A": 1, "B": "x"}, {"A": 2, "B": None}])
    assert a != finding_identity("null_key", "SXXK.SNPL", [{"A": 1, "B": "x"}, {"A": 2, "B": None}])


def test_an_acceptance_carries_over_to_the_same_finding_of_the_next_round(tmp_path: Path) -> None:
    s = ControlStore(f"sqlite:///{tmp_path / 'c.sqlite'}")
    s.start_run(RID, "C47D", True, {})
    same = [{"SOTK": 1, "TON": Decimal("5.000"), "MA_NPL": None}, "SXXK.SNPL|MA_HQ=C47D|MA_NPL=V"]
    s.add_finding(RID, Finding("pl4_05_convert", "quarantine", "SXXK.SNPL", same, "m", "source_data_error", "major"))
    s.add_finding(RID, Finding("pl4_05_convert", "quarantine", "SXXK.DNPLNHAP", ["k1", "k2"], "m", "source_data_error", "major"))
    s.add_finding(RID, Finding("pl4_06_validate", "stock_balance", None, ["a|b|TON"], "m", "conversion_error", "critical"))
    assert s.decide(RID, 1, "accepted", "accept", "đã xem", "An (tong-cuc-business)", via="desk", login="an.nv")
    assert s.decide(RID, 2, "accepted", "accept", "đã xem", "An (tong-cuc-business)", via="desk")
    assert s.decide(RID, 3, "redo", "redo", "làm lại", "An (tong-cuc-business)", via="desk")
    assert not s.decide(RID, 1, "redo", "redo", "x", "someone else")  # decided already: refused, unchanged
    assert s.supersede_findings(RID, ("pl4_05_convert", "pl4_06_validate")) == 3
    # the next round: the first finding again (same keys, another order), the second with one key fixed, the third
    s.add_finding(RID, Finding("pl4_05_convert", "quarantine", "SXXK.SNPL", list(reversed(same)), "m", "source_data_error", "major"))
    s.add_finding(RID, Finding("pl4_05_convert", "quarantine", "SXXK.DNPLNHAP", ["k1"], "m", "source_data_error", "major"))
    s.add_finding(RID, Finding("pl4_06_validate", "stock_balance", None, ["a|b|TON"], "m", "conversion_error", "critical"))
    new = {f["finding_id"]: f for f in s.findings(RID) if f["status"] != "superseded"}
    assert (new[4]["status"], new[4]["decided_by"], new[4]["reason"]) == ("accepted", "An (tong-cuc-business)",
                                                                          "đã xem")
    assert new[5]["status"] == "open" and new[6]["status"] == "open"  # keys changed; a redo is not carried
    carried = [e for e in s.decision_log(RID) if e["via"] == "carried-over"]
    assert [(e["finding_id"], e["decision"]) for e in carried] == [(4, "accept")]
    assert "finding 1" in carried[0]["reason"]
