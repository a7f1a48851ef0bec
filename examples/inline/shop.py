"""Shop: in main mode, prices every line of its basket, places the ones it can, and
returns the total.

Run alone with `zmqservice run shop.py -a ... -m`, or wired to the others in one thread by
`run_inline.py`.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from zmqservice import App, RemoteError, get_logger


@attrs.define
class Config:
    basket: dict[str, int]  # item -> quantity


app = App("shop", config=Config)
app.requester("price", args={"item": str, "qty": int}, returns={"total": Decimal}, timeout=2.0)
app.publisher("order_placed", args={"item": str, "qty": int, "total": Decimal})
LOG = get_logger()


@app.main
def main(to_send, config: Config) -> Decimal:
    total = Decimal(0)
    for item, qty in config.basket.items():
        try:
            line = to_send("price", {"item": item, "qty": qty})["total"]
        except RemoteError as exc:  # here a RemoteValidationError: pricing has no such item
            LOG.warning("skipping %s: %s", item, exc.message)
            continue
        to_send("order_placed", {"item": item, "qty": qty, "total": line})
        total += line
    LOG.info("basket total %s", total)
    return total
