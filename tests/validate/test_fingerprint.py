import unicodedata
from datetime import datetime
from decimal import Decimal

from validate.fingerprint import canon, fingerprint, reconcile


def test_canonical_form_ignores_representation_not_values() -> None:
    assert canon(Decimal("1.50000000")) == canon(1.5) == canon(Decimal("1.5"))
    assert canon(Decimal("10")) == canon(10.0) == "10"
    assert canon(unicodedata.normalize("NFD", "Hà Nội ")) == canon("Hà Nội")
    assert canon(datetime(2013, 5, 2)) == "2013-05-02 00:00:00.000000"
    assert canon(Decimal("1.5")) != canon(Decimal("1.51"))
    assert fingerprint({"a": 1, "b": None}, ["a", "b"]) != fingerprint({"a": 1, "b": ""}, ["a", "b"])


def test_reconcile_names_rows_and_columns() -> None:
    snap = [{"id": 1, "x": "a", "q": Decimal("1.0")}, {"id": 2, "x": "b", "q": Decimal("2.0")},
            {"id": 3, "x": "c", "q": Decimal("3.0")}]
    cent = [{"id": 1, "x": "a", "q": 1.0}, {"id": 2, "x": "b", "q": 2.5}, {"id": 4, "x": "d", "q": 4.0}]
    r = reconcile("T", ["id"], ["id", "x", "q"], snap, cent)
    assert [(d.key, d.kind, d.columns) for d in r.diffs] == [
        ((2,), "different", ["q"]), ((3,), "missing_in_central", []), ((4,), "extra_in_central", [])]
    assert r.rows_snapshot == 3 and r.rows_central == 3 and r.n_diffs == 3
    same = reconcile("T", ["id"], ["id", "x", "q"], snap, snap)
    assert same.n_diffs == 0 and same.digest == reconcile("T", ["id"], ["id", "x", "q"], snap, []).digest
    assert reconcile("T", ["id"], ["id"], [], cent, allow_extra=True).n_diffs == 0
