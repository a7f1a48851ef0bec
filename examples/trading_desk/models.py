"""The messages the trading-desk services exchange: one attrs class per message shape.

Each service imports what it sends or receives from here, so both ends of a connection
validate against the same model.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import attrs

Side = Literal["buy", "sell"]


@attrs.define
class Quote:
    """One symbol's price at one tick, published on ``prices``."""

    symbol: str
    price: Decimal
    tick: int


@attrs.define
class Order:
    """What the strategy asks the order desk for on ``place_order``."""

    symbol: str
    side: Side
    qty: int
    price: Decimal

    def __str__(self) -> str:
        return f"{self.side} {self.qty} {self.symbol} @ {self.price}"


@attrs.define
class Fill:
    """The order desk's reply to ``place_order``, also published on ``fills``."""

    order_id: str
    symbol: str
    side: Side
    qty: int
    price: Decimal

    def __str__(self) -> str:
        return f"{self.order_id}: {self.side} {self.qty} {self.symbol} @ {self.price}"
