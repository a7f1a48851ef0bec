"""Receipts: prints one receipt line for every order the shop places."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from zmqservice import App, get_logger

app = App("receipts")
LOG = get_logger()
lines: list[str] = []


@app.subscriber("order_placed", args={"item": str, "qty": int, "total": Decimal})
def on_order(order: dict[str, Any]) -> None:
    lines.append(f"{order['qty']:>3} x {order['item']:<6} {order['total']:>6}")
    LOG.info("receipt: %s", lines[-1])
