"""Strategy: buys dips and sells rallies past a threshold, and tracks its position from fills.

Run: `zmqservice run examples/trading_desk/strategy.py -a strategy.json --threshold-bps 50`
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import attrs
from models import Fill, Order, Quote

from zmqservice import App, RemoteError, get_logger


@attrs.define
class Config:
    qty: int = 1
    threshold_bps: int = 60  # a move since the last tick this big (in 0.01 %) trades


app = App("strategy", config=Config)
app.requester("place_order", args=Order, returns=Fill, timeout=2.0)
LOG = get_logger()
last_price: dict[str, Decimal] = {}
position: Counter[str] = Counter()


@app.init
def ready(config: Config) -> None:
    LOG.info("strategy ready: trading %d on moves of %d bps", config.qty, config.threshold_bps)


@app.subscriber("prices", args=Quote, topic="prices")
def on_quote(quote: Quote, to_send, config: Config) -> None:
    previous = last_price.get(quote.symbol)
    last_price[quote.symbol] = quote.price
    if previous is None:
        return
    move_bps = int((quote.price - previous) / previous * 10_000)
    if abs(move_bps) < config.threshold_bps:
        return
    order = Order(quote.symbol, "buy" if move_bps < 0 else "sell", config.qty, quote.price)
    LOG.info("%s moved %+d bps: placing %s", quote.symbol, move_bps, order)
    try:
        reply = to_send("place_order", order)  # the reply arrives as a plain dict
    except RemoteError as exc:
        LOG.warning("order rejected: %s", exc.message)
        return
    LOG.info("order %s confirmed at %s", reply["order_id"], reply["price"])


@app.subscriber("fills", args=Fill, topic="fills")
def on_fill(fill: Fill) -> None:
    position[fill.symbol] += fill.qty if fill.side == "buy" else -fill.qty
    LOG.info("fill %s, position %s %+d", fill, fill.symbol, position[fill.symbol])
