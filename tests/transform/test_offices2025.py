from __future__ import annotations

from pathlib import Path

import pytest

from transform.errors import ConfigError
from transform.offices2025 import REGIONS_2025, parse_office_table, to_2025, uncovered

SAMPLE = Path(__file__).parents[2] / "sample_data" / "office_table_2025.SAMPLE.csv"


def test_twenty_regions_with_the_known_assignment() -> None:
    assert len(REGIONS_2025) == 20 and list(REGIONS_2025)[0] == "I" and list(REGIONS_2025)[-1] == "XX"
    assert "Đồng Nai" in REGIONS_2025["XVIII"] and "Quảng Ninh" in REGIONS_2025["VIII"]


def test_sample_table_parses_and_maps() -> None:
    t = parse_office_table(SAMPLE.read_text(encoding="utf-8"))
    assert to_2025("47D1", "47", t) == ("KV18D1", "18")
    assert uncovered(["47D1", "47D2", "02B1", None], t) == ["02B1"]
    assert len(t.sha256) == 64


@pytest.mark.parametrize("text, needle", [
    ("a,b\n1,2\n", "expected the columns"),
    ("old_code,new_code,new_cuc_code,region,new_name\n47D1,KV18D1,18,XXI,x\n", "region 'XXI'"),
    ("old_code,new_code,new_cuc_code,region,new_name\n47D1,kv 1,18,I,x\n", "malformed code"),
    ("old_code,new_code,new_cuc_code,region,new_name\n47D1,A1,18,I,x\n47D1,A2,18,I,y\n", "mapped twice"),
])
def test_bad_tables_are_refused_with_the_line(text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_office_table(text)
