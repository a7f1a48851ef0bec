"""Run the shop, pricing and receipts services together in one thread, with no sockets.

Run: `python examples/inline/run_inline.py`

`InlineServices` routes each `to_send` to the connection a relation names, through the
same validation and msgpack round trip as over ZeroMQ: the shop gets a `RemoteError` for
an item the pricing service does not know, as it would from a remote replyer.
"""

from __future__ import annotations

import sys
from decimal import Decimal

import pricing  # the script's own directory is first on sys.path
import receipts
import shop

from zmqservice import InlineServices
from zmqservice.log import setup_logging

BASKET = {"apple": 6, "durian": 1, "fig": 2}


def wire() -> InlineServices:
    """The three services and the two relations between them."""
    inline = InlineServices()
    inline.set_main_service("shop", shop.app, config={"basket": BASKET})
    inline.add_service("pricing", pricing.app)
    inline.add_service("receipts", receipts.app)
    inline.add_relation("shop", "price", "pricing", "price")
    inline.add_relation("shop", "order_placed", "receipts", "order_placed")
    return inline


def main() -> int:
    setup_logging("INFO")
    total: Decimal = wire().start()  # runs every init, then the shop's main
    print("\n".join(receipts.lines))
    print(f"total {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
