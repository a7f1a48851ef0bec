"""Dashboard: subscribes to both of the market's topics, quotes and trades.

Run: `zmqservice run dashboard.py -a dashboard.json`
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from zmqservice import App, get_logger

app = App("dashboard")
LOG = get_logger()
seen: list[tuple[str, dict[str, Any]]] = []  # (connection, message), in arrival order


@app.subscriber("quotes", args={"symbol": str, "bid": Decimal, "ask": Decimal}, topic="quotes")
def on_quote(quote: dict[str, Any]) -> None:
    seen.append(("quotes", quote))
    LOG.info("quote %s %s / %s", quote["symbol"], quote["bid"], quote["ask"])


@app.subscriber("trades", args={"symbol": str, "price": Decimal, "qty": int}, topic="trades")
def on_trade(trade: dict[str, Any]) -> None:
    seen.append(("trades", trade))
    LOG.info("trade %s %d @ %s", trade["symbol"], trade["qty"], trade["price"])
