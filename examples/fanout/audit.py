"""Audit: subscribes to the market's trades only, and keeps a running volume.

Run: `zmqservice run audit.py -a audit.json`
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from zmqservice import App, get_logger

app = App("audit")
LOG = get_logger()
volume: Counter[str] = Counter()  # symbol -> quantity traded


@app.subscriber("trades", args={"symbol": str, "price": Decimal, "qty": int}, topic="trades")
def on_trade(trade: dict[str, Any]) -> None:
    volume[trade["symbol"]] += trade["qty"]
    symbol = trade["symbol"]
    LOG.info("audited %s %d @ %s: volume %d", symbol, trade["qty"], trade["price"], volume[symbol])
