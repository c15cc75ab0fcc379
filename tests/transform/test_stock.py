from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transform.stock import PriceGroup, group_by_price, split_stock


def test_two_price_split_puts_remaining_stock_on_the_dearer_line() -> None:
    # 100 units at 5.0 and 60 units at 8.0; 70 units remain → all 60 dear units + 10 cheap ones remain
    groups = group_by_price([(D("5.0"), D(100), D(3)), (D("8.0"), D(60), D(5))])
    pieces = {p.price: p for p in split_stock(D(70), groups)}
    assert (pieces[D("8.0")].remaining, pieces[D("8.0")].used) == (60, 0)
    assert (pieces[D("5.0")].remaining, pieces[D("5.0")].used) == (10, 90)
    assert sum(p.remaining for p in pieces.values()) == 70


def test_lines_with_the_same_price_are_grouped_with_the_smallest_rate() -> None:
    groups = group_by_price([(D(2), D(10), D(5)), (D(2), D(5), D(3)), (None, D(1), None)])
    assert groups == [PriceGroup(D(2), D(15), D(3)), PriceGroup(D(0), D(1), D(0))]


def test_ton_outside_the_goods_quantity_is_refused() -> None:
    with pytest.raises(ValueError):
        split_stock(D(11), group_by_price([(D(1), D(10), D(0))]))


_dec = st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False, allow_infinity=False)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.tuples(st.decimals(min_value=0, max_value=1000, places=2), _dec, _dec), min_size=1, max_size=8),
       st.floats(min_value=0, max_value=1))
def test_split_conserves_stock_and_bounds_every_piece(lines: list, frac: float) -> None:
    groups = group_by_price(lines)
    total = sum(g.quantity for g in groups)
    ton = (total * D(str(round(frac, 6)))).quantize(D("0.001")) if total else D(0)
    ton = min(ton, total)
    pieces = split_stock(ton, groups)
    assert sum(p.remaining for p in pieces) == ton
    assert all(D(0) <= p.remaining <= p.ton_dau and p.used + p.remaining == p.ton_dau for p in pieces)
    # remaining stock sits on the dearest groups: a cheaper group keeps stock only if all dearer ones are full
    ordered = sorted(pieces, key=lambda p: p.price, reverse=True)
    for dear, cheap in zip(ordered, ordered[1:]):
        if cheap.remaining > 0:
            assert dear.remaining == dear.ton_dau
