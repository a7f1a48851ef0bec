"""A main-mode publisher with a topic, written for service-framework 0.0.20, unchanged.

Publishes up to `count` ticks, `interval_s` apart, stopping early once `stop_path` exists
(PUB drops messages until a subscriber has connected, so it keeps going until told).
"""

import os
import time
from decimal import Decimal
from uuid import UUID


def tick(n):
    return {
        "n": n,
        "symbol": "BTC-USD",
        "price": Decimal("100.25") + n,
        "ident": UUID(int=1000 + n),
        "flags": {"live", f"n{n}"},
    }


def main(to_send, config):
    sent = 0
    for n in range(config["count"]):
        stop_path = config.get("stop_path")
        if stop_path and os.path.exists(stop_path):
            break
        to_send("ticks", tick(n))
        sent += 1
        time.sleep(config["interval_s"])
    return sent


config_model = {
    "required": {"count": int, "interval_s": float},
    "optional": {"stop_path": str},
}

connection_models = {
    "out": {
        "ticks": {
            "connection_type": "publisher",
            "required_creation_arguments": {},
            "optional_creation_arguments": {"topic": "prices"},
            "required_arguments": {
                "n": int,
                "symbol": str,
                "price": Decimal,
                "ident": UUID,
                "flags": {str},
            },
            "optional_arguments": {},
        },
    },
}
