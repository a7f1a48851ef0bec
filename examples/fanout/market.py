"""Market: publishes quotes and trades, each on its own topic, then returns (main mode).

Run: `zmqservice run market.py -a market.json -m --rounds 10`
"""

from __future__ import annotations

import time
from decimal import Decimal

import attrs

from zmqservice import App, get_logger


@attrs.define
class Config:
    rounds: int = 5
    interval: float = 0.05  # seconds between rounds
    warmup: float = 0.5  # let subscribers connect first: PUB drops what nobody receives yet


app = App("market", config=Config)
app.publisher("quotes", args={"symbol": str, "bid": Decimal, "ask": Decimal}, topic="quotes")
app.publisher("trades", args={"symbol": str, "price": Decimal, "qty": int}, topic="trades")
LOG = get_logger()


@app.main
def main(to_send, config: Config) -> int:
    time.sleep(config.warmup)
    for n in range(1, config.rounds + 1):
        price = Decimal(100 + n)
        to_send("quotes", {"symbol": "BTC", "bid": price - 1, "ask": price + 1})
        to_send("trades", {"symbol": "BTC", "price": price, "qty": n})
        LOG.info("round %d/%d: BTC %s", n, config.rounds, price)
        time.sleep(config.interval)
    return config.rounds
