"""Price publisher: in main mode, publishes `ticks` rounds of quotes, then returns.

Run: `zmqservice run examples/trading_desk/prices.py -a prices.json -m --ticks 20`
"""

from __future__ import annotations

import random
import time
from decimal import Decimal

import attrs
from models import Quote

from zmqservice import App, get_logger


@attrs.define
class Config:
    ticks: int = 15
    interval: float = 0.2  # seconds between ticks
    warmup: float = 0.5  # let subscribers connect first: PUB drops what nobody receives yet
    seed: int = 7  # the same seed gives the same prices


app = App("prices", config=Config)
app.publisher("prices", args=Quote, topic="prices")
LOG = get_logger()
START = {"BTC": Decimal("64000.00"), "ETH": Decimal("3100.00")}


@app.main
def main(to_send, config: Config) -> int:
    rng = random.Random(config.seed)
    prices = dict(START)
    time.sleep(config.warmup)
    for tick in range(1, config.ticks + 1):
        for symbol, price in prices.items():
            step = Decimal(rng.randint(-100, 100)) / 10_000  # a random walk of up to 1% a tick
            prices[symbol] = (price * (1 + step)).quantize(Decimal("0.01"))
        LOG.info(
            "tick %d/%d: %s", tick, config.ticks, "  ".join(f"{s} {p}" for s, p in prices.items())
        )
        for symbol, price in prices.items():
            to_send("prices", Quote(symbol=symbol, price=price, tick=tick))
        time.sleep(config.interval)
    return config.ticks
