"""Splitting remaining stock (TON) over goods lines with different unit prices (domain doc §6).

Central ``DSX_NPL_NHAP_TL`` holds one row per declaration × material × taxable unit price. The 2014
rule assigns the remaining stock to the **highest-priced** lines and the consumption to the
cheapest: for price group *g* with quantity q_g, let R_g be the total quantity of the groups whose
price is ≥ price_g; then used_g = clamp(R_g − TON, 0, q_g) and remaining_g = q_g − used_g.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class PriceGroup:
    price: Decimal
    quantity: Decimal
    tax_rate: Decimal  # the smallest rate among the group's lines


@dataclass(frozen=True)
class StockPiece:
    price: Decimal
    tax_rate: Decimal
    ton_dau: Decimal  # the group's quantity (TON_DAU)
    used: Decimal  # LUONG
    remaining: Decimal  # TON = LUONG_TON_SAU_DC


def group_by_price(lines: Iterable[tuple[Decimal | None, Decimal | None, Decimal | None]]) -> list[PriceGroup]:
    """(price, quantity, tax rate) of goods lines → price groups (sum of quantity, smallest rate).

    A missing price counts as 0 and a missing rate as 0, as the 2014 scripts did (hazard 8).
    """
    acc: dict[Decimal, tuple[Decimal, Decimal]] = {}
    for price, qty, rate in lines:
        p, q, r = price or Decimal(0), qty or Decimal(0), rate or Decimal(0)
        if p in acc:
            q0, r0 = acc[p]
            acc[p] = (q0 + q, min(r0, r))
        else:
            acc[p] = (q, r)
    return [PriceGroup(p, q, r) for p, (q, r) in sorted(acc.items(), key=lambda kv: kv[0], reverse=True)]


def split_stock(ton: Decimal, groups: list[PriceGroup]) -> list[StockPiece]:
    """Split ``ton`` over price groups, remaining stock to the highest prices first.

    Requires 0 ≤ ton ≤ Σ quantity (the caller quarantines other rows). Then Σ remaining = ton,
    every piece is ≥ 0 and ≤ its group's quantity.
    """
    total = sum((g.quantity for g in groups), Decimal(0))
    if ton < 0 or ton > total:
        raise ValueError(f"TON {ton} outside 0..{total}")
    pieces = []
    running = Decimal(0)
    for g in sorted(groups, key=lambda g: g.price, reverse=True):
        running += g.quantity
        used = min(max(running - ton, Decimal(0)), g.quantity)
        pieces.append(StockPiece(g.price, g.tax_rate, g.quantity, used, g.quantity - used))
    return pieces
