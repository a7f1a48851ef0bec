"""The sf_ticker service written natively for zmqservice: main mode, a publisher with a topic."""

from __future__ import annotations

import os
import time
from decimal import Decimal
from typing import Any
from uuid import UUID

import attrs

from zmqservice import App


@attrs.define
class Tick:
    n: int
    symbol: str
    price: Decimal
    ident: UUID
    flags: set[str]


@attrs.define
class Config:
    count: int
    interval_s: float
    stop_path: str = ""


app = App("zs_ticker", config=Config)
app.publisher("ticks", args=Tick, topic="prices")


def tick(n: int) -> Tick:
    return Tick(
        n=n,
        symbol="BTC-USD",
        price=Decimal("100.25") + n,
        ident=UUID(int=1000 + n),
        flags={"live", f"n{n}"},
    )


@app.main
def main(to_send: Any, config: Config) -> int:
    sent = 0
    for n in range(config.count):
        if config.stop_path and os.path.exists(config.stop_path):
            break
        to_send("ticks", tick(n))
        sent += 1
        time.sleep(config.interval_s)
    return sent
