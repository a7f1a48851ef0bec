"""Pricing: quotes the total for `qty` of an item on its price list.

An item that is not on the list never reaches the handler: the `Literal` in the args model
rejects it, and the caller gets a `RemoteValidationError`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from zmqservice import App

Item = Literal["apple", "pear", "fig"]
PRICES = {"apple": Decimal("0.40"), "pear": Decimal("0.55"), "fig": Decimal("1.20")}

app = App("pricing")


@app.replyer("price", args={"item": Item, "qty": int}, returns={"total": Decimal})
def price(args: dict[str, Any]) -> dict[str, Decimal]:
    return {"total": PRICES[args["item"]] * args["qty"]}
