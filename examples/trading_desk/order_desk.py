"""Order desk: fills every valid order at its price and publishes the fill.

Run: `zmqservice run examples/trading_desk/order_desk.py -a order_desk.json --max-qty 10`
"""

from __future__ import annotations

import itertools

import attrs
from models import Fill, Order

from zmqservice import App, get_logger


@attrs.define
class Config:
    max_qty: int = 100


app = App("order_desk", config=Config)
app.publisher("fills", args=Fill, topic="fills")
LOG = get_logger()
order_ids = itertools.count(1)


@app.init
def ready(config: Config) -> None:
    LOG.info("order desk ready: max qty %d", config.max_qty)


@app.replyer("place_order", args=Order, returns=Fill)
def place_order(order: Order, to_send, config: Config) -> Fill:
    # `side` is already checked by the model (Literal["buy", "sell"]); the rest is ours.
    if not 0 < order.qty <= config.max_qty:
        raise ValueError(f"qty must be between 1 and {config.max_qty}, got {order.qty}")
    fill = Fill(f"O{next(order_ids)}", order.symbol, order.side, order.qty, order.price)
    to_send("fills", fill)
    LOG.info("filled %s", fill)
    return fill
