import unicodedata
from pathlib import Path

import pyarrow as pa

from validate.expectations import SuiteRunner, converted_suites, render_html


def test_gx_suite_aggregates_batches_and_names_failing_rows(tmp_path: Path) -> None:
    nfd = unicodedata.normalize("NFD", "Vải")
    b1 = pa.record_batch({"TK_ID": [1, 2], "STT_HANG": [1, 0], "LUONG": [5.0, 1.0], "TEN_HANG": ["Vải", nfd],
                          "_SRC_KEY": ["k1", "k2"]})
    b2 = pa.record_batch({"TK_ID": [3, None], "STT_HANG": [1, 2], "LUONG": [-1.0, 2.0], "TEN_HANG": ["Áo", None],
                          "_SRC_KEY": ["k3", "k4"]})
    res = SuiteRunner().run("DHANG_MD", [b1, b2], converted_suites(["47D1"])["DHANG_MD"], ["TK_ID", "STT_HANG"],
                            index=["_SRC_KEY"])
    by = {(r.expectation, r.column): r for r in res}
    assert by[("expect_column_values_to_not_be_null", "TK_ID")].unexpected_count == 1
    assert by[("expect_column_values_to_be_between", "LUONG")].unexpected_count == 1
    assert by[("expect_column_values_to_be_between", "STT_HANG")].unexpected_count == 1
    nfc = by[("expect_column_values_to_be_in_set", "__nfc_TEN_HANG")]
    assert nfc.unexpected_count == 1 and "k2" in str(nfc.unexpected_keys)
    assert all(r.element_count == 4 for r in res)
    page = render_html("x", res, tmp_path / "gx.html").read_text()
    assert "KHÔNG ĐẠT" in page and "http" not in page
