"""Risk: approves an order unless it would take the account past its position limit.

The service that `test_risk.py` tests: a replyer that calls a requester and publishes, a
subscriber that changes what the replyer decides, and a `main`.
"""

from __future__ import annotations

from typing import Literal

import attrs

from zmqservice import App, get_logger


@attrs.define
class Config:
    max_position: int = 100  # the most an account may hold of one symbol, long or short


@attrs.define
class Order:
    account: str
    symbol: str
    side: Literal["buy", "sell"]
    qty: int


app = App("risk", config=Config)
app.requester("position", args={"account": str, "symbol": str}, returns={"qty": int}, timeout=2.0)
app.publisher("decisions", args={"account": str, "symbol": str, "approved": bool}, topic="risk")
LOG = get_logger()
halted: set[str] = set()  # symbols trading is halted in


@app.replyer("check_order", args=Order, returns={"approved": bool, "reason": str})
def check_order(order: Order, to_send, config: Config) -> dict[str, object]:
    if order.symbol in halted:
        approved, reason = False, f"{order.symbol} is halted"
    else:
        held = to_send("position", {"account": order.account, "symbol": order.symbol})["qty"]
        after = held + (order.qty if order.side == "buy" else -order.qty)
        approved = abs(after) <= config.max_position
        reason = "ok" if approved else f"position would be {after}, limit {config.max_position}"
    to_send("decisions", {"account": order.account, "symbol": order.symbol, "approved": approved})
    return {"approved": approved, "reason": reason}


@app.subscriber("halts", args={"symbol": str, "halted": bool}, topic="halts")
def on_halt(args: dict[str, object]) -> None:
    symbol = str(args["symbol"])
    if args["halted"]:
        halted.add(symbol)
    else:
        halted.discard(symbol)
    LOG.info("%s %s", symbol, "halted" if args["halted"] else "trading again")


@app.main
def main(to_send, config: Config) -> bool:
    """Check the house account's BTC position against the limit; True when it is within."""
    held = to_send("position", {"account": "house", "symbol": "BTC"})["qty"]
    LOG.info("house holds %d BTC, limit %d", held, config.max_position)
    return abs(held) <= config.max_position
