import math

import pytest

from validate.sampling import draw, zero_acceptance_sample_size
from validate.schema import canon_type, compare_schema


@pytest.mark.parametrize("conf,p,pop,n", [(0.95, 0.01, 10_000_000, 299), (0.95, 0.01, 10_000, 294),
                                          (0.95, 0.05, 10_000, 59), (0.99, 0.01, 10_000, 448),
                                          (0.95, 0.01, 1000, 258), (0.95, 0.01, 120, 93), (0.95, 0.01, 0, 0)])
def test_zero_acceptance_sample_size(conf: float, p: float, pop: int, n: int) -> None:
    assert zero_acceptance_sample_size(conf, p, pop) == n
    if 0 < pop <= 10_000:  # independent check with exact binomial coefficients: n is the smallest that works
        d = math.ceil(p * pop)
        assert math.comb(pop - d, n) / math.comb(pop, n) <= 1 - conf < math.comb(pop - d, n - 1) / math.comb(pop, n - 1)


def test_draw_is_seeded_and_stratified() -> None:
    a = draw(1000, 20, 865, "DTO_KHAI_MD")
    assert a == draw(1000, 20, 865, "DTO_KHAI_MD")
    assert a != draw(1000, 20, 865, "DHANG_MD") and a != draw(1000, 20, 866, "DTO_KHAI_MD")
    assert len(set(a)) == 20 and all(0 <= i < 1000 for i in a)


def test_compare_schema_reports_missing_extra_retyped() -> None:
    expected = {"T": {"columns": {"A": "int", "B": "numeric(18,8)", "C": "char(5)"}}}
    found = {"T": {"columns": {"A": "INTEGER", "B": "NUMERIC(18, 6)", "D": "TEXT"}}, "U": {"columns": {}}}
    diffs = {(d.column, d.kind) for d in compare_schema("X", expected, found)}
    assert diffs == {("B", "retyped"), ("C", "missing"), ("D", "extra"), ("*", "extra")}
    assert canon_type("numeric(18,8)") == canon_type("NUMERIC(18, 8)")
