"""The sf_listener service written natively for zmqservice: a subscriber with a topic."""

from __future__ import annotations

import os
import pickle
import uuid
from decimal import Decimal
from typing import Any
from uuid import UUID

import attrs

from zmqservice import App
from zmqservice.log import WORKFLOW_ID


@attrs.define
class Tick:
    n: int
    symbol: str
    price: Decimal
    ident: UUID
    flags: set[str]


app = App("zs_listener", config={"required": {"out_dir": str}, "optional": {}})


def record(out_dir: str, tag: str, value: Any) -> None:
    tmp = os.path.join(out_dir, f".{tag}-{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as file:
        pickle.dump(value, file)
    os.replace(tmp, os.path.join(out_dir, f"{tag}-{uuid.uuid4().hex}.pkl"))


@app.subscriber("ticks", args=Tick, topic="prices")
def on_tick(args: Tick, config: dict[str, Any]) -> None:
    record(
        config["out_dir"],
        "tick",
        {
            **{field.name: getattr(args, field.name) for field in attrs.fields(Tick)},
            "workflow_id": WORKFLOW_ID.get(),
        },
    )
